#!/usr/bin/env bash
# bench-worker.sh - how fast nsq-worker's handlers drain a backlog (a
# measurement, not a test). Starts one broker on ephemeral ports in a
# temporary directory, queues COUNT messages of SIZE bytes per handler, and
# times an nsq-worker --max-messages=N run of each handler:
#   file     --file with an fdatasync per batch
#   http     --http POSTing to the broker's own /pub (a real HTTP endpoint)
#   exec     --exec='cat > /dev/null' (one /bin/sh per message; EXEC_COUNT)
#   process  --process running examples/handlers/nsq_process.py with a
#            Python handler that does no work (one process, the default
#            window of 32)
# and prints the ratios the --process handler is held to: process/exec
# (target >= 20) and process/file (target >= 0.5).
# The machine is shared and noisy: compare the ratios of one run, not runs.
# Usage: scripts/bench-worker.sh [BUILD_DIR]
#   (COUNT=50000 EXEC_COUNT=1000 SIZE=100 MIF=200)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
count=${COUNT:-50000}
exec_count=${EXEC_COUNT:-1000}
size=${SIZE:-100}
mif=${MIF:-200}
python=/usr/bin/python3
[ -x "$python" ] || python=python3
dir=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

"$build/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 \
    --data-path="$dir" --mem-queue-size=1000000 >"$dir/broker.out" 2>"$dir/broker.err" &
broker_pid=$!
for _ in $(seq 100); do grep -q READY "$dir/broker.out" && break; sleep 0.05; done
http=$(sed -n 's/^READY http=\([^ ]*\) .*/\1/p' "$dir/broker.out")
zmq=$(sed -n 's/^READY .*zmq=\([^ ]*\).*/\1/p' "$dir/broker.out")

declare -A rate
run() {  # name messages handler-flag
    local name=$1 n=$2 flag=$3
    curl -sf -X POST "http://$http/channel/create?topic=bench-$name&channel=w" >/dev/null
    "$build/worker/nsq-bench" --mode=zmq-pub --zmq-address="$zmq" --topic="bench-$name" \
        --count="$n" --size="$size" >/dev/null
    local start end
    start=$(date +%s.%N)
    "$build/worker/nsq-worker" --broker-address="$zmq" --topic="bench-$name" --channel=w \
        --max-in-flight="$mif" --max-messages="$n" --http-address= --log-level=warn "$flag" \
        >/dev/null 2>>"$dir/worker.err" || { cat "$dir/worker.err" >&2; exit 1; }
    end=$(date +%s.%N)
    rate[$name]=$(awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
    awk -v n="$n" -v s="$start" -v e="$end" -v name="$name" \
        'BEGIN { printf "%-7s %7d messages in %6.2f s = %8.0f msg/s\n", name, n, e - s, n / (e - s) }'
}

cat >"$dir/noop.py" <<PY
import sys
sys.path.insert(0, "$PWD/examples/handlers")
import nsq_process
nsq_process.run(lambda message: None)
PY

run file "$count" "--file=$dir/out.log"
run http "$count" "--http=http://$http/pub?topic=sink"
run exec "$exec_count" "--exec=cat > /dev/null"
run process "$count" "--process=$python $dir/noop.py"
awk -v p="${rate[process]}" -v e="${rate[exec]}" -v f="${rate[file]}" 'BEGIN {
    printf "process/exec = %.1fx (target >= 20x), process/file = %.0f%% (target >= 50%%)\n",
        p / e, 100 * p / f }'
