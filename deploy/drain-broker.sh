#!/usr/bin/env bash
# drain-broker.sh - empties one broker before it is removed (a StatefulSet
# scaled down, a host retired), so that its data directory (the pod's
# PersistentVolumeClaim) is not left holding messages nobody will read.
#
#   deploy/drain-broker.sh --broker HOST:HTTP_PORT [options]
#
# 1. New publishes stop reaching it. With --pod, the pod is labelled
#    nsq-zmq/publish=false, which takes it out of the nsq-broker-http
#    Service (k8s/base/broker.yaml) while the StatefulSet keeps it; outside
#    Kubernetes, take it out of your publishers' list or load balancer
#    first. Its topics are not tombstoned at the lookupds: consumers drop a
#    broker that lookupd stops listing (and KEDA stops counting its depth),
#    so a tombstone would strand what it holds. It stays registered and its
#    consumers keep pulling from it.
# 2. Waits until every topic's depth and every channel's depth, in-flight
#    and deferred count on it are 0 (read from its /metrics every
#    --interval seconds, twice in a row), printing what it still holds as
#    that changes.
# 3. Exits 0 once drained: now scale down (`kubectl -n nsq scale statefulset
#    nsq-broker --replicas=N-1` removes the highest ordinal: drain that one)
#    or stop the process. Exits 1 after --timeout with what is left: a
#    topic without channels or a paused channel never drains by itself
#    (delete, empty or unpause it, or consume it). Exits 2 on bad usage.
#
# Options:
#   --broker HOST:PORT   the broker's HTTP address (required)
#   --timeout S          give up after S seconds (default 600)
#   --interval S         seconds between reads (default 2; fractions allowed)
#   --pod NAME           label this pod out of the publish Service first (kubectl)
#   --namespace NS       the pod's namespace (default nsq)
#
# Needs bash, curl and awk (and kubectl for --pod); nothing of nsq-zmq.
set -euo pipefail

broker=""
timeout=600
interval=2
pod=""
namespace="nsq"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() {
    echo "drain-broker: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    option=$1
    value=""
    case "$option" in
    --*=*) value=${option#*=}; option=${option%%=*} ;;
    -h | --help) usage; exit 0 ;;
    *) [ $# -ge 2 ] || die "$option needs a value"; value=$2; shift ;;
    esac
    shift
    case "$option" in
    --broker) broker=$value ;;
    --timeout) timeout=$value ;;
    --interval) interval=$value ;;
    --pod) pod=$value ;;
    --namespace) namespace=$value ;;
    *) die "unknown option $option (see --help)" ;;
    esac
done
[ -n "$broker" ] || die "--broker HOST:PORT is required (see --help)"
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout is a number of seconds"
[[ $interval =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--interval is a number of seconds"
broker=${broker#http://}

if [ -n "$pod" ]; then
    kubectl -n "$namespace" label pod "$pod" nsq-zmq/publish=false --overwrite >/dev/null ||
        die "cannot label pod $pod in namespace $namespace"
    echo "drain-broker: $pod no longer receives publishes through nsq-broker-http"
fi

# Prints one line per topic or channel that still holds messages:
# "what{topic=...,channel=...} count". Fails if the broker does not answer.
held() {
    local metrics
    metrics=$(curl -fsS --max-time 5 "http://$broker/metrics") || return 1
    awk '/^nsq_(topic_depth|channel_depth|channel_in_flight|channel_deferred)\{/ && $NF != 0' \
        <<<"$metrics"
}

# Names the paused channels (they never drain by themselves).
paused() {
    curl -fsS --max-time 5 "http://$broker/stats?format=text" 2>/dev/null |
        awk '/\(paused\)/ && match($0, /\[[^]]*\]/) {
                 name = substr($0, RSTART + 1, RLENGTH - 2); sub(/ +$/, "", name)
                 print (/^ / ? "paused channel: " : "paused topic: ") name }' || true
}

deadline=$((SECONDS + timeout))
zero_reads=0
last=""
echo "drain-broker: waiting for the consumers to empty $broker (up to ${timeout}s)"
while :; do
    if left=$(held); then
        if [ -z "$left" ]; then
            zero_reads=$((zero_reads + 1))
            [ "$zero_reads" -lt 2 ] || break
        else
            zero_reads=0
            total=$(awk '{ sum += $NF } END { print sum }' <<<"$left")
            summary="holds $total (messages queued, in flight or deferred) in $(wc -l <<<"$left") places"
            [ "$summary" = "$last" ] || echo "drain-broker: $broker $summary"
            last=$summary
        fi
    else
        zero_reads=0
        left="no answer from http://$broker/metrics"
        [ "$left" = "$last" ] || echo "drain-broker: $left" >&2
        last=$left
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "drain-broker: $broker is not drained after ${timeout}s; still held:" >&2
        { echo "$left"; paused; } | sed 's/^/  /' >&2
        echo "drain-broker: do not remove it yet (a topic without channels or a paused" \
            "channel never drains by itself)" >&2
        exit 1
    fi
    sleep "$interval"
done
echo "drain-broker: $broker holds no messages: remove it now (scale the StatefulSet down or" \
    "stop the process); its PersistentVolumeClaim can then be deleted"
