#!/usr/bin/env bash
# lint_dockerfile.sh - lint the top-level Dockerfile with npm dockerfilelint
# (installed in tests/deploy/node_modules by scripts/install-deps.sh). Also
# lints a known-bad Dockerfile first, so a linter that reports nothing
# cannot pass for a clean Dockerfile. Exit 77 (skip) when the linter is not
# installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lint=$here/node_modules/.bin/dockerfilelint
if [ ! -x "$lint" ]; then
    echo "SKIP: $lint is missing; run scripts/install-deps.sh (npm ci in tests/deploy)"
    exit 77
fi
bad=$(mktemp)
trap 'rm -f "$bad"' EXIT
printf 'FROM ubuntu\nrun apt-get install foo\n' >"$bad"
if "$lint" "$bad" >/dev/null 2>&1; then
    echo "dockerfilelint found nothing wrong in a broken Dockerfile: the linter does not work"
    exit 1
fi
"$lint" "$here/../../Dockerfile"
