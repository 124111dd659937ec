#!/usr/bin/env bash
# Install the system packages the test suite drives, if missing: Debian's Chromium (the LangServe
# playground screenshot) and PostgreSQL (the private cluster tests/pg.py starts). Idempotent:
# apt runs only when something is missing. Called by `make test` (and so by .ci/run).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "ensure_system_packages: missing ${missing[*]} and no apt-get; install them by hand" >&2
        exit 0
    fi
    apt=(apt-get)
    [ "$(id -u)" -eq 0 ] || apt=(sudo env DEBIAN_FRONTEND=noninteractive apt-get)
    echo "ensure_system_packages: installing ${missing[*]}"
    "${apt[@]}" update -qq
    "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
fi
