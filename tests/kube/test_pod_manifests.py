"""Every pod the portal can generate (each flavor x image of the production example
settings), as KubeSpawner serializes it, is valid Kubernetes (kubernetes-validate, strict:
no unknown fields) and passes checkov's security checks except the documented, justified
exceptions in checkov-pod-skips.yaml.

What this does not cover: the values' meaning to a real cluster (quantities, whether the
GPU resource exists, admission policies); kubernetes-validate checks structure only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient

from tests.kube.spawners import REPO, flavor_spec, image_spec, make_spawner, production_settings

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"  # scripts/install-checkov.sh
SKIPS = Path(__file__).with_name("checkov-pod-skips.yaml")
NOWHERE = "http://127.0.0.1:9"


async def all_manifests(state_dir: Path) -> dict[str, dict]:
    """``{flavor--image: pod manifest}`` from one spawner, one start after another."""
    settings = production_settings(state_dir)
    spawner = make_spawner(settings, NOWHERE)
    spawner.namespace = settings.kubernetes.namespace
    manifests = {}
    for flavor in settings.flavors:
        for image in settings.images:
            spawner.apply_session(flavor_spec(flavor), image_spec(image), "acme-vision")
            pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
            pod["metadata"]["namespace"] = spawner.namespace
            manifests[f"{flavor.slug}--{image.slug}"] = pod
    return manifests


@pytest.fixture
async def manifests(tmp_path, double):
    return await all_manifests(tmp_path / "state")


async def test_every_pod_manifest_is_valid_kubernetes(manifests):
    assert len(manifests) == 15
    version = kubernetes_validate.latest_version()
    for name, pod in manifests.items():
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {list(error.path)}")


async def test_validation_is_strict(manifests):
    """The check above can fail: an unknown field is rejected."""
    pod = next(iter(manifests.values()))
    pod["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.skipif(
    not CHECKOV.exists(), reason="checkov is not installed: run scripts/setup.sh --test"
)
def checkov_report(pods: dict[str, dict], folder: Path) -> tuple[dict, set[tuple[str, str]]]:
    """checkov's report on ``pods`` (written into ``folder``) and its failed checks."""
    folder.mkdir()
    for name, pod in pods.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(pod))
    result = subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--framework", "kubernetes", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        check=False,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["resource_count"] == len(pods)
    assert report["summary"]["parsing_errors"] == 0
    failed = {(c["check_id"], c["check_name"]) for c in report["results"]["failed_checks"]}
    return report, failed


def justified_skips() -> dict[str, dict]:
    return {s["id"]: s for s in yaml.safe_load(SKIPS.read_text())["skips"]}


async def test_checkov_finds_nothing_but_the_justified_exceptions(manifests, tmp_path):
    report, failed = checkov_report(manifests, tmp_path / "manifests")
    skips = justified_skips()
    assert all(s["why"].strip() for s in skips.values()), "every exception says why"
    unexplained = sorted(f"{cid} {name}" for cid, name in failed if cid not in skips)
    assert not unexplained, f"checkov findings without a justified exception: {unexplained}"
    stale = sorted(set(skips) - {cid for cid, _ in failed})
    assert not stale, f"exceptions that no longer match a finding (remove them): {stale}"
    assert report["summary"]["passed"] > 0


@pytest.mark.parametrize(
    "storage",
    [
        {"home_storage_type": "none", "project_volume": False},
        {
            "home_storage_type": "static",
            "home_static_claim": "homes",
            "extra_volumes": ({"name": "sw", "nfs": {"server": "nfs.example.org", "path": "/sw"}},),
            "extra_volume_mounts": ({"name": "sw", "mountPath": "/opt/sw", "readOnly": True},),
        },
        {
            "home_storage_type": "dynamic",
            "cpu_node_affinity_preferred": (
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}
                        ]
                    },
                },
            ),
        },
    ],
    ids=["none", "static", "cpu-affinity"],
)
async def test_storage_modes_give_valid_pods(tmp_path, double, storage):
    settings = production_settings(tmp_path / "state")
    settings = dataclasses.replace(
        settings, kubernetes=dataclasses.replace(settings.kubernetes, **storage)
    )
    spawner = make_spawner(settings, NOWHERE)
    spawner.namespace = settings.kubernetes.namespace
    flavor, image = settings.flavors[0], settings.images[0]
    spawner.apply_session(flavor_spec(flavor), image_spec(image), "acme-vision")
    pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    if "cpu_node_affinity_preferred" in storage:
        preferred = pod["spec"]["affinity"]["nodeAffinity"]
        terms = preferred["preferredDuringSchedulingIgnoredDuringExecution"]
        assert terms == list(storage["cpu_node_affinity_preferred"])
        assert volumes["home"]["persistentVolumeClaim"] == {"claimName": "claim-alice"}
    elif storage["home_storage_type"] == "none":
        assert "home" not in volumes and "project" not in volumes
    else:
        assert volumes["home"]["persistentVolumeClaim"] == {"claimName": "homes"}
        assert mounts["home"]["subPath"] == "home/alice"  # {username} expanded
        assert volumes["sw"]["nfs"]["path"] == "/sw"
