#!/bin/sh
# upper.sh - an nsq-worker --process handler in plain sh, no helper: answers
# each message with its body in upper case as the output (for
# --publish-topic). Binary-safe, if slow (a few commands per message):
#
#   nsq-worker --topic=words --channel=shout --broker-address=127.0.0.1:4152 \
#       --process='sh examples/handlers/upper.sh' --publish-topic=shouted
#
# The protocol (README, "Handlers in any language"): read a JSON header line,
# then exactly "size" bytes of body; answer with a JSON line naming the
# message's id and "fin" (or "req", "touch"), then "size" bytes of output.
# At the end of the input (the worker is shutting down), exit.
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
while IFS= read -r header; do
    id=${header#*'"id":"'}
    id=${id%%'"'*}
    size=${header#*'"size":'}
    size=${size%%[!0-9]*}
    # dd reads exactly the body (bs=1: nothing of the next header), tr upper-cases it.
    dd bs=1 count="$size" status=none | LC_ALL=C tr '[:lower:]' '[:upper:]' >"$tmp"
    printf '{"id":"%s","op":"fin","size":%d}\n' "$id" "$(wc -c <"$tmp")"
    cat "$tmp"
done
