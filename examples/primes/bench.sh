#!/usr/bin/env bash
# bench.sh - throughput of the primes example's checking stage with 1, 2 and
# 4 workers (a measurement, not a test). Starts its own local cluster
# (deploy/cluster.sh, 2 brokers, on free ports in a temporary directory),
# and for each worker count: publishes COUNT integers from START to a
# fresh topic (the backlog), starts that many stage-1 workers (nsq-worker
# --process running is_prime.py, one process each, --publish-topic on),
# and times how long the channel takes to drain (depth and in-flight 0 in
# the broker's /stats). Prints messages per second for each count.
# START=1000000000 makes each check cost something (trial division up to
# 31623); START=2 measures the pipeline's own overhead.
# Usage: examples/primes/bench.sh [BUILD_DIR]
#   (START=1000000000 COUNT=20000 WORKERS="1 2 4" EXTRA=more-worker-flags)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
start_at=${START:-1000000000}
count=${COUNT:-20000}
python=/usr/bin/python3
[ -x "$python" ] || python=python3
tmp=$(mktemp -d)
pids=()
cleanup() {
    [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
    deploy/cluster.sh down --dir "$tmp/cluster" --timeout 5 >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

. tests/deploy/free_base_port.sh
base=$(free_base_port)
deploy/cluster.sh up --dir "$tmp/cluster" --build-dir "$build" --base-port "$base" \
    --workers 0 --lookupds 0 >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; exit 1; }
http=127.0.0.1:$((base + 1))
brokers=(--broker-address=127.0.0.1:$((base + 2)) --broker-address=127.0.0.1:$((base + 102)))

# depth + in_flight_count of topic/channel check, from /stats.
backlog() {
    curl -s "http://$http/stats?format=json&topic=$1&channel=check" | "$python" -c '
import json, sys
doc = json.load(sys.stdin)
channels = [c for t in doc.get("topics", []) for c in t.get("channels", [])]
print(sum(c["depth"] + c["in_flight_count"] for c in channels) if channels else -1)'
}

echo "primes stage 1 (is_prime.py via --process), $count numbers from $start_at, $(nproc) cores:"
for workers in ${WORKERS:-1 2 4}; do
    topic=numbers-$workers
    seq "$start_at" $((start_at + count - 1)) | "$build/worker/nsq-pub" --http-address="$http" --topic="$topic" \
        --batch-size=1000 >/dev/null
    start=$(date +%s.%N)
    pids=()
    for _ in $(seq "$workers"); do
        "$build/worker/nsq-worker" "${brokers[@]}" --topic="$topic" --channel=check \
            --process="$python examples/primes/is_prime.py" --publish-topic=primes.found \
            --http-address= --log-level=warn ${EXTRA:-} 2>>"$tmp/workers.log" &
        pids+=($!)
    done
    until [ "$(backlog "$topic")" = 0 ]; do sleep 0.1; done
    end=$(date +%s.%N)
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
    awk -v n="$count" -v s="$start" -v e="$end" -v w="$workers" \
        'BEGIN { printf "  %d worker(s): %6d numbers in %5.2f s = %6.0f msg/s\n", w, n, e - s, n / (e - s) }'
done
