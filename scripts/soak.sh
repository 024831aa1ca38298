#!/usr/bin/env bash
# Soak run (not in CI): worker processes read, write, rename and delete in a
# mediafs mount against a faulty emulator (10% failing requests, some after
# the server acted, 20 ms latency, the real rate limit), then every folder is
# checked against the workers' models, through the mount and through a fresh one.
# With `write-back`, both mounts run with --write-back: every close is an
# upload in the background, and the first mount drains its spool at unmount.
#
#   scripts/soak.sh [MINUTES=10] [WORKERS=6] [write-back]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
workers=${2:-6}
mode=()
[ "${3:-}" = write-back ] && mode=(--write-back)
scripts/setup.sh
cargo build --release --quiet
bin=target/release/mediafs
work=$(mktemp -d)
trap 'fusermount3 -uz "$work/mnt" 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/mnt"

"$bin" emulator --listen 127.0.0.1:0 --data-dir "$work/data" --token soak-token --location soak-location \
  --fail-rate 0.1 --latency-ms 20 --rate-limit 100 > "$work/emulator.out" 2> "$work/emulator.log" &
until grep -q http "$work/emulator.out" 2>/dev/null; do sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/emulator.out" | head -1)

mount() {
  MEDIAFS_TOKEN=soak-token "$bin" mount "$work/mnt" --location soak-location --base-url "$url" \
    --cache-dir "$work/cache$1" --metadata-ttl 2 "${mode[@]}" 2>> "$work/mount.log" &
  mount_pid=$!
  until grep -q " $work/mnt " /proc/mounts; do sleep 0.1; done
}

# Unmounts, and waits for the mount to finish its pending uploads and exit.
unmount() {
  fusermount3 -u "$work/mnt"
  wait "$mount_pid" || status=1
}

mount 1
echo "soak: $workers workers for $minutes min against $url (10% failures, 20 ms, 100 requests/10 s) ${mode[*]}"
status=0
python3 scripts/soak.py "$work/mnt" "$((minutes * 60))" "$workers" "$work/result.json" || status=1
sleep 3
echo "checking through the mount that did the work:"
python3 scripts/soak.py --check "$work/mnt" "$work/result.json" || status=1
unmount
curl -sf -X POST -H 'Content-Type: application/json' -d '{"rate_limit": 0, "fail_rate": 0, "latency_ms": 0}' "$url/_emulator/faults" > /dev/null
mount 2
echo "checking through a fresh mount:"
python3 scripts/soak.py --check "$work/mnt" "$work/result.json" || status=1
unmount
echo "requests: $(curl -sf "$url/_emulator/stats")"
echo "soak: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
