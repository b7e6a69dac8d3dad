#!/usr/bin/env bash
# primes_test.sh BUILD_ROOT - examples/primes/README.md run as it says: the
# shell block between its "primes:begin" and "primes:end" markers, with
# only what a test must change: the cluster goes to a temporary directory
# on free ports (`scripts/run.sh`, which also installs and builds, becomes
# `deploy/cluster.sh up` with the already built binaries; 41xx/42xx ports
# move to the free base; .cluster/ and ./build/ are the test's). Then the
# example's workers (stopped by the PIDs the block started) must drain and
# exit 0, and the collected file hold exactly the 1,229 primes below
# 10,000, once each.
set -euo pipefail
build=${1:?usage: primes_test.sh BUILD_ROOT}
build=$(cd "$build" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
dir=$tmp/cluster

fail() {
    echo "FAIL: $*"
    for log in "$dir"/*.log; do
        [ -f "$log" ] && { echo "---- $log"; tail -n 20 "$log"; }
    done
    exit 1
}
cleanup() {
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$root/deploy/cluster.sh" down --dir "$dir" --timeout 5 >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source-path=SCRIPTDIR source=free_base_port.sh
. "$(dirname "$0")/free_base_port.sh"
base=$(free_base_port) || fail "no free base port found"

block=$(awk '/<!-- primes:begin -->/ { on = 1; next } /<!-- primes:end -->/ { on = 0 }
             on && !/^```/' "$root/examples/primes/README.md")
[ -n "$block" ] || fail "no primes:begin/end block in examples/primes/README.md"
# 41xx and 42xx ports are the cluster's default base (4150) plus an offset.
script=$(printf '%s\n' "$block" | perl -pe "
    s{^scripts/run\.sh}{\"$root/deploy/cluster.sh\" up --dir \"$dir\" --build-dir \"$build\" --base-port $base};
    s{127\.0\.0\.1:(4[12]\d\d)\b}{'127.0.0.1:' . (\$1 - 4150 + $base)}ge;
    s{\.cluster/}{$dir/}g;
    s{\./build/}{$build/}g;")
echo "$script"
cd "$root"
eval "$script" || fail "the README's commands failed"

primes=$dir/primes.txt
deadline=$((SECONDS + 60))
until [ "$(wc -l <"$primes" 2>/dev/null || echo 0)" -ge 1229 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$(wc -l <"$primes" 2>/dev/null || echo 0) primes after 60 s"
    sleep 0.2
done
for pid in $(jobs -p); do  # SIGTERM drains: nothing is appended after this
    kill "$pid"
    wait "$pid" || fail "a worker of the example did not exit 0 on SIGTERM"
done
echo "ok: the example's workers drained and exited 0"
expected=$(awk 'BEGIN { for (n = 2; n < 10000; n++) { p = 1
    for (d = 2; d * d <= n; d++) if (n % d == 0) { p = 0; break }
    if (p) print n } }')
[ "$(printf '%s\n' "$expected" | wc -l)" -eq 1229 ] || fail "the reference list is wrong"
sort -n "$primes" | diff <(printf '%s\n' "$expected") - >"$tmp/diff" ||
    fail "the primes found differ from the primes below 10000: $(head -5 "$tmp/diff")"
echo "ok: 1229 primes below 10000, each once"
