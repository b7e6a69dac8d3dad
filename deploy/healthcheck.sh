#!/bin/sh
# healthcheck.sh - the image's HEALTHCHECK (installed as nsq-healthcheck):
# finds which nsq binary runs as PID 1, its HTTP address (--http-address
# flag, else its environment variable, else the default port) and asks
# that address for /ping (broker, lookupd) or /healthz (worker).
# Exits 0 when the answer is 2xx, 1 otherwise. NSQ_HEALTHCHECK_URL, when
# set, is checked instead.
set -u

if [ -n "${NSQ_HEALTHCHECK_URL:-}" ]; then
    exec curl -fsS -o /dev/null --max-time 2 "$NSQ_HEALTHCHECK_URL"
fi

program=""
address=""
for word in $(tr '\0' '\n' </proc/1/cmdline | tr -d ' '); do
    case "$word" in
    *nsq-broker) program=broker ;;
    *nsq-lookupd) program=lookupd ;;
    *nsq-worker) program=worker ;;
    --http-address=*) address=${word#--http-address=} ;;
    esac
done

case "$program" in
broker) port=4151 path=/ping variable=NSQ_BROKER_HTTP_ADDRESS ;;
lookupd) port=4161 path=/ping variable=NSQ_LOOKUPD_HTTP_ADDRESS ;;
worker) port=4171 path=/healthz variable=NSQ_WORKER_HTTP_ADDRESS ;;
*)
    echo "nsq-healthcheck: PID 1 is not nsq-broker, nsq-lookupd or nsq-worker" >&2
    exit 1
    ;;
esac
if [ -z "$address" ]; then
    # The daemon's own environment, as it saw it at start.
    address=$(tr '\0' '\n' </proc/1/environ 2>/dev/null | sed -n "s/^$variable=//p" | tail -n 1)
fi
[ -n "$address" ] || address=":$port"
port=${address##*:}
host=${address%:*}
case "$host" in
"" | 0.0.0.0 | "[::]" | "*") host=127.0.0.1 ;;
esac
curl -fsS -o /dev/null --max-time 2 "http://$host:$port$path" || exit 1
