#!/usr/bin/env bash
# fuzz.sh - runs the libFuzzer targets of tests/fuzz longer than the fuzz
# suite does, one after another under nice, and keeps what they find.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     default: all, 600 s per target
#
#   FUZZ_WORK=dir       where each target keeps the inputs it found
#                       (dir/TARGET/corpus) and its crashes (dir/TARGET/crashes);
#                       default .fuzz/ (ignored by git). Runs resume from it.
#   BUILD_DIR=dir       the clang build with -Dfuzz=true (default build-fuzz;
#                       configured here when missing)
#   FUZZ_KEEP_GOING=1   do not stop at the first crash (libFuzzer -fork=1
#                       -ignore_crashes=1 ...): collect them all
#   FUZZ_JOBS=N         with FUZZ_KEEP_GOING, run N fuzzing processes
#
# Each target prints one line (execs, execs/s, cov, ft, corpus, peak RSS);
# the last line sums them: "N targets, E execs, C crashed". A crash input
# replays with: BUILD_DIR/tests/fuzz/TARGET FILE (FUZZ_LOG=1 shows the logs).
# Minimise one with: TARGET -minimize_crash=1 -runs=10000 FILE. Add a
# regression input to tests/fuzz/corpus/TARGET/ named after what it found.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

which=${1:-all}
seconds=${2:-600}
work=${FUZZ_WORK:-.fuzz}
build=${BUILD_DIR:-build-fuzz}
targets=(fuzz_broker_commands fuzz_diskqueue fuzz_broker_state fuzz_lookupd_commands fuzz_parsers
    fuzz_tcp_codec fuzz_worker_frame)

if [ "$which" != all ]; then
    found=0
    for target in "${targets[@]}"; do [ "$target" = "$which" ] && found=1; done
    if [ "$found" = 0 ]; then
        echo "fuzz.sh: unknown target $which (one of: ${targets[*]} or all)" >&2
        exit 2
    fi
    targets=("$which")
fi

scripts/install-deps.sh --fuzz >/dev/null || exit 1
if [ ! -f "$build/build.ninja" ]; then
    # shellcheck disable=SC2054 # the commas belong to the meson option
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dintegration=false || exit 1
fi
nice meson compile -C "$build" "${targets[@]/#/tests/fuzz/}" >/dev/null || {
    echo "fuzz.sh: build failed (meson compile -C $build)" >&2
    exit 1
}

flags=()
if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    flags=(-fork="${FUZZ_JOBS:-1}" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi

total=0
crashed=0
for target in "${targets[@]}"; do
    line=$(nice tests/fuzz/run.sh "$build/tests/fuzz/$target" "tests/fuzz/corpus/$target" \
        "$work/$target" "$seconds" "${flags[@]}")
    status=$?
    echo "$line"
    execs=$(sed -n 's/^[^:]*: \([0-9]*\) execs.*/\1/p' <<<"$line")
    total=$((total + ${execs:-0}))
    # slow-unit-* files are inputs that once took long (a busy machine), not findings.
    crashes=$(find "$work/$target/crashes" -type f ! -name 'slow-unit-*' 2>/dev/null | wc -l)
    [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ] && crashed=$((crashed + 1))
    [ "$crashes" -gt 0 ] && echo "  $crashes input(s) in $work/$target/crashes/"
done
echo "${#targets[@]} targets, $total execs, $crashed crashed"
[ "$crashed" -eq 0 ]
