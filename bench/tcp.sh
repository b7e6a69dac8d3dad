#!/usr/bin/env bash
# tcp.sh - the NSQ TCP door against our ZeroMQ path, in the same run: one
# broker, nsq-bench's publish and consume modes through both doors,
# alternating, ROUNDS times; prints each result and the TCP/ZeroMQ ratios
# (issue 10's targets: TCP consume and TCP publish in MPUB batches at least
# 70% of ZeroMQ's). Publishing is compared batch for batch: TCP MPUB of
# BATCH messages against ZeroMQ PUB frames of BATCH bodies, and single
# TCP PUBs against single ZeroMQ PUBs.
#
# Usage: bench/tcp.sh [BUILD_DIR] (env: COUNT=200000 ROUNDS=3 SIZE=100
#        BATCH=100 BROKER_FLAGS="...")
set -euo pipefail

BUILD=${1:-build}
COUNT=${COUNT:-200000}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-100}
BATCH=${BATCH:-100}
WORK=$(mktemp -d)
BROKER_PID=
trap '[ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# shellcheck disable=SC2086
"$BUILD/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 \
    --tcp-address=127.0.0.1:0 --data-path="$WORK" --log-level=warn ${BROKER_FLAGS:-} \
    >"$WORK/ready" 2>"$WORK/broker.log" &
BROKER_PID=$!
for _ in $(seq 100); do
    grep -q '^READY' "$WORK/ready" 2>/dev/null && break
    sleep 0.1
done
HTTP=$(sed -n 's/^READY http=\([^ ]*\) .*/\1/p' "$WORK/ready")
ZMQ=$(sed -n 's/^READY .*zmq=\([^ ]*\).*/\1/p' "$WORK/ready")
TCP=$(sed -n 's/^READY .*tcp=\([^ ]*\).*/\1/p' "$WORK/ready")
[ -n "$TCP" ] || { echo "tcp.sh: the broker did not start" >&2; cat "$WORK/broker.log" >&2; exit 1; }

# Runs one mode; prints its result line and keeps msgs_per_sec in $RATE.
run() {
    local line
    line=$("$BUILD/worker/nsq-bench" --mode="$1" --count="$COUNT" --size="$SIZE" \
        --http-address="$HTTP" --zmq-address="$ZMQ" --tcp-address="$TCP" "${@:2}" | tail -1)
    echo "$line ${*:2}"
    RATE=$(sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p' <<<"$line")
}

declare -A total=()
for round in $(seq "$ROUNDS"); do
    echo "-- round $round"
    run zmq-pub --batch=1; total[zmq-pub1]=$((${total[zmq-pub1]:-0} + RATE))
    run tcp-pub --batch=1; total[tcp-pub1]=$((${total[tcp-pub1]:-0} + RATE))
    run zmq-pub --batch="$BATCH"; total[zmq-pub]=$((${total[zmq-pub]:-0} + RATE))
    run tcp-pub --batch="$BATCH"; total[tcp-pub]=$((${total[tcp-pub]:-0} + RATE))
    run zmq-consume; total[zmq-consume]=$((${total[zmq-consume]:-0} + RATE))
    run tcp-consume; total[tcp-consume]=$((${total[tcp-consume]:-0} + RATE))
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo "-- means over $ROUNDS rounds (msgs/s): zmq-pub(batch 1) $((total[zmq-pub1] / ROUNDS))," \
    "tcp-pub(batch 1) $((total[tcp-pub1] / ROUNDS)), zmq-pub(batch $BATCH) $((total[zmq-pub] / ROUNDS))," \
    "tcp-pub(batch $BATCH) $((total[tcp-pub] / ROUNDS))," \
    "zmq-consume $((total[zmq-consume] / ROUNDS)), tcp-consume $((total[tcp-consume] / ROUNDS))"
echo "tcp publish (MPUB $BATCH) / zmq publish (batch $BATCH): $(ratio "${total[tcp-pub]}" "${total[zmq-pub]}")"
echo "tcp publish (PUB) / zmq publish (batch 1): $(ratio "${total[tcp-pub1]}" "${total[zmq-pub1]}")"
echo "tcp consume / zmq consume: $(ratio "${total[tcp-consume]}" "${total[zmq-consume]}")"
