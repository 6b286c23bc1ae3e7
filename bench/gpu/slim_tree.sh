#!/usr/bin/env bash
# The device tool sends at most 64 MiB of working tree (tracked files, untracked
# files that are not ignored, carried paths); tests/data makes the tracked tree
# ~86 MB. The GPU run (device_check.sh) reads only the micro golden set and
# bedroom.mp4, so around one `run` call:
#   bench/gpu/slim_tree.sh on      # untrack (index only) + ignore what the GPU run does not read
#   run(command="bench/gpu/device_check.sh", ...)
#   bench/gpu/slim_tree.sh off     # track and un-ignore them again (index back as HEAD has it)
#   bench/gpu/slim_tree.sh size    # what would travel now, in MiB
# Files on disk are never touched and nothing is committed; `off` must run
# before the next commit (a commit in between would record the removals).
set -eu
cd "$(git rev-parse --show-toplevel)"
MARK="# sam2d slim_tree (bench/gpu/slim_tree.sh)"
EXCLUDE=.git/info/exclude
SLIM="models tests/data/eval tests/data/golden/shapes tests/data/media/01_dog.mp4 tests/data/media/sav_000001_manual.json"

travel_mib() {
  { git ls-files -z; git ls-files -z -o --exclude-standard; } | du -cb --files0-from=- 2>/dev/null | tail -1 |
    awk '{printf "%.1f", $1 / 1048576}'
}

case "${1:-size}" in
  on)
    if grep -qF "$MARK" "$EXCLUDE" 2>/dev/null; then echo "slim_tree: already on"; exit 0; fi
    git rm -r -q --cached -- $SLIM
    { echo "$MARK"; for p in $SLIM; do echo "/$p"; done; echo "$MARK end"; } >>"$EXCLUDE"
    echo "slim_tree: on; $(travel_mib) MiB would travel (limit 64, carried paths count too)"
    ;;
  off)
    if grep -qF "$MARK" "$EXCLUDE" 2>/dev/null; then
      sed -i "\|^$MARK\$|,\|^$MARK end\$|d" "$EXCLUDE"
    fi
    git reset -q -- $SLIM
    echo "slim_tree: off; $(travel_mib) MiB tracked or untracked"
    ;;
  size)
    echo "$(travel_mib) MiB would travel"
    ;;
  *)
    echo "usage: $0 on|off|size" >&2
    exit 2
    ;;
esac
