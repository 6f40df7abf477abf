"""The Kubernetes mapping per flavor kind (pure functions, no cluster)."""

from __future__ import annotations

import pytest
from aitestbed.hub.pod_settings import (
    KubeSite,
    flavor_demand,
    pod_settings,
    quantity_bytes,
)
from aitestbed.policy.model import FlavorSpec, ImageSpec

A100 = "NVIDIA-A100-SXM4-80GB"
CPU = FlavorSpec("cpu-small", "CPU", cpu=2, memory="8Gi", shm="1Gi")
MIG = FlavorSpec(
    "a100-1g-10gb", "MIG", cpu=4, memory="24Gi", mig_profile="1g.10gb", gpu_product=A100,
    shm="4Gi", max_lifetime_hours=24,
)  # fmt: skip
GPU4 = FlavorSpec(
    "a100x4", "4 x A100", cpu=48, memory="440Gi", gpus=4, gpu_product=A100, shm="128Gi",
    max_lifetime_hours=72,
)  # fmt: skip
IMAGE = ImageSpec("pytorch", "PyTorch", "registry.example.org/notebook-pytorch:0.1.0")


def test_cpu_flavor_has_no_gpu_anything():
    s = pod_settings(CPU, IMAGE, "acme-vision")
    assert s["extra_resource_limits"] == {} and s["extra_resource_guarantees"] == {}
    assert s["node_selector"] == {}
    assert s["tolerations"] == []
    assert s["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "NVIDIA_DRIVER_CAPABILITIES" not in s["environment"]
    assert s["extra_pod_config"] == {}  # no lifetime limit
    assert flavor_demand(CPU).resource is None


def test_mig_flavor_asks_for_one_slice_of_its_profile():
    s = pod_settings(MIG, IMAGE, "acme-vision")
    assert s["extra_resource_limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert s["extra_resource_guarantees"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert "nvidia.com/gpu" not in s["extra_resource_limits"]
    assert s["node_selector"] == {"nvidia.com/gpu.product": A100}
    assert s["environment"]["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert s["extra_pod_config"] == {"activeDeadlineSeconds": 24 * 3600}
    demand = flavor_demand(MIG)
    assert (demand.resource, demand.units) == ("nvidia.com/mig-1g.10gb", 1)


def test_whole_gpu_flavor_asks_for_n_gpus_on_its_product():
    s = pod_settings(GPU4, IMAGE, "acme-vision")
    assert s["extra_resource_limits"] == {"nvidia.com/gpu": "4"}
    assert s["node_selector"] == {"nvidia.com/gpu.product": A100}
    assert s["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert s["cpu_limit"] == s["cpu_guarantee"] == 48
    assert s["mem_limit"] == s["mem_guarantee"] == 440 * 2**30
    volumes = {v["name"]: v for v in s["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "128Gi"}
    assert s["extra_annotations"]["aitestbed.example/max-lifetime-seconds"] == str(72 * 3600)
    assert (flavor_demand(GPU4).resource, flavor_demand(GPU4).units) == ("nvidia.com/gpu", 4)


def test_site_choices_reach_the_pod():
    site = KubeSite(
        home_storage="50Gi",
        project_claim_template="shared-{project}",
        extra_node_selector={"pool": "interactive"},
        gpu_tolerations=({"key": "gpu", "operator": "Equal", "value": "yes"},),
        image_pull_policy="Always",
    )
    s = pod_settings(GPU4, IMAGE, "acme-vision", site)
    assert s["node_selector"] == {"pool": "interactive", "nvidia.com/gpu.product": A100}
    assert s["tolerations"] == [{"key": "gpu", "operator": "Equal", "value": "yes"}]
    assert s["storage_capacity"] == "50Gi"
    assert s["image_pull_policy"] == "Always"
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in s["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["{pvc_name}", "shared-acme-vision"]
    assert flavor_demand(GPU4, site).node_selector == s["node_selector"]
    assert pod_settings(CPU, IMAGE, "p", site)["node_selector"] == {"pool": "interactive"}


def test_every_start_sets_the_same_keys():
    """What the spawner applies per start covers every key, whatever the flavor."""
    keys = {f.slug: set(pod_settings(f, IMAGE, "p")) for f in (CPU, MIG, GPU4)}
    assert keys["cpu-small"] == keys["a100-1g-10gb"] == keys["a100x4"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24Gi", 24 * 2**30), ("512Mi", 512 * 2**20), ("1.5Gi", 3 * 2**29), ("2G", 2 * 10**9),
     ("1000", 1000), ("1Ti", 2**40)],
)  # fmt: skip
def test_memory_quantities_in_bytes(text, expected):
    assert quantity_bytes(text) == expected


def test_bad_quantity_is_refused():
    with pytest.raises(ValueError, match="not a memory quantity"):
        quantity_bytes("lots")


NO_GPU = {
    "weight": 100,
    "preference": {
        "matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]
    },
}


def test_cpu_sessions_go_to_the_cpu_nodes_gpu_sessions_keep_theirs():
    cpu_pool = {"key": "pool", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}
    site = KubeSite(
        extra_node_selector={"zone": "a"},
        cpu_node_selector={"pool": "cpu"},
        cpu_tolerations=(cpu_pool,),
        cpu_node_affinity_preferred=(NO_GPU,),
    )
    image = ImageSpec("python-cpu", "Python", "registry.example.org/cpu:1")
    cpu = pod_settings(CPU, image, "acme", site)
    assert cpu["node_selector"] == {"zone": "a", "pool": "cpu"}
    assert cpu["node_affinity_preferred"] == [NO_GPU]
    assert cpu["tolerations"] == [cpu_pool]
    gpu = pod_settings(GPU4, image, "acme", site)
    assert gpu["node_selector"] == {"zone": "a", "nvidia.com/gpu.product": GPU4.gpu_product}
    assert gpu["node_affinity_preferred"] == []
    assert gpu["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_storage_modes_dynamic_static_none_and_an_optional_project_volume():
    image = ImageSpec("python-cpu", "Python", "registry.example.org/cpu:1")
    dynamic = pod_settings(CPU, image, "acme", KubeSite())
    assert dynamic["storage_pvc_ensure"] is True
    assert [v["name"] for v in dynamic["volumes"]][:2] == ["home", "project"]

    shared = {"name": "software", "nfs": {"server": "nfs.example.org", "path": "/sw"}}
    static = pod_settings(
        CPU,
        image,
        "acme",
        KubeSite(
            home_storage_type="static",
            home_static_claim="homes",
            home_static_sub_path="home/{username}",
            project_volume=False,
            extra_volumes=(shared,),
            extra_volume_mounts=({"name": "software", "mountPath": "/opt/sw", "readOnly": True},),
        ),
    )
    assert static["storage_pvc_ensure"] is False
    volumes = {v["name"]: v for v in static["volumes"]}
    assert volumes["home"] == {"name": "home", "persistentVolumeClaim": {"claimName": "homes"}}
    assert "project" not in volumes
    assert volumes["software"] == shared
    mounts = {m["name"]: m for m in static["volume_mounts"]}
    assert mounts["home"] == {
        "name": "home",
        "mountPath": "/home/jovyan",
        "subPath": "home/{username}",
    }
    assert mounts["software"]["mountPath"] == "/opt/sw"

    none = pod_settings(CPU, image, "acme", KubeSite(home_storage_type="none"))
    assert none["storage_pvc_ensure"] is False
    assert "home" not in [v["name"] for v in none["volumes"]]
    assert "project" in [v["name"] for v in none["volumes"]]
