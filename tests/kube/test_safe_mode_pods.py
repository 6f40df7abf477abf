"""A safe-mode session on Kubernetes: the portal decides it at admission (a pseudonymized
dataset is mounted), the spawner labels the pod and sets the safe-mode environment and
server arguments, and the chart's NetworkPolicies then let that pod reach only the hub,
the portal and the cluster DNS, even where ordinary sessions may reach the internet.

The pod comes from KubeSpawner (through the API double's fixtures) and is validated
against the Kubernetes schemas; which policies select it is evaluated from the chart that
real helm renders (tests/kube/network_reach.py). No network plugin runs here: whether a
cluster enforces NetworkPolicies at all is the cluster's (docs/kubernetes.md).
"""

from __future__ import annotations

from datetime import date, timedelta

import kubernetes_validate
import pytest
import yaml
from aitestbed.policy.mounts import parse_mounts
from aitestbed.policy.safezone import SAFE_MODE_ARGS
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from kubernetes_asyncio.client import ApiClient

from tests.chart.conftest import TOOLS, find_tool, template
from tests.conftest import EXAMPLE_SETTINGS
from tests.datasets_support import accept_terms, dataset_section
from tests.jobs_support import write_settings
from tests.kube.network_reach import egress_rules, policies_for
from tests.kube.spawners import flavor_spec, image_spec, make_spawner, production_settings
from tests.kube.test_dataset_pod_mounts import STORAGE, environment
from tests.kube.test_pod_manifests import NOWHERE
from tests.unit.test_portal_api import PREFIX, TableIdentity

HUB = {"Authorization": "token hub-secret"}
FULLNAME = "portal-aitestbed"
HUB_PEER = {
    "podSelector": {"matchLabels": {"app": "aitestbed", "release": "portal", "component": "hub"}}
}


@pytest.fixture
def portal(tmp_path, monkeypatch):
    """digits is pseudonymized and granted to acme-vision with a purpose until next year."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(tmp_path / "state")
    doc["datasets"] = dataset_section(STORAGE)
    until = (date.today() + timedelta(days=365)).isoformat()
    for dataset in doc["datasets"]:
        if dataset["slug"] == "digits":
            dataset["class"] = "pseudonymized"
            dataset["purposes"] = {"acme-vision": {"purpose": "ocr study", "expires": until}}
    engine = prepare_database(load_settings(write_settings(tmp_path / "settings.yaml", doc)))
    app = create_app(
        engine=engine, identity=TableIdentity(), prefix=PREFIX, internal_token="hub-secret"
    )
    with TestClient(app) as client:
        yield client, session_factory(engine)
    engine.dispose()


async def admitted_pod(client, spawner, settings, user: str, project: str) -> dict:
    body = {"user": user, "project": project, "flavor": "cpu-small", "image": "python-cpu"}
    answer = client.post(PREFIX + "api/internal/sessions", json=body, headers=HUB)
    assert answer.status_code == 201, answer.text
    spawner.safe_mode = answer.json()["safe_mode"]  # as PolicySpawnerMixin.admit_session
    flavor = next(f for f in settings.flavors if not f.gpus and not f.mig_profile)
    spawner.apply_session(
        flavor_spec(flavor),
        image_spec(settings.images[0]),
        project,
        parse_mounts(answer.json()["datasets"]),
    )
    return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())


@pytest.fixture(scope="module")
def chart_policies(tmp_path_factory):
    """The chart's NetworkPolicies where ordinary sessions may reach the internet, a
    private range and slurmrestd: the safe-mode pod must still reach none of them."""
    helm = find_tool("helm", TOOLS / "bin" / "helm")
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "singleuser": {"networkPolicy": {"internet": True, "egressCIDRs": ["10.9.0.0/16"]}},
                "slurm": {"enabled": True, "restdCIDRs": ["10.1.2.0/24"]},
            }
        )
    )
    done = template(helm, values)
    assert done.returncode == 0, done.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


async def test_the_safe_session_pod_reaches_only_hub_portal_and_dns(
    portal, tmp_path, double, chart_policies
):
    client, sessions = portal
    settings = production_settings(tmp_path / "kube-state")
    spawner = make_spawner(settings, NOWHERE, user="alice")
    spawner.namespace = settings.kubernetes.namespace
    spawner.dataset_notes = []
    configured_args = list(spawner.args)
    ordinary = await admitted_pod(client, spawner, settings, "alice", "acme-vision")
    with sessions() as session, session.begin():
        accept_terms(session, "alice", "digits")
    safe = await admitted_pod(client, spawner, settings, "alice", "acme-vision")
    again = await admitted_pod(client, spawner, settings, "bob", "uni-nlp")

    assert safe["metadata"]["labels"]["aitestbed.example/safe-mode"] == "true"
    assert "aitestbed.example/safe-mode" not in ordinary["metadata"]["labels"]
    assert "aitestbed.example/safe-mode" not in again["metadata"]["labels"]
    env = environment(safe)
    assert (env["AITESTBED_SAFE_MODE"], env["AITESTBED_OUTBOX"]) == ("1", "/project/outbox")
    assert "AITESTBED_SAFE_MODE" not in environment(ordinary)
    (container,) = safe["spec"]["containers"]
    assert container["args"][-len(SAFE_MODE_ARGS) :] == list(SAFE_MODE_ARGS)
    (plain,) = again["spec"]["containers"]
    assert not set(SAFE_MODE_ARGS) & set(plain["args"])  # the next start is not safe
    assert spawner.args == configured_args  # the configured arguments stay as they were
    for pod in (safe, ordinary):
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)

    names = [
        p["metadata"]["name"] for p in policies_for(chart_policies, safe["metadata"]["labels"])
    ]
    assert names == [f"{FULLNAME}-singleuser-safe-mode"]
    rules = egress_rules(chart_policies, safe["metadata"]["labels"])
    assert rules == [
        {
            "to": [HUB_PEER],
            "ports": [{"port": 8081, "protocol": "TCP"}, {"port": 8090, "protocol": "TCP"}],
        },
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        },
    ]
    # The ordinary session of the same release may reach the internet: another policy.
    names = [
        p["metadata"]["name"] for p in policies_for(chart_policies, ordinary["metadata"]["labels"])
    ]
    assert names == [f"{FULLNAME}-singleuser"]
    cidrs = {
        peer["ipBlock"]["cidr"]
        for rule in egress_rules(chart_policies, ordinary["metadata"]["labels"])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    }
    assert {"0.0.0.0/0", "10.9.0.0/16", "10.1.2.0/24"} <= cidrs
