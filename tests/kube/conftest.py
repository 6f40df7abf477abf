"""KubeSpawner reads a kubeconfig before it uses ``k8s_api_host``: give it one that points
nowhere in particular (each test sets the host of its own API double)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.kube.k8s_double import KubeDouble, write_kubeconfig

KUBECONFIG = write_kubeconfig(
    Path(tempfile.mkdtemp(prefix="aitestbed-kube-")) / "kubeconfig", "http://127.0.0.1:9"
)
os.environ["KUBECONFIG"] = str(KUBECONFIG)

import kubernetes_asyncio.config.kube_config as _kube_config  # noqa: E402 - after KUBECONFIG

_kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(KUBECONFIG)


@pytest.fixture
async def double(tmp_path):
    """The API double in this test's event loop, with reflectors stopped afterwards."""
    from kubespawner import KubeSpawner

    api = KubeDouble(tmp_path / "double", namespaces=("default", "aitestbed"))
    await api.start()
    try:
        yield api
    finally:
        await KubeSpawner._stop_all_reflectors()
        await api.stop()
