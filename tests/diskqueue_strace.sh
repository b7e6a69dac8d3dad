#!/usr/bin/env bash
# diskqueue_strace.sh - proves that an async disk queue's owner thread makes
# no blocking call on the queue's files.
#
#   diskqueue_strace.sh DISKQUEUE_TRACE
#
# Runs the diskqueue_trace workload under
#   strace -f -y -e trace=open,openat,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat
# and reads, for every such call that names the queue's directory (a path,
# or a descriptor shown with -y), the thread that made it. In async mode none
# may come from the owner thread (the one reading the directory listing at
# start, an O_DIRECTORY open, is allowed: it happens before a loop runs), and
# the actor must have made each kind (open, fdatasync, rename, unlink), so the
# workload did reach the disk. The same workload in sync mode must show the
# owner making such calls: that is the proof that the check can fail.
# Exit 0 passed, 1 failed, 77 skipped (no strace).
set -u
trace_bin=$1
command -v strace >/dev/null 2>&1 || { echo "strace is not installed"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
calls=open,openat,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat

# run MODE: traces the workload; sets owner, owner_calls, actor_calls and
# leaves the calls on the queue's files in $work/MODE.calls.
run() {
    local mode=$1
    # LeakSanitizer cannot run under ptrace (a sanitized build).
    if ! ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -y -qq -s 300 -e trace=$calls -o "$work/$mode.trace" \
        "$trace_bin" "$mode" >"$work/$mode.out" 2>"$work/$mode.err"; then
        echo "the $mode workload failed:"
        cat "$work/$mode.err"
        return 1
    fi
    owner=$(awk '$1 == "owner" { print $2 }' "$work/$mode.out")
    local dir
    dir=$(awk '$1 == "dir" { print $2 }' "$work/$mode.out")
    if [ -z "$owner" ] || [ -z "$dir" ]; then
        echo "the $mode workload did not say its owner and directory"
        return 1
    fi
    grep -F "$dir" "$work/$mode.trace" | grep -v "\"$dir\", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY" \
        >"$work/$mode.calls"
    owner_calls=$(awk -v owner="$owner" '$1 == owner' "$work/$mode.calls" | wc -l)
    actor_calls=$(awk -v owner="$owner" '$1 != owner' "$work/$mode.calls" | wc -l)
    echo "$mode: owner thread $owner made $owner_calls calls on the queue's files, other threads $actor_calls"
    for call in openat fdatasync fsync rename unlink; do
        printf '  %-10s owner %5d  others %5d\n' "$call" \
            "$(awk -v owner="$owner" -v call="$call(" '$1 == owner && index($2, call) == 1' "$work/$mode.calls" | wc -l)" \
            "$(awk -v owner="$owner" -v call="$call(" '$1 != owner && index($2, call) == 1' "$work/$mode.calls" | wc -l)"
    done
}

failed=0
run async || exit 1
if [ "$owner_calls" -ne 0 ]; then
    echo "FAILED: the owner thread of an async queue made blocking calls:"
    awk -v owner="$owner" '$1 == owner' "$work/async.calls" | head -20
    failed=1
fi
for call in openat fdatasync rename unlink; do
    if ! awk -v owner="$owner" -v call="$call(" '$1 != owner && index($2, call) == 1' \
        "$work/async.calls" | grep -q .; then
        echo "FAILED: the actor made no $call on the queue's files: the workload proves nothing"
        failed=1
    fi
done
run sync || exit 1
if [ "$owner_calls" -eq 0 ]; then
    echo "FAILED: the synchronous workload shows no owner call: this check cannot fail"
    failed=1
fi
[ "$failed" -eq 0 ] && echo "passed: the async owner made none of them; the sync control made $owner_calls"
exit "$failed"
