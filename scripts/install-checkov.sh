#!/usr/bin/env bash
# Install checkov into its own venv (.tools/checkov), idempotently, with the versions of
# requirements/checkov.txt. Separate from .venv: checkov's own pins clash with the portal's.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=".tools/checkov"
stamp="$venv/.installed-$(sha256sum requirements/checkov.txt | cut -c1-16)"
[ -f "$stamp" ] && exit 0
echo "==> Installing checkov into $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -r requirements/checkov.txt
touch "$stamp"
