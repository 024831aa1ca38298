#!/usr/bin/env bash
# Benchmark: mediafs against rclone mount, side by side, in one run.
#
# The emulator (rate limit off) is seeded through the API with 20 folders x
# 50 files of 10 KiB and one 200 MiB video; rclone mounts `rclone serve
# webdav` of a local folder holding the same tree. Each workload runs on a
# fresh mount with the kernel's caches dropped, for both; the table gives
# the times, the ratio mediafs/rclone, the API requests mediafs made against
# the least it could make, and mediafs's peak RSS. A second pass adds 50 ms
# of latency to every emulator request, for mediafs alone.
#
# A third pass walks large generated libraries (4,000 files in 400 folders,
# then 100,000 in 1,000) cold, at the service's rate limit and 100 ms of
# latency, against the same walk made folder by folder (the emulator's
# fetchAll answers capped, as a service might), in the same run.
#
#   scripts/bench.sh            (needs root: it drops the page cache)
#   scripts/bench.sh walk       (the third pass alone)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v rclone >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone; }
cargo build --release --quiet
bin=$PWD/target/release/mediafs
work=$(mktemp -d /tmp/mediafs-bench.XXXXXX)
cleanup() {
  for m in "$work/mfs" "$work/rcl"; do fusermount3 -uz "$m" 2>/dev/null || true; done
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/tree" "$work/new" "$work/mfs" "$work/rcl" "$work/served"

only=${1:-all}
now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
times() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# start_emulator LATENCY_MS [RATE_LIMIT [MORE ARGS...]]: the emulator on $emulator_data.
emulator_data=$work/data
start_emulator() {
  local latency=$1 rate=${2:-0}
  shift $(( $# < 2 ? $# : 2 ))
  : > "$work/emulator.out"
  "$bin" emulator --listen 127.0.0.1:0 --data-dir "$emulator_data" --token bench-token --location bench \
    --rate-limit "$rate" --latency-ms "$latency" "$@" > "$work/emulator.out" 2>> "$work/emulator.log" &
  emulator_pid=$!
  until grep -q http "$work/emulator.out" 2>/dev/null; do sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$work/emulator.out" | head -1)
}
api() { curl -sf -H 'Authorization: Bearer bench-token' -H 'Version: 2021-07-28' "$@"; }
api_requests() { curl -sf "$url/_emulator/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_requests"])'; }
reset_stats() { curl -sf -X DELETE "$url/_emulator/stats" > /dev/null; }

# mediafs runs with its own rate limit off in the first two passes, as the emulator's is.
mediafs_rate=0
mount_mediafs() {
  drop_caches
  mediafs_cache=$work/cache-$RANDOM
  MEDIAFS_TOKEN=bench-token "$bin" mount "$work/mfs" --location bench --base-url "$url" \
    --cache-dir "$mediafs_cache" --rate-limit "$mediafs_rate" "$@" 2>> "$work/mediafs.log" &
  mediafs_pid=$!
  until grep -q " $work/mfs " /proc/mounts; do sleep 0.05; done
}
mount_rclone() {
  drop_caches
  RCLONE_CONFIG_BENCH_TYPE=webdav RCLONE_CONFIG_BENCH_URL="$webdav" \
    rclone mount bench: "$work/rcl" --dir-cache-time 5s 2>> "$work/rclone.log" &
  until grep -q " $work/rcl " /proc/mounts; do sleep 0.05; done
}
peak_rss_kib=0
unmount() {
  if [ "$1" = mfs ]; then
    local hwm
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$mediafs_pid/status")
    [ "$hwm" -gt "$peak_rss_kib" ] && peak_rss_kib=$hwm
  fi
  fusermount3 -u "$work/$1"
  while grep -q " $work/$1 " /proc/mounts; do sleep 0.05; done
}


# The first two passes: mediafs against rclone, then mediafs at 50 ms latency.
side_by_side() {
echo "bench: making the tree (20 folders x 50 files x 10 KiB, a 200 MiB video) ..."
python3 - "$work" <<'PY'
import os, sys
work = sys.argv[1]
png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
for d in range(20):
    os.makedirs(f"{work}/tree/folder-{d:02}", exist_ok=True)
    for f in range(50):
        with open(f"{work}/tree/folder-{d:02}/image-{f:02}.png", "wb") as out:
            out.write(png + os.urandom(10 * 1024 - len(png)))
os.makedirs(f"{work}/new/batch", exist_ok=True)
for f in range(500):
    with open(f"{work}/new/batch/new-{f:03}.png", "wb") as out:
        out.write(png + os.urandom(10 * 1024 - len(png)))
for name, dest in [("video.mp4", "tree"), ("new-video.mp4", "new")]:
    with open(f"{work}/{dest}/{name}", "wb") as out:
        out.write(b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom")
        for _ in range(200):
            out.write(os.urandom(1024 * 1024))
PY
cp -r "$work/tree/." "$work/served/"

echo "bench: seeding the emulator through the API ..."
start_emulator 0
for d in $(seq -w 0 19); do
  id=$(api -X POST -H 'Content-Type: application/json' \
    -d "{\"altId\":\"bench\",\"altType\":\"location\",\"name\":\"folder-$d\"}" "$url/medias/folder" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["_id"])')
  ls "$work/tree/folder-$d" | xargs -P 8 -I{} curl -sf -o /dev/null -H 'Authorization: Bearer bench-token' \
    -H 'Version: 2021-07-28' -F altId=bench -F altType=location -F parentId="$id" \
    -F "file=@$work/tree/folder-$d/{};type=image/png" "$url/medias/upload-file"
done
api -o /dev/null -F altId=bench -F altType=location -F "file=@$work/tree/video.mp4;type=video/mp4" "$url/medias/upload-file"
video_url=$(api "$url/medias/files?altType=location&altId=bench&type=file&query=video" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["url"])')

rclone serve webdav "$work/served" --addr 127.0.0.1:0 > "$work/webdav.log" 2>&1 &
until grep -qo 'http://127.0.0.1:[0-9]*' "$work/webdav.log" 2>/dev/null; do sleep 0.1; done
webdav=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/webdav.log" | head -1)

# Each workload: its name, the least API requests it could make (a walk:
# one fetchAll listing of the folders and one of the files), and
# the command; run on a fresh mount of each filesystem at $M. mediafs runs
# with its own rate limit off, as the emulator's is: against the real service
# (100 requests per 10 s) bulk uploads cannot go faster than 10 files a second.
declare -a rows
run() {
  local name=$1 least=$2 cmd=$3 t0 t1 tm tr calls
  mount_mediafs; M=$work/mfs; reset_stats
  t0=$(now); eval "$cmd"; t1=$(now)
  tm=$(minus "$t1" "$t0"); calls=$(api_requests); unmount mfs
  mount_rclone; M=$work/rcl
  t0=$(now); eval "$cmd"; t1=$(now)
  tr=$(minus "$t1" "$t0"); unmount rcl
  rows+=("$(printf '| %s | %.2f | %.2f | %s | %s (least %s) |' "$name" "$tm" "$tr" "$(ratio "$tm" "$tr")" "$calls" "$least")")
}

echo "bench: running the workloads ..."
run "ls -lR, cold" "2" 'ls -lR "$M" > /dev/null'
# The big read is the noisiest (the server's disk, two cores shared by three
# processes): the median of three cold runs each, and of three curls.
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
seconds_of() { local t0 t1; t0=$(now); eval "$1"; t1=$(now); minus "$t1" "$t0"; }
read_video() { seconds_of "cat '$1/video.mp4' > /dev/null"; }
curl_video() { seconds_of 'curl -sf -o /dev/null "$video_url"'; }
declare -a big_m big_r big_c
for _ in 1 2 3; do
  mount_mediafs; reset_stats
  big_m+=("$(read_video "$work/mfs")"); big_calls=$(api_requests); unmount mfs
  mount_rclone; big_r+=("$(read_video "$work/rcl")"); unmount rcl
  drop_caches; big_c+=("$(curl_video)")
done
tm=$(median "${big_m[@]}"); tr=$(median "${big_r[@]}"); curl_time=$(median "${big_c[@]}")
rows+=("$(printf '| %s | %.2f | %.2f | %s | %s (least 2) |' "cat 200 MiB video, cold (median of 3)" "$tm" "$tr" "$(ratio "$tm" "$tr")" "$big_calls")")
big_read_vs_curl=$(ratio "$tm" "$curl_time")
# The same with the server's file already in its memory: no disk on either
# side, only the bytes' way through the emulator, mediafs and cat.
warm_blob() { drop_caches; find "$work/data/blobs" -type f -size +100M -exec cat {} + > /dev/null; }
declare -a hot_m hot_c
for _ in 1 2 3; do
  mount_mediafs; warm_blob; hot_m+=("$(read_video "$work/mfs")"); unmount mfs
  warm_blob; hot_c+=("$(curl_video)")
done
hot_mediafs=$(median "${hot_m[@]}"); hot_curl=$(median "${hot_c[@]}")
run "cat 1,000 small files, cold" "2" 'cat "$M"/folder-*/*.png > /dev/null'
run "cp -r 500 small files in" "501" 'cp -r "$work/new/batch" "$M/batch-$RANDOM"'
run "cp 200 MiB video in" "2" 'cp "$work/new/new-video.mp4" "$M/new-video-$RANDOM.mp4"'
# Write-back: timed until the spool is empty, that is, until the files are on the server.
spool_drained() { until "$bin" status --cache-dir "$mediafs_cache" | grep -q '^0 uploads pending'; do sleep 0.02; done; }
run_write_back() {
  local name=$1 least=$2 cmd=$3 t0 t1 tm tr calls
  mount_mediafs --write-back; M=$work/mfs; reset_stats
  t0=$(now); eval "$cmd"; spool_drained; t1=$(now)
  tm=$(minus "$t1" "$t0"); calls=$(api_requests); unmount mfs
  mount_rclone; M=$work/rcl
  t0=$(now); eval "$cmd"; t1=$(now)
  tr=$(minus "$t1" "$t0"); unmount rcl
  rows+=("$(printf '| %s | %.2f | %.2f | %s | %s (least %s) |' "$name" "$tm" "$tr" "$(ratio "$tm" "$tr")" "$calls" "$least")")
}
run_write_back "cp -r 500 small files in, --write-back" "501" 'cp -r "$work/new/batch" "$M/batch-wb-$RANDOM"'
run_write_back "cp 200 MiB video in, --write-back" "2" 'cp "$work/new/new-video.mp4" "$M/new-video-wb-$RANDOM.mp4"'
# Warm listing: a second ls -lR on the same mount.
mount_mediafs; M=$work/mfs; ls -lR "$M" > /dev/null; reset_stats
t0=$(now); ls -lR "$M" > /dev/null; t1=$(now); tm=$(minus "$t1" "$t0"); calls=$(api_requests); unmount mfs
mount_rclone; M=$work/rcl; ls -lR "$M" > /dev/null
t0=$(now); ls -lR "$M" > /dev/null; t1=$(now); tr=$(minus "$t1" "$t0"); unmount rcl
rows+=("$(printf '| %s | %.2f | %.2f | %s | %s (least 0) |' "ls -lR, warm" "$tm" "$tr" "$(ratio "$tm" "$tr")" "$calls")")

echo
echo "| workload | mediafs (s) | rclone (s) | mediafs/rclone | mediafs API requests |"
echo "| --- | ---: | ---: | ---: | --- |"
printf '%s\n' "${rows[@]}"
printf '| curl of the video URL, cold (median of 3; floor for a big read) | %.2f | | | |\n' "$curl_time"
echo
echo "200 MiB read, mediafs/curl: $big_read_vs_curl (server's file on a cold disk)"
printf '200 MiB read, server file in memory (median of 3): mediafs %.2f s, curl %.2f s, mediafs/curl %s\n' \
  "$hot_mediafs" "$hot_curl" "$(ratio "$hot_mediafs" "$hot_curl")"
echo
echo "mediafs peak RSS: $((peak_rss_kib / 1024)) MiB"

echo
echo "bench: second pass, 50 ms latency on every emulator request (mediafs alone) ..."
kill "$emulator_pid"; wait "$emulator_pid" 2>/dev/null || true
start_emulator 50
declare -a slow
timed() {
  local name=$1 least=$2 cmd=$3 extra=${4:-} t0 t1
  mount_mediafs $extra; M=$work/mfs; reset_stats
  t0=$(now); eval "$cmd"; [ -n "$extra" ] && spool_drained; t1=$(now)
  slow+=("$(printf '| %s | %.2f | %s (least %s) |' "$name" "$(minus "$t1" "$t0")" "$(api_requests)" "$least")")
  unmount mfs
}
timed "ls -lR, cold" "2" 'ls -lR "$M" > /dev/null'
timed "cat 1,000 small files, cold" "2" 'cat "$M"/folder-*/*.png > /dev/null'
timed "cp -r 500 small files in" "501" 'cp -r "$work/new/batch" "$M/batch-slow-$RANDOM"'
timed "cp -r 500 small files in, --write-back" "501" 'cp -r "$work/new/batch" "$M/batch-slow-wb-$RANDOM"' --write-back
timed "cat 200 MiB video, cold" "2" 'cat "$M/video.mp4" > /dev/null'
echo
echo "| workload, 50 ms latency | mediafs (s) | API requests |"
echo "| --- | ---: | ---: |"
printf '%s\n' "${slow[@]}"
echo
echo "mediafs peak RSS over both passes: $((peak_rss_kib / 1024)) MiB"
  kill "$emulator_pid"; wait "$emulator_pid" 2>/dev/null || true
}

# The third pass: cold walks of generated libraries at the service's rate
# limit (100 requests per 10 s, mediafs's default too) and 100 ms latency.
# Each walk runs on a fresh mount with dropped caches; its peer is the same
# walk with the emulator's fetchAll answers capped at 1,000 objects, which
# leaves mediafs listing folder by folder, as it did before it listed a
# walk at once, and as any client must that lists folders one by one.
walk_pass() {
  local folders=$1 files=$2 peer=$3 t0 t1 tm tp cm cp hwm rss
  echo "bench: generating $folders folders x $files files, 100 ms latency, 100 requests per 10 s ..."
  emulator_data=$work/walk-$folders-$files
  mediafs_rate=100
  start_emulator 100 100 --generate "${folders}x${files}"
  shift 3
  for tool in "$@"; do
    curl -sf -X POST -H 'Content-Type: application/json' -d '{"fetch_all_max": null}' "$url/_emulator/faults" > /dev/null
    mount_mediafs; M=$work/mfs; reset_stats
    t0=$(now); eval "$tool" > /dev/null; t1=$(now)
    tm=$(minus "$t1" "$t0"); cm=$(api_requests)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$mediafs_pid/status")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$mediafs_pid/status")
    unmount mfs
    if [ "$peer" = yes ]; then
      curl -sf -X POST -H 'Content-Type: application/json' -d '{"fetch_all_max": 1000}' "$url/_emulator/faults" > /dev/null
      mount_mediafs; M=$work/mfs; reset_stats
      t0=$(now); eval "$tool" > /dev/null; t1=$(now)
      tp=$(minus "$t1" "$t0"); cp=$(api_requests); unmount mfs
      walks+=("$(printf '| %s of %s files in %s folders | %.2f | %s | %.2f | %s | %s× | %s / %s MiB |' \
        "$tool" "$((folders * files))" "$folders" "$tm" "$cm" "$tp" "$cp" "$(times "$tp" "$tm")" \
        "$((rss / 1024))" "$((hwm / 1024))")")
    else
      walks+=("$(printf '| %s of %s files in %s folders | %.2f | %s | | | | %s / %s MiB |' \
        "$tool" "$((folders * files))" "$folders" "$tm" "$cm" "$((rss / 1024))" "$((hwm / 1024))")")
    fi
  done
  kill "$emulator_pid"; wait "$emulator_pid" 2>/dev/null || true
  rm -rf "$emulator_data"
}

if [ "$only" = all ]; then side_by_side; fi
declare -a walks
walk_pass 400 10 yes 'ls -lR "$M"' 'find "$M"' 'du -s "$M"' 'rsync -r --list-only "$M/"'
walk_pass 1000 100 yes 'ls -lR "$M"'
echo
echo "| cold walk, 100 ms latency, 100 requests per 10 s | mediafs (s) | API requests | folder by folder (s) | API requests | folder by folder / mediafs | mediafs RSS after / peak |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${walks[@]}"
