#!/usr/bin/env bash
# check_exports.sh - libnsq.so must export exactly the functions that
# libnsq/nsq.h declares: no internal class, no self-test, nothing missing.
#   tests/check_exports.sh LIBNSQ_SO NSQ_H
set -euo pipefail
library=$1
header=$2

# Function names declared in the header: comments removed, then every
# identifier followed by "(" that starts with nsq_ (typedef'd function
# types such as nsq_handler_fn are followed by ")" and do not match).
declared=$(sed -e 's://.*$::' "$header" | tr '\n' ' ' | sed -e 's:/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/: :g' |
    grep -oE '\bnsq_[a-z0-9_]+[[:space:]]*\(' | tr -d '( ' | sort -u)
exported=$(nm -D --defined-only "$library" | awk '{ print $NF }' | sort -u)

if [ -z "$declared" ]; then
    echo "check_exports: no function found in $header" >&2
    exit 1
fi
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
status=0
if [ -n "$extra" ]; then
    echo "libnsq.so exports symbols nsq.h does not declare (fix libnsq/libnsq.map):"
    echo "$extra" | sed 's/^/  /'
    status=1
fi
if [ -n "$missing" ]; then
    echo "nsq.h declares functions libnsq.so does not export (fix libnsq/libnsq.map):"
    echo "$missing" | sed 's/^/  /'
    status=1
fi
[ "$status" -eq 0 ] && echo "check_exports: $(echo "$declared" | wc -l) functions, all exported, nothing else"
exit "$status"
