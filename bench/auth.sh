#!/usr/bin/env bash
# auth.sh - what authorization costs on HTTP /pub: one broker without auth
# and one with --auth-http-address (the reference nsq-auth-server; every
# request carries a Bearer secret whose answer is cached), driven in turns
# by `wrk -t2 -c32` with 100-byte bodies, ROUNDS times each. Prints each
# round's rate and the ratio of the medians (auth on / auth off).
# Needs wrk. Usage: bench/auth.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits for a READY line in a file; prints the line.
ready() {
    for _ in $(seq 100); do
        grep -m1 '^READY' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "auth.sh: no READY in $1" >&2
    exit 1
}

cat > "$WORK/auth.json" <<'JSON'
{"secrets": {"bench": {"ttl": 3600, "identity": "bench", "authorizations": [
  {"topic": "^bench$", "channels": [".*"], "permissions": ["publish"]}]}}}
JSON
"$BUILD/tools/nsq-auth-server" --auth-file="$WORK/auth.json" --http-address=127.0.0.1:0 \
    >"$WORK/authd.out" 2>"$WORK/authd.err" &
PIDS+=($!)
AUTHD=$(ready "$WORK/authd.out" | sed 's/READY http=//')

start_broker() {  # name, extra flags...
    local name=$1
    shift
    "$BUILD/broker/nsq-broker" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 \
        --tcp-address=127.0.0.1:0 \
        --data-path="$WORK/$name" --mem-queue-size=100000000 --mem-queue-bytes=0 \
        --log-level=warn "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    ready "$WORK/$name.out" | sed 's/READY http=\([^ ]*\) .*/\1/'
}
mkdir -p "$WORK/off" "$WORK/on"
OFF=$(start_broker off)
ON=$(start_broker on --auth-http-address="$AUTHD")

BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
cat > "$WORK/off.lua" <<LUA
wrk.method = "POST"
wrk.body = "$BODY"
LUA
cat > "$WORK/on.lua" <<LUA
wrk.method = "POST"
wrk.body = "$BODY"
wrk.headers["Authorization"] = "Bearer bench"
LUA
# One request each first: the secret's answer is in the cache before timing.
curl -sf -H 'Authorization: Bearer bench' -d x "http://$ON/pub?topic=bench" >/dev/null

rate() { awk '/Requests\/sec/ {print int($2)}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {  # address script: the rate; refused requests would measure nothing, so they fail it
    wrk -t2 -c32 -d"$DURATION" -s "$WORK/$2.lua" "http://$1/pub?topic=bench" >"$WORK/wrk.out"
    if grep -q 'Non-2xx' "$WORK/wrk.out"; then
        echo "auth.sh: $2: $(grep 'Non-2xx' "$WORK/wrk.out")" >&2
        exit 1
    fi
    rate <"$WORK/wrk.out"
}
: >"$WORK/off.rates"
: >"$WORK/on.rates"
for round in $(seq "$ROUNDS"); do
    off=$(run "$OFF" off)
    on=$(run "$ON" on)
    echo "round $round: auth off $off req/s, auth on $on req/s"
    echo "$off" >>"$WORK/off.rates"
    echo "$on" >>"$WORK/on.rates"
done
off=$(median <"$WORK/off.rates")
on=$(median <"$WORK/on.rates")
ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a / b}')
echo "median: auth off $off req/s, auth on (cached) $on req/s, ratio $ratio"
