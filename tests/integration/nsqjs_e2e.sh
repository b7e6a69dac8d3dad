#!/usr/bin/env bash
# nsqjs_e2e.sh - a real NSQ client, nsqjs 0.13 from npm (tests/nsqjs's
# package, installed in .deps/nsqjs by scripts/install-deps.sh), publishes and consumes through the
# broker's NSQ TCP door, then does the same with nsqjs's authSecret against
# the reference auth server (nsq-auth-server). Skips (77) without node or
# the package.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
node=$(command -v node || command -v nodejs || true)
[ -n "$node" ] || { echo "SKIP: no node"; exit 77; }
# Outside tests/ (see install-deps.sh); e2e.js's require finds it through NODE_PATH.
export NODE_PATH="$here/../.deps/nsqjs/node_modules"
[ -d "$NODE_PATH/nsqjs" ] || { echo "SKIP: nsqjs not installed (scripts/install-deps.sh)"; exit 77; }
work=$(mktemp -d)
pid=
authd=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$authd" ] && kill "$authd" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# Waits for a READY line in file; prints the value of key=.
ready() {
    for _ in $(seq 100); do
        grep -q '^READY' "$1" 2>/dev/null && break
        sleep 0.1
    done
    sed -n "s/^READY.* $2=\([^ ]*\).*/\1/p" "$1"
}

# Starts a broker (extra flags in "$@"), runs e2e.js against it with
# $secret (if set), stops it. Returns e2e.js's status.
run() {
    local status=0
    "$NSQ_BROKER" --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0 --tcp-address=127.0.0.1:0 \
        --data-path="$work" --log-level=debug "$@" >"$work/ready" 2>"$work/broker.log" &
    pid=$!
    tcp=$(ready "$work/ready" tcp)
    [ -n "$tcp" ] || { echo "the broker did not start"; cat "$work/broker.log"; exit 1; }
    "$node" "$here/nsqjs/e2e.js" "$tcp" ${secret:+"$secret"} || status=$?
    kill "$pid"
    wait "$pid" || true
    pid=
    rm -f "$work/ready"
    return "$status"
}

secret='' run || { tail -n 40 "$work/broker.log"; exit 1; }

# nsqjs's authSecret through the door, against the reference auth server
# (when the build has it): nsqjs sends AUTH after IDENTIFY, as nsqd wants.
if [ -x "${NSQ_AUTH_SERVER:-}" ]; then
    cat >"$work/auth.json" <<'JSON'
{"secrets": {"nsqjs-secret": {"ttl": 60, "identity": "nsqjs", "authorizations": [
  {"topic": "^nsqjs_", "channels": [".*"], "permissions": ["publish", "subscribe"]}]}}}
JSON
    "$NSQ_AUTH_SERVER" --auth-file="$work/auth.json" --http-address=127.0.0.1:0 \
        >"$work/authd" 2>"$work/authd.log" &
    authd=$!
    address=$(ready "$work/authd" http)
    [ -n "$address" ] || { echo "nsq-auth-server did not start"; cat "$work/authd.log"; exit 1; }
    secret=nsqjs-secret run --auth-http-address="$address" ||
        { tail -n 40 "$work/broker.log"; exit 1; }
    grep -q "AUTH identity nsqjs" "$work/broker.log" ||
        { echo "the broker logged no AUTH of nsqjs"; exit 1; }
    # A wrong secret: nsqjs is refused (E_AUTH_FAILED), never served.
    if secret=wrong-secret run --auth-http-address="$address" 2>"$work/wrong.log"; then
        echo "nsqjs with a wrong secret was served"
        exit 1
    fi
    grep -q "E_AUTH_FAILED" "$work/wrong.log" "$work/broker.log" ||
        { echo "a wrong secret was not refused with E_AUTH_FAILED"; cat "$work/wrong.log"; exit 1; }
fi
