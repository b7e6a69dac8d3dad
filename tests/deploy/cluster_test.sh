#!/usr/bin/env bash
# cluster_test.sh BUILD_ROOT - deploy/cluster.sh end to end: `up` in a
# temporary directory on free, unusual ports (2 brokers, 2 workers, 2
# lookupds when nsq-lookupd is built), every /ping answers, `status` is
# healthy, a second `up` is refused, messages published to both brokers
# reach the workers, `stop`/`start` of one broker (`status` lists the
# stopped one and fails meanwhile), `down` stops every PID it started (and
# leaves alone a process whose PID sits in a pid file but runs something
# else), and `status` then lists every process as stopped and fails.
set -euo pipefail
build=${1:?usage: cluster_test.sh BUILD_ROOT}
root=$(cd "$(dirname "$0")/../.." && pwd)
cluster=("$root/deploy/cluster.sh")
tmp=$(mktemp -d)
dir=$tmp/cluster
decoy=""

fail() {
    echo "FAIL: $*"
    exit 1
}
cleanup() {
    "${cluster[@]}" down --dir "$dir" --timeout 5 >/dev/null 2>&1 || true
    [ -z "$decoy" ] || kill "$decoy" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

lookupds=0
if [ -x "$build/lookupd/nsq-lookupd" ]; then
    lookupds=2
else
    echo "SKIP (part): no $build/lookupd/nsq-lookupd, the cluster runs without lookupds"
fi

# Whether PID runs (an exited process waiting for init to reap it does not).
running() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# shellcheck source-path=SCRIPTDIR source=free_base_port.sh
. "$(dirname "$0")/free_base_port.sh"
base=$(free_base_port) || fail "no free base port found"

options=(--dir "$dir" --build-dir "$build" --base-port "$base" --timeout 20)
"${cluster[@]}" up "${options[@]}" --brokers 2 --workers 2 --lookupds "$lookupds" \
    --topic deploy_test --channel check >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log"; fail "cluster.sh up"; }
mapfile -t pids < <(cat "$dir"/*/pid)
[ ${#pids[@]} -eq $((4 + lookupds)) ] || fail "expected $((4 + lookupds)) pid files, got ${#pids[@]}"
for pid in "${pids[@]}"; do running "$pid" || fail "PID $pid is not running after up"; done
echo "ok: up started ${#pids[@]} processes on base port $base"

for i in 0 1; do
    [ "$(curl -fsS "http://127.0.0.1:$((base + 1 + 100 * i))/ping")" = OK ] ||
        fail "broker $i /ping"
    if [ "$lookupds" -gt 0 ]; then
        curl -fsS -o /dev/null "http://127.0.0.1:$((base + 11 + 100 * i))/ping" ||
            fail "lookupd $i /ping"
    fi
done
echo "ok: every /ping answers"

"${cluster[@]}" status "${options[@]}" >"$tmp/status.log" || { cat "$tmp/status.log"; fail "status"; }
[ "$(grep -c -E '^(broker|worker|lookupd)-[0-9]' "$tmp/status.log")" -eq ${#pids[@]} ] ||
    { cat "$tmp/status.log"; fail "status does not list every process"; }
echo "ok: status lists ${#pids[@]} healthy processes"

if "${cluster[@]}" up "${options[@]}" >"$tmp/again.log" 2>&1 ||
    ! grep -q "already running" "$tmp/again.log"; then
    cat "$tmp/again.log"
    fail "a second up was not refused"
fi
echo "ok: a second up is refused"

count=20
for n in $(seq "$count"); do
    port=$((base + 1 + 100 * (n % 2)))
    curl -fsS -o /dev/null -d "deploy-test-$n" "http://127.0.0.1:$port/pub?topic=deploy_test" ||
        fail "publish $n to port $port"
done
deadline=$((SECONDS + 30))
while :; do
    seen=$(cat "$dir"/worker-*/messages.log 2>/dev/null | grep -c '^deploy-test-' || true)
    missing=0
    for n in $(seq "$count"); do
        cat "$dir"/worker-*/messages.log | grep -qx "deploy-test-$n" || missing=$((missing + 1))
    done
    [ "$missing" -gt 0 ] || break
    [ "$SECONDS" -lt "$deadline" ] || fail "$missing of $count messages never reached a worker"
    sleep 0.2
done
echo "ok: all $count messages published to two brokers were consumed ($seen lines written)"

# Stop one broker, keep consuming through the other, start it again.
old=$(cat "$dir/broker-1/pid")
"${cluster[@]}" stop broker-1 "${options[@]}" >"$tmp/stop.log" || { cat "$tmp/stop.log"; fail "stop"; }
! running "$old" || fail "stop broker-1 left PID $old running"
for pid in "${pids[@]}"; do
    [ "$pid" = "$old" ] || running "$pid" || fail "stop broker-1 stopped PID $pid too"
done
# status lists the stopped broker (not only the running processes) and fails.
if "${cluster[@]}" status "${options[@]}" >"$tmp/status.log" 2>&1; then
    cat "$tmp/status.log"
    fail "status exits 0 while broker-1 is stopped"
fi
grep -qE '^broker-1 +- .*stopped' "$tmp/status.log" ||
    { cat "$tmp/status.log"; fail "status does not list the stopped broker-1"; }
[ "$(grep -c -E '^(broker|worker|lookupd)-[0-9]' "$tmp/status.log")" -eq ${#pids[@]} ] ||
    { cat "$tmp/status.log"; fail "status does not list every process while broker-1 is stopped"; }
echo "ok: status lists broker-1 as stopped and exits non-zero"
curl -fsS -o /dev/null -d "after-stop" "http://127.0.0.1:$((base + 1))/pub?topic=deploy_test"
deadline=$((SECONDS + 30))
until cat "$dir"/worker-*/messages.log | grep -qx after-stop; do
    [ "$SECONDS" -lt "$deadline" ] || fail "nothing consumed while broker-1 was stopped"
    sleep 0.2
done
"${cluster[@]}" start broker-1 "${options[@]}" >"$tmp/start.log" || { cat "$tmp/start.log"; fail "start"; }
[ "$(curl -fsS "http://127.0.0.1:$((base + 101))/ping")" = OK ] || fail "broker-1 /ping after start"
mapfile -t pids < <(cat "$dir"/*/pid)
echo "ok: stop broker-1, consume through broker-0, start broker-1 again"

# A pid file pointing at a process that is not ours: down must not touch it.
sleep 300 &
decoy=$!
mkdir -p "$dir/broker-9"
echo "$decoy" >"$dir/broker-9/pid"
echo "$build/broker/nsq-broker" >"$dir/broker-9/command"

"${cluster[@]}" down "${options[@]}" >"$tmp/down.log" || { cat "$tmp/down.log"; fail "down"; }
for pid in "${pids[@]}"; do
    ! running "$pid" || fail "PID $pid still runs after down"
done
running "$decoy" || fail "down killed a process it did not start"
grep -q "stopped ${#pids[@]} processes, killed 0" "$tmp/down.log" ||
    { cat "$tmp/down.log"; fail "down did not stop every process with SIGTERM"; }
echo "ok: down stopped all ${#pids[@]} PIDs with SIGTERM and left PID $decoy alone"

rm -rf "$dir/broker-9"
if "${cluster[@]}" status "${options[@]}" >"$tmp/status.log" 2>&1; then
    cat "$tmp/status.log"
    fail "status is healthy after down"
fi
[ "$(grep -c -E '^(broker|worker|lookupd)-[0-9]+ +- .*stopped' "$tmp/status.log")" -eq ${#pids[@]} ] ||
    { cat "$tmp/status.log"; fail "status does not list all ${#pids[@]} processes as stopped after down"; }
echo "ok: status lists all ${#pids[@]} processes as stopped after down and exits non-zero"
