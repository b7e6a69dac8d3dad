#!/usr/bin/env bash
# install-deps.sh - install the Debian packages needed to build, test and
# format-check the project. Installs only what is missing, so it is safe to
# run before every build; runs apt-get through sudo when not root.
# --fuzz adds what the fuzz targets need (clang with libFuzzer, jansson).
set -euo pipefail

packages=(meson ninja-build pkg-config gcc libzmq3-dev libczmq-dev libprotobuf-c-dev
    protobuf-c-compiler libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev zlib1g-dev libsnappy-dev
    libgnutls28-dev libjemalloc-dev curl clang-format strace iproute2 chromium python3 openssl gnutls-bin)
if [ "${1:-}" = --fuzz ]; then
    packages+=(clang libclang-rt-14-dev)
fi

# node and npm run the deployment checks (tests/deploy); any node will do.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

# The npm packages of tests/deploy, tests/console and tests/nsqjs (a real NSQ
# client for the TCP door's end-to-end test; each a package-lock.json),
# installed once; later runs need no network. Called after the Debian
# packages are in place (chromium is the browser tests/console drives).
# nsqjs goes to .deps/nsqjs, outside tests/: its own code, tests and README
# name NSQ's default ports, which no file under tests/ may (our suite runs
# beside a cluster on them); nsqjs_e2e.sh finds it there.
install_npm_packages() {
    local root pair source target
    root="$(cd "$(dirname "$0")/.." && pwd)"
    for pair in tests/deploy:tests/deploy tests/console:tests/console tests/nsqjs:.deps/nsqjs; do
        source="$root/${pair%%:*}" target="$root/${pair#*:}"
        if [ -f "$target/node_modules/.package-lock.json" ] &&
            [ ! "$source/package-lock.json" -nt "$target/node_modules/.package-lock.json" ]; then
            continue
        fi
        echo "install-deps: npm ci for ${pair%%:*} in ${pair#*:}"
        if [ "$source" != "$target" ]; then
            mkdir -p "$target" && cp "$source/package.json" "$source/package-lock.json" "$target/"
        fi
        if ! (cd "$target" && npm ci --no-audit --no-fund --loglevel=error); then
            echo "install-deps: npm ci failed in $target" >&2
            return 1
        fi
    done
}

if ! command -v dpkg >/dev/null 2>&1; then
    echo "install-deps: no dpkg here (not Debian or Ubuntu); install: ${packages[*]}" >&2
    exit 0
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages are installed"
    install_npm_packages
    exit
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
install_npm_packages
