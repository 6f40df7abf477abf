"""The production path as one piece: docs/deploy.md's example values, rendered by the real
helm, run by a real hub against the Kubernetes API double (tests/kube/k8s_double.py), which
enforces the chart's own RBAC for the hub's service account; a session pod (a real
single-user server run by the double's kubelet) reaches the portal through the Service the
chart defines.

What the test runs as rendered: the settings ConfigMap, the hub container's environment
(plain values, the namespace, and every Secret key, from a Secret made as the docs' kubectl
command makes it), the Role/ClusterRole rules, the portal Service's name and port, the
ServiceMonitor's token. What it replaces, because this machine is not a cluster: ports and
the state folder (free local ones), the Kubernetes API URL (the double), the login (the
example's issuer sso.example.org does not exist here: a demo login for alice; OIDC is tested
in tests/oidc/), the job backend (the example's slurmrestd at 10.1.2.3 does not exist here:
the local backend; Slurm is tested in tests/slurm/), and the databases (SQLite in the state
folder instead of the example's PostgreSQL; the URLs' path from the Secret is checked here
statically and by test_render.py). The hub's topology arguments (hub on 0.0.0.0:8081, the
proxy as its own Deployment) are the harness's local ones.

Service DNS: the double maps the portal Service's cluster names on its port
(portal-aitestbed-portal:8090 and the .aitestbed.svc.cluster.local forms) to the local
portal, as the cluster DNS and kube-proxy would (see KubeDouble.add_service); the hub's
AITESTBED_PORTAL_SERVICE_URL, read by the local proxy (Node, not a pod), is translated the
same way here. NetworkPolicies are not enforced by the double: test_network_policies.py
computes them, and this test checks that the session pod the hub made is selected by them
and allowed to the portal's pod and port.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import sys

import pytest
import requests
import yaml

from tests.harness import free_port, running_portal, wait_until
from tests.kube.k8s_double import grants_from_manifests, running_double, write_kubeconfig

from .conftest import FULLNAME, NAMESPACE, ROOT, Render, template
from .netpol import Cluster, Pod

pytestmark = [pytest.mark.chart, pytest.mark.integration]

EXAMPLE = ROOT / "docs" / "examples" / "site-values.yaml"
HUB = f"{FULLNAME}-hub"
USERS = {"alice": "alice-pw", "ops-oncall": "ops-pw"}
A100 = "NVIDIA-A100-SXM4-80GB"


def docs_secret_keys() -> set[str]:
    """The keys the docs' `kubectl create secret generic aitestbed-secrets` command makes."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    command = re.search(
        r"kubectl -n aitestbed create secret generic aitestbed-secrets.*?\n```", text, re.S
    )
    assert command, "docs/deploy.md shows the command that creates the Secret"
    words = shlex.split(command.group(0).replace("\\\n", " ").removesuffix("```"))
    return {w.split("=", 2)[1] for w in words if w.startswith(("--from-literal=", "--from-file="))}


def test_the_docs_show_the_example_file_unchanged():
    text = (ROOT / "docs" / "deploy.md").read_text()
    shown = text.split("(`tests/chart/test_production_path.py`)", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", shown, re.S)
    assert block, "docs/deploy.md shows the example values"
    assert block.group(1) == EXAMPLE.read_text()


@pytest.fixture(scope="module")
def rendered(helm) -> Render:
    done = template(helm, EXAMPLE)
    assert done.returncode == 0, done.stderr
    objects = [d for d in yaml.safe_load_all(done.stdout) if d]
    return Render("docs-example", EXAMPLE, done.stdout, objects)


def test_every_secret_key_the_chart_reads_is_made_by_the_docs_command(rendered):
    pod = rendered.one("Deployment", HUB)["spec"]["template"]["spec"]
    used = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for c in pod["containers"]
        for e in c["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    used |= {
        item["key"]
        for v in pod["volumes"]
        if "secret" in v
        for item in v["secret"].get("items", [])
    }
    monitor = rendered.one("ServiceMonitor", HUB)["spec"]["endpoints"][0]
    used.add(monitor["authorization"]["credentials"]["key"])
    names = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for c in pod["containers"]
        for e in c["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert names == {"aitestbed-secrets"}
    assert used == {
        "cookie-secret",
        "crypt-key",
        "proxy-token",
        "metrics-token",
        "oidc-client-secret",
        "slurm-jwt-key",
        "hub-database-url",
        "portal-database-url",
    }
    assert used <= docs_secret_keys()


def operator_secret() -> dict[str, str]:
    """The Secret as the docs' command makes it (values of the right shape)."""
    return {
        "cookie-secret": secrets.token_hex(32),
        "crypt-key": secrets.token_hex(32),
        "proxy-token": secrets.token_hex(32),
        "metrics-token": secrets.token_hex(32),
        "oidc-client-secret": "from-the-identity-provider",
        "slurm-jwt-key": secrets.token_hex(32),
    }


def hub_environment(rendered: Render, secret: dict[str, str], translate) -> dict[str, str]:
    """The hub container's environment as the kubelet would give it."""
    container = rendered.one("Deployment", HUB)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for entry in container["env"]:
        name = entry["name"]
        if "value" in entry:
            env[name] = translate(entry["value"])
        elif "fieldRef" in entry["valueFrom"]:
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
            env[name] = NAMESPACE
        else:
            key = entry["valueFrom"]["secretKeyRef"]["key"]
            if key.endswith("-database-url"):
                continue  # SQLite in the test's state folder (see the module docstring)
            env[name] = secret[key]
    env.pop("HOME")  # /tmp in the pod; the harness's own here
    return env


@pytest.fixture(scope="module")
def site(rendered, tmp_path_factory):
    """The double with the chart's RBAC and portal Service, and the hub on the rendered
    settings."""
    workdir = tmp_path_factory.mktemp("production")
    settings = yaml.safe_load(
        rendered.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    )
    service = rendered.one("Service", f"{FULLNAME}-portal")
    service_port = service["spec"]["ports"][0]["port"]
    portal_port, hub_port = free_port(), free_port()
    local_portal = f"http://127.0.0.1:{portal_port}"
    service_url = f"http://{service['metadata']['name']}:{service_port}"

    def translate(value: str) -> str:
        return value.replace(service_url, local_portal)

    secret = operator_secret()
    with running_double(workdir / "double", namespaces=("default", NAMESPACE)) as k8s:
        double = k8s.double
        k8s.call(
            double.add_node,
            "gpu-node-1",
            {"nvidia.com/gpu.product": A100},
            {"nvidia.com/gpu": "4", "cpu": "64", "memory": "512Gi"},
        )
        grants = grants_from_manifests(rendered.objects, HUB, NAMESPACE)
        double.subject = f"system:serviceaccount:{NAMESPACE}:{HUB}"
        double.grants = grants
        for host in (service["metadata"]["name"], f"{service['metadata']['name']}.{NAMESPACE}"):
            k8s.call(
                double.add_service,
                host.split(".")[0],
                NAMESPACE,
                service_port,
                "127.0.0.1",
                portal_port,
            )
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", double.url)
        kube = dict(settings["kubernetes"], api_url=double.url)
        site_keys = {
            k: v for k, v in settings["site"].items() if k not in ("bind_url", "state_dir")
        }
        site_keys |= {
            "hub_port": hub_port,
            "portal_port": portal_port,
            "proxy_api_port": free_port(),
        }
        sections = {
            key: value
            for key, value in settings.items()
            if key not in ("site", "authentication", "jobs")
        }
        sections["kubernetes"] = kube
        sections.setdefault("datasets", [])  # none in the example (the harness has demo ones)
        env = hub_environment(rendered, secret, translate) | {"KUBECONFIG": str(kubeconfig)}
        with running_portal(
            workdir / "hub", USERS, sections=sections, env=env, **site_keys
        ) as portal:
            yield portal, k8s, settings, secret, service


def test_a_session_reaches_the_portal_through_the_chart_service(site, rendered):
    portal, k8s, settings, _secret, service = site
    double = k8s.double
    session = portal.login("alice", USERS["alice"])

    # The spawn page shows the free GPUs: the ClusterRole lets the hub list nodes and pods.
    page = session.get(f"{portal.url}/hub/spawn", timeout=60)
    assert page.status_code == 200
    assert re.search(
        r"<b>1 x A100 80GB</b><br><span class='aitb-muted'>[^<]*4 of 4 free now", page.text
    ), page.text[:3000]
    assert "aitb-capacity-note" not in page.text

    response = session.post(
        f"{portal.url}/hub/api/users/alice/server",
        json={"project": "acme-vision", "flavor": "cpu-small", "image": "python-cpu"},
        timeout=120,
    )
    assert response.status_code in (201, 202), response.text
    wait_until(
        lambda: (
            session.get(f"{portal.url}/hub/api/users/alice", timeout=10)
            .json()["servers"]
            .get("", {})
            .get("ready")
        ),
        timeout=120,
        what="alice's session pod",
    )
    pod = k8s.call(lambda: double.received_pods[-1])
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    # The session's portal URL names the chart's portal Service on its port.
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    expected = f"http://{name}:{port}/services/portal/"
    assert env["AITESTBED_PORTAL_URL"] == expected == settings["kubernetes"]["session_portal_url"]

    # Inside the session (kubectl exec): a real request through the Service name.
    probe = (
        "import json, os, requests\n"
        "from aitestbed.notebook.client import PortalClient\n"
        "health = requests.get(os.environ['AITESTBED_PORTAL_URL'] + 'api/health', timeout=20)\n"
        "print(json.dumps({'url': os.environ['AITESTBED_PORTAL_URL'], 'health': health.status_code,"
        " 'me': PortalClient().me()}))\n"
    )
    code, out, err = k8s.call(double.exec, "jupyter-alice", [sys.executable, "-c", probe])
    assert code == 0, err
    seen = json.loads(out)
    assert seen["url"] == expected
    assert seen["health"] == 200
    assert seen["me"]["name"] == "alice"
    assert [p["slug"] for p in seen["me"]["projects"]] == ["acme-vision"]

    # The session pod is one the chart's NetworkPolicies select, and they let it reach the
    # pod behind the portal Service on the Service's target port.
    hub_deployment = rendered.one("Deployment", HUB)["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"] for p in hub_deployment["spec"]["containers"][0]["ports"]
    }
    target_port = ports[service["spec"]["ports"][0]["targetPort"]]
    assert service["spec"]["selector"].items() <= hub_deployment["metadata"]["labels"].items()
    cluster = Cluster(rendered.find("NetworkPolicy"))
    session_pod = Pod("session", NAMESPACE, pod["metadata"]["labels"], "10.244.0.4")
    hub_pod = Pod("hub", NAMESPACE, hub_deployment["metadata"]["labels"], "10.244.0.2")
    selected = [
        p["metadata"]["name"]
        for p in rendered.find("NetworkPolicy")
        if all(
            pod["metadata"]["labels"].get(k) == v
            for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items()
        )
        and p["spec"]["podSelector"].get("matchLabels")
    ]
    assert selected == [f"{FULLNAME}-singleuser"]
    assert cluster.allowed(session_pod, hub_pod, target_port)

    stop = session.delete(f"{portal.url}/hub/api/users/alice/server", timeout=60)
    assert stop.status_code in (202, 204), stop.text
    wait_until(
        lambda: "jupyter-alice" not in k8s.call(double.pods), timeout=60, what="the pod deleted"
    )

    # Every call the hub made was allowed by the chart's Role and ClusterRole, and the
    # cluster-wide reads were among them.
    assert k8s.call(lambda: list(double.denied)) == []
    made = k8s.call(lambda: list(double.requests))
    assert any(path.startswith("/api/v1/nodes") for _m, path in made)
    assert any(path.startswith("/api/v1/pods?") for _m, path in made)


def test_metrics_need_the_monitoring_token(site, rendered):
    portal, _k8s, _settings, secret, _service = site
    monitor = rendered.one("ServiceMonitor", HUB)["spec"]["endpoints"][0]
    assert monitor["path"] == "/hub/metrics"
    assert monitor["authorization"]["type"] == "Bearer"
    token = secret[monitor["authorization"]["credentials"]["key"]]

    anonymous = requests.get(f"{portal.url}/hub/metrics", timeout=30)
    assert anonymous.status_code == 403
    alice = portal.login("alice", USERS["alice"])
    assert alice.get(f"{portal.url}/hub/metrics", timeout=30).status_code == 403
    scraped = requests.get(
        f"{portal.url}/hub/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert scraped.status_code == 200
    assert "jupyterhub_" in scraped.text
    # The token may read metrics and nothing else.
    users = requests.get(
        f"{portal.url}/hub/api/users", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert users.status_code == 403
