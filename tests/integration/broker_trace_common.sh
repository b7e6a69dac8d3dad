# broker_trace_common.sh - sourced by the tests that run nsq-broker under
# strace (broker_strace.sh, broker_write_combining.sh): skips without
# strace (exit 77), reads the binaries from NSQ_BROKER and NSQ_BENCH, makes
# $work (mktemp, prefix $1), and on exit stops the broker and strace by
# the PIDs the test stored in broker_pid and strace_pid, then removes $work.
command -v strace >/dev/null 2>&1 || {
    echo "SKIP: strace is not installed (scripts/install-deps.sh installs it)"
    exit 77
}
broker_bin=${NSQ_BROKER:?NSQ_BROKER names nsq-broker}
bench_bin=${NSQ_BENCH:?NSQ_BENCH names nsq-bench}
work=$(mktemp -d "/tmp/$1-XXXXXX")
strace_pid=
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null
    [ -n "$strace_pid" ] && wait "$strace_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
