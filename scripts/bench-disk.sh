#!/bin/bash
# bench-disk.sh - the disk figures of issue 3, measured in one run:
#   1. /mpub throughput with --mem-queue-size=0 (everything through disk)
#      against in-memory (--mem-queue-size larger than the run)
#   2. broker RSS after a 2,000,000 x 100 B backlog with no consumer (defaults)
#   3. --durable with 16 concurrent publishers (/pub and /mpub) against a
#      sequential write of the same bytes with dd conv=fdatasync
# Usage: scripts/bench-disk.sh [BUILD_DIR]   (default build-rel, built with
# meson setup build-rel -Dbuildtype=release). Starts brokers on 127.0.0.1
# ephemeral ports with temporary data paths; stops them by PID.
set -euo pipefail
build=${1:-build-rel}
broker_pid=
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT

# start_broker DIR FLAGS...: sets broker_pid and http
start_broker() {
    local dir=$1; shift
    "$build/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 \
        --data-path="$dir" --log-level=warn "$@" >"$dir/out" 2>"$dir/err" &
    broker_pid=$!
    for _ in $(seq 200); do grep -q READY "$dir/out" 2>/dev/null && break; sleep 0.05; done
    http=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$dir/out")
    curl -s -XPOST "http://$http/channel/create?topic=bench&channel=bench" >/dev/null
}

stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=
}

# run LABEL COUNT MODE CONNECTIONS BROKER_FLAGS...: prints one result line
run() {
    local label=$1 count=$2 mode=$3 connections=$4; shift 4
    local dir
    dir=$(mktemp -d /tmp/bench-disk-XXXXXX)
    start_broker "$dir" "$@"
    local result
    result=$("$build/worker/nsq-bench" --mode="$mode" --count="$count" --size=100 --batch=100 \
        --connections="$connections" --http-address="$http" | tail -1)
    local rss
    rss=$(awk '/VmRSS/ {print $2 " kB"}' "/proc/$broker_pid/status")
    echo "$label: $result rss=$rss"
    stop_broker
    rm -rf "$dir"
}

run "spill (--mem-queue-size=0)" 1000000 http-mpub 4 --mem-queue-size=0
run "in memory               " 1000000 http-mpub 4 --mem-queue-size=2000000
run "backlog 2M, defaults    " 2000000 http-mpub 4
run "durable /pub x16        " 50000 http-pub 16 --durable
run "default /pub x16 (memq 0)" 50000 http-pub 16 --mem-queue-size=0
run "durable /mpub x16       " 1000000 http-mpub 16 --durable
file=$(mktemp /tmp/bench-disk-dd-XXXXXX)
# A record is 8 (length, crc) + 28 (message header) + 100 (body) bytes.
echo "dd 50000 x 136 B:   $(dd if=/dev/zero of="$file" bs=136 count=50000 conv=fdatasync 2>&1 | tail -1)"
echo "dd 1000000 x 136 B: $(dd if=/dev/zero of="$file" bs=136 count=1000000 conv=fdatasync 2>&1 | tail -1)"
rm -f "$file"
