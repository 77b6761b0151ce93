#!/usr/bin/env bash
# The demo: controller, one agent and 8 simulated cameras on loopback, SQLite, printed URLs and logins.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m demo "$@"
