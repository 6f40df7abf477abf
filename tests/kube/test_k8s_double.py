"""The API double keeps the contract KubeSpawner relies on (so the end-to-end tests mean
something): conflicts, missing namespaces, selectors, list + watch from a resourceVersion,
deletes, and a kubelet that reports what the pod's process does."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

NS = "/api/v1/namespaces/aitestbed"


def pod(name, argv, labels=None, deadline=None):
    spec = {"containers": [{"name": "notebook", "image": "x", "args": argv}]}
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


async def wait_for_phase(double, name, phases, timeout=30):
    for _ in range(int(timeout / 0.1)):
        found = double.pods().get(name)
        if found and found["status"]["phase"] in phases:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never reached {phases}: {double.pods().get(name)}")


async def test_create_conflict_missing_namespace_and_delete(double):
    claim = {"metadata": {"name": "claim-alice"}, "spec": {}}
    async with aiohttp.ClientSession(double.url) as http:
        first = await http.post(f"{NS}/persistentvolumeclaims", json=claim)
        assert first.status == 201
        created = await first.json()
        assert created["metadata"]["namespace"] == "aitestbed"
        assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
        again = await http.post(f"{NS}/persistentvolumeclaims", json=claim)
        assert again.status == 409 and (await again.json())["reason"] == "AlreadyExists"
        nowhere = await http.post("/api/v1/namespaces/nope/pods", json=pod("p", ["true"]))
        assert nowhere.status == 404
        gone = await http.delete(f"{NS}/pods/never-made")
        assert gone.status == 404
        deleted = await http.delete(f"{NS}/persistentvolumeclaims/claim-alice")
        assert deleted.status == 200
        assert (await http.get(f"{NS}/persistentvolumeclaims/claim-alice")).status == 404


async def test_list_with_selectors_then_watch_from_its_resource_version(double):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    async with aiohttp.ClientSession(double.url) as http:
        await http.post(f"{NS}/pods", json=pod("a", sleeper, {"component": "singleuser-server"}))
        await http.post(f"{NS}/pods", json=pod("b", sleeper, {"component": "other"}))
        listed = await (
            await http.get(f"{NS}/pods", params={"labelSelector": "component=singleuser-server"})
        ).json()
        assert [p["metadata"]["name"] for p in listed["items"]] == ["a"]
        since = listed["metadata"]["resourceVersion"]
        await http.delete(f"{NS}/pods/a")
        watch = await http.get(
            f"{NS}/pods",
            params={
                "watch": "True",
                "resourceVersion": since,
                "timeoutSeconds": "1",
                "labelSelector": "component=singleuser-server",
            },
        )
        lines = [json.loads(line) for line in (await watch.text()).splitlines()]
    # Only changes after the list, only pod "a", and the stream ended at its timeout.
    assert lines and all(e["object"]["metadata"]["name"] == "a" for e in lines)
    assert all(int(e["object"]["metadata"]["resourceVersion"]) > int(since) for e in lines)
    assert lines[-1]["type"] == "DELETED"


async def test_kubelet_reports_exit_codes_and_enforces_the_deadline(double):
    fails = [sys.executable, "-c", "raise SystemExit(3)"]
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    async with aiohttp.ClientSession(double.url) as http:
        await http.post(f"{NS}/pods", json=pod("fails", fails))
        await http.post(f"{NS}/pods", json=pod("overstays", sleeper, deadline=1))
    failed = await wait_for_phase(double, "fails", ("Failed",))
    assert failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    ended = await wait_for_phase(double, "overstays", ("Failed",))
    assert ended["status"]["reason"] == "DeadlineExceeded"
    reasons = [e["reason"] for (_ns, _n), e in double.objects["events"].items()]
    assert "DeadlineExceeded" in reasons and "Started" in reasons


async def test_a_deleted_pods_process_does_not_touch_its_successor(double):
    """KubeSpawner recreates a pod of the same name right after a stop; the old process
    ending later must not mark the new pod as terminated."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    async with aiohttp.ClientSession(double.url) as http:
        await http.post(f"{NS}/pods", json=pod("same", sleeper))
        old = await wait_for_phase(double, "same", ("Running",))
        await http.delete(f"{NS}/pods/same")
        assert (await http.post(f"{NS}/pods", json=pod("same", sleeper))).status == 201
    for _ in range(100):  # until the old process is gone
        if old["metadata"]["uid"] not in double.processes:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    new = await wait_for_phase(double, "same", ("Running",))
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert "running" in new["status"]["containerStatuses"][0]["state"]
    assert len(double.processes) == 1


ROLE_OBJECTS = [
    {
        "kind": "Role",
        "metadata": {"name": "hub", "namespace": "aitestbed"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create"]}],
    },
    {
        "kind": "RoleBinding",
        "metadata": {"name": "hub", "namespace": "aitestbed"},
        "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "aitestbed"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"},
    },
    {
        "kind": "ClusterRole",
        "metadata": {"name": "capacity"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
    },
    {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "capacity"},
        "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "aitestbed"}],
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "capacity",
        },
    },
    {  # another account's binding grants the hub nothing
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "other"},
        "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": "aitestbed"}],
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "capacity",
        },
    },
]


async def test_rbac_allows_what_the_bound_roles_grant_and_nothing_else(double):
    from tests.kube.k8s_double import grants_from_manifests

    double.grants = grants_from_manifests(ROLE_OBJECTS, "hub", "aitestbed")
    double.subject = "system:serviceaccount:aitestbed:hub"
    async with aiohttp.ClientSession(double.url) as http:
        assert (await http.get(f"{NS}/pods")).status == 200
        assert (await http.get("/api/v1/nodes")).status == 200
        for method, path in [
            ("GET", f"{NS}/pods?watch=true"),  # watch is not granted
            ("GET", "/api/v1/pods"),  # all namespaces: only a ClusterRole could grant it
            ("GET", "/api/v1/namespaces/default/pods"),  # another namespace
            ("DELETE", f"{NS}/pods/x"),
            ("GET", f"{NS}/persistentvolumeclaims"),
            ("GET", "/api/v1/nodes/n1"),  # get, not list
        ]:
            response = await http.request(method, path)
            assert response.status == 403, (method, path)
            body = await response.json()
            assert body["reason"] == "Forbidden"
        assert body["message"] == (
            'nodes is forbidden: User "system:serviceaccount:aitestbed:hub" cannot get '
            'resource "nodes" in API group "" at the cluster scope'
        )
    assert len(double.denied) == 6
