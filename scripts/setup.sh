#!/usr/bin/env bash
# Set up everything the portal and its tests need on a fresh Debian machine (idempotent).
#   scripts/setup.sh          Python venv (.venv) with the project, configurable-http-proxy
#   scripts/setup.sh --test   also Debian packages for the tests (Chromium, PostgreSQL, a
#                             single-node Slurm: munge, slurmctld, slurmd, slurmrestd with JWT),
#                             helm and checkov for the chart tests (.tools/)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "Installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

base_pkgs=()
command -v node >/dev/null || base_pkgs+=(nodejs)
command -v npm >/dev/null || base_pkgs+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || base_pkgs+=(python3-venv)
[ ${#base_pkgs[@]} -gt 0 ] && apt_install "${base_pkgs[@]}"
if [ "$want_test" = 1 ]; then
  apt_install chromium fonts-liberation postgresql
  # tests/slurm_cluster.py starts these (no daemon runs after install; no accounting DB).
  apt_install slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin
fi

python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Python 3.11 or newer is needed (found $("$python_bin" --version))." >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "Creating the Python environment in .venv"
  "$python_bin" -m venv .venv
fi
extras="hub,singleuser"
[ "$want_test" = 1 ] && extras="test"
stamp=".venv/.installed-$extras-$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "Installing Python packages (.[$extras])"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[$extras]"
  touch "$stamp"
fi

if [ ! -x node_modules/.bin/configurable-http-proxy ] \
  || { [ "$want_test" = 1 ] && [ ! -f node_modules/oidc-provider/package.json ]; }; then
  say "Installing configurable-http-proxy and the test OIDC provider (npm, into node_modules)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Chart tests: the real helm binary and checkov (its own venv), both in .tools/.
if [ "$want_test" = 1 ]; then
  scripts/install-helm.sh
  scripts/install-checkov.sh
fi

# JupyterLab: no news popups or update checks in sessions started from this environment.
overrides=.venv/share/jupyter/lab/settings/overrides.json
mkdir -p "$(dirname "$overrides")"
cat > "$overrides" <<'JSON'
{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
JSON
say "Set-up complete."
