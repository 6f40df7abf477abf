"""KubeSpawner end to end against the Kubernetes API double (tests/kube/k8s_double.py):
the real hub, proxy and portal service start a GPU-flavor session whose fake kubelet runs
a real single-user server; the request reaches it through the proxy; stop removes the pod
and keeps the home volume claim. A flavor the cluster has no room for is refused at once.

The double does not schedule, give devices, pull images, check RBAC, network policies,
PVC binding or admission (see its docstring): these tests prove what the hub asks of
Kubernetes and that the session works once a pod runs, not that a cluster would run it.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import time

import pytest

from tests.harness import running_portal, wait_until
from tests.kube.k8s_double import running_double, write_kubeconfig

pytestmark = pytest.mark.integration

NAMESPACE = "aitestbed"
A100 = "NVIDIA-A100-SXM4-80GB"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The double with one A100 node: 2 whole GPUs, no MIG slices."""
    workdir = tmp_path_factory.mktemp("cluster")
    with running_double(workdir, namespaces=("default", NAMESPACE)) as k8s:
        k8s.call(
            k8s.double.add_node,
            "gpu-node-1",
            {"nvidia.com/gpu.product": A100, "kubernetes.io/hostname": "gpu-node-1"},
            {"nvidia.com/gpu": "2", "cpu": "64", "memory": "512Gi", "pods": "110"},
        )
        yield k8s, write_kubeconfig(workdir / "kubeconfig", k8s.double.url)


@pytest.fixture(scope="module")
def portal(cluster, tmp_path_factory):
    k8s, kubeconfig = cluster
    kubernetes = {"namespace": NAMESPACE, "api_url": k8s.double.url, "home_storage": "5Gi"}
    with running_portal(
        tmp_path_factory.mktemp("portal"),
        USERS,
        mode="kubernetes",
        sections={"kubernetes": kubernetes},
        env={"KUBECONFIG": str(kubeconfig)},
    ) as running:
        yield running


def user_model(portal, session, name):
    return session.get(f"{portal.url}/hub/api/users/{name}", timeout=10).json()


def progress_messages(portal, session, name) -> list[str]:
    """The messages of the hub's progress event stream, until it says ready (or failed)."""
    messages = []
    with session.get(
        f"{portal.url}/hub/api/users/{name}/server/progress", stream=True, timeout=120
    ) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[len("data:") :])
                messages.append(event.get("message", ""))
                if event.get("ready") or event.get("failed"):
                    break
    return messages


def test_gpu_session_runs_as_a_pod_and_stops(portal, cluster):
    k8s, _ = cluster
    session = portal.login("alice", USERS["alice"])
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        start = pool.submit(
            session.post,
            f"{portal.url}/hub/api/users/alice/server",
            json={"project": "acme-vision", "flavor": "a100x1", "image": "pytorch"},
            timeout=120,
        )
        # While it starts, the hub's progress stream shows the pod's Kubernetes events.
        wait_until(
            lambda: (
                start.done()
                or user_model(portal, session, "alice")["servers"].get("", {}).get("pending")
            ),
            timeout=60,
            interval=0.05,
            what="alice's start to begin",
        )
        messages = progress_messages(portal, session, "alice")
        response = start.result()
    assert response.status_code in (201, 202), response.text
    wait_until(
        lambda: user_model(portal, session, "alice")["servers"].get("", {}).get("ready"),
        timeout=120,
        what="alice's pod session",
    )
    print(f"pod session ready after {time.monotonic() - started:.1f} s; progress: {messages}")
    # The policy layer's own step, then the events the (fake) kubelet recorded for the pod.
    assert "Starting your session ..." in messages, messages
    assert any("[Normal] Started container notebook" in m for m in messages), messages

    # The request goes through the proxy to the single-user server the kubelet started
    # (a page visit first runs the server's OAuth handshake, as a browser does).
    lab = session.get(f"{portal.url}/user/alice/lab", timeout=60)
    assert lab.status_code == 200, lab.text[:500]
    status = session.get(f"{portal.url}/user/alice/api/status", timeout=30)
    assert status.status_code == 200, status.text

    pods = k8s.call(k8s.double.pods)
    assert list(pods) == ["jupyter-alice"]
    pod = k8s.call(lambda: k8s.double.received_pods[-1])
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == "aitestbed/notebook-pytorch:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": A100}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/dev/shm"] == "dshm" and mounts["/project"] == "project"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert volumes["project"]["persistentVolumeClaim"]["claimName"] == "project-acme-vision"
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "claim-alice"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["activeDeadlineSeconds"] == 24 * 3600  # a100x1: 24 hours in settings.yaml
    assert pod["metadata"]["labels"]["aitestbed.example/flavor"] == "a100x1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert env["AITESTBED_PROJECT"] == "acme-vision"

    # The progress stream asked Kubernetes for the pod's events (KubeSpawner's progress,
    # chained after the start queue's by the policy mixin).
    requests_seen = k8s.call(lambda: list(k8s.double.requests))
    assert any("/events?" in path and "watch=True" in path for _m, path in requests_seen)

    # Bob's spawn page counts the cluster: alice's pod holds one of the node's two GPUs,
    # and there are no MIG slices at all.
    bob = portal.login("bob", USERS["bob"])
    page = bob.get(f"{portal.url}/hub/spawn", timeout=60)
    assert page.status_code == 200
    card = r"<b>{}</b><br><span class='aitb-muted'>[^<]*{} free now"
    assert re.search(card.format("1 x A100 80GB", "1 of 2"), page.text), page.text[:3000]
    assert re.search(card.format(r"A100 MIG slice 1g\.10gb", "0 of 0"), page.text)

    stop = session.delete(f"{portal.url}/hub/api/users/alice/server", timeout=60)
    assert stop.status_code in (202, 204), stop.text
    wait_until(
        lambda: "" not in user_model(portal, session, "alice")["servers"],
        timeout=60,
        what="alice's session to stop",
    )
    assert k8s.call(k8s.double.pods) == {}
    pvcs = k8s.call(k8s.double.pvcs)
    assert "claim-alice" in pvcs, "the home volume claim is kept"
    assert pvcs["claim-alice"]["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_flavor_without_capacity_is_refused_at_once(portal, cluster):
    """The node has whole GPUs but no MIG slices: a MIG start cannot be placed."""
    k8s, _ = cluster
    session = portal.login("bob", USERS["bob"])
    before = len(k8s.call(lambda: k8s.double.received_pods))
    started = time.monotonic()
    response = session.post(
        f"{portal.url}/hub/api/users/bob/server",
        json={"project": "uni-nlp", "flavor": "a100-1g-10gb", "image": "python-cpu"},
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 409, response.text
    assert "a100-1g-10gb" in response.json()["message"]
    assert "no node in service" in response.json()["message"].lower()
    assert elapsed < 10, f"the refusal took {elapsed:.1f} s"
    assert len(k8s.call(lambda: k8s.double.received_pods)) == before, "no pod was created"
    assert "" not in user_model(portal, session, "bob")["servers"]


def test_session_pod_survives_a_hub_restart(portal, cluster):
    """Pods outlive the hub (cleanup_servers is off in Kubernetes mode): after a restart
    the hub finds the pod from its saved state and routes to it again."""
    k8s, _ = cluster
    session = portal.login("alice", USERS["alice"])
    response = session.post(
        f"{portal.url}/hub/api/users/alice/server",
        json={"project": "acme-vision", "flavor": "cpu-small", "image": "python-cpu"},
        timeout=120,
    )
    assert response.status_code in (201, 202), response.text
    wait_until(
        lambda: user_model(portal, session, "alice")["servers"].get("", {}).get("ready"),
        timeout=120,
        what="alice's CPU pod session",
    )
    cpu = k8s.call(lambda: k8s.double.received_pods[-1])["spec"]["containers"][0]
    assert not any(r.startswith("nvidia.com/") for r in cpu["resources"]["limits"])
    uid = k8s.call(k8s.double.pods)["jupyter-alice"]["metadata"]["uid"]

    portal.restart()

    assert k8s.call(k8s.double.pods)["jupyter-alice"]["metadata"]["uid"] == uid
    session = portal.login("alice", USERS["alice"])
    assert user_model(portal, session, "alice")["servers"][""]["ready"]
    assert session.get(f"{portal.url}/user/alice/lab", timeout=60).status_code == 200
    assert session.get(f"{portal.url}/user/alice/api/status", timeout=30).status_code == 200

    stop = session.delete(f"{portal.url}/hub/api/users/alice/server", timeout=60)
    assert stop.status_code in (202, 204), stop.text
    wait_until(
        lambda: "jupyter-alice" not in k8s.call(k8s.double.pods),
        timeout=60,
        what="alice's pod to be deleted",
    )
