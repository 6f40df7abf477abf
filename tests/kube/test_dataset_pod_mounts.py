"""The session pod mounts exactly the datasets the portal allows, read-only, per user.

The chain is the real one minus the hub: the portal's internal session endpoint (a real
database, the real policy) decides a start and answers the datasets; the Kubernetes
spawner applies that answer and KubeSpawner builds the pod, which is then checked for its
dataset volumes and validated against the Kubernetes schemas (strict) and checkov.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from aitestbed.policy.mounts import parse_mounts
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from kubernetes_asyncio.client import ApiClient

from tests.conftest import EXAMPLE_SETTINGS
from tests.datasets_support import accept_terms, dataset_section
from tests.jobs_support import write_settings
from tests.kube.spawners import flavor_spec, image_spec, make_spawner, production_settings
from tests.kube.test_pod_manifests import NOWHERE, checkov_report, justified_skips
from tests.unit.test_portal_api import PREFIX, TableIdentity

HUB = {"Authorization": "token hub-secret"}
STORAGE = {
    "iris": {"kind": "host_path", "path": "/srv/datasets/iris"},
    "wine": {"kind": "nfs", "server": "nfs.example.org", "path": "/export/datasets/wine"},
    "digits": {"kind": "pvc", "claim": "datasets", "sub_path": "digits/v1"},
}
EXTRA = [  # public, but its files are on the portal's machine only: no pod can mount it
    {
        "slug": "toy",
        "title": "Toy",
        "visibility": "public",
        "storage": {"kind": "local", "path": "toy"},
    }
]


@pytest.fixture
def portal(tmp_path, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(tmp_path / "state")
    doc["datasets"] = dataset_section(STORAGE) + EXTRA
    engine = prepare_database(load_settings(write_settings(tmp_path / "settings.yaml", doc)))
    app = create_app(
        engine=engine, identity=TableIdentity(), prefix=PREFIX, internal_token="hub-secret"
    )
    with TestClient(app) as client:
        yield client, session_factory(engine)
    engine.dispose()


async def pod_for(client, tmp_path, user: str, project: str) -> tuple[dict, list[str]]:
    """Admit a start of ``user`` in ``project`` and build the pod the spawner makes of it;
    returns the pod and the spawner's notes about datasets that are not mounted."""
    body = {"user": user, "project": project, "flavor": "cpu-small", "image": "python-cpu"}
    answer = client.post(PREFIX + "api/internal/sessions", json=body, headers=HUB)
    assert answer.status_code == 201, answer.text
    settings = production_settings(tmp_path / "kube-state")
    spawner = make_spawner(settings, NOWHERE, user=user)
    spawner.namespace = settings.kubernetes.namespace
    spawner.dataset_notes = []
    flavor = next(f for f in settings.flavors if not f.gpus and not f.mig_profile)
    spawner.apply_session(
        flavor_spec(flavor),
        image_spec(settings.images[0]),
        project,
        parse_mounts(answer.json()["datasets"]),
    )
    pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
    pod["metadata"]["namespace"] = spawner.namespace
    return pod, list(spawner.dataset_notes)


def dataset_mounts(pod: dict) -> dict[str, dict]:
    (container,) = pod["spec"]["containers"]
    return {
        m["mountPath"]: m
        for m in container["volumeMounts"]
        if m["mountPath"].startswith("/datasets")
    }


def dataset_volumes(pod: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod["spec"]["volumes"] if v["name"].startswith("ds-")}


def environment(pod: dict) -> dict[str, str]:
    (container,) = pod["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


async def test_each_user_gets_exactly_their_datasets_read_only(portal, tmp_path, double):
    client, sessions = portal
    pods = {}
    pods["alice"], _ = await pod_for(client, tmp_path, "alice", "acme-vision")
    pods["bob-nlp"], _ = await pod_for(client, tmp_path, "bob", "uni-nlp")
    pods["bob-vision"], _ = await pod_for(client, tmp_path, "bob", "acme-vision")
    with sessions() as session, session.begin():
        accept_terms(session, "alice", "digits")
    pods["alice-accepted"], notes = await pod_for(client, tmp_path, "alice", "acme-vision")
    expected = {
        "alice": ["/datasets/iris"],  # digits: terms not accepted
        "bob-nlp": ["/datasets/iris", "/datasets/wine"],  # digits: not uni-nlp's
        "bob-vision": ["/datasets/iris"],  # wine: not acme-vision's; digits: no terms
        "alice-accepted": ["/datasets/digits", "/datasets/iris"],
    }
    for name, pod in pods.items():
        mounts = dataset_mounts(pod)
        assert sorted(mounts) == expected[name], name
        assert all(m["readOnly"] is True for m in mounts.values()), name
        assert len(dataset_volumes(pod)) == len(mounts), name
        env = environment(pod)
        assert env["AITESTBED_DATASETS_DIR"] == "/datasets"
        assert env["AITESTBED_DATASETS"] == ",".join(p.rsplit("/", 1)[1] for p in expected[name])
    volumes = dataset_volumes(pods["alice-accepted"]) | dataset_volumes(pods["bob-nlp"])
    assert volumes["ds-digits"]["persistentVolumeClaim"] == {
        "claimName": "datasets",
        "readOnly": True,
    }
    assert dataset_mounts(pods["alice-accepted"])["/datasets/digits"]["subPath"] == "digits/v1"
    assert volumes["ds-wine"]["nfs"] == {
        "server": "nfs.example.org",
        "path": "/export/datasets/wine",
        "readOnly": True,
    }
    assert volumes["ds-iris"]["hostPath"] == {"path": "/srv/datasets/iris", "type": "Directory"}
    # toy is allowed for everyone but cannot reach a pod: not mounted, and the user is told.
    assert "ds-toy" not in volumes
    assert any(n.startswith("toy is not mounted") for n in notes)

    version = kubernetes_validate.latest_version()
    for name, pod in pods.items():
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {list(error.path)}")
    unexplained = checkov_findings(pods, tmp_path)
    assert not unexplained, f"checkov findings without a justified exception: {unexplained}"


async def test_a_second_start_does_not_keep_the_first_starts_datasets(portal, tmp_path, double):
    client, _ = portal
    settings = production_settings(tmp_path / "kube-state")
    spawner = make_spawner(settings, NOWHERE, user="bob")
    spawner.namespace = settings.kubernetes.namespace
    flavor = flavor_spec(next(f for f in settings.flavors if not f.gpus and not f.mig_profile))
    image = image_spec(settings.images[0])
    for project, expected in (("uni-nlp", ["iris", "wine"]), ("acme-vision", ["iris"])):
        body = {"user": "bob", "project": project, "flavor": "cpu-small", "image": "python-cpu"}
        answer = client.post(PREFIX + "api/internal/sessions", json=body, headers=HUB).json()
        spawner.apply_session(flavor, image, project, parse_mounts(answer["datasets"]))
        pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
        assert sorted(dataset_mounts(pod)) == [f"/datasets/{s}" for s in expected]
        assert sorted(dataset_volumes(pod)) == [f"ds-{s}" for s in expected]


def checkov_findings(pods: dict[str, dict], tmp_path) -> list[str]:
    """checkov's failed checks on the pods that the justified exceptions do not cover."""
    _, failed = checkov_report(pods, tmp_path / "dataset-manifests")
    skips = justified_skips()
    return sorted(f"{cid} {name}" for cid, name in failed if cid not in skips)
