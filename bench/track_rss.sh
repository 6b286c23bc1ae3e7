#!/usr/bin/env bash
# Peak RSS of `sam2d track` on a 300-frame 720p video with the micro model, and
# the bytes per frame the session's frame store holds.
#
# usage: bench/track_rss.sh [SAM2D_BINARY] [VIDEO]
#   SAM2D_BINARY  default build/sam2d
#   VIDEO         default ../shared/media/02_cups.mp4 (300 frames, 1280x720);
#                 when absent, a 300-frame 1280x720 test pattern is made with ffmpeg
# Prints one line per figure and a JSON line at the end (for comparisons).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/build/sam2d}"
video="${2:-$root/../shared/media/02_cups.mp4}"
model="$root/models/sam2.1_hiera_micro_shapes.pt"
config="$root/models/sam2.1_hiera_micro_shapes.yaml"
tmp="$(mktemp -d /tmp/sam2d_track_rss.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

[ -x "$bin" ] || { echo "track_rss: no sam2d binary at $bin (build first: make build)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "track_rss: needs GNU time (/usr/bin/time, Debian package 'time')" >&2; exit 1; }
if [ ! -f "$video" ]; then
    video="$tmp/pattern_720p_300.mp4"
    ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -frames:v 300 -c:v libx264 -crf 23 \
        -pix_fmt yuv420p "$video"
fi
read -r W H N < <(ffprobe -v error -select_streams v:0 -count_frames \
    -show_entries stream=width,height,nb_read_frames -of csv=p=0 "$video" | tr ',' ' ')
echo "video: $video (${N} frames, ${W}x${H})"

# one object clicked at the centre of frame 0, tracked forward through every frame
MAX_VIDEO_FRAMES="$N" /usr/bin/time -v "$bin" track "$video" --model "$model" --config "$config" \
    --prompt "0:1:$((W / 2)),$((H / 2))" --format rle --out "$tmp/out" --no-progress \
    >"$tmp/stdout.txt" 2>"$tmp/time.txt" || { cat "$tmp/stdout.txt" "$tmp/time.txt" >&2; exit 1; }
cat "$tmp/stdout.txt"

rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tmp/time.txt")
frame_bytes=$(sed -n 's/^memory: \([0-9]*\) bytes per frame.*/\1/p' "$tmp/stdout.txt")
source_bytes=$(sed -n 's/.*frame source \([0-9]*\) bytes.*/\1/p' "$tmp/stdout.txt")
session_bytes=$(sed -n 's/.*session \([0-9]*\) bytes.*/\1/p' "$tmp/stdout.txt")
peak_acc=$(sed -n 's/.*peak accounted \([0-9]*\) bytes.*/\1/p' "$tmp/stdout.txt")
orig_frame=$((W * H * 3))
lines=$(wc -l <"$tmp/out/masks.jsonl")

echo "peak RSS:                 $((rss_kb / 1024)) MiB ($rss_kb KiB), wall $wall"
echo "frame store, per frame:   $frame_bytes bytes (the model's S x S RGB u8; a decoded ${W}x${H} frame is $orig_frame bytes, a float32 S x S input $((frame_bytes * 4)))"
echo "frame store, all frames:  $((frame_bytes * N / 1048576)) MiB for $N frames"
echo "session at the end:       $((session_bytes / 1048576)) MiB (frames + per-frame memory bank + scratch)"
echo "frame source resident:    $((source_bytes / 1024)) KiB"
echo "peak accounted (sam_malloc): $((peak_acc / 1048576)) MiB"
echo "masks.jsonl lines:        $lines of $N"
printf '{"bench":"track_rss","video":"%s","frames":%s,"width":%s,"height":%s,"peak_rss_kib":%s,"frame_bytes":%s,"session_bytes":%s,"source_bytes":%s,"peak_accounted_bytes":%s}\n' \
    "$(basename "$video")" "$N" "$W" "$H" "$rss_kb" "$frame_bytes" "$session_bytes" "$source_bytes" "$peak_acc"
