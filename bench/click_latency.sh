#!/usr/bin/env bash
# Click latency of one session while another session propagates (issue 6).
#
# Starts `sam2d serve` on the golden micro model (tests/data/golden/micro),
# uploads a synthetic video twice (sessions A and B), then measures the
# latency of clicks on B (curl's time_total) first with the service idle and
# then while A propagates over its whole video in a loop. Prints median and
# p95 of both, and one JSON line last.
#
#   bench/click_latency.sh                # defaults below
#   SAM2D=build/sam2d CLICKS=40 FRAMES=60 bench/click_latency.sh
#
# Environment: SAM2D (the program, default build/sam2d), CLICKS (per phase,
# default 30), FRAMES (video length, default 60), SIZE (WxH, default 640x480),
# PORT (default: a free one from 18000 on), SAM2_THREADS (passed to the service),
# CHECKPOINT / CONFIG (default: the micro model; CONFIG= empty: guessed from the
# checkpoint). A real-size model without a download:
#   build/sam2d bench --preset sam2.1_tiny --save-random-weights /tmp/tiny.safetensors
#   CHECKPOINT=/tmp/tiny.safetensors CONFIG= FRAMES=20 CLICKS=10 bench/click_latency.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAM2D=${SAM2D:-$ROOT/build/sam2d}
CLICKS=${CLICKS:-30}
FRAMES=${FRAMES:-60}
SIZE=${SIZE:-640x480}
CHECKPOINT=${CHECKPOINT:-$ROOT/tests/data/golden/micro/model.pt}
CONFIG=${CONFIG-$ROOT/tests/data/golden/micro/config.yaml}
for tool in curl jq ffmpeg; do
    command -v "$tool" >/dev/null || { echo "click_latency: needs $tool" >&2; exit 1; }
done
[ -x "$SAM2D" ] || { echo "click_latency: no program at $SAM2D (build first, or set SAM2D)" >&2; exit 1; }

if [ -z "${PORT:-}" ]; then
    PORT=18000
    while (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do PORT=$((PORT + 1)); done
fi
BASE=http://127.0.0.1:$PORT
WORK=$(mktemp -d)
SERVER_PID=""
LOOP_PID=""
cleanup() {
    [ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

W=${SIZE%x*}
H=${SIZE#*x}
# a moving square on a test pattern, so clicks and tracking have something to follow
ffmpeg -loglevel error -f lavfi -i "testsrc=size=${SIZE}:rate=10" \
    -vf "drawbox=x='mod(t*60\,${W}-120)':y=$((H / 3)):w=120:h=120:color=red@1:t=fill" \
    -frames:v "$FRAMES" -pix_fmt yuv420p "$WORK/video.mp4"

CONFIG_ARGS=()
[ -n "$CONFIG" ] && CONFIG_ARGS=(--config "$CONFIG")
"$SAM2D" serve --checkpoint "$CHECKPOINT" "${CONFIG_ARGS[@]}" --host 127.0.0.1 --port "$PORT" \
    --max-sessions 4 --session-timeout 3600 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
    curl -sf "$BASE/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "$BASE/health" >/dev/null || { echo "click_latency: service did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }

start_session() {
    curl -sf -F "file=@$WORK/video.mp4" "$BASE/session/start" | jq -r .session_id
}
A=$(start_session)
B=$(start_session)
[ -n "$A" ] && [ -n "$B" ] && [ "$A" != null ] && [ "$B" != null ] || { echo "click_latency: session start failed" >&2; exit 1; }

click() { # session frame x y -> prints "http_code time_total_seconds"
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
        -d "{\"frame_idx\":$2,\"obj_id\":1,\"points\":[[$3,$4]],\"labels\":[1],\"clear_old_points\":true}" \
        "$BASE/session/$1/prompt"
}

# A gets an object to propagate; B's frame 0 is clicked once so its features are cached
click "$A" 0 $((W / 4)) $((H / 3 + 60)) >/dev/null
click "$B" 0 $((W / 2)) $((H / 2)) >/dev/null

measure() { # phase file
    for i in $(seq 1 "$CLICKS"); do
        read -r code t < <(click "$B" 0 $((W / 2 + (i % 5) * 4)) $((H / 2)))
        [ "$code" = 200 ] || { echo "click_latency: $1 click answered HTTP $code" >&2; exit 1; }
        echo "$t" >>"$2"
    done
}

stats() { # file -> "median p95 n" (seconds)
    sort -g "$1" | awk '{v[NR]=$1} END {
        n=NR; m=(n%2)?v[(n+1)/2]:(v[n/2]+v[n/2+1])/2;
        p=int(0.95*n+0.999999); if (p<1) p=1; if (p>n) p=n;
        printf "%.4f %.4f %d\n", m, v[p], n }'
}

measure idle "$WORK/idle.txt"

# A propagates over its whole video again and again until we stop it
: >"$WORK/propagations"
(
    while true; do
        curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"start_frame_idx":0}' \
            "$BASE/session/$A/propagate" || true
        echo x >>"$WORK/propagations"
    done
) &
LOOP_PID=$!
sleep 1 # let the first propagation get going
measure busy "$WORK/busy.txt"
kill "$LOOP_PID" 2>/dev/null || true
wait "$LOOP_PID" 2>/dev/null || true
LOOP_PID=""
curl -s -o /dev/null -X POST "$BASE/session/$A/cancel" || true
PROPS=$(wc -l <"$WORK/propagations")

read -r IM IP IN < <(stats "$WORK/idle.txt")
read -r BM BP BN < <(stats "$WORK/busy.txt")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "click latency, $(basename "$CHECKPOINT") ($SIZE, $FRAMES frames), load average $LOAD"
printf '  %-34s median %7.1f ms   p95 %7.1f ms   (%d clicks)\n' "idle service" \
    "$(echo "$IM * 1000" | bc -l)" "$(echo "$IP * 1000" | bc -l)" "$IN"
printf '  %-34s median %7.1f ms   p95 %7.1f ms   (%d clicks, %s propagations finished)\n' \
    "while another session propagates" "$(echo "$BM * 1000" | bc -l)" "$(echo "$BP * 1000" | bc -l)" "$BN" "$PROPS"
printf '{"checkpoint":"%s","video":"%s","frames":%d,"idle_median_s":%s,"idle_p95_s":%s,"busy_median_s":%s,"busy_p95_s":%s,"clicks":%d,"propagations_finished":%d,"loadavg":"%s","date":"%s"}\n' \
    "$(basename "$CHECKPOINT")" "$SIZE" "$FRAMES" "$IM" "$IP" "$BM" "$BP" "$CLICKS" "$PROPS" "$LOAD" "$(date -u +%FT%TZ)"
