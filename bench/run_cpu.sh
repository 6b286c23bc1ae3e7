#!/usr/bin/env bash
# The CPU measurements of bench/README.md, against the reference figures of
# Meta's code on the same machine (reference-cpu.json): tiny (image encoder,
# tracking with a full memory bank, clicks, peak RSS) and the large image
# encoder, fp32, random weights of the real shapes. Writes
# bench/results/cpu-<UTC date>.json (and prints the comparison table).
#
#   bench/run_cpu.sh                      # SAM2_THREADS=2, 5 runs
#   RUNS=3 FRAMES=16 bench/run_cpu.sh
#
# Environment: SAM2D (default build/sam2d), SAM2_THREADS (default 2), RUNS
# (default 5), FRAMES (default 16), REFERENCE (default
# /work/shared/bench/reference-cpu.json, or bench/results/reference-cpu.json),
# OUT (the results file), CHRT (a scheduling prefix, e.g. "chrt -f 10": real-time
# priority, so that builds of other users on a shared machine do not delay the
# thread pool's wake-ups; recorded in the results as "priority"), PRECISION
# (fp32, the default, or bf16).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAM2D=${SAM2D:-$ROOT/build/sam2d}
export SAM2_THREADS=${SAM2_THREADS:-2}
RUNS=${RUNS:-5}
FRAMES=${FRAMES:-16}
REFERENCE=${REFERENCE:-/work/shared/bench/reference-cpu.json}
[ -f "$REFERENCE" ] || REFERENCE=$ROOT/bench/results/reference-cpu.json
CHRT=${CHRT:-}
PRECISION=${PRECISION:-fp32}
SUFFIX=""
[ "$PRECISION" = fp32 ] || SUFFIX="-$PRECISION"
OUT=${OUT:-$ROOT/bench/results/cpu-$(date -u +%F)$SUFFIX.json}
command -v jq >/dev/null || { echo "run_cpu: needs jq" >&2; exit 1; }
[ -x "$SAM2D" ] || { echo "run_cpu: no program at $SAM2D" >&2; exit 1; }
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) # the tree the runs start on
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "tiny: image encoder, clicks, tracking ($FRAMES frames) ..." >&2
$CHRT "$SAM2D" bench --preset sam2.1_tiny --random-weights --runs "$RUNS" --frames "$FRAMES" --precision "$PRECISION" --profile --json \
    >"$TMP/tiny.json" 2>"$TMP/tiny.log"
echo "large: image encoder ..." >&2
$CHRT "$SAM2D" bench --preset sam2.1_large --random-weights --stages image --runs "$RUNS" --precision "$PRECISION" --profile --json \
    >"$TMP/large.json" 2>"$TMP/large.log"
tail -n 1 "$TMP/tiny.json" >"$TMP/t.json"
tail -n 1 "$TMP/large.json" >"$TMP/l.json"

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
jq -n --slurpfile t "$TMP/t.json" --slurpfile l "$TMP/l.json" --slurpfile ref "$REFERENCE" \
    --arg cpu "$CPU" --arg cores "$(nproc)" --arg mem "$(free -b | awk '/Mem:/ {print $2}')" \
    --arg kernel "$(uname -r)" --arg prio "${CHRT:-normal (nice 0)}" --arg date "$(date -u +%FT%TZ)" --arg commit "$COMMIT" '
  ($t[0]) as $t | ($l[0]) as $l | ($ref[0].results) as $r |
  def ratio(a; b): if (a // 0) > 0 and (b // 0) > 0 then (a / b * 1000 | round / 1000) else null end;
  {
    what: "sam2d bench on this machine vs Meta reference figures (reference-cpu.json, fp32), random weights of the real shapes",
    date: $date, commit: $commit,
    machine: {cpu: $cpu, online_cpus: ($cores | tonumber), mem_bytes: ($mem | tonumber), kernel: $kernel},
    threads: $t.threads, priority: $prio, precision: $t.precision,
    note: "other engineers build and test on the same 2 cores: wall times depend on the load average recorded with each run; *_cpu_s is the process CPU time of all threads",
    comparison: [
      {stage: "tiny image encoder", reference_s: $r[0].median_s, ours_s: $t.image_encoder_s,
       ratio_ours_over_ref: ratio($t.image_encoder_s; $r[0].median_s), gflop: $t.gflop.image_encoder,
       gflops_per_s: $t.gflops_per_s.image_encoder, ours_cpu_s: $t.image_encoder_cpu_s},
      {stage: "tiny tracked frame, full memory bank", reference_s: $r[1].median_s, ours_s: $t.track_frame_s,
       ratio_ours_over_ref: ratio($t.track_frame_s; $r[1].median_s), gflop: $t.gflop.track_frame,
       gflops_per_s: $t.gflops_per_s.track_frame, ours_cpu_s: $t.track_frame_cpu_s},
      {stage: "tiny click (cached frame)", reference_s: $r[1].first_click_s, ours_s: $t.prompt_s,
       ratio_ours_over_ref: ratio($t.prompt_s; $r[1].first_click_s)},
      {stage: "tiny peak RSS, 16-frame 640x480 video, 1 object (bytes)", reference_bytes: ($r[1].peak_rss_gb * 1e9),
       ours_bytes: $t.peak_rss_bytes, ratio_ours_over_ref: ratio($t.peak_rss_bytes; $r[1].peak_rss_gb * 1e9)},
      {stage: "large image encoder", reference_s: $r[2].median_s, ours_s: $l.image_encoder_s,
       ratio_ours_over_ref: ratio($l.image_encoder_s; $r[2].median_s), gflop: $l.gflop.image_encoder,
       gflops_per_s: $l.gflops_per_s.image_encoder, ours_cpu_s: $l.image_encoder_cpu_s}
    ],
    peak_gflops: $t.peak_gflops,
    runs: {tiny: $t, large: $l}
  }' >"$OUT"
echo "wrote $OUT" >&2
jq -r '.comparison[] | [.stage, (.reference_s // .reference_bytes), (.ours_s // .ours_bytes), .ratio_ours_over_ref,
       (.gflops_per_s // "")] | @tsv' "$OUT"
jq -r '"load average: tiny \(.runs.tiny.loadavg_start[0]) -> \(.runs.tiny.loadavg_end[0]), large \(.runs.large.loadavg_start[0]) -> \(.runs.large.loadavg_end[0])"' "$OUT"
jq -c '{date, commit, priority, precision, threads, comparison: [.comparison[] | {stage, ours: (.ours_s // .ours_bytes), ratio: .ratio_ours_over_ref}]}' "$OUT"
