#!/usr/bin/env bash
# cluster.sh - a local nsq-zmq cluster as plain processes on 127.0.0.1:
# lookupds (when nsq-lookupd is built), brokers and workers, each with its
# own directory (pid file, log, data) under one cluster directory.
#
#   deploy/cluster.sh up     [options]   start the cluster, wait until every process answers
#   deploy/cluster.sh status [options]   show each process (running or not), its PID and its /ping;
#                                        exits 1 when any is stopped, exited or not answering
#   deploy/cluster.sh down   [options]   stop every process `up` started (SIGTERM, then SIGKILL)
#   deploy/cluster.sh stop NAME [options]   stop one process (e.g. broker-1), keeping its data
#   deploy/cluster.sh start NAME [options]  start it again with the same command line
#
# Options:
#   --dir DIR          cluster directory (default .cluster in the repository, or $NSQ_CLUSTER_DIR)
#   --build-dir DIR    where the binaries are (default build in the repository)
#   --brokers N        brokers (default 2)
#   --workers M        workers (default 1); each runs --stdout into DIR/worker-K/messages.log
#   --lookupds L       lookupds (default 1, 0 for none; ignored while nsq-lookupd is not built)
#   --base-port P      ports are P+offset (default 4150): broker K tcp P+100K, http P+1+100K, zmq P+2+100K;
#                      lookupd K zmq P+10+100K, http P+11+100K; worker K http P+21+100K
#   --topic T          topic the workers consume (default test)
#   --channel C        channel the workers consume (default tail)
#   --timeout S        seconds to wait for a process to start or stop (default 20)
#   --purge            (down) remove the cluster directory afterwards
#   --dry-run          (up) print the command lines, start nothing (as if nsq-lookupd existed)
#
# Brokers and workers read NSQ_BROKER_* / NSQ_WORKER_* from the environment,
# so e.g. `NSQ_BROKER_MEM_QUEUE_SIZE=100 deploy/cluster.sh up` applies to all.
# `down` signals only the PIDs in the pid files, and only when that PID
# still runs the binary that was started. Data stays in DIR until --purge.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${NSQ_CLUSTER_DIR:-$root/.cluster}
build=$root/build
brokers=2
workers=1
lookupds=1
base_port=4150
topic="test"
channel="tail"
timeout=20
purge=0
dry_run=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() {
    echo "cluster: $*" >&2
    exit 1
}

[ $# -gt 0 ] || { usage >&2; exit 2; }
action=$1
shift
member_name=""
if [[ $action =~ ^(start|stop)$ ]] && [ $# -gt 0 ] && [[ $1 != -* ]]; then
    member_name=$1
    shift
fi
while [ $# -gt 0 ]; do
    option=$1
    value=""
    case "$option" in
    --*=*) value=${option#*=}; option=${option%%=*} ;;
    --purge | --dry-run | -h | --help) ;;
    *) [ $# -ge 2 ] || die "$option needs a value"; value=$2; shift ;;
    esac
    shift
    case "$option" in
    --dir) dir=$value ;;
    --build-dir) build=$value ;;
    --brokers) brokers=$value ;;
    --workers) workers=$value ;;
    --lookupds) lookupds=$value ;;
    --base-port) base_port=$value ;;
    --topic) topic=$value ;;
    --channel) channel=$value ;;
    --timeout) timeout=$value ;;
    --purge) purge=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $option (see --help)" ;;
    esac
done
for number in "$brokers" "$workers" "$lookupds" "$base_port" "$timeout"; do
    [[ $number =~ ^[0-9]+$ ]] || die "not a number: $number"
done
[ "$brokers" -ge 1 ] || die "--brokers must be at least 1"
[ "$lookupds" -le 2 ] || die "--lookupds is 0, 1 or 2"
highest=$((brokers > workers ? brokers : workers))
if [ "$base_port" -lt 1024 ] || [ $((base_port + 100 * highest + 21)) -gt 65535 ]; then
    die "--base-port $base_port leaves no room for the ports (1024..$((65535 - 100 * highest - 21)))"
fi
dir=$(realpath -m "$dir")
build=$(realpath -m "$build")

broker_bin=$build/broker/nsq-broker
worker_bin=$build/worker/nsq-worker
lookupd_bin=$build/lookupd/nsq-lookupd

broker_tcp() { echo $((base_port + 100 * $1)); }
broker_http() { echo $((base_port + 1 + 100 * $1)); }
broker_zmq() { echo $((base_port + 2 + 100 * $1)); }
lookupd_zmq() { echo $((base_port + 10 + 100 * $1)); }
lookupd_http() { echo $((base_port + 11 + 100 * $1)); }
worker_http() { echo $((base_port + 21 + 100 * $1)); }

# The processes of the cluster directory, in the order they stop in.
members() {
    local role
    [ -d "$dir" ] || return 0
    for role in worker broker lookupd; do
        find "$dir" -mindepth 1 -maxdepth 1 -type d -name "$role-*" | sort
    done
}

# Prints the PID of a member if it still runs the binary it was started
# with; fails otherwise (no pid file, exited, or the PID was reused).
live_pid() {
    local member=$1 pid argv binary
    [ -f "$member/pid" ] || return 1
    pid=$(cat "$member/pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # argv[0], or argv[1] when an interpreter runs the program (a script).
    mapfile -t argv < <(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n 2)
    binary=$(head -n 1 "$member/command")
    [ ${#argv[@]} -gt 0 ] && { [ "${argv[0]}" = "$binary" ] || [ "${argv[1]:-}" = "$binary" ]; } ||
        return 1
    echo "$pid"
}

# Whether the member's process exists (right after the fork it may not
# have exec'd its binary yet, so live_pid would not know it).
started() { kill -0 "$(cat "$dir/$1/pid")" 2>/dev/null; }

port_in_use() { ss -Htan exclude time-wait "sport = :$1" 2>/dev/null | grep -q .; }

# Starts NAME with the command line after --; its stderr (and stdout, unless
# STDOUT is given) goes to DIR/NAME/log. Records the PID and command line.
start() {
    local name=$1 stdout=$2 http=$3
    shift 4
    local member="$dir/$name"
    if [ "$dry_run" = 1 ]; then
        echo "$*"
        return
    fi
    mkdir -p "$member"
    printf '%s\n' "$@" >"$member/command"
    echo "$http" >"$member/http"
    [ -n "$stdout" ] || stdout="$member/log"
    # setsid: the process leaves our session, so a Ctrl-C here or the end
    # of this script's terminal does not reach it; exec keeps the PID.
    (cd "$member" && exec setsid "$@" >>"$stdout" 2>>"$member/log" </dev/null) &
    echo $! >"$member/pid"
}

# Polls until URL answers 2xx; fails early if the member died.
wait_http() {
    local name=$1 url=$2 deadline=$((SECONDS + timeout))
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        if ! started "$name"; then
            echo "cluster: $name exited; the end of $dir/$name/log:" >&2
            tail -n 15 "$dir/$name/log" >&2
            return 1
        fi
        [ "$SECONDS" -lt "$deadline" ] || { echo "cluster: $name: no answer from $url" >&2; return 1; }
        sleep 0.1
    done
}

# Waits (up to 10 s, then goes on with a warning) until lookupd I lists
# every broker for the topic (NSQ's /lookup: producers[].http_port), so
# workers find them all with their first query.
wait_lookup() {
    local url deadline=$((SECONDS + (timeout < 10 ? timeout : 10))) listed
    url="http://127.0.0.1:$(lookupd_http "$1")/lookup?topic=$topic"
    while :; do
        listed=$(curl -fsS --max-time 2 "$url" 2>/dev/null | grep -o '"http_port"' | wc -l) || listed=0
        [ "$listed" -lt "$brokers" ] || return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "cluster: warning: lookupd-$1 lists $listed of $brokers brokers for $topic" >&2
            return 0
        fi
        sleep 0.2
    done
}

# A worker without an HTTP endpoint is up once it logged that it consumes.
wait_log() {
    local name=$1 pattern=$2 deadline=$((SECONDS + timeout))
    until grep -q "$pattern" "$dir/$name/log" 2>/dev/null; do
        started "$name" || { tail -n 15 "$dir/$name/log" >&2; return 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "cluster: $name did not start" >&2; return 1; }
        sleep 0.1
    done
}

worker_accepts() { "$worker_bin" --help 2>&1 | grep -q -- "--$1[=[]"; }

do_up() {
    [ -x "$broker_bin" ] && [ -x "$worker_bin" ] || [ "$dry_run" = 1 ] ||
        die "no binaries in $build (build first: meson setup build && ninja -C build)"
    local member
    for member in $(members); do
        live_pid "$member" >/dev/null &&
            die "a cluster is already running in $dir (deploy/cluster.sh status, deploy/cluster.sh down)"
    done
    local have_lookupd=0 worker_lookupd=0 worker_http_flag=0
    if [ "$dry_run" = 1 ]; then
        have_lookupd=1 worker_lookupd=1 worker_http_flag=1
        [ "$lookupds" -gt 0 ] || lookupds=1
    else
        [ "$lookupds" -gt 0 ] && [ -x "$lookupd_bin" ] && have_lookupd=1
        [ "$lookupds" -gt 0 ] && [ ! -x "$lookupd_bin" ] &&
            echo "cluster: no $lookupd_bin: starting without lookupd, workers get --broker-address"
        worker_accepts lookupd-http-address && worker_lookupd=1
        worker_accepts http-address && worker_http_flag=1
        local ports=() i port
        for ((i = 0; i < brokers; i++)); do ports+=("$(broker_tcp $i)" "$(broker_http $i)" "$(broker_zmq $i)"); done
        for ((i = 0; i < lookupds * have_lookupd; i++)); do
            ports+=("$(lookupd_zmq $i)" "$(lookupd_http $i)")
        done
        for ((i = 0; i < workers * worker_http_flag; i++)); do ports+=("$(worker_http $i)"); done
        for port in "${ports[@]}"; do
            port_in_use "$port" && die "port $port is in use (choose another --base-port)"
        done
        mkdir -p "$dir"
        find "$dir" -mindepth 2 -maxdepth 2 -name pid -delete # stale ones
    fi
    if ! start_all "$have_lookupd" "$worker_lookupd" "$worker_http_flag"; then
        echo "cluster: start failed, stopping what started" >&2
        do_down >&2
        exit 1
    fi
    [ "$dry_run" = 1 ] || do_status
}

start_all() {
    local have_lookupd=$1 worker_lookupd=$2 worker_http_flag=$3 i
    local lookupd_flags=() discovery=()
    if [ "$have_lookupd" = 1 ]; then
        for ((i = 0; i < lookupds; i++)); do
            start "lookupd-$i" "" "127.0.0.1:$(lookupd_http $i)" -- "$lookupd_bin" \
                --http-address="127.0.0.1:$(lookupd_http $i)" \
                --zmq-address="127.0.0.1:$(lookupd_zmq $i)" --broadcast-address=127.0.0.1
            lookupd_flags+=("--lookupd-address=127.0.0.1:$(lookupd_zmq $i)")
            [ "$worker_lookupd" = 0 ] ||
                discovery+=("--lookupd-http-address=127.0.0.1:$(lookupd_http $i)")
        done
        for ((i = 0; i < lookupds && dry_run == 0; i++)); do
            wait_http "lookupd-$i" "http://127.0.0.1:$(lookupd_http $i)/ping" || return 1
        done
    fi
    for ((i = 0; i < brokers; i++)); do
        [ "$dry_run" = 1 ] || mkdir -p "$dir/broker-$i/data"
        start "broker-$i" "" "127.0.0.1:$(broker_http $i)" -- "$broker_bin" \
            --http-address="127.0.0.1:$(broker_http $i)" \
            --tcp-address="127.0.0.1:$(broker_tcp $i)" \
            --zmq-address="127.0.0.1:$(broker_zmq $i)" --broadcast-address=127.0.0.1 \
            --data-path="$dir/broker-$i/data" --node-id="$i" "${lookupd_flags[@]}"
        [ "$have_lookupd$worker_lookupd" = 11 ] ||
            discovery+=("--broker-address=127.0.0.1:$(broker_zmq $i)")
    done
    for ((i = 0; i < brokers && dry_run == 0; i++)); do
        wait_http "broker-$i" "http://127.0.0.1:$(broker_http $i)/ping" || return 1
        # The workers' channel exists from the start: what is published
        # before a worker connects waits for it, and lookupds know the topic.
        curl -fsS -o /dev/null -X POST \
            "http://127.0.0.1:$(broker_http $i)/channel/create?topic=$topic&channel=$channel" ||
            { echo "cluster: broker-$i refused to create $topic/$channel" >&2; return 1; }
    done
    if [ "$have_lookupd" = 1 ] && [ "$dry_run" = 0 ]; then
        for ((i = 0; i < lookupds; i++)); do wait_lookup "$i"; done
    fi
    for ((i = 0; i < workers; i++)); do
        local http=() address=""
        if [ "$worker_http_flag" = 1 ]; then
            address="127.0.0.1:$(worker_http $i)"
            http=("--http-address=$address")
        fi
        [ "$dry_run" = 1 ] || mkdir -p "$dir/worker-$i"
        start "worker-$i" "$dir/worker-$i/messages.log" "$address" -- "$worker_bin" \
            --topic="$topic" --channel="$channel" --stdout "${discovery[@]}" "${http[@]}"
        [ "$dry_run" = 0 ] || continue
        if [ -n "$address" ]; then
            wait_http "worker-$i" "http://$address/healthz" || return 1
        else
            wait_log "worker-$i" consuming || return 1
        fi
    done
}

do_status() {
    local member name pid http path health count=0 bad=0
    printf '%-10s %-8s %-22s %s\n' PROCESS PID HTTP HEALTH
    for member in $(members); do
        name=${member##*/}
        # Every process started here is listed, also one stopped (its pid
        # file is gone) or dead: the cluster is not healthy without it.
        [ -f "$member/command" ] || continue
        count=$((count + 1))
        http=$(cat "$member/http" 2>/dev/null || true)
        if ! pid=$(live_pid "$member"); then
            health="stopped"
            [ ! -f "$member/pid" ] || health="exited"
            printf '%-10s %-8s %-22s %s\n' "$name" "-" "${http:--}" "$health (log: $member/log)"
            bad=$((bad + 1))
            continue
        fi
        path=/ping
        [[ $name != worker-* ]] || path=/healthz
        if [ -z "$http" ]; then
            health="running (no HTTP endpoint)"
        elif curl -fsS -o /dev/null --max-time 2 "http://$http$path" 2>/dev/null; then
            health="$path OK"
        else
            health="$path FAILED"
            bad=$((bad + 1))
        fi
        printf '%-10s %-8s %-22s %s\n' "$name" "$pid" "${http:--}" "$health"
    done
    [ "$count" -gt 0 ] || { echo "cluster: nothing started in $dir"; return 1; }
    echo "cluster: $count processes in $dir, $bad not running or not healthy"
    [ "$bad" -eq 0 ]
}

do_down() {
    # shellcheck disable=SC2046 # member paths have no spaces or globs
    stop_members $(members)
    if [ "$purge" = 1 ]; then
        rm -rf "$dir"
        echo "cluster: removed $dir"
    fi
}

# SIGTERM to each given member that runs, SIGKILL to those still running
# after the timeout.
stop_members() {
    local member pid pids=() names=() stopped=0 killed=0
    for member in "$@"; do
        if pid=$(live_pid "$member"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$member")
        fi
    done
    local deadline=$((SECONDS + timeout)) i alive
    while :; do
        alive=0
        for i in "${!pids[@]}"; do
            if live_pid "${names[$i]}" >/dev/null; then alive=1; fi
        done
        if [ "$alive" = 0 ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if live_pid "${names[$i]}" >/dev/null; then
            echo "cluster: ${names[$i]##*/} (PID ${pids[$i]}) ignored SIGTERM for ${timeout}s: SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            killed=$((killed + 1))
        else
            stopped=$((stopped + 1))
        fi
        rm -f "${names[$i]}/pid"
    done
    echo "cluster: stopped $stopped processes, killed $killed"
}

# Stops one member (stop NAME) or starts it again with the command line it
# was started with (start NAME), e.g. to kill and restart a broker.
do_member() {
    local name=$1 member="$dir/$1"
    [ -f "$member/command" ] || die "no $name in $dir (see deploy/cluster.sh status)"
    if [ "$action" = stop ]; then
        live_pid "$member" >/dev/null || die "$name is not running"
        stop_members "$member"
        return
    fi
    live_pid "$member" >/dev/null && die "$name is already running"
    local command http stdout
    mapfile -t command <"$member/command"
    http=$(cat "$member/http")
    stdout=""
    [[ $name != worker-* ]] || stdout="$member/messages.log"
    start "$name" "$stdout" "$http" -- "${command[@]}"
    if [ -n "$http" ] && [[ $name != worker-* ]]; then
        wait_http "$name" "http://$http/ping" || exit 1
    elif [ -n "$http" ]; then
        wait_http "$name" "http://$http/healthz" || exit 1
    else
        sleep 0.5
        started "$name" || { tail -n 15 "$member/log" >&2; die "$name exited"; }
    fi
    echo "cluster: started $name (PID $(cat "$member/pid"))"
}

case "$action" in
up) do_up ;;
status) do_status ;;
down) do_down ;;
start | stop)
    [ -n "$member_name" ] || die "$action needs a process name, e.g. $action broker-1"
    do_member "$member_name"
    ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
