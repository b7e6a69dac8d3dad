#!/usr/bin/env bash
# bench-topics.sh - what many topics cost (a measurement, not a test):
#   1. creates TOPICS topics with one 1-byte message each (HTTP /pub)
#   2. RSS per idle topic: (RSS after - RSS before) / TOPICS, and the
#      broker's open descriptors
#   3. restart time: SIGTERM, start, READY, until /stats lists every topic;
#      first with the messages in memory (the shutdown writes them all),
#      then again on the idle directory
# Usage: scripts/bench-topics.sh [BUILD_DIR]   (TOPICS=10000; BUILD_DIR
# build-rel, made with: meson setup build-rel --buildtype=release
# -Dintegration=false && meson compile -C build-rel). Starts the broker on
# 127.0.0.1 ephemeral ports in a temporary directory; stops it by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}
topics=${TOPICS:-10000}
dir=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# start_broker: starts it on $dir/data, sets broker_pid and http, waits for READY
start_broker() {
    : >"$dir/broker.out"
    "$build/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 \
        --data-path="$dir/data" --log-level=warn >"$dir/broker.out" 2>>"$dir/broker.err" &
    broker_pid=$!
    until grep -q READY "$dir/broker.out" 2>/dev/null; do
        kill -0 "$broker_pid" || { cat "$dir/broker.err"; exit 1; }
        sleep 0.01
    done
    http=$(sed -n 's/^READY http=\([^ ]*\) .*/\1/p' "$dir/broker.out")
}

stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid"
    broker_pid=
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$broker_pid/status"; }
fds() { find "/proc/$broker_pid/fd" -mindepth 1 | wc -l; }
listed() { curl -sf "http://$http/stats?format=json" | grep -o '"topic_name":"bench-' | wc -l; }

# restart LABEL: prints the time from SIGTERM to a /stats listing every topic
restart() {
    local start stopped ready full
    start=$(now_ms)
    stop_broker
    stopped=$(now_ms)
    start_broker
    ready=$(now_ms)
    until [ "$(listed)" -eq "$topics" ]; do sleep 0.01; done
    full=$(now_ms)
    printf '%s: %d ms (stop %d ms, start to READY %d ms, to /stats listing %d topics %d ms), %d fds\n' \
        "$1" $((full - start)) $((stopped - start)) $((ready - stopped)) "$topics" \
        $((full - ready)) "$(fds)"
}

mkdir -p "$dir/data"
start_broker
sleep 0.2
before=$(rss_kb)
fds_before=$(fds)
# One curl process for all the publishes (a config file of URLs), 8 at a time.
for i in $(seq -f "%05g" 1 "$topics"); do
    [ "$i" = 00001 ] || echo next
    printf 'url = "http://%s/pub?topic=bench-%s"\ndata = "m"\noutput = "/dev/null"\n' "$http" "$i"
done >"$dir/curl.conf"
created_start=$(now_ms)
curl --no-progress-meter --fail --parallel --parallel-max 8 -K "$dir/curl.conf"
created=$(now_ms)
[ "$(listed)" -eq "$topics" ] || { echo "not every topic was created"; exit 1; }
after=$(rss_kb)
echo "created $topics topics with one message each in $((created - created_start)) ms"
echo "RSS: $before kB before, $after kB after: $(((after - before) * 1024 / topics)) bytes per idle topic"
echo "descriptors: $fds_before before, $(fds) after"
restart "restart, messages in memory"
restart "restart, idle directory  "
stop_broker
