#!/usr/bin/env bash
# Run the CUDA tests (tests/cuda/test_*.c) on the CPU: src/cuda/*.cu compiled
# by g++ against the CUDA emulation in this folder (cuda_emu.h), linked with
# the CPU library of a normal build. Catches indexing / layout / algorithm /
# warp-race bugs without a GPU; says nothing about speed.
#   tests/cuda/emu/run_emu.sh [build-dir] [test-name...]   (default build-cuda, all tests; needs libsam2d.a there)
#     The kernel tests take ~15 s, test_cuda_model_golden (the micro model's image and video scenarios) ~2 min.
#   EMU_DEFS=-DCHUNK_SCORES=20000 tests/cuda/emu/run_emu.sh   (every chunked attention in several chunks)
#   EMU_ARGS=image tests/cuda/emu/run_emu.sh build-cu test_cuda_model_golden   (arguments for the tests)
#   EMU_DEFS="-fsanitize=address,undefined" EMU_LDFLAGS=-fsanitize=address,undefined tests/cuda/emu/run_emu.sh
#     (device memory is heap memory here: a kernel reading or writing outside a buffer is caught)
set -eu
cd "$(dirname "$0")/../../.."
BUILD=${1:-build-cuda}
[ $# -gt 0 ] && shift
E=$BUILD/cuda-emu
mkdir -p "$E"
cmake --build "$BUILD" --target sam2d_lib >/dev/null
CXXFLAGS="${EMU_DEFS:-} -std=c++17 -O1 -g -ffp-contract=off -pthread -DSAM_CUDA_EMU -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas"
objs=""
for cu in src/cuda/*.cu; do
  b=$(basename "$cu" .cu)
  python3 tests/cuda/emu/cu2cpp.py "$cu" >"$E/$b.cpp"
  g++ $CXXFLAGS -Itests/cuda/emu/include -Iinclude -Isrc -c "$E/$b.cpp" -o "$E/$b.o" &
  objs="$objs $E/$b.o"
done
g++ $CXXFLAGS -Itests/cuda/emu -c tests/cuda/emu/cuda_emu.cpp -o "$E/cuda_emu.o" &
tests=${*:-$(cd tests/cuda && ls test_*.c | sed 's/\.c$//')}
for t in $tests; do
  gcc ${EMU_DEFS:-} -std=gnu11 -O1 -g -Wall -Wextra -Iinclude -Isrc -Itests -DSAM2D_TEST_DATA="\"$PWD/tests/data\"" \
    -DSAM2D_SOURCE_DIR="\"$PWD\"" -c "tests/cuda/$t.c" -o "$E/$t.o" &
done
wait
libs="$(pkg-config --libs openblas jansson zlib libpng libjpeg libavformat libavcodec libswscale libavutil libmicrohttpd) -lm"
rc=0
for t in $tests; do
  g++ ${EMU_LDFLAGS:-} -pthread -o "$E/${t}_emu" "$E/$t.o" $objs "$E/cuda_emu.o" "$BUILD/libsam2d.a" $libs
  echo "== $t (CPU emulation)"
  "$E/${t}_emu" ${EMU_ARGS:-} || rc=1
done
exit $rc
