"""Jobs that name datasets: the gateway decides and audits each one; an allowed local job
reads its dataset through $AITESTBED_DATASETS_DIR; Slurm jobs get read-only binds."""

from __future__ import annotations

import shlex

import pytest
from aitestbed.portal.db import session_factory
from aitestbed.portal.jobs.local import LocalBackend
from fastapi.testclient import TestClient

from tests.datasets_support import accept_terms, audit_entries, local_section
from tests.jobs_support import JobsClient, make_app, wait_for_state, write_settings
from tests.unit.test_local_jobs import FINAL, job_count

READ_IRIS = [
    "python",
    "-c",
    "import os, pathlib; d = pathlib.Path(os.environ['AITESTBED_DATASETS_DIR']); "
    "print(os.environ['AITESTBED_DATASETS'], sorted(p.name for p in d.iterdir())); "
    "print((d / 'iris' / 'data.csv').read_text().splitlines()[0])",
]


def _prepare(tmp_path, settings_doc, **jobs):
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["datasets"] = local_section(tmp_path / "data")
    settings_doc["jobs"].update(jobs)
    for name in ("alice", "bob"):
        (tmp_path / "state" / "homes" / name).mkdir(parents=True)
    return write_settings(tmp_path / "settings.yaml", settings_doc)


@pytest.fixture
def local(tmp_path, settings_doc, monkeypatch, database_url):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    path = _prepare(tmp_path, settings_doc)
    backend = LocalBackend(tmp_path / "state" / "jobs")
    app, gateway, engine = make_app(path, backend, ["alice", "bob", "carol"])
    with TestClient(app) as client:
        yield {
            "alice": JobsClient(client, "t-alice"),
            "bob": JobsClient(client, "t-bob"),
            "gateway": gateway,
            "engine": engine,
            "sessions": session_factory(engine),
            "jobs_dir": tmp_path / "state" / "jobs",
        }
    engine.dispose()


def test_an_allowed_local_job_reads_exactly_its_datasets(local):
    bob = local["bob"]
    response = bob.submit(project="uni-nlp", command=READ_IRIS, datasets=["iris", "wine"])
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["datasets"] == ["iris", "wine"]
    done = wait_for_state(local["gateway"], bob, job["id"], FINAL)
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0), bob.logs(job["id"]).json()
    text = bob.logs(job["id"]).json()["text"]
    assert "iris,wine ['iris', 'wine']" in text
    assert "dataset,iris" in text
    links = local["jobs_dir"] / job["uid"] / "datasets"
    assert sorted(p.name for p in links.iterdir()) == ["iris", "wine"]
    with local["sessions"]() as session:
        assert audit_entries(session, "job") == [
            ("bob", "iris", True, "uni-nlp"),
            ("bob", "wine", True, "uni-nlp"),
        ]


def test_a_job_without_datasets_sees_an_empty_datasets_folder(local):
    alice = local["alice"]
    script = (
        "import os; print(repr(os.environ['AITESTBED_DATASETS']), "
        "os.listdir(os.environ['AITESTBED_DATASETS_DIR']))"
    )
    job = alice.submit(project="acme-vision", command=["python", "-c", script]).json()
    done = wait_for_state(local["gateway"], alice, job["id"], FINAL)
    assert done["exit_code"] == 0
    assert "'' []" in alice.logs(job["id"]).json()["text"]


def _refusal(response):
    assert response.status_code == 403, response.text
    assert response.json()["field"] == "datasets"
    return response.json()["detail"]


def test_refusals_name_the_reason_and_record_and_submit_nothing(local):
    alice, bob = local["alice"], local["bob"]
    terms = _refusal(alice.submit(project="acme-vision", command=["true"], datasets=["digits"]))
    assert "Accept version 1 of the terms of 'digits'" in terms
    # bob may see wine (uni-nlp) but not use it in acme-vision
    not_granted = _refusal(
        bob.submit(project="acme-vision", command=["true"], datasets=["iris", "wine"])
    )
    assert "'wine' is not granted to the project 'acme-vision'" in not_granted
    assert job_count(local["engine"]) == 0
    assert not local["jobs_dir"].exists() or not list(local["jobs_dir"].iterdir())
    with local["sessions"]() as session:
        assert audit_entries(session, "job") == [
            ("alice", "digits", False, "acme-vision"),
            ("bob", "iris", True, "acme-vision"),
            ("bob", "wine", False, "acme-vision"),
        ]


def test_an_invisible_dataset_gets_the_same_answer_as_a_nonexistent_one(local):
    alice = local["alice"]
    invisible = alice.submit(project="acme-vision", command=["true"], datasets=["wine"])
    missing = alice.submit(project="acme-vision", command=["true"], datasets=["wane"])
    assert invisible.status_code == missing.status_code == 403
    assert _refusal(invisible).replace("wine", "X") == _refusal(missing).replace("wane", "X")
    assert job_count(local["engine"]) == 0


def test_accepting_the_terms_lets_the_job_use_the_dataset(local):
    alice = local["alice"]
    with local["sessions"]() as session, session.begin():
        accept_terms(session, "alice", "digits")
    script = "import os; print(sorted(os.listdir(os.environ['AITESTBED_DATASETS_DIR'])))"
    response = alice.submit(
        project="acme-vision", command=["python", "-c", script], datasets=["digits"]
    )
    assert response.status_code == 201, response.text
    done = wait_for_state(local["gateway"], alice, response.json()["id"], FINAL)
    assert done["exit_code"] == 0
    assert "['digits']" in alice.logs(done["id"]).json()["text"]


def test_datasets_of_a_project_the_user_is_not_in_are_refused_as_membership(local):
    response = local["alice"].submit(project="uni-nlp", command=["true"], datasets=["wine"])
    assert response.status_code == 403 and response.json()["field"] == "project"
    with local["sessions"]() as session:
        assert audit_entries(session, "job") == []


@pytest.mark.parametrize(
    ("datasets", "field"),
    [
        (["../etc"], "datasets[0]"),
        (["iris", "a;rm -rf /"], "datasets[1]"),
        (["x" * 10_000], "datasets[0]"),
        (["iris", "iris"], "datasets[1]"),
    ],
)
def test_hostile_slugs_are_422_naming_the_field(local, datasets, field):
    response = local["alice"].submit(project="acme-vision", command=["true"], datasets=datasets)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert job_count(local["engine"]) == 0


def test_a_dataset_list_of_the_wrong_type_is_422(local):
    response = local["alice"].submit(project="acme-vision", command=["true"], datasets="iris")
    assert response.status_code == 422
    assert "datasets" in response.text


# -- Slurm: binds through the script, environment for the job ---------------------------


class RecordingBackend:
    """A Slurm-like backend that keeps what it was given (the gateway's side only; the
    real Slurm tests run scripts on a real cluster)."""

    name = "slurm"
    files_owned_by_user = True
    places_datasets = False
    remembers_finished_jobs = False

    def __init__(self) -> None:
        self.submissions = []

    def submit(self, submission):
        self.submissions.append(submission)
        return str(len(self.submissions))

    def poll(self, job_ids):
        return {}

    def find(self, uids):
        return {}

    def cancel(self, job_id, unix_user):
        pass

    def user_exists(self, unix_user):
        return True

    def account_uid(self, unix_user):
        return None


@pytest.fixture
def slurm(tmp_path, settings_doc, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")

    def make(**jobs):
        path = _prepare(tmp_path, settings_doc, **jobs)
        backend = RecordingBackend()
        app, _, engine = make_app(path, backend, ["alice", "bob"])
        return TestClient(app), backend, engine

    return make


def _exec_words(script):
    return shlex.split(next(line for line in script.splitlines() if line.startswith("exec ")))


def test_apptainer_jobs_bind_their_datasets_read_only(slurm, tmp_path):
    client, backend, engine = slurm(
        container_launcher="apptainer", image_prefix="docker://reg/", datasets_dir="/gpfs/ds"
    )
    with client:
        bob = JobsClient(client, "t-bob")
        response = bob.submit(
            project="uni-nlp", image="python-cpu", command=["python", "t.py"], datasets=["wine"]
        )
        assert response.status_code == 201, response.text
    engine.dispose()
    (submission,) = backend.submissions
    words = _exec_words(submission.script)
    assert words[words.index("--bind") + 1] == "/gpfs/ds/wine:/datasets/wine:ro"
    assert words.count("--bind") == 1
    assert submission.environment["AITESTBED_DATASETS_DIR"] == "/datasets"
    assert submission.environment["AITESTBED_DATASETS"] == "wine"


def test_jobs_without_container_read_the_nodes_datasets_dir(slurm):
    client, backend, engine = slurm(datasets_dir="/gpfs/ds")
    with client:
        response = JobsClient(client, "t-bob").submit(
            project="uni-nlp", command=["python", "t.py"], datasets=["iris", "wine"]
        )
        assert response.status_code == 201, response.text
    engine.dispose()
    (submission,) = backend.submissions
    assert "--bind" not in submission.script
    assert submission.environment["AITESTBED_DATASETS_DIR"] == "/gpfs/ds"
    assert submission.environment["AITESTBED_DATASETS"] == "iris,wine"


def test_a_dataset_outside_datasets_dir_is_an_operator_problem(slurm, settings_doc):
    client, backend, engine = slurm(datasets_dir="/gpfs/ds")
    from aitestbed.portal import models
    from sqlalchemy import select

    with session_factory(engine)() as session, session.begin():
        row = session.scalar(select(models.Dataset).where(models.Dataset.slug == "wine"))
        row.cluster_path = "/lustre/elsewhere/wine"
    with client:
        response = JobsClient(client, "t-bob").submit(
            project="uni-nlp", command=["true"], datasets=["wine"]
        )
    engine.dispose()
    assert response.status_code == 409
    assert "jobs.datasets_dir" in response.json()["detail"]
    assert "operators" in response.json()["detail"]
    assert backend.submissions == []
