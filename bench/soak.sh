#!/usr/bin/env bash
# soak.sh - a long publish-and-consume run across a broker restart, the
# figures of a release that must not leak or lose: publishes and consumes
# 100-byte messages over ZeroMQ at about half of the peak rate measured
# first (nsq-bench --mode=zmq-e2e), for DURATION (10 minutes), and restarts
# the broker (SIGTERM, start again on the same ports and data path) halfway.
# nsq-bench --mode=soak sends MPUB batches of sequence-numbered bodies,
# sends a batch again when it fails (the broker restarting), and counts
# every message received: lost (acknowledged, never received) and
# duplicated must both be 0. Reports the broker's RSS after warming up, before
# the restart, after it and at the end. A benchmark, not a CI test.
#
# Usage: bench/soak.sh [build-dir]   (default build-release, made if missing)
#   DURATION=600 (seconds)  RATE= (messages/s; default half the peak)
#   BROKER_FLAGS= (more broker flags, e.g. --mem-queue-size=0: every
#   message through the disk queues)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-release}
DURATION=${DURATION:-600}
WORK=$(mktemp -d)
BROKER_PID=
cleanup() {
    [ -z "$BROKER_PID" ] || kill "$BROKER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$BUILD/broker/nsq-broker" ]; then
    [ -f "$BUILD/build.ninja" ] || meson setup --buildtype=release "$BUILD" >/dev/null
    meson compile -C "$BUILD" >/dev/null
fi
BENCH=$BUILD/worker/nsq-bench

# Starts the broker on the given ports (0 = any) and sets HTTP and ZMQ.
start_broker() {
    "$BUILD/broker/nsq-broker" --http-address="127.0.0.1:$1" --zmq-address="127.0.0.1:$2" \
        --tcp-address=127.0.0.1:0 --data-path="$WORK/data" --log-level=warn ${BROKER_FLAGS:-} \
        >"$WORK/ready" 2>>"$WORK/broker.log" &
    BROKER_PID=$!
    for _ in $(seq 100); do
        grep -q '^READY' "$WORK/ready" 2>/dev/null && break
        sleep 0.1
    done
    HTTP=$(sed -n 's/^READY http=\([^ ]*\) .*/\1/p' "$WORK/ready")
    ZMQ=$(sed -n 's/^READY .*zmq=\([^ ]*\).*/\1/p' "$WORK/ready")
    [ -n "$ZMQ" ] || { echo "soak: the broker did not start" >&2; cat "$WORK/broker.log" >&2; exit 1; }
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$BROKER_PID/status"; }

start_broker 0 0
if [ -z "${RATE:-}" ]; then
    PEAK=$("$BENCH" --mode=zmq-e2e --count=500000 --zmq-address="$ZMQ" | sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p')
    RATE=$((PEAK / 2))
    echo "peak zmq-e2e: $PEAK msg/s; soak rate: $RATE msg/s"
fi

"$BENCH" --mode=soak --rate="$RATE" --duration="${DURATION}s" --batch=100 \
    --zmq-address="$ZMQ" >"$WORK/soak.out" 2>"$WORK/soak.err" &
SOAK_PID=$!
half=$((DURATION / 2))
warm=$((half < 120 ? half / 2 : 60))  # RSS samples after this much warm-up
sleep "$warm"
RSS_START=$(rss_kb)
sleep $((half - warm))
RSS_BEFORE=$(rss_kb)
HTTP_PORT=${HTTP##*:}
ZMQ_PORT=${ZMQ##*:}
t0=$(date +%s%N)
kill -TERM "$BROKER_PID"
wait "$BROKER_PID" || { echo "soak: the broker exited with $?" >&2; }
start_broker "$HTTP_PORT" "$ZMQ_PORT"
t1=$(date +%s%N)
echo "restart: $(((t1 - t0) / 1000000)) ms (SIGTERM to READY)"
sleep "$warm"
RSS_AFTER=$(rss_kb)
wait "$SOAK_PID" || true
RSS_END=$(rss_kb)
cat "$WORK/soak.out"
grep -v '^soak: [0-9]*s ' "$WORK/soak.err" | tail -n 5 >&2 || true
echo "broker RSS (kB): start $RSS_START, before restart $RSS_BEFORE, after restart $RSS_AFTER, end $RSS_END"
awk -v a="$RSS_START" -v b="$RSS_END" 'BEGIN { printf "RSS end/start: %.2f\n", b / a }'
grep -q ' lost=0 duplicated=0 .* errors=0 ' "$WORK/soak.out"
