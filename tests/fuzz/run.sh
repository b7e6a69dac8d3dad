#!/usr/bin/env bash
# run.sh - runs one libFuzzer target for a fixed time and prints one summary
# line; the fuzz suite (tests/fuzz/meson.build) and scripts/fuzz.sh use it.
#
#   run.sh [--fresh] TARGET SEEDS WORKDIR SECONDS [libFuzzer flags...]
#
# The target starts from its checked-in seeds (SEEDS, read only) and from
# WORKDIR/corpus, where it keeps the inputs it finds (--fresh empties
# WORKDIR first). A crash, leak, timeout or out-of-memory leaves its input in
# WORKDIR/crashes/ and makes the exit status non-zero; the log of the last
# run is WORKDIR/log. Summary: TARGET: N execs in S s (E/s), cov C ft F,
# corpus K, peak rss R MB.
set -uo pipefail

fresh=0
if [ "${1:-}" = --fresh ]; then
    fresh=1
    shift
fi
if [ $# -lt 4 ]; then
    echo "usage: run.sh [--fresh] TARGET SEEDS WORKDIR SECONDS [libFuzzer flags...]" >&2
    exit 2
fi
target=$1 seeds=$2 work=$3 seconds=$4
shift 4
name=$(basename "$target")

[ "$fresh" = 1 ] && rm -rf "$work"
mkdir -p "$work/corpus" "$work/crashes"
log="$work/log"
started=$(date +%s)
# -timeout: one input may take at most 25 s (a hang is a finding; inputs
# take milliseconds, but a shared CI machine can be slow);
# -rss_limit_mb: ASan costs memory, 2 GB is far above what any input needs.
"$target" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/crashes/" "$@" "$work/corpus" "$seeds" >"$log" 2>&1
status=$?
elapsed=$(($(date +%s) - started))

# libFuzzer's status lines: "#N<TAB>NEW cov: C ft: F corp: K/..." (or, in
# -fork mode, "#N: cov: C ft: F corp: K exec/s E ..."), final stats last.
last=$(grep -E '^#[0-9]+(:|[[:space:]])' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
if [ -z "$execs" ]; then  # -fork mode prints no final stats
    execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    [ -n "$execs" ] && [ "$elapsed" -gt 0 ] && rate=$((execs / elapsed))
fi
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
corpus=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
echo "$name: ${execs:-?} execs in ${elapsed} s (${rate:-?}/s), cov ${cov:-?} ft ${ft:-?}, corpus ${corpus:-?}, peak rss ${rss:-?} MB"

if [ "$status" -ne 0 ]; then
    echo "$name: FAILED (exit $status); log: $log" >&2
    grep -E 'ERROR: |FUZZ_ASSERT|SUMMARY: |runtime error|^ +#[0-9]+ ' "$log" |
        grep -v -E 'fuzzer::|libc|_start|__sanitizer|interceptor' | head -n 30 >&2
    for crash in "$work"/crashes/*; do
        [ -f "$crash" ] || continue
        echo "$name: input kept in $crash (replay: $target $crash)" >&2
        od -A d -t x1 "$crash" | head -n 8 >&2
    done
fi
# libFuzzer exits 77 on a crash, which meson would count as a skip.
[ "$status" -eq 0 ] || exit 1
