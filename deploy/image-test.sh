#!/usr/bin/env bash
# image-test.sh - build the Docker image for real and run it: a lookupd (when
# the image has nsq-lookupd), a broker and a worker in containers with their
# ports published on 127.0.0.1; publish over HTTP to the broker's published
# port and wait until the worker's log shows the message.
#
# No registry is reachable here, so the base image the Dockerfile names
# (debian:bookworm-slim) is made locally once with debootstrap and imported
# into podman; the Dockerfile is then built with podman (runc runtime,
# docker image format so HEALTHCHECK is kept). Needs root (or sudo) for
# apt-get and debootstrap; installs podman, runc and debootstrap if missing.
#
#   deploy/image-test.sh [--image NAME] [--keep] [--rebuild-base]
#     --image NAME     tag to build (default nsq-zmq:test)
#     --keep           leave the containers running (they are removed otherwise)
#     --rebuild-base   debootstrap the base image again even if podman has it
#
# Takes about 3-5 minutes on a fresh machine (debootstrap ~40 s, the build
# ~2 min), well under a minute when the base image and the build cache are
# there. Prints one line per step and "image-test: OK" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

image=nsq-zmq:test
base=debian:bookworm-slim
keep=0
rebuild_base=0
while [ $# -gt 0 ]; do
    case "$1" in
    --image) image=$2; shift 2 ;;
    --image=*) image=${1#--image=}; shift ;;
    --keep) keep=1; shift ;;
    --rebuild-base) rebuild_base=1; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-test: unknown argument $1" >&2; exit 2 ;;
    esac
done

started=$SECONDS
step() { printf 'image-test: [%3ds] %s\n' $((SECONDS - started)) "$*"; }
fail() { printf 'image-test: [%3ds] FAILED: %s\n' $((SECONDS - started)) "$*" >&2; exit 1; }

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap \
        >/dev/null
fi
podman=("${sudo[@]}" podman)

# Our own containers.conf: the runc runtime and ulimits the daemons need.
work=$(mktemp -d)
cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"

prefix="nsq-image-test-$$"
containers=()
cleanup() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        for name in "${containers[@]}"; do
            echo "--- logs of $name ---" >&2
            "${podman[@]}" logs "$name" 2>&1 | tail -n 20 >&2 || true
        done
    fi
    if [ "$keep" = 1 ]; then
        [ ${#containers[@]} -gt 0 ] && echo "image-test: kept containers ${containers[*]}"
    else
        for name in "${containers[@]}"; do
            "${podman[@]}" rm -f -v "$name" >/dev/null 2>&1 || true
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A base image under the name the Dockerfile uses, made locally.
if [ "$rebuild_base" = 1 ] || ! "${podman[@]}" image exists "$base"; then
    step "debootstrap --variant=minbase bookworm (base image $base)"
    rootfs="$work/rootfs"
    "${sudo[@]}" debootstrap --variant=minbase bookworm "$rootfs" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
    "${sudo[@]}" tar -C "$rootfs" -c . | "${podman[@]}" import - "$base" >/dev/null
    "${sudo[@]}" rm -rf "$rootfs"
fi

# The build stage is tagged too, so that each run replaces (and removes)
# the images of the previous one instead of leaving them dangling.
stage="${image%%:*}-build-stage:latest"
image_id() { "${podman[@]}" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
old_ids=("$(image_id "$stage")" "$(image_id "$image")")
step "podman build -t $image ."
for target in "--target=build -t $stage" "-t $image"; do
    # shellcheck disable=SC2086 # two words each
    "${podman[@]}" build --pull=never --format docker $target . >>"$work/build.log" 2>&1 ||
        { tail -n 30 "$work/build.log" >&2; fail "podman build (log above)"; }
done
for id in "${old_ids[@]}"; do
    if [ -n "$id" ] && [ "$id" != "$(image_id "$stage")" ] && [ "$id" != "$(image_id "$image")" ]; then
        "${podman[@]}" rmi "$id" >/dev/null 2>&1 || true
    fi
done
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
step "built $image ($((size / 1000000)) MB)"

# A port nothing listens on, in a range ephemeral ports do not use.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        ss -Htan exclude time-wait "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
    done
}

# Polls a command until it succeeds or the deadline (seconds) passes.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what (waited ${seconds}s)"
        sleep 0.2
    done
}

run() { # run NAME PODMAN-ARGS... -- COMMAND...
    local name="$prefix-$1"
    shift
    containers+=("$name")
    local options=()
    while [ "$1" != -- ]; do options+=("$1"); shift; done
    shift
    # podman complains on stderr that it has no systemd for health check
    # timers; the check is run by hand below, so keep that out of the output.
    "${podman[@]}" run -d --name "$name" --hostname "$name" "${options[@]}" "$image" "$@" \
        >/dev/null 2>"$work/run-$name.err" || { cat "$work/run-$name.err" >&2; fail "run $name"; }
}
address_of() { "${podman[@]}" inspect --format '{{.NetworkSettings.IPAddress}}' "$prefix-$1"; }
has_binary() { "${podman[@]}" run --rm "$image" sh -c "command -v $1" >/dev/null 2>&1; }
worker_has_flag() { "${podman[@]}" run --rm "$image" nsq-worker --help 2>&1 | grep -q -- "--$1="; }

broker_flags=()
worker_discovery=()
if has_binary nsq-lookupd; then
    lookupd_http=$(free_port)
    run lookupd -p "127.0.0.1:$lookupd_http:4161" -- nsq-lookupd
    wait_for 30 "lookupd /ping on 127.0.0.1:$lookupd_http" \
        curl -fsS "http://127.0.0.1:$lookupd_http/ping"
    lookupd_ip=$(address_of lookupd)
    step "lookupd up ($lookupd_ip, HTTP published on 127.0.0.1:$lookupd_http)"
    broker_flags+=("--lookupd-address=$lookupd_ip:4160")
    if worker_has_flag lookupd-http-address; then
        worker_discovery+=("--lookupd-http-address=$lookupd_ip:4161")
    fi
else
    step "SKIPPED lookupd: the image has no nsq-lookupd (not built on this branch yet)"
fi

broker_http=$(free_port)
broker_zmq=$(free_port)
run broker -p "127.0.0.1:$broker_http:4151" -p "127.0.0.1:$broker_zmq:4152" -- \
    nsq-broker --data-path=/data "${broker_flags[@]}"
wait_for 30 "broker /ping on 127.0.0.1:$broker_http" curl -fsS "http://127.0.0.1:$broker_http/ping"
broker_ip=$(address_of broker)
step "broker up ($broker_ip, HTTP on 127.0.0.1:$broker_http, ZeroMQ on 127.0.0.1:$broker_zmq)"

# The broker announces its hostname; the worker resolves it with --add-host.
[ ${#worker_discovery[@]} -gt 0 ] || worker_discovery=("--broker-address=$broker_ip:4152")
worker_options=(--add-host "$prefix-broker:$broker_ip")
worker_http=""
if worker_has_flag http-address; then
    worker_http=$(free_port)
    worker_options+=(-p "127.0.0.1:$worker_http:4171")
fi
run worker "${worker_options[@]}" -- \
    nsq-worker --topic=image_test --channel=check --stdout "${worker_discovery[@]}"
step "worker started (${worker_discovery[*]})"
if [ -n "$worker_http" ]; then
    wait_for 30 "worker /healthz on 127.0.0.1:$worker_http" \
        curl -fsS "http://127.0.0.1:$worker_http/healthz"
    step "worker /healthz answers on 127.0.0.1:$worker_http"
else
    step "SKIPPED worker /healthz: this nsq-worker has no --http-address yet"
fi

body="image-test-$$-$RANDOM"
curl -fsS -d "$body" "http://127.0.0.1:$broker_http/pub?topic=image_test" >/dev/null ||
    fail "publish to 127.0.0.1:$broker_http"
step "published '$body' to http://127.0.0.1:$broker_http/pub?topic=image_test"
worker_logged() { "${podman[@]}" logs "$prefix-worker" 2>/dev/null | grep -qx "$body"; }
wait_for 60 "the worker's log to show '$body'" worker_logged
step "the worker consumed it (its log shows '$body')"

# The image's HEALTHCHECK, run by hand (no systemd timers needed).
"${podman[@]}" healthcheck run "$prefix-broker" >/dev/null || fail "HEALTHCHECK of the broker"
step "HEALTHCHECK of the broker container: healthy"
user=$("${podman[@]}" exec "$prefix-broker" id -un)
[ "$user" = nsq ] || fail "the broker runs as $user, not nsq"
step "the broker runs as user $user"

step "image-test: OK"
