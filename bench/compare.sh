#!/usr/bin/env bash
# compare.sh - the publishing and consuming targets of the broker, each
# measured against its ceiling in the same run on this machine (100-byte
# bodies throughout):
#   http_pub      HTTP /pub, one message per request, `wrk -t2 -c32`, against
#                 nginx answering `return 200` driven the same way; and the
#                 /pub p99 latency under that load
#   http_mpub     /mpub?binary=true of 100 messages, 4 connections (nsq-bench
#                 http-mpub): an absolute rate, and against the same client
#                 posting the same bodies to nginx (its ceiling here); run
#                 twice, into new memory and into memory just freed
#   zmq_consume   ZeroMQ consume of a backlog of COUNT (nsq-bench zmq-consume)
#                 against a raw libzmq PUSH/PULL loop (nsq-bench raw-zmq)
#   zmq_pub_batch ZeroMQ publish in MPUBs of 200 over 2 connections against
#                 the same raw PUSH/PULL loop
#   zmq_pub_one   one message per PUB, one outstanding, against a raw libzmq
#                 DEALER/ROUTER ping-pong (nsq-bench raw-zmq-ping-pong)
#   zmq_both      publishing (as zmq_pub_batch) and consuming at once
#                 (nsq-bench zmq-e2e), each against its rate alone
#   durable       --durable: /pub with 16 connections, /mpub x100 with 16
#                 connections (absolute rates; the disk issue's figures)
#   spill         --mem-queue-size=0, a topic with one channel: /mpub x100, 4
#                 connections, every message through the channel's disk
#                 queue (an absolute rate)
#   idle          IDLE_TOPICS (default 1000) idle topics, each with a
#                 channel, beside one busy topic: PUB with one outstanding
#                 and MPUB x200, against the same rows without the idle
#                 topics (the broker's per-batch work must not grow with
#                 the topic count)
# The memory rows run with --mem-queue-size and --mem-queue-bytes above the
# run, so nothing spills to disk (the spill row measures that, and
# scripts/bench-disk.sh the disk issue's figures).
# Prints one line per measurement and a summary of every ratio at the end.
# A row whose tool is missing (wrk, nginx) is skipped with a message.
#
# Usage: bench/compare.sh [build-dir]
# Environment: ROWS (the groups to run, space-separated, of http, zmq,
# durable, spill, idle; default all: ROWS=zmq runs only the ZeroMQ rows), DURATION (wrk, default 5s), COUNT (consume and publish rows,
# default 1000000), PING_COUNT (default 20000), DURABLE_COUNT (/pub, default
# 20000), BROKER and BENCH (binaries, default the build dir's; BROKER lets
# one nsq-bench measure another build's broker).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
BROKER=${BROKER:-$BUILD/broker/nsq-broker}
BENCH=${BENCH:-$BUILD/worker/nsq-bench}
DURATION=${DURATION:-5s}
COUNT=${COUNT:-1000000}
PING_COUNT=${PING_COUNT:-20000}
DURABLE_COUNT=${DURABLE_COUNT:-20000}
IDLE_TOPICS=${IDLE_TOPICS:-1000}
ROWS=${ROWS:-http zmq durable spill idle}
WORK=$(mktemp -d)
PIDS=()
SUMMARY=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
have() { command -v "$1" >/dev/null 2>&1; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }  # field NAME < result line
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
# summary NAME A B TARGET: records "NAME a/b = ratio (target)"
summary() { SUMMARY+=("$(printf '%-34s %10s / %-10s = %-5s %s' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4")"); }

# A 100-byte POST body for wrk.
BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$BODY"
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
wrk_rate() { awk '/Requests\/sec/ {print int($2)}'; }
# The 99th percentile of `wrk --latency` in microseconds.
wrk_p99() { awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    print (u == "ms" ? v * 1000 : u == "s" ? v * 1000000 : v) }'; }

# start_broker NAME FLAGS...: starts a broker, sets HTTP and ZMQ.
start_broker() {
    local name=$1; shift
    mkdir -p "$WORK/$name"
    "$BROKER" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address= --data-path="$WORK/$name" \
        --log-level=warn "$@" > "$WORK/$name.out" & PIDS+=($!)
    for _ in $(seq 100); do grep -q READY "$WORK/$name.out" 2>/dev/null && break; sleep 0.1; done
    HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/$name.out")
    ZMQ=$(sed -n 's/.*zmq=\([^ ]*\).*/\1/p' "$WORK/$name.out")
    [ -n "$HTTP" ] || { echo "compare.sh: the broker did not start" >&2; exit 1; }
}
stop_broker() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }
bench() { echo "+ nsq-bench $*" >&2; "$BENCH" "$@"; }
row() { [[ " $ROWS " == *" $1 "* ]]; }  # row GROUP: true if ROWS selects it

# --- HTTP /pub against nginx ------------------------------------------------------
if row http; then
start_broker memory --mem-queue-size=100000000 --mem-queue-bytes=4000000000
if have wrk && have nginx; then
    NGINX_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 200 "OK"; }
    }
}
CONF
    nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & NGINX_PID=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done
    NGINX=$(wrk -t2 -c32 -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$NGINX_PORT/")
    # The /mpub row's ceiling: nsq-bench's own HTTP client against nginx.
    NGINX_MPUB=$(bench --mode=http-mpub --http-address="127.0.0.1:$NGINX_PORT" --topic=bench-mpub \
        --count=$((COUNT * 2)) --size=100 --batch=100 --connections=4 | field msgs_per_sec)
    echo "http_mpub_ceiling: nsq-bench http-mpub against nginx: msgs_per_sec=$NGINX_MPUB"
    kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true
    PUB=$(wrk -t2 -c32 -d"$DURATION" --latency -s "$WORK/post.lua" "http://$HTTP/pub?topic=bench")
    curl -s -X POST "http://$HTTP/topic/delete?topic=bench" >/dev/null
    NGINX_RATE=$(echo "$NGINX" | wrk_rate)
    PUB_RATE=$(echo "$PUB" | wrk_rate)
    PUB_P99=$(echo "$PUB" | wrk_p99)
    echo "http_pub: nginx_return_200=${NGINX_RATE} req/s broker_pub=${PUB_RATE} req/s" \
        "ratio=$(ratio "$PUB_RATE" "$NGINX_RATE") pub_p99_us=${PUB_P99} nginx_p99_us=$(echo "$NGINX" | wrk_p99)"
    summary "http /pub vs nginx (req/s)" "$PUB_RATE" "$NGINX_RATE" "target >= 0.85"
    SUMMARY+=("$(printf '%-34s %10s us (target: no worse than before)' "http /pub p99 under wrk -c32" "$PUB_P99")")
else
    echo "http_pub: skipped (wrk or nginx missing: apt-get install wrk nginx-light)"
fi

# --- /mpub x100, 4 connections ------------------------------------------------------
# Twice: the first run grows the queue into memory the process never had
# (on a VM whose host backs guest memory lazily, each new page is slow the
# first time); the second, after the first topic was deleted, into memory
# the machine just gave back, as a broker whose consumers keep up reuses it.
for pass in first again; do
    MPUB=$(bench --mode=http-mpub --http-address="$HTTP" --topic=bench-mpub-$pass \
        --count=$((COUNT * 2)) --size=100 --batch=100 --connections=4)
    echo "http_mpub_$pass: $MPUB"
    curl -s -X POST "http://$HTTP/topic/delete?topic=bench-mpub-$pass" >/dev/null
    LABEL="http /mpub x100, new memory"
    [ "$pass" = first ] || LABEL="http /mpub x100, reused memory"
    SUMMARY+=("$(printf '%-34s %10s msg/s (target >= 2500000)' "$LABEL" "$(echo "$MPUB" | field msgs_per_sec)")")
    if [ -n "${NGINX_MPUB:-}" ]; then
        summary "  vs nginx, same client" "$(echo "$MPUB" | field msgs_per_sec)" \
            "$NGINX_MPUB" "(the client's own ceiling)"
    fi
done
stop_broker
fi

# --- ZeroMQ: the raw ceilings, then the broker --------------------------------------
if row zmq; then
RAW=$(bench --mode=raw-zmq --count="$COUNT" --size=100)
echo "raw_push_pull: $RAW"
PING=$(bench --mode=raw-zmq-ping-pong --count="$PING_COUNT" --size=100)
echo "raw_ping_pong: $PING"
RAW_RATE=$(echo "$RAW" | field msgs_per_sec)
PING_RATE=$(echo "$PING" | field msgs_per_sec)

start_broker zmq --mem-queue-size=100000000 --mem-queue-bytes=4000000000
# zmq-consume publishes its own backlog first (its own topic), then times the consumer.
CONSUME=$(bench --mode=zmq-consume --zmq-address="$ZMQ" --count="$COUNT" --size=100 \
    --batch=200 --connections=2 --window=2000 --max-in-flight=2500)
echo "zmq_consume: $CONSUME"
CONSUME_RATE=$(echo "$CONSUME" | field msgs_per_sec)
summary "zmq consume 1M backlog vs push/pull" "$CONSUME_RATE" "$RAW_RATE" "target >= 0.60"

PUBLISH=$(bench --mode=zmq-pub --zmq-address="$ZMQ" --count="$COUNT" --size=100 --batch=200 \
    --connections=2 --window=2000)
echo "zmq_pub_batch: $PUBLISH"
PUBLISH_RATE=$(echo "$PUBLISH" | field msgs_per_sec)
summary "zmq MPUB x200, 2 conn vs push/pull" "$PUBLISH_RATE" "$RAW_RATE" "target >= 0.70"

ONE=$(bench --mode=zmq-pub --zmq-address="$ZMQ" --count="$PING_COUNT" --size=100 --batch=1 \
    --window=1 --connections=1)
echo "zmq_pub_one: $ONE"
summary "zmq PUB, 1 outstanding vs ping-pong" "$(echo "$ONE" | field msgs_per_sec)" "$PING_RATE" \
    "target >= 0.50 (ping-pong p50 $(echo "$PING" | field p50_us) us)"

BOTH=$(bench --mode=zmq-e2e --zmq-address="$ZMQ" --count="$COUNT" --size=100 --batch=200 \
    --connections=2 --window=2000 --max-in-flight=2500)
echo "zmq_both: $(echo "$BOTH" | tr '\n' ' ')"
BOTH_CONSUME=$(echo "$BOTH" | grep 'mode=zmq-e2e ' | field msgs_per_sec)
BOTH_PUBLISH=$(echo "$BOTH" | grep 'mode=zmq-e2e-publish' | field msgs_per_sec)
summary "zmq publish while consuming vs alone" "$BOTH_PUBLISH" "$PUBLISH_RATE" "target >= 0.70"
summary "zmq consume while publishing vs alone" "$BOTH_CONSUME" "$CONSUME_RATE" "target >= 0.70"
# Where both would land if one thread did all the work of both at their
# rates alone (the core thread serializes publishing and delivery): the
# two ratios then add up to 1, e.g. 0.40 and 0.60.
SUMMARY+=("$(awk -v p="$PUBLISH_RATE" -v c="$CONSUME_RATE" 'BEGIN { if (p > 0 && c > 0)
    printf "%-34s %10.0f msg/s: publish %.2f, consume %.2f", "  serialized ceiling of both", \
        1 / (1 / p + 1 / c), c / (p + c), p / (p + c) }')")
stop_broker
fi

# --- durable --------------------------------------------------------------------------
if row durable; then
start_broker durable --durable
curl -s -X POST "http://$HTTP/channel/create?topic=bench&channel=bench" >/dev/null
DURABLE_PUB=$(bench --mode=http-pub --http-address="$HTTP" --topic=bench --count="$DURABLE_COUNT" \
    --size=100 --connections=16)
echo "durable_pub: $DURABLE_PUB"
DURABLE_MPUB=$(bench --mode=http-mpub --http-address="$HTTP" --topic=bench --count="$COUNT" \
    --size=100 --batch=100 --connections=16)
echo "durable_mpub: $DURABLE_MPUB"
stop_broker
SUMMARY+=("$(printf '%-34s %10s msg/s (unchanged or better)' "durable /pub, 16 connections" "$(echo "$DURABLE_PUB" | field msgs_per_sec)")")
SUMMARY+=("$(printf '%-34s %10s msg/s (unchanged or better)' "durable /mpub x100, 16 connections" "$(echo "$DURABLE_MPUB" | field msgs_per_sec)")")
fi

# --- spilling to disk -------------------------------------------------------------------
if row spill; then
start_broker spill --mem-queue-size=0
curl -s -X POST "http://$HTTP/channel/create?topic=bench&channel=bench" >/dev/null
SPILL=$(bench --mode=http-mpub --http-address="$HTTP" --topic=bench --count="$COUNT" \
    --size=100 --batch=100 --connections=4)
echo "spill_mpub: $SPILL"
stop_broker
SUMMARY+=("$(printf '%-34s %10s msg/s' "/mpub x100 spilling to disk" "$(echo "$SPILL" | field msgs_per_sec)")")
fi

# --- many idle topics beside a busy one ------------------------------------------------
# idle_rows LABEL: PUB with one outstanding, and MPUB x200 over 2 connections.
idle_rows() {
    local one batch
    one=$(bench --mode=zmq-pub --zmq-address="$ZMQ" --count="$PING_COUNT" --size=100 --batch=1 \
        --window=1 --connections=1 | field msgs_per_sec)
    batch=$(bench --mode=zmq-pub --zmq-address="$ZMQ" --count="$COUNT" --size=100 --batch=200 \
        --connections=2 --window=2000 | field msgs_per_sec)
    echo "idle_$1: pub_one=$one pub_batch=$batch"
    IDLE_ONE=$one IDLE_BATCH=$batch
}
if row idle; then
    start_broker idle --mem-queue-size=100000000 --mem-queue-bytes=4000000000
    idle_rows none
    NONE_ONE=$IDLE_ONE NONE_BATCH=$IDLE_BATCH
    for i in $(seq "$IDLE_TOPICS"); do
        echo "url = \"http://$HTTP/channel/create?topic=idle-$i&channel=c\""
        echo "output = /dev/null"
        echo "request = POST"
    done > "$WORK/idle.curl"
    curl -s -K "$WORK/idle.curl"
    idle_rows "$IDLE_TOPICS"
    stop_broker
    summary "PUB 1 outstanding, $IDLE_TOPICS idle topics vs 0" "$IDLE_ONE" "$NONE_ONE" "target ~1.00"
    summary "MPUB x200, $IDLE_TOPICS idle topics vs 0" "$IDLE_BATCH" "$NONE_BATCH" "target ~1.00"
fi

echo
echo "summary ($(basename "$BROKER") from $(dirname "$(dirname "$BROKER")"), $(date -u +%FT%TZ)):"
printf '  %s\n' "${SUMMARY[@]}"
