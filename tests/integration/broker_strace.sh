#!/usr/bin/env bash
# broker_strace.sh - nothing blocks the broker's core thread: run nsq-broker
# under strace -f with publish and consume traffic, and check that the core
# thread (named "nsq-core") never opens, fsyncs, fdatasyncs, renames or
# unlinks a queue file or the state file.
#
#   broker_strace.sh    (NSQ_BROKER and NSQ_BENCH name the binaries; meson
#                        sets them)
#
# Twice, once with --durable and once without (--mem-queue-size=0, so
# every message goes through disk), the broker runs with small segments
# (--max-bytes-per-file=64k: many rolls), --sync-every=100 and
# --sync-timeout=50ms (many timed syncs). The traffic: topics and channels
# created over HTTP (state file saves), /pub of 1 kB bodies, a ZeroMQ
# publish-and-consume run (nsq-bench zmq-consume: reads back from disk,
# finished segments removed), a topic deleted (its files removed), then
# SIGTERM (the shutdown writes what is in memory and saves the state).
# From the core thread's "nsq-core" PR_SET_NAME on (start-up, before its
# loop runs, may read the state file), none of the traced calls may name
# the data directory; other threads must have made each kind, so the
# traffic reached the disk. Exit 0 passed, 1 failed, 77 skipped (no
# strace).
set -u
. "$(dirname "$0")/broker_trace_common.sh" broker-strace
calls=open,openat,creat,fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2,unlink,unlinkat,prctl

# wait_for SECONDS COMMAND...: polls COMMAND every 20 ms until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

ready() { grep -q '^READY' "$work/$mode.out"; }
named() { grep -lx nsq-core /proc/"$broker_pid"/task/*/comm >/dev/null 2>&1; }
listed() { grep -q "^topic $1 " "$dir/nsq-broker.dat" 2>/dev/null; }

post() {
    curl -sf -XPOST "http://$http$1" >/dev/null || { echo "FAILED: POST $1"; return 1; }
}

# run MODE FLAGS...: traces a broker through the traffic; leaves the calls
# on the data directory of the core thread in $work/MODE.core and of the
# other threads in $work/MODE.others.
run() {
    mode=$1
    shift
    dir=$work/$mode
    mkdir "$dir"
    # LeakSanitizer cannot run under ptrace (a sanitized build).
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -qq -y -s 300 -e trace=$calls -o "$work/$mode.trace" \
        "$broker_bin" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 --data-path="$dir" \
        --max-bytes-per-file=65536 --sync-every=100 --sync-timeout=50ms --log-level=warn "$@" \
        >"$work/$mode.out" 2>"$work/$mode.err" &
    strace_pid=$!
    wait_for 30 ready || { echo "FAILED: $mode: no READY"; cat "$work/$mode.err"; return 1; }
    broker_pid=$(awk 'NR == 1 { print $1; exit }' "$work/$mode.trace")  # its first call
    http=$(sed -n 's/^READY http=\([^ ]*\) zmq=\([^ ]*\).*/\1/p' "$work/$mode.out")
    zmq=$(sed -n 's/^READY http=\([^ ]*\) zmq=\([^ ]*\).*/\2/p' "$work/$mode.out")
    wait_for 10 named || { echo "FAILED: $mode: no thread is named nsq-core"; return 1; }
    core=$(grep -lx nsq-core /proc/"$broker_pid"/task/*/comm | head -1 | cut -d/ -f5)

    for i in 1 2 3 4 5; do
        post "/topic/create?topic=made-$i" || return 1
        post "/channel/create?topic=made-$i&channel=c" || return 1
    done
    wait_for 10 listed made-5 || { echo "FAILED: $mode: the state file lacks made-5"; return 1; }
    "$bench_bin" --mode=http-pub --count=2000 --size=1000 --connections=4 --topic=made-1 \
        --http-address="$http" >"$work/$mode.pub" 2>&1 || { echo "FAILED: $mode: /pub"; cat "$work/$mode.pub"; return 1; }
    "$bench_bin" --mode=zmq-consume --count=5000 --size=500 --topic=flow --channel=c \
        --zmq-address="$zmq" >"$work/$mode.consume" 2>&1 ||
        { echo "FAILED: $mode: publish and consume"; cat "$work/$mode.consume"; return 1; }
    post "/topic/delete?topic=made-2" || return 1
    post "/channel/delete?topic=made-3&channel=c" || return 1
    post "/topic/create?topic=last" || return 1
    wait_for 10 listed last || { echo "FAILED: $mode: the state file lacks last"; return 1; }
    kill -TERM "$broker_pid"
    wait "$strace_pid"
    local rc=$?
    strace_pid=
    broker_pid=
    [ "$rc" -eq 0 ] || { echo "FAILED: $mode: the broker exited with $rc"; cat "$work/$mode.err"; return 1; }

    # The core thread's calls after it named itself (its loop), and the
    # other threads' calls, that name the data directory.
    awk -v core="$core" '$1 == core && /PR_SET_NAME/ && /nsq-core/ { on = 1; next }
                         $1 == core && on' "$work/$mode.trace" | grep -F "$dir" >"$work/$mode.core"
    awk -v core="$core" '$1 != core' "$work/$mode.trace" | grep -F "$dir" >"$work/$mode.others"
    grep -q "PR_SET_NAME.*nsq-core" "$work/$mode.trace" || { echo "FAILED: $mode: no PR_SET_NAME traced"; return 1; }
    echo "$mode: core thread $core made $(wc -l <"$work/$mode.core") calls on the data directory, other threads $(wc -l <"$work/$mode.others")"
    for call in open fsync fdatasync rename unlink; do
        printf '  %-10s core %5d  others %5d\n' "$call" \
            "$(awk -v call="$call" 'index($2, call) == 1' "$work/$mode.core" | wc -l)" \
            "$(awk -v call="$call" 'index($2, call) == 1' "$work/$mode.others" | wc -l)"
    done
}

failed=0
for mode in durable default; do
    if [ "$mode" = durable ]; then run durable --durable || exit 1; else run default --mem-queue-size=0 || exit 1; fi
    if [ -s "$work/$mode.core" ]; then
        echo "FAILED: $mode: the core thread made blocking calls on queue or state files:"
        head -20 "$work/$mode.core"
        failed=1
    fi
    for call in open fdatasync rename unlink; do
        if ! awk -v call="$call" 'index($2, call) == 1' "$work/$mode.others" | grep -q .; then
            echo "FAILED: $mode: no thread made a $call on the data directory: the traffic proves nothing"
            failed=1
        fi
    done
    grep -q "nsq-broker.dat" "$work/$mode.others" ||
        { echo "FAILED: $mode: the state file was never saved"; failed=1; }
done
[ "$failed" -eq 0 ] && echo "passed: the core thread made none of them"
exit "$failed"
