#!/usr/bin/env bash
# run.sh - install what is missing, build, and run a local broker on the
# default ports (HTTP 4151, ZeroMQ 4152) in the foreground. Ctrl-C stops it.
# Data goes to .cluster/broker under the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ -d build ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
ninja -C build >/dev/null

HTTP_ADDRESS=${NSQ_BROKER_HTTP_ADDRESS:-127.0.0.1:4151}
ZMQ_ADDRESS=${NSQ_BROKER_ZMQ_ADDRESS:-127.0.0.1:4152}
DATA=.cluster/broker
mkdir -p "$DATA"

cat <<MSG
nsq-broker starting: HTTP on $HTTP_ADDRESS, ZeroMQ on $ZMQ_ADDRESS, data in $DATA

In another terminal:
  publish:  curl -d 'hello' 'http://$HTTP_ADDRESS/pub?topic=test'
  consume:  ./build/worker/nsq-worker --broker-address=$ZMQ_ADDRESS --topic=test --channel=tail --stdout
  stats:    curl 'http://$HTTP_ADDRESS/stats?format=json'
  metrics:  curl 'http://$HTTP_ADDRESS/metrics'
  bench:    ./build/worker/nsq-bench --help
Ctrl-C stops the broker.
MSG

exec ./build/broker/nsq-broker --http-address="$HTTP_ADDRESS" --zmq-address="$ZMQ_ADDRESS" \
    --data-path="$DATA" "$@"
