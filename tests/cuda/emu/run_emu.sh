#!/usr/bin/env bash
# Run test_cuda_ops on the CPU: src/cuda/*.cu compiled by g++ against the CUDA
# emulation in this folder (cuda_emu.h), linked with the CPU library of a
# normal build. Catches indexing / layout / algorithm bugs without a GPU.
#   tests/cuda/emu/run_emu.sh [build-dir]     (default build-cuda; needs libsam2d.a there)
set -eu
cd "$(dirname "$0")/../../.."
BUILD=${1:-build-cuda}
[ $# -gt 0 ] && shift
E=$BUILD/cuda-emu
mkdir -p "$E"
cmake --build "$BUILD" --target sam2d_lib >/dev/null
CXXFLAGS="-std=c++17 -O1 -g -ffp-contract=off -pthread -DSAM_CUDA_EMU -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas"
objs=""
for cu in src/cuda/*.cu; do
  b=$(basename "$cu" .cu)
  python3 tests/cuda/emu/cu2cpp.py "$cu" >"$E/$b.cpp"
  g++ $CXXFLAGS -Itests/cuda/emu/include -Iinclude -Isrc -c "$E/$b.cpp" -o "$E/$b.o" &
  objs="$objs $E/$b.o"
done
g++ $CXXFLAGS -Itests/cuda/emu -c tests/cuda/emu/cuda_emu.cpp -o "$E/cuda_emu.o" &
gcc -std=gnu11 -O1 -g -Wall -Wextra -Iinclude -Isrc -Itests -c tests/cuda/test_cuda_ops.c -o "$E/test_cuda_ops.o" &
wait
g++ -pthread -o "$E/test_cuda_ops_emu" "$E/test_cuda_ops.o" $objs "$E/cuda_emu.o" "$BUILD/libsam2d.a" \
  $(pkg-config --libs openblas jansson zlib libpng libjpeg libavformat libavcodec libswscale libavutil libmicrohttpd) -lm
"$E/test_cuda_ops_emu"
