#!/usr/bin/env bash
# security.sh - what security costs, measured in one run on one machine:
#   - ZeroMQ publish and consume, 100-byte bodies, nsq-bench against a
#     plain broker and a CURVE broker (same flags otherwise);
#   - HTTP /pub against HTTPS /pub of one broker, wrk -t2 -c32.
# ROUNDS rounds (3) of every pair in turn; prints each round, then the
# medians and their ratios (secured / plain).
# Usage: [COUNT=500000] [DURATION=10s] [ROUNDS=3] bench/security.sh [build-dir]
# (needs wrk and openssl)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
COUNT=${COUNT:-500000}
DURATION=${DURATION:-10s}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

"$BUILD/tools/nsq-keygen" server >/dev/null
"$BUILD/tools/nsq-keygen" client >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=bench -addext subjectAltName=IP:127.0.0.1 -keyout tls.key -out tls.crt 2>/dev/null
chmod 600 tls.key

# broker NAME FLAGS...: starts a broker; sets NAME_HTTP, NAME_ZMQ.
broker() {
    local name=$1
    shift
    mkdir -p "$name"
    "$BUILD/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 \
        --tcp-address=127.0.0.1:0 \
        --data-path="$name" --mem-queue-size=100000000 --mem-queue-bytes=4g \
        --log-level=info "$@" > "$name.out" 2> "$name.err" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q READY "$name.out" 2>/dev/null && break; sleep 0.1; done
    if ! grep -q READY "$name.out"; then
        echo "security.sh: broker $name did not start: $(tail -1 "$name.err")" >&2
        exit 1
    fi
    printf -v "${name}_HTTP" '%s' "$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$name.out")"
    printf -v "${name}_ZMQ" '%s' "$(sed -n 's/.*zmq=\([^ ]*\).*/\1/p' "$name.out")"
}
broker plain --https-address=127.0.0.1:0 --tls-cert=tls.crt --tls-key=tls.key
broker curve --zmq-curve-secret-key-file=server_secret
HTTPS_PORT=$(sed -n 's/.*HTTPS on port \([0-9]*\).*/\1/p' plain.err | head -1)

rate() { sed -n 's/.*msgs_per_sec=\([0-9.]*\).*/\1/p'; }
ratio() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
KEYS=(--zmq-curve-key-file=client_secret --zmq-curve-server-key-file=server)
bench() { "$BUILD/worker/nsq-bench" --count="$COUNT" --size=100 "$@"; }
BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
printf 'wrk.method = "POST"\nwrk.body = "%s"\n' "$BODY" > post.lua
wrk_rate() { wrk -t2 -c32 -d"$DURATION" -s post.lua "$1" | awk '/Requests\/sec/ {print int($2)}'; }

# Alternating rounds, each pair back to back: on a shared machine the load
# moves between runs, and one consume run lasts well under a second.
for round in $(seq "${ROUNDS:-3}"); do
    bench --mode=zmq-pub --zmq-address="$plain_ZMQ" | rate >> pub_plain
    bench --mode=zmq-pub --zmq-address="$curve_ZMQ" "${KEYS[@]}" | rate >> pub_curve
    bench --mode=zmq-consume --zmq-address="$plain_ZMQ" | rate >> consume_plain
    bench --mode=zmq-consume --zmq-address="$curve_ZMQ" "${KEYS[@]}" | rate >> consume_curve
    wrk_rate "http://$plain_HTTP/pub?topic=web" >> pub_http
    wrk_rate "https://127.0.0.1:$HTTPS_PORT/pub?topic=web" >> pub_https
    echo "round $round: zmq-pub plain=$(tail -1 pub_plain) curve=$(tail -1 pub_curve) msg/s;" \
         "zmq-consume plain=$(tail -1 consume_plain) curve=$(tail -1 consume_curve) msg/s;" \
         "/pub http=$(tail -1 pub_http) https=$(tail -1 pub_https) req/s"
done
# pair NAME PLAIN_FILE SECURED_FILE UNIT: the medians and their ratio
pair() {
    local plain secured
    plain=$(median "$2")
    secured=$(median "$3")
    echo "median $1: $plain -> $secured $4 ratio=$(ratio "$secured" "$plain")"
}
pair "zmq-pub (plain -> curve)" pub_plain pub_curve msg/s
pair "zmq-consume (plain -> curve)" consume_plain consume_curve msg/s
pair "/pub (http -> https)" pub_http pub_https req/s
