#!/usr/bin/env bash
# The one script a GPU session runs, from the repository root (no network
# needed): GPU/driver summary, a Release build with the CUDA back end for
# sm_90 (H100/H200), the `cuda` ctest label (every CUDA kernel against the CPU
# one), then kernel timings at the model's sizes. Logs go to $OUT (or
# ./device-check-out); a short summary is printed last.
#
#   bench/gpu/device_check.sh            # everything (~2-4 min on 16 cores)
#   bench/gpu/device_check.sh --no-bench # build + tests only
#   BUILD=build-gpu JOBS=16 CUDA_ARCH=90 # the defaults
# Re-running reuses the build directory (incremental).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-check-out}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
CUDA_ARCH=${CUDA_ARCH:-90}
BENCH=1
[ "${1:-}" = "--no-bench" ] && BENCH=0
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "== $*" | tee -a "$SUMMARY"; }
t0=$(date +%s)

[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH

# 1. what we run on
{
  echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) changed files"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap,clocks.max.sm --format=csv 2>&1
  nvidia-smi 2>&1 | head -15
  nvcc --version 2>&1 | tail -2
  nproc
} >"$OUT/gpu.txt" 2>&1
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>&1 | head -1)"
say "nvcc: $(nvcc --version 2>&1 | grep -o 'release [0-9.]*' || echo 'not found')"

# 2. configure + build (only what the checks need)
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAM2D_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
    >"$OUT/configure.log" 2>&1; then
  say "configure FAILED (tail of configure.log):"
  tail -20 "$OUT/configure.log" | tee -a "$SUMMARY"
  exit 1
fi
grep -q "sam2d_cuda" "$BUILD/Makefile" 2>/dev/null || grep -rq "sam2d_cuda" "$BUILD/CMakeFiles/Makefile2" 2>/dev/null ||
  say "WARNING: the CUDA back end is not in this build (nvcc not found?)"
if ! cmake --build "$BUILD" -j "$JOBS" --target cuda_checks >"$OUT/build.log" 2>&1; then
  say "build FAILED (errors from build.log):"
  grep -E "error|Error" "$OUT/build.log" | head -30 | tee -a "$SUMMARY"
  exit 1
fi
say "build ok ($(($(date +%s) - t0)) s); warnings: $(grep -c 'warning' "$OUT/build.log")"

# 3. tests: every CUDA kernel against the CPU back end
# (-V: every test's output, with each op's normalised error, lands in ctest.log)
(cd "$BUILD" && timeout 420 ctest -L cuda -V --timeout 400) >"$OUT/ctest.log" 2>&1
rc=$?
say "ctest -L cuda: rc=$rc; $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
grep -q "(Skipped)" "$OUT/ctest.log" && say "WARNING: CUDA tests were SKIPPED (no usable device: see the SKIP line)"
grep -E '(FAIL|SKIP|CUDA:|device:|worst passing|[0-9]+ passed, [0-9]+ failed)' "$OUT/ctest.log" | head -40 |
  tee -a "$SUMMARY"

# 4. timings
if [ "$BENCH" = 1 ]; then
  timeout 240 "$BUILD/tests/cuda/bench_cuda_ops" >"$OUT/bench.log" 2>&1
  say "bench rc=$?"
  grep -vE '^\{' "$OUT/bench.log" | tee -a "$SUMMARY" >/dev/null
  cat "$OUT/bench.log"
fi
say "total $(($(date +%s) - t0)) s; logs in $OUT"
exit $rc
