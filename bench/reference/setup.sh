#!/bin/sh
# Installs what bench_reference.py needs to run Meta's SAM 2 Python code on the CPU.
# Debian packages only (bookworm: PyTorch 1.13.1 built against OpenBLAS). This is an
# optional benchmark tool, deliberately not part of scripts/install-deps.sh.
# hydra-core is not packaged in Debian; bench_reference.py builds the model without it.
set -eu
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
    python3 python3-torch python3-omegaconf python3-yaml python3-numpy \
    python3-pil python3-tqdm util-linux

# Export Meta's code (read-only git dir, no work tree) into the ignored folder ref/
# at the commit the reference figures name. Nothing of it is added to this repository.
SAM2_GIT_DIR=${SAM2_GIT_DIR:-/work/.mirror/facebookresearch+sam2/repo}
SAM2_COMMIT=${SAM2_COMMIT:-2b90b9f}
REF_DIR=${REF_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/ref}
if [ -d "$SAM2_GIT_DIR" ] && [ ! -d "$REF_DIR/sam2" ]; then
    mkdir -p "$REF_DIR"
    git --git-dir="$SAM2_GIT_DIR" archive "$SAM2_COMMIT" sam2 | tar -x -C "$REF_DIR"
fi
[ -d "$REF_DIR/sam2" ] || echo "note: Meta's sam2 package not found under $REF_DIR (set SAM2_GIT_DIR, or clone facebookresearch/sam2 there)" >&2
