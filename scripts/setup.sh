#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 machine, as root, and is safe to run again:
# Debian packages (only those missing), the virtual environment at .venv, the pinned Python packages.
# Usage: scripts/setup.sh [--tests]   (--tests adds the packages the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(python3 python3-venv python3-dev gcc ca-certificates ffmpeg iproute2)
if [[ "${1:-}" == "--tests" ]]; then
    # prometheus brings promtool, which checks dashboards/prometheus; chromium runs the browser tests headless.
    want+=(procps prometheus chromium)
fi

missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages with a daemon (prometheus) must not start it: the tests run their own where they need one.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    apt-get update -qq
    status=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    if ((created_policy)); then rm -f "$policy"; fi
    ((status == 0)) || exit "$status"
fi

# The venv uses Debian's python3 so that every machine runs the same interpreter.
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    /usr/bin/python3 -m venv .venv
fi

# Reinstall only when the lock or the project metadata changed.
stamp=.venv/.ketnoi-installed
digest=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
    echo "setup: installing pinned Python packages (requirements.lock)"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip==26.3
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$PWD" >"$site/ketnoi.pth"
    echo "$digest" >"$stamp"
fi
