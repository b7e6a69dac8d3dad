#!/usr/bin/env bash
# run.sh - install what is missing, build, and start a local cluster with
# deploy/cluster.sh up: lookupds (once nsq-lookupd is built), two brokers
# and one worker, as background processes on 127.0.0.1, data and logs in
# .cluster/ under the repository. Arguments go to `deploy/cluster.sh up`
# (e.g. --brokers 3 --workers 2 --base-port 5150). Stop it with
# deploy/cluster.sh down.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ -d build ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
ninja -C build >/dev/null

deploy/cluster.sh up "$@"

# The ports cluster.sh uses with the default --base-port 4150.
base=4150
previous=""
for argument in "$@"; do
    case "$argument" in
    --base-port=*) base=${argument#--base-port=} ;;
    *) [ "$previous" != --base-port ] || base=$argument ;;
    esac
    previous=$argument
done
http=127.0.0.1:$((base + 1))
zmq=127.0.0.1:$((base + 2))
tcp=127.0.0.1:$base
second=127.0.0.1:$((base + 101))

cat <<MSG

The cluster runs in the background (logs and data in .cluster/).
  publish:   curl -d 'hello' 'http://$http/pub?topic=test'
             curl -d 'world' 'http://$second/pub?topic=test'     (the second broker)
  consumed:  tail -f .cluster/worker-0/messages.log              (the worker prints each body)
  consume:   ./build/worker/nsq-worker --broker-address=$zmq --topic=test --channel=mine --stdout
  NSQ apps:  point go-nsq, pynsq, nsqjs or nsq_tail at $tcp (NSQ TCP, as an nsqd's)
  stats:     curl 'http://$http/stats?format=json'
             watch -n1 "curl -s 'http://$http/stats?format=text'"
  metrics:   curl 'http://$http/metrics'
  status:    deploy/cluster.sh status
  example:   examples/primes/README.md      (a two-stage pipeline: a Python stage finds primes)
  stop:      deploy/cluster.sh down              (add --purge to delete .cluster/)
MSG
