#!/usr/bin/env bash
# nsqjs_e2e.sh - a real NSQ client, nsqjs 0.13 from npm (tests/nsqjs,
# installed by scripts/install-deps.sh), publishes and consumes through the
# broker's NSQ TCP door. Skips (77) without node or the package.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
node=$(command -v node || command -v nodejs || true)
[ -n "$node" ] || { echo "SKIP: no node"; exit 77; }
[ -d "$here/nsqjs/node_modules/nsqjs" ] || { echo "SKIP: nsqjs not installed (scripts/install-deps.sh)"; exit 77; }
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$NSQ_BROKER" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 \
    --data-path="$work" --log-level=debug >"$work/ready" 2>"$work/broker.log" &
pid=$!
for _ in $(seq 100); do
    grep -q '^READY' "$work/ready" 2>/dev/null && break
    sleep 0.1
done
tcp=$(sed -n 's/^READY .*tcp=\([^ ]*\).*/\1/p' "$work/ready")
[ -n "$tcp" ] || { echo "the broker did not start"; cat "$work/broker.log"; exit 1; }
if ! "$node" "$here/nsqjs/e2e.js" "$tcp"; then
    tail -n 40 "$work/broker.log"
    exit 1
fi
kill "$pid"
wait "$pid"
pid=
