#!/usr/bin/env bash
# The one script a GPU session runs, from the repository root (no network
# needed), within a time budget (default 540 s = 9 min on an H100, 16 cores):
#   1. GPU/driver summary;
#   2. Release build with the CUDA back end for sm_90: the CUDA tests, the
#      kernel timer and `sam2d`;
#   3. `ctest -L ^cuda$`: every CUDA kernel against the CPU one, and the CUDA
#      golden tests (the model on the GPU against Meta's outputs); then the
#      service on the GPU: test_server_golden with SAM2D_TEST_DEVICE=cuda;
#   4. `sam2d bench` on the GPU, random weights of the real configs at 1024 px
#      (the reference's definitions, ../shared/bench/reference-gpu.json):
#      image encoder ms/frame (median of 10) and tracking FPS with a full
#      memory bank (synthetic 960x540 video), for tiny and large in bf16 and fp32;
#   5. `sam2d track` on the reference's workload (tests/data/media/bedroom.mp4,
#      200 frames 960x540, one click at (210,350) on frame 0): FPS over the
#      whole propagation, as the reference's propagate_fps;
#   6. when a copy of Meta's code is carried (ref/sam2, bench/reference/setup.sh
#      exports it) and python3 has torch with CUDA: Meta's code on the same
#      GPU, same workload (bench/reference/bench_reference_gpu.py);
#   7. kernel timings (bench_cuda_ops) with what is left.
# Each step has its own timeout, cut to what is left of the budget, so a hang
# costs one step, not the session. Steps run in this order of priority.
#
#   bench/gpu/device_check.sh              # everything
#   bench/gpu/device_check.sh --no-bench   # build + tests only
#   BUDGET=540 BUILD=build-gpu JOBS=16 CUDA_ARCH=90 DEVICE=cuda   # the defaults
#   MODELS="tiny large" PRECISIONS="bf16 fp32" REF_MODELS="tiny"  # what steps 4-6 run
# MODELS entries: preset sizes (tiny small base_plus large) or Meta-style YAML files.
# A dry run of the plumbing on a machine without a GPU (CPU build, the micro model):
#   BUILD=build-x TARGETS=sam2d DEVICE=devsim PRECISIONS=fp32 MODELS=tests/data/golden/micro/config.yaml \
#   BENCH_ARGS="--runs 1 --warmup 0 --frames 9 --video 64x48" \
#   TRACK_VIDEO=tests/data/golden/micro/video.mp4 TRACK_PROMPT=0:1:95,115 bench/gpu/device_check.sh
#
# What comes back in $OUT (the device tool returns at most 8 files): summary.txt
# (printed last too), results.jsonl (one JSON line per bench / track /
# reference run, tagged with "run"), ctest.log, logs.tar.gz (every step's log).
# Re-running reuses the build directory (incremental).
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-$PWD/device-check-out}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
CUDA_ARCH=${CUDA_ARCH:-90}
BUDGET=${BUDGET:-540}
DEVICE=${DEVICE:-cuda}
MODELS=${MODELS:-tiny large}
PRECISIONS=${PRECISIONS:-bf16 fp32}
REF_MODELS=${REF_MODELS:-tiny}
BENCH=1
[ "${1:-}" = "--no-bench" ] && BENCH=0
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
TARGETS=${TARGETS:-cuda_checks sam2d test_server_golden}
BENCH_ARGS=${BENCH_ARGS:---runs 10 --warmup 2 --frames 24 --video 960x540}
VIDEO=${TRACK_VIDEO:-tests/data/media/bedroom.mp4}
TRACK_PROMPT=${TRACK_PROMPT:-0:1:210,350}
LOGS=$(mktemp -d /tmp/device-check-logs.XXXXXX)
TMPD=$(mktemp -d /tmp/device-check-tmp.XXXXXX)
SUMMARY="$OUT/summary.txt"
RESULTS="$OUT/results.jsonl"
: >"$SUMMARY"
: >"$RESULTS"
say() { echo "== $*" | tee -a "$SUMMARY"; }
t0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - t0))); }
# step MAX_S NAME CMD...: CMD under `timeout`, at most MAX_S and what is left of the
# budget (minus a margin for packing the logs); skipped (rc 125) when under 20 s remain.
step() {
  local max=$1 name=$2
  shift 2
  local l=$(($(left) - 15))
  local t=$((max < l ? max : l))
  if [ "$t" -lt 20 ]; then
    say "$name: SKIPPED (budget: $(left) s left)"
    return 125
  fi
  local s
  s=$(date +%s)
  timeout -k 5 "$t" "$@"
  local rc=$?
  [ "$rc" = 124 ] && say "$name: TIMED OUT after $t s"
  echo "$name: rc=$rc in $(($(date +%s) - s)) s" >>"$LOGS/steps.txt"
  return $rc
}
finish() {
  say "total $(($(date +%s) - t0)) s of a $BUDGET s budget; logs in $OUT (logs.tar.gz)"
  cp "$LOGS/ctest.log" "$OUT/ctest.log" 2>/dev/null
  tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null
  rm -rf "$LOGS" "$TMPD"
  echo
  echo "---- summary ----"
  cat "$SUMMARY"
  echo "---- results.jsonl ----"
  cat "$RESULTS"
  exit "${1:-0}"
}

[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH

# 1. what we run on
{
  echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) changed files"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap,clocks.max.sm --format=csv 2>&1
  nvidia-smi 2>&1 | head -15
  nvcc --version 2>&1 | tail -2
  nproc
} >"$LOGS/gpu.txt" 2>&1
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>&1 | head -1)"
say "nvcc: $(nvcc --version 2>&1 | grep -o 'release [0-9.]*' || echo 'not found'); commit $(git rev-parse --short HEAD 2>/dev/null)"

# 2. configure + build (only what the checks need)
if ! step 60 configure cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAM2D_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" >"$LOGS/configure.log" 2>&1; then
  say "configure FAILED (tail of configure.log):"
  tail -20 "$LOGS/configure.log" | tee -a "$SUMMARY"
  finish 1
fi
grep -rq "sam2d_cuda" "$BUILD/CMakeFiles/Makefile2" "$BUILD/build.ninja" 2>/dev/null ||
  say "WARNING: the CUDA back end is not in this build (nvcc not found?)"
# shellcheck disable=SC2086 # TARGETS is a list
if ! step 300 build cmake --build "$BUILD" -j "$JOBS" --target $TARGETS >"$LOGS/build.log" 2>&1; then
  say "build FAILED (errors from build.log):"
  grep -E "error|Error" "$LOGS/build.log" | head -30 | tee -a "$SUMMARY"
  finish 1
fi
say "build ok ($(($(date +%s) - t0)) s); warnings: $(grep -c 'warning' "$LOGS/build.log")"
SAM2D="$ROOT/$BUILD/sam2d"

# 3. tests: the `cuda` label only (not `cuda-emu`, the CPU emulation of the same kernels)
# (-V: every test's output, with each op's normalised error, lands in ctest.log)
(cd "$BUILD" && step 200 ctest ctest -L '^cuda$' -V --timeout 180) >"$LOGS/ctest.log" 2>&1
rc=$?
say "ctest -L cuda: rc=$rc; $(grep -E 'tests passed|tests failed' "$LOGS/ctest.log" | tail -1)"
grep -q "(Skipped)" "$LOGS/ctest.log" && say "WARNING: CUDA tests were SKIPPED (no usable device: see the SKIP line)"
grep -E '(FAIL|SKIP|CUDA:|device:|worst|[0-9]+ passed, [0-9]+ failed|Test +#)' "$LOGS/ctest.log" | head -60 |
  tee -a "$SUMMARY" >/dev/null
grep -E '(FAIL|SKIP|[0-9]+ passed, [0-9]+ failed)' "$LOGS/ctest.log" | head -20

# 3b. the service on the GPU: `sam2d serve` with SAM2_DEVICE=cuda replays both golden video scenarios over
# HTTP (masks against Meta's logits, flips allowed only where |logit| < 1e-4; /health names the device)
# (a tree slimmed by bench/gpu/slim_tree.sh has only the micro set)
SETS=micro,shapes
[ -d tests/data/golden/shapes ] || SETS=micro
if [ -x "$BUILD/test_server_golden" ]; then
  step 120 serve-golden env SAM2D_TEST_DEVICE="$DEVICE" SAM2D_BINARY="$SAM2D" SAM2D_TEST_GOLDEN_SETS="$SETS" \
    "$BUILD/test_server_golden" \
    >"$LOGS/serve-golden.log" 2>&1
  src=$?
  [ "$src" != 125 ] && say "serve on $DEVICE, golden scenarios over HTTP: rc=$src;" \
    "$(grep -E "on $DEVICE: .*pixels compared" "$LOGS/serve-golden.log" | tr '\n' ' ')$(tail -1 "$LOGS/serve-golden.log")"
fi

[ "$BENCH" = 1 ] || finish $rc

# append a JSON line (the last line of file $2 that starts with '{') to results.jsonl, tagged "run": $1
add_result() {
  local line
  line=$(grep -E '^\{' "$2" 2>/dev/null | tail -1)
  [ -n "$line" ] || return 1
  echo "{\"run\":\"$1\",\"gpu\":\"$GPU_NAME\",${line#\{}" >>"$RESULTS"
}
# a number from a JSON line (python3 is on the GPU image; no jq needed)
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))" "$1" "$2" 2>/dev/null; }

# a MODELS entry -> the config option of bench / track, and a short name for the logs
model_opt() { case "$1" in *.yaml) echo "--config $1" ;; *) echo "--preset sam2.1_$1" ;; esac; }
model_name() { basename "${1%.yaml}"; }

# 4. sam2d bench: image encoder (median of 10 after 2 warm-ups) and full-bank tracking of a
# synthetic 960x540 video (24 frames: frames 8-23 have a full bank)
for m in $MODELS; do
  for p in $PRECISIONS; do
    name="bench-$(model_name "$m")-$p"
    # shellcheck disable=SC2086,SC2046
    step 120 "$name" "$SAM2D" bench $(model_opt "$m") --random-weights --device "$DEVICE" --precision "$p" \
      $BENCH_ARGS --json >"$LOGS/$name.log" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && add_result "$name" "$LOGS/$name.log"; then
      j=$(tail -1 "$RESULTS")
      say "$name: image encoder $(python3 -c "print('%.2f ms' % (1e3*$(jget "$j" image_encoder_s)))" 2>/dev/null)," \
        "full-bank tracking $(python3 -c "print('%.1f FPS' % $(jget "$j" track_fps))" 2>/dev/null)," \
        "click $(python3 -c "print('%.1f ms' % (1e3*$(jget "$j" prompt_s)))" 2>/dev/null)," \
        "device memory peak $(python3 -c "print('%.2f GiB' % ($(jget "$j" device_memory_peak_bytes)/2**30))" 2>/dev/null)" \
        "(device $(jget "$j" device))"
    elif [ "$rc" != 125 ]; then
      say "$name: FAILED rc=$rc:"
      grep -vE '^\{' "$LOGS/$name.log" | tail -5 | tee -a "$SUMMARY"
    fi
  done
done

# 5. sam2d track on the reference's workload: the whole propagation of bedroom.mp4 (200 frames)
if [ -f "$VIDEO" ]; then
  for m in $MODELS; do
    mn=$(model_name "$m")
    ck="$TMPD/$mn-random.safetensors"
    # shellcheck disable=SC2046
    step 60 "weights-$mn" "$SAM2D" bench $(model_opt "$m") --save-random-weights "$ck" >"$LOGS/weights-$mn.log" 2>&1 ||
      continue
    cfg=()
    case "$m" in *.yaml) cfg=(--config "$m") ;; esac
    for p in $PRECISIONS; do
      name="track-$mn-$p"
      step 120 "$name" env SAM2_PRECISION="$p" "$SAM2D" track "$VIDEO" --prompt "$TRACK_PROMPT" --model "$ck" "${cfg[@]}" \
        --device "$DEVICE" --format rle --out "$TMPD/$name" --no-progress >"$LOGS/$name.log" 2>&1
      rc=$?
      line=$(grep -E '^tracked ' "$LOGS/$name.log" | tail -1)
      if [ "$rc" = 0 ] && [ -n "$line" ]; then
        fps=$(echo "$line" | grep -oE '[0-9.]+ frames/s' | grep -oE '^[0-9.]+')
        trk=$(echo "$line" | grep -oE 'tracking [0-9.]+ s' | grep -oE '[0-9.]+')
        echo "{\"run\":\"$name\",\"gpu\":\"$GPU_NAME\",\"model\":\"$mn\",\"precision\":\"$p\",\"device\":\"$DEVICE\",\"video\":\"$VIDEO\",\"propagate_fps\":${fps:-null},\"tracking_s\":${trk:-null},\"line\":\"$line\"}" >>"$RESULTS"
        say "$name: $(basename "$VIDEO") $fps FPS over the whole propagation (tracking $trk s)"
      elif [ "$rc" != 125 ]; then
        say "$name: FAILED rc=$rc:"
        tail -5 "$LOGS/$name.log" | tee -a "$SUMMARY"
      fi
    done
    rm -f "$ck"
  done
fi

# 6. Meta's code on the same GPU (only when carried: ref/sam2 from bench/reference/setup.sh)
if [ -d ref/sam2 ] && python3 -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  for m in $REF_MODELS; do
    for p in $PRECISIONS; do
      name="reference-$m-$p"
      step 150 "$name" python3 bench/reference/bench_reference_gpu.py --sam2-root ref --model "$m" --mode "$p" \
        --video "$VIDEO" --frames-dir "$TMPD/bedroom-jpg" >"$LOGS/$name.log" 2>&1
      rc=$?
      if [ "$rc" = 0 ] && add_result "$name" "$LOGS/$name.log"; then
        j=$(tail -1 "$RESULTS")
        say "$name: Meta's code: image encoder $(jget "$j" image_encoder_ms_median) ms," \
          "propagate $(jget "$j" propagate_fps) FPS (runs $(jget "$j" propagate_fps_runs))"
      elif [ "$rc" != 125 ]; then
        say "$name: FAILED rc=$rc:"
        tail -5 "$LOGS/$name.log" | tee -a "$SUMMARY"
      fi
    done
  done
else
  say "reference: not run (no ref/sam2 carried, or python3 has no torch with CUDA)"
fi

# 7. kernel timings with what is left
if [ -x "$BUILD/tests/cuda/bench_cuda_ops" ]; then
  step 120 bench_cuda_ops "$BUILD/tests/cuda/bench_cuda_ops" >"$LOGS/bench_cuda_ops.log" 2>&1
  rc=$?
  [ "$rc" = 0 ] && add_result "bench_cuda_ops" "$LOGS/bench_cuda_ops.log"
  [ "$rc" != 125 ] && say "bench_cuda_ops rc=$rc (kernel table in logs.tar.gz: bench_cuda_ops.log)"
fi
finish 0
