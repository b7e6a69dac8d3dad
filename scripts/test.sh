#!/usr/bin/env bash
# test.sh - install what is missing, build, run the meson test suites and the
# clang-format check; the last line reads "N passed, N failed" and the exit
# status is non-zero if anything failed.
#
#   SANITIZE=1           build in build-asan with AddressSanitizer and UBSan
#   FUZZ=1               build in build-fuzz with clang and -Dfuzz=true (the
#                        libFuzzer targets); run it with SUITES=fuzz
#   SUITES="unit ..."    run only these meson suites (the format check runs
#                        when SUITES is empty or names "format")
#   BUILD_DIR=dir        build directory (default build, or build-asan)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

suites=${SUITES:-}
passed=0
failed=0
skipped=0

finish() {
    [ "$skipped" -gt 0 ] && echo "$skipped skipped"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] && exit 0
    exit 1
}

# Prints "passed failed skipped" for a meson testlog.json (one JSON object
# per line), and the names of failed tests on stderr.
count_results() {
    local log=$1
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import json' >/dev/null 2>&1; then
        python3 - "$log" <<'PY'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if not line.strip():
        continue
    try:
        test = json.loads(line)
    except ValueError:
        counts["failed"] += 1
        continue
    result = test.get("result", "")
    if result in ("OK", "EXPECTEDFAIL"):
        counts["passed"] += 1
    elif result == "SKIP":
        counts["skipped"] += 1
    else:
        counts["failed"] += 1
        print("FAILED: %s (%s)" % (test.get("name", "?"), result), file=sys.stderr)
print(counts["passed"], counts["failed"], counts["skipped"])
PY
    else
        # Quotes inside JSON strings are escaped, so only the real key matches.
        grep -o '"result": *"[A-Z]*"' "$log" | sed 's/.*"\([A-Z]*\)"$/\1/' | awk '
            $1 == "OK" || $1 == "EXPECTEDFAIL" { p++; next }
            $1 == "SKIP" { s++; next }
            { f++ }
            END { printf "%d %d %d\n", p, f, s }'
    fi
}

run_meson_tests() {
    local build=$1
    local log="$build/meson-logs/testlog.json"
    local suite_args=()
    local suite
    for suite in ${suites//,/ }; do
        [ "$suite" = format ] || suite_args+=(--suite "$suite")
    done
    if [ -n "$suites" ] && [ ${#suite_args[@]} -eq 0 ]; then
        return # only the format check was asked for
    fi
    rm -f "$log"
    local rebuild=()
    [ ${#compile_targets[@]} -eq 0 ] || rebuild=(--no-rebuild)  # built what the suites need
    meson test -C "$build" --print-errorlogs "${rebuild[@]}" "${suite_args[@]}"
    local status=$?
    local counts=(0 0 0)
    [ -f "$log" ] && read -r -a counts < <(count_results "$log")
    passed=$((passed + counts[0]))
    failed=$((failed + counts[1]))
    skipped=$((skipped + counts[2]))
    if [ "$status" -ne 0 ] && [ "${counts[1]}" -eq 0 ]; then
        echo "test.sh: meson test exited with $status but no test failed" >&2
        failed=$((failed + 1))
    fi
}

format_check() {
    case " ${suites//,/ } " in
    "  " | *" format "*) ;;
    *) return ;;
    esac
    local dirs=() dir
    for dir in libnsq broker lookupd worker tools tests bench; do
        [ -d "$dir" ] && dirs+=("$dir")
    done
    local files=() unformatted=() file
    mapfile -t files < <(find "${dirs[@]}" -name node_modules -prune -o -name '*.[ch]' -type f -print | sort)
    for file in "${files[@]}"; do
        clang-format --dry-run --Werror "$file" >/dev/null 2>&1 || unformatted+=("$file")
    done
    if [ ${#unformatted[@]} -eq 0 ]; then
        echo "format check: OK (${#files[@]} files)"
        passed=$((passed + 1))
    else
        echo "format check: FAILED, ${#unformatted[@]} of ${#files[@]} files differ from .clang-format"
        printf '  %s\n' "${unformatted[@]}"
        echo "  see: clang-format --dry-run FILE; fix: clang-format -i FILE"
        failed=$((failed + 1))
    fi
}

install_args=()
[ "${FUZZ:-0}" = 1 ] && install_args=(--fuzz)
if ! scripts/install-deps.sh "${install_args[@]}"; then
    failed=$((failed + 1))
    finish
fi

options=()
compile_targets=()
build=${BUILD_DIR:-build}
if [ "${SANITIZE:-0}" = 1 ]; then
    build=${BUILD_DIR:-build-asan}
    # shellcheck disable=SC2054 # the commas belong to the meson option
    options=(-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all)
    # Children inherit it (tests/lsan.supp says what and why).
    export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")/.." && pwd)/tests/lsan.supp:print_suppressions=0"
elif [ "${FUZZ:-0}" = 1 ]; then
    build=${BUILD_DIR:-build-fuzz}
    export CC=clang  # used when the build directory is first set up
    # shellcheck disable=SC2054 # the commas belong to the meson option
    options=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dintegration=false)
    compile_targets=(fuzz-targets)  # the fuzz targets only, not the daemons and tools
fi

if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" "${options[@]}" >/dev/null
else
    meson setup "$build" "${options[@]}"
fi
configured=$?
if [ "$configured" -ne 0 ]; then
    echo "test.sh: meson setup failed" >&2
    failed=$((failed + 1))
elif ! meson compile -C "$build" "${compile_targets[@]}"; then
    echo "test.sh: build failed" >&2
    failed=$((failed + 1))
else
    run_meson_tests "$build"
fi
format_check
finish
