#!/usr/bin/env bash
# The whole test suite: set-up, style checks (ruff), then pytest (unit, integration with
# real hub/proxy/sessions, PostgreSQL, headless Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
echo "==> ruff check"
.venv/bin/ruff check .
echo "==> ruff format --check"
.venv/bin/ruff format --check .
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
