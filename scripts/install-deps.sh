#!/usr/bin/env bash
# Installs the Debian packages sam2d needs to build, test and run. Nothing else is downloaded.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake pkg-config git
  libopenblas-dev            # BLAS for the CPU back end
  libjansson-dev             # JSON
  libmicrohttpd-dev          # HTTP server
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev  # video decoding
  libjpeg62-turbo-dev libpng-dev zlib1g-dev                      # images, zip
  ffmpeg                     # tests make videos with the ffmpeg CLI
  clang libclang-rt-14-dev   # fuzz targets (libFuzzer)
  docker-compose             # tests validate docker-compose.yaml (no engine needed)
  curl ca-certificates       # scripts/run.sh downloads Meta's checkpoint when online
  python3                    # tests/cuda/emu rewrites the CUDA sources for the CPU emulation test
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
