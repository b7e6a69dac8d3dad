#!/usr/bin/env bash
# drain_test.sh BUILD_ROOT - deploy/drain-broker.sh against real processes
# (deploy/cluster.sh: a lookupd, two brokers, a worker, on free ports in a
# temporary directory). With the worker stopped, broker-1 gets a backlog
# (plus a deferred message and a topic without channels): the script
# refuses to call it drained and names the orphan topic. Once that topic is
# deleted and the worker runs again, the script waits until the worker has
# emptied broker-1 and exits 0; broker-1 then holds nothing, also after a
# restart from its data directory, and the worker got every message.
set -euo pipefail
build=${1:?usage: drain_test.sh BUILD_ROOT}
root=$(cd "$(dirname "$0")/../.." && pwd)
cluster=("$root/deploy/cluster.sh")
drain=("$root/deploy/drain-broker.sh")
tmp=$(mktemp -d)
dir=$tmp/cluster

fail() {
    echo "FAIL: $*"
    exit 1
}
cleanup() {
    "${cluster[@]}" down --dir "$dir" --timeout 5 >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

[ -x "$build/lookupd/nsq-lookupd" ] || { echo "SKIP: no $build/lookupd/nsq-lookupd"; exit 77; }
# shellcheck source-path=SCRIPTDIR source=free_base_port.sh
. "$(dirname "$0")/free_base_port.sh"
base=$(free_base_port) || fail "no free base port found"
options=(--dir "$dir" --build-dir "$build" --base-port "$base" --timeout 20)
"${cluster[@]}" up "${options[@]}" --brokers 2 --workers 1 --lookupds 1 \
    --topic drain_test --channel work >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log"; fail "cluster.sh up"; }
broker0=127.0.0.1:$((base + 1))
broker1=127.0.0.1:$((base + 101))
echo "ok: cluster up on base port $base"

# Publishes bodies PREFIX-N, N in [1, COUNT], to broker in one /mpub.
publish() {
    local broker=$1 prefix=$2 count=$3
    seq -f "$prefix-%g" "$count" |
        curl -fsS -o /dev/null --data-binary @- "http://$broker/mpub?topic=drain_test" ||
        fail "mpub to $broker"
}

# Total depth + in flight + deferred of broker, from /metrics.
held() {
    curl -fsS "http://$1/metrics" | awk '
        /^nsq_(topic_depth|channel_depth|channel_in_flight|channel_deferred)\{/ { sum += $NF }
        END { print sum + 0 }'
}

"${cluster[@]}" stop worker-0 "${options[@]}" >/dev/null || fail "stop worker-0"
publish "$broker1" one 300
publish "$broker0" zero 100
curl -fsS -o /dev/null -d one-deferred "http://$broker1/pub?topic=drain_test&defer=1500" ||
    fail "deferred publish"
curl -fsS -o /dev/null -d stranded "http://$broker1/pub?topic=orphan" || fail "orphan publish"
[ "$(held "$broker1")" -eq 302 ] || fail "broker-1 holds $(held "$broker1"), expected 302"
echo "ok: broker-1 holds 301 messages of drain_test (one deferred) and one of orphan"

# Nobody consumes: the script must not call broker-1 drained.
if "${drain[@]}" --broker "$broker1" --timeout 1 --interval 0.2 >"$tmp/refused.log" 2>&1; then
    cat "$tmp/refused.log"
    fail "drain-broker.sh exited 0 while broker-1 held messages"
fi
grep -q 'topic="orphan"' "$tmp/refused.log" ||
    { cat "$tmp/refused.log"; fail "the refusal does not name the orphan topic"; }
echo "ok: not drained while nothing consumes; the refusal names the orphan topic:"
sed 's/^/    /' "$tmp/refused.log"

curl -fsS -o /dev/null -X POST "http://$broker1/topic/delete?topic=orphan" || fail "delete orphan"
"${drain[@]}" --broker "$broker1" --timeout 60 --interval 0.2 >"$tmp/drain.log" 2>&1 &
drainer=$!
"${cluster[@]}" start worker-0 "${options[@]}" >/dev/null || fail "start worker-0"
publish "$broker0" zero-during 50 # the other broker keeps taking publishes
status=0
wait "$drainer" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/drain.log"; fail "drain-broker.sh exited $status"; }
[ "$(held "$broker1")" -eq 0 ] || fail "broker-1 still holds $(held "$broker1") after the drain"
echo "ok: drain-broker.sh waited until the worker emptied broker-1:"
sed 's/^/    /' "$tmp/drain.log"

# Scale down (stop it), then start it from the same data directory: nothing on disk.
"${cluster[@]}" stop broker-1 "${options[@]}" >/dev/null || fail "stop broker-1"
"${cluster[@]}" start broker-1 "${options[@]}" >/dev/null || fail "start broker-1"
[ "$(held "$broker1")" -eq 0 ] || fail "broker-1 restored $(held "$broker1") messages from disk"
echo "ok: broker-1 holds 0 messages, also restarted from its data directory"

# Nothing lost: every body reached the worker (at least once).
log=$dir/worker-0/messages.log
deadline=$((SECONDS + 30))
while :; do
    missing=$( (seq -f one-%g 300; echo one-deferred; seq -f zero-%g 100; seq -f zero-during-%g 50) |
        sort -u | comm -23 - <(sort -u "$log") | wc -l)
    [ "$missing" -gt 0 ] || break
    [ "$SECONDS" -lt "$deadline" ] || fail "$missing messages never reached the worker"
    sleep 0.2
done
echo "ok: all 451 messages reached the worker, none lost"
