#!/usr/bin/env bash
# compare.sh - the two speed targets of the core, each measured against its
# ceiling in the same run on this machine:
#   1. HTTP /pub (100-byte body, one message per request) vs nginx answering
#      a static 200, both driven by `wrk -t2 -c32`;
#   2. ZeroMQ consume of 100-byte messages (nsq-bench) vs a raw libzmq
#      PUSH/PULL loop over tcp loopback (nsq-bench --mode=raw-zmq).
# Prints the rates and their ratios. Needs wrk and nginx (apt-get install
# wrk nginx-light). Usage: bench/compare.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DURATION=${DURATION:-10s}
COUNT=${COUNT:-1000000}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A 100-byte POST body for wrk.
BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$BODY"
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

rate() { awk '/Requests\/sec/ {print int($2)}'; }

# --- nginx ceiling ---
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
nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
sleep 0.5
NGINX_RATE=$(wrk -t2 -c32 -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$NGINX_PORT/" | rate)

# --- broker /pub ---
mkdir -p "$WORK/data"
"$BUILD/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 \
    --data-path="$WORK/data" --mem-queue-size=100000000 --log-level=warn > "$WORK/broker.out" & PIDS+=($!)
for _ in $(seq 50); do grep -q READY "$WORK/broker.out" 2>/dev/null && break; sleep 0.1; done
HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/broker.out")
ZMQ=$(sed -n 's/.*zmq=\([^ ]*\).*/\1/p' "$WORK/broker.out")
PUB_RATE=$(wrk -t2 -c32 -d"$DURATION" -s "$WORK/post.lua" "http://$HTTP/pub?topic=bench" | rate)
curl -s -X POST "http://$HTTP/topic/delete?topic=bench" >/dev/null

echo "http: nginx_static_200=${NGINX_RATE} req/s broker_pub=${PUB_RATE} req/s ratio=$(awk "BEGIN{printf \"%.2f\", $PUB_RATE/$NGINX_RATE}")"

# --- ZeroMQ consume vs raw PUSH/PULL ---
RAW=$("$BUILD/worker/nsq-bench" --mode=raw-zmq --count="$COUNT" --size=100)
echo "$RAW"
# zmq-consume publishes its own messages first (its own topic), then times the consumer.
CONSUME=$("$BUILD/worker/nsq-bench" --mode=zmq-consume --zmq-address="$ZMQ" --count="$COUNT" \
    --size=100 --connections=2 --max-in-flight=2500)
echo "$CONSUME"
RAW_RATE=$(echo "$RAW" | sed -n 's/.*msgs_per_sec=\([0-9.]*\).*/\1/p')
CONSUME_RATE=$(echo "$CONSUME" | sed -n 's/.*msgs_per_sec=\([0-9.]*\).*/\1/p')
echo "zmq: raw_push_pull=${RAW_RATE} msg/s broker_consume=${CONSUME_RATE} msg/s ratio=$(awk "BEGIN{printf \"%.2f\", $CONSUME_RATE/$RAW_RATE}")"
