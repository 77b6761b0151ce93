#!/usr/bin/env bash
# The whole test suite: ruff, mypy --strict, pytest over everything.
# Uses the PostgreSQL server at 127.0.0.1:5432 when one answers; otherwise installs and starts Debian's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
./scripts/postgres.sh

export PYTHONDONTWRITEBYTECODE=1
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --diff . | head -50; exit 1; }
echo "== mypy --strict"
.venv/bin/mypy --strict .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
