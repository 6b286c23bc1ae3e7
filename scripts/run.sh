#!/usr/bin/env bash
# Start the service with the settings in the environment (see `sam2d serve --help`).
# When the default checkpoint is missing it tries to download Meta's official file
# into MODEL_DIR; offline it explains what to place where, or use `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SAM2D_BIN:-build/sam2d}
MODEL_DIR=${MODEL_DIR:-./models}
SIZE=${SAM2_MODEL_SIZE:-base_plus}
export MODEL_DIR
if [ -z "${SAM2_CHECKPOINT:-}" ]; then
  ckpt="$MODEL_DIR/sam2.1_hiera_${SIZE}.pt"
  if [ ! -f "$ckpt" ] && [ ! -f "${ckpt%.pt}.safetensors" ]; then
    url="https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_${SIZE}.pt"
    mkdir -p "$MODEL_DIR"
    echo "sam2d: $ckpt is missing; trying to download Meta's checkpoint from $url" >&2
    if command -v curl >/dev/null && curl -fL --connect-timeout 10 -o "$ckpt.part" "$url"; then
      mv "$ckpt.part" "$ckpt"
    elif command -v wget >/dev/null && wget -q -T 10 -O "$ckpt.part" "$url"; then
      mv "$ckpt.part" "$ckpt"
    else
      rm -f "$ckpt.part"
      cat >&2 <<MSG
sam2d: could not download $url (offline?).
  To serve SAM 2.1 ${SIZE}, place Meta's sam2.1_hiera_${SIZE}.pt in $MODEL_DIR (or set MODEL_DIR /
  SAM2_MODEL_SIZE, or SAM2_CHECKPOINT + SAM2_CONFIG for another model).
  Starting now with the small offline demo model that ships with this repository
  (models/sam2.1_hiera_micro_shapes.pt: a toy trained on synthetic shapes, not for real videos).
MSG
      export SAM2_CHECKPOINT=models/sam2.1_hiera_micro_shapes.pt
      export SAM2_CONFIG=models/sam2.1_hiera_micro_shapes.yaml
    fi
  fi
fi
exec "$BIN" serve "$@"
