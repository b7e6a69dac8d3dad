#!/usr/bin/env bash
# netns_discovery.sh - discovery and redelivery across separate hosts
# SPDX-License-Identifier: MIT
#
# Five network namespaces stand in for five hosts on one switch (a bridge in
# a sixth namespace, so the test never touches the caller's network; all
# traffic stays on 10.199.0.0/24 inside the namespaces):
#   h1 lookupd (10.199.0.1)   h2, h3 brokers (.2, .3)   h4, h5 workers (.4, .5)
# The workers know only the lookupd. Checks:
#   1. 50,000 messages published across both brokers arrive exactly once in
#      the channel (the two workers' outputs together).
#   2. h4's link is cut mid-stream: its in-flight messages time out on the
#      brokers (--msg-timeout=1s, before its missed heartbeats at 4.5 s) and
#      go to h5; nothing is lost.
#   3. the link restored, h4 consumes again and still nothing is lost.
# Needs root and `ip netns`; exits 77 (meson: skipped) with a reason
# otherwise. Namespaces and processes are removed on every exit path.
# wait_until takes its condition in single quotes on purpose (evaluated
# later, repeatedly), which also hides the variables it uses:
# shellcheck disable=SC2016,SC2034
set -uo pipefail

skip() {
    echo "SKIP: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "ip (iproute2) is not installed"
for binary in NSQ_LOOKUPD NSQ_BROKER NSQ_WORKER NSQ_PUB; do
    [ -x "${!binary:-}" ] || skip "$binary is not set (meson sets it)"
done

tag="nsqt$$"
switch="$tag-sw"
hosts=(h1 h2 h3 h4 h5)
tmp=$(mktemp -d /tmp/nsq-netns-XXXXXX)
pids=()
created=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for _ in $(seq 50); do  # up to 5 s for a graceful exit
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    for ns in "${created[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "$status" = 0 ]; then
        rm -rf "$tmp"
    elif [ "$status" != 77 ]; then
        echo "logs kept in $tmp"
        for log in "$tmp"/*.log; do
            echo "---- $log (tail)"
            tail -n 15 "$log"
        done
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    for broker in 2 3; do
        echo "---- broker $broker /stats"
        ip netns exec "$tag-h1" curl -s -m 2 "http://10.199.0.$broker:4151/stats?format=json" |
            head -c 3000
        echo
    done
    exit 1
}

now_ms() {
    date +%s%3N
}

# wait_until TIMEOUT_MS DESCRIPTION 'CONDITION': evaluates the shell
# condition every 100 ms until it holds.
wait_until() {
    local timeout=$1 what=$2 condition=$3
    local deadline=$(($(now_ms) + timeout))
    until eval "$condition"; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "$what (within $timeout ms)"
        sleep 0.1
    done
}

ip netns add "$switch" 2>/dev/null || skip "cannot create a network namespace"
created+=("$switch")
ip -n "$switch" link add br0 type bridge || skip "no bridge support in this kernel"
ip -n "$switch" link set br0 up
index=0
for host in "${hosts[@]}"; do
    index=$((index + 1))
    ns="$tag-$host"
    ip netns add "$ns" || fail "cannot create namespace $ns"
    created+=("$ns")
    ip -n "$switch" link add "v$host" type veth peer name eth0 netns "$ns" || fail "veth for $host"
    ip -n "$switch" link set "v$host" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "10.199.0.$index/24" dev eth0
    ip -n "$ns" link set eth0 up
done

# run HOST NAME COMMAND...: starts COMMAND inside HOST, stdout to NAME.out.
run() {
    local host=$1 name=$2
    shift 2
    ip netns exec "$tag-$host" "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
    pids+=($!)
}

ready() {
    grep -q '^READY' "$tmp/$1.out" 2>/dev/null
}

run h1 lookupd "$NSQ_LOOKUPD" --http-address=10.199.0.1:4161 --zmq-address=10.199.0.1:4160 \
    --inactive-producer-timeout=5s
wait_until 10000 "lookupd ready" 'ready lookupd'
for broker in 2 3; do
    mkdir -p "$tmp/data$broker"
    run "h$broker" "broker$broker" "$NSQ_BROKER" --http-address="10.199.0.$broker:4151" \
        --zmq-address="10.199.0.$broker:4152" --broadcast-address="10.199.0.$broker" \
        --data-path="$tmp/data$broker" --lookupd-address=10.199.0.1:4160 \
        --lookupd-heartbeat-interval=500ms --msg-timeout=1s --mem-queue-size=200000
    wait_until 10000 "broker $broker ready" 'ready "broker$broker"'
done

# h1 acts as the operator's machine: it creates the channel and publishes.
on_h1() {
    ip netns exec "$tag-h1" "$@"
}
for broker in 2 3; do
    on_h1 curl -sf -X POST "http://10.199.0.$broker:4151/channel/create?topic=t&channel=c" \
        >/dev/null || fail "channel/create on broker $broker"
done
producers() {
    on_h1 curl -sf "http://10.199.0.1:4161/lookup?topic=t" | grep -o '"broadcast_address"' | wc -l
}
wait_until 10000 "lookupd lists both brokers" 'test "$(producers)" = 2'

# --max-attempts=0: messages stuck on the cut worker time out several times
# before the brokers drop it; they must still be printed, not dead-lettered.
for worker in 4 5; do
    run "h$worker" "worker$worker" "$NSQ_WORKER" --topic=t --channel=c --stdout \
        --lookupd-http-address=10.199.0.1:4161 --lookupd-poll-interval=1s \
        --heartbeat-interval=2s --max-in-flight=100 --max-attempts=0
done

# publish BROKER FIRST COUNT: publishes "m-FIRST".. through nsq-pub.
publish() {
    seq "$2" $(($2 + $3 - 1)) | sed 's/^/m-/' |
        on_h1 "$NSQ_PUB" --topic=t --http-address="10.199.0.$1:4151" --batch-size=200 \
            2>>"$tmp/pub.log" || fail "publishing to broker $1"
}
distinct() {
    cat "$tmp/worker4.out" "$tmp/worker5.out" | sort -u | wc -l
}
lines() {
    wc -l <"$tmp/$1.out"
}

# ---- 1. 50,000 messages, exactly once ------------------------------------
publish 2 0 25000
publish 3 25000 25000
wait_until 60000 "all 50,000 messages delivered" 'test "$(distinct)" -ge 50000'
sleep 0.5
total=$(($(lines worker4) + $(lines worker5)))
[ "$(distinct)" = 50000 ] || fail "unexpected bodies: $(distinct) distinct"
[ "$total" = 50000 ] || fail "$total deliveries for 50,000 messages (duplicates)"
if [ "$(lines worker4)" = 0 ] || [ "$(lines worker5)" = 0 ]; then
    fail "one worker got nothing: $(lines worker4) / $(lines worker5)"
fi
echo "phase 1: 50,000 exactly once (worker4 $(lines worker4), worker5 $(lines worker5))"

# ---- 2. cut h4's link mid-stream ---------------------------------------------
start4=$(lines worker4)
(
    for batch in $(seq 0 39); do
        publish $((2 + batch % 2)) $((50000 + batch * 500)) 500
        sleep 0.05
    done
) &
publisher=$!
pids+=("$publisher")
wait_until 20000 "worker4 receives the second stream" 'test "$(lines worker4)" -gt $((start4 + 200))'
ip -n "$tag-h4" link set eth0 down
cut_at5=$(lines worker5)
# What worker4 had already received (kernel and ZeroMQ buffers) may still be
# printed after the cut, slowly under a sanitizer: take its count once its
# output stops growing (bounded), then nothing more may come.
cut_at4=$(lines worker4)
settle_deadline=$(($(now_ms) + 10000))
while sleep 1; do
    [ "$(lines worker4)" = "$cut_at4" ] && break
    cut_at4=$(lines worker4)
    [ "$(now_ms)" -lt "$settle_deadline" ] || fail "worker4 kept printing after its link was cut"
done
echo "link of h4 cut after worker4 $cut_at4, worker5 $cut_at5 lines"
wait "$publisher" || fail "the publisher of phase 2 failed"
wait_until 60000 "all 70,000 messages delivered after the cut" 'test "$(distinct)" -ge 70000'
[ "$(distinct)" = 70000 ] || fail "unexpected bodies: $(distinct) distinct"
[ "$(lines worker4)" = "$cut_at4" ] || fail "worker4 printed lines while cut off"
timeouts=0
for broker in 2 3; do
    count=$(on_h1 curl -sf "http://10.199.0.$broker:4151/stats?format=json&topic=t&channel=c" |
        grep -o '"timeout_count":[0-9]*' | head -1 | cut -d: -f2)
    timeouts=$((timeouts + ${count:-0}))
done
# The brokers kept sending to worker4 until its credit was used up; those
# messages can only have reached worker5 through the message timeout (the
# brokers drop worker4 for missed heartbeats only later).
[ "$timeouts" -gt 0 ] || fail "no in-flight message of worker4 timed out"
echo "phase 2: nothing lost; $(($(lines worker5) - cut_at5)) delivered to worker5 after the cut," \
    "$timeouts in-flight message(s) timed out and were redelivered," \
    "$(($(lines worker4) + $(lines worker5) - 70000)) duplicate(s)"

# ---- 3. restore the link: h4 rejoins -------------------------------------------
ip -n "$tag-h4" link set eth0 up
# Keep publishing until worker4 (which notices the silence, reconnects and
# subscribes again) gets a share of the stream.
before4=$(lines worker4)
published=70000
deadline=$(($(now_ms) + 30000))
while [ "$(lines worker4)" -le "$before4" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "worker4 did not consume again after the link came back"
    publish $((2 + published / 500 % 2)) "$published" 500
    published=$((published + 500))
    sleep 0.1
done
wait_until 60000 "all $published messages delivered" 'test "$(distinct)" -ge "$published"'
[ "$(distinct)" = "$published" ] || fail "unexpected bodies: $(distinct) distinct"
echo "phase 3: worker4 rejoined ($(($(lines worker4) - before4)) new lines);" \
    "$published delivered, none lost"
echo "netns_discovery: passed"
