"""PortalKubeSpawner in this process against the API double: no pod setting leaks from one
start into the next, free capacity per flavor from nodes and pods (cached), the lifetime
limit stops a session, and progress includes Kubernetes events."""

from __future__ import annotations

import asyncio
import time

from aitestbed.hub.kube_spawner import PortalKubeSpawner
from kubernetes_asyncio.client import ApiClient

from tests.kube.spawners import flavor_spec, image_spec, make_spawner, production_settings

A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
NAMESPACE = "aitestbed"


def catalog(settings):
    flavors = {f.slug: flavor_spec(f) for f in settings.flavors}
    images = {i.slug: image_spec(i) for i in settings.images}
    return flavors, images


async def manifest(spawner) -> dict:
    return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())


def running_pod(double, name: str, node: str | None = None, gpus: int = 0) -> dict:
    """A pod as the API would hold it once running (stored directly: no kubelet)."""
    container = {
        "name": "notebook",
        "image": "x",
        "ports": [{"name": "notebook-port", "containerPort": 8888}],
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {},
    }
    pod = {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"component": "singleuser-server"},
        },
        "spec": {"containers": [container], **({"nodeName": node} if node else {})},
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.250",
            "containerStatuses": [
                {
                    "name": "notebook",
                    "ready": True,
                    "image": "x",
                    "imageID": "",
                    "restartCount": 0,
                    "state": {"running": {}},
                }
            ],
        },
    }
    return double.put("pods", pod)


async def test_cpu_start_after_gpu_start_has_no_gpu_settings(tmp_path, double):
    settings = production_settings(tmp_path)
    flavors, images = catalog(settings)
    spawner = make_spawner(settings, double.url)

    spawner.apply_session(flavors["a100x4"], images["pytorch"], "acme-vision")
    gpu = await manifest(spawner)
    assert gpu["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert gpu["spec"]["tolerations"] and gpu["spec"]["nodeSelector"]

    spawner.apply_session(flavors["cpu-small"], images["python-cpu"], "acme-vision")
    cpu = await manifest(spawner)
    container = cpu["spec"]["containers"][0]
    assert not any(key.startswith("nvidia.com/") for key in container["resources"]["limits"])
    assert not any(key.startswith("nvidia.com/") for key in container["resources"]["requests"])
    assert not cpu["spec"].get("tolerations")
    assert not cpu["spec"].get("nodeSelector")
    assert "activeDeadlineSeconds" not in cpu["spec"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "NVIDIA_DRIVER_CAPABILITIES" not in env
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["AITESTBED_FLAVOR"] == "cpu-small"
    # The environment the site configured stays across starts.
    assert env["AITESTBED_PORTAL_URL"] == settings.kubernetes.session_portal_url
    assert container["image"].endswith("notebook-cpu:0.1.0")
    dshm = next(v for v in cpu["spec"]["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"]["sizeLimit"] == "1Gi"

    spawner.apply_session(flavors["a100-1g-10gb"], images["pytorch"], "acme-vision")
    mig = (await manifest(spawner))["spec"]["containers"][0]["resources"]
    assert mig["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert "nvidia.com/gpu" not in mig["limits"]


async def test_capacity_from_the_cluster_is_cached_and_refreshed(tmp_path, double):
    settings = production_settings(tmp_path)
    flavors, images = catalog(settings)
    double.add_node("a100-1", A100, {"nvidia.com/gpu": "8"})
    double.add_node("a100-mig", A100, {"nvidia.com/mig-1g.10gb": "7"})
    running_pod(double, "someone-else", node="a100-1", gpus=6)
    spawner = make_spawner(settings, double.url)
    spawner.capacity_cache_seconds = 60
    wanted = [flavors[s] for s in ("cpu-small", "a100-1g-10gb", "a100x1", "a100x4", "h100x8")]

    first = await spawner.capacity({}, wanted)
    assert first == {
        "cpu-small": None,
        "a100-1g-10gb": (7, 7),
        "a100x1": (2, 8),
        "a100x4": (0, 2),
        "h100x8": (0, 0),
    }
    # Within the cache time, a class's spawn pages cost no new reads...
    reads = sum("/api/v1/nodes" in path for _m, path in double.requests)
    running_pod(double, "another", node="a100-1", gpus=2)
    assert await spawner.capacity({}, wanted) == first
    assert sum("/api/v1/nodes" in path for _m, path in double.requests) == reads
    # ... but a start of ours forgets the cache, so the next reader sees the new pod.
    spawner.apply_session(flavors["a100x1"], images["pytorch"], "acme-vision")
    assert (await spawner.capacity({}, wanted))["a100x1"] == (0, 8)


async def test_capacity_unknown_when_the_api_cannot_be_read(tmp_path, double):
    settings = production_settings(tmp_path)
    flavors, _ = catalog(settings)
    spawner = make_spawner(settings, double.url)
    await double.stop()  # the API goes away
    assert await spawner.capacity({}, [flavors["a100x1"]]) == {}


async def test_lifetime_limit_stops_the_session(tmp_path, double):
    settings = production_settings(tmp_path)
    spawner = make_spawner(settings, double.url)
    running_pod(double, spawner.pod_name)
    assert await spawner.poll() is None  # running, within its lifetime
    spawner.session_deadline = time.time() - 1
    assert await spawner.poll() == 0
    assert spawner.pod_name not in double.pods()
    assert any(m == "DELETE" and spawner.pod_name in p for m, p in double.requests)
    state = PortalKubeSpawner.get_state(spawner)
    assert state["session_deadline"] == spawner.session_deadline


async def test_progress_shows_kubernetes_events(tmp_path, double):
    settings = production_settings(tmp_path)
    spawner = make_spawner(settings, double.url)
    pod = running_pod(double, spawner.pod_name)
    double.record_event(pod, "Pulling", 'Pulling image "notebook-pytorch:0.1.0"')
    spawner._queue_ticket = None
    spawner._start_future = asyncio.get_running_loop().create_future()
    messages = []

    async def collect():
        async for event in spawner.progress():
            messages.append(event["message"])
            if "Pulling image" in event["message"]:
                spawner._start_future.set_result(None)

    await asyncio.wait_for(collect(), timeout=30)
    assert messages[0] == "Starting your session ..."
    assert any("[Normal] Pulling image" in m for m in messages)


async def test_capacity_says_why_it_is_not_shown(tmp_path, double):
    """Without the chart's ClusterRole the API answers 403; with the setting off the hub
    does not ask at all. Either way the spawn page gets one sentence saying why."""
    from aitestbed.hub.kube_spawner import CAPACITY_FORBIDDEN, CAPACITY_OFF

    from tests.kube.k8s_double import Grant

    settings = production_settings(tmp_path)
    flavors, _ = catalog(settings)
    double.add_node("a100-1", A100, {"nvidia.com/gpu": "8"})
    spawner = make_spawner(settings, double.url)
    PortalKubeSpawner._cluster_cache.clear()
    # The namespaced Role only (as the chart with hub.rbac.readClusterCapacity: false).
    double.grants = [Grant("aitestbed", ("",), ("pods", "events"), ("get", "list", "watch"))]
    assert await spawner.capacity({}, [flavors["a100x1"]]) == {}
    assert spawner.capacity_note == CAPACITY_FORBIDDEN
    assert double.denied == [("GET", "/api/v1/nodes")]

    double.grants = None
    assert (await spawner.capacity({}, [flavors["a100x1"]]))["a100x1"] == (8, 8)
    assert spawner.capacity_note == ""

    spawner.read_cluster_capacity = False
    reads = len(double.requests)
    assert await spawner.capacity({}, [flavors["a100x1"]]) == {}
    assert spawner.capacity_note == CAPACITY_OFF
    assert len(double.requests) == reads, "no read when the setting is off"
