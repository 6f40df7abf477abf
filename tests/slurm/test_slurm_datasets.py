"""Datasets in jobs on a real single-node Slurm (no container launcher): the job runs as the
user's own Unix account and reads its datasets under the nodes' ``jobs.datasets_dir``."""

from __future__ import annotations

import pytest
import yaml
from aitestbed.portal.jobs.slurm import SlurmBackend
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

from tests.datasets_support import dataset_section, write_dataset_folders
from tests.jobs_support import JobsClient, make_app, wait_for_state, write_settings
from tests.slurm.portal_support import job_python
from tests.slurm.test_slurm_jobs import FINAL, NAMES, settings_path  # noqa: F401

pytestmark = pytest.mark.slurm

READ = (
    "import os, pathlib; root = pathlib.Path(os.environ['AITESTBED_DATASETS_DIR']); "
    "print(os.environ['AITESTBED_DATASETS'], root); "
    "print((root / 'wine' / 'data.csv').read_text().splitlines()[0])"
)


@pytest.fixture(scope="module")
def portal(settings_path, cluster_users):  # noqa: F811 - the imported fixture
    datasets_dir = cluster_users["base"] / "datasets"
    for folder in write_dataset_folders(datasets_dir).values():
        folder.chmod(0o755)
        (folder / "data.csv").chmod(0o444)
    datasets_dir.chmod(0o755)
    doc = yaml.safe_load(settings_path.read_text())
    doc["jobs"]["datasets_dir"] = str(datasets_dir)
    doc["datasets"] = dataset_section(
        {
            slug: {"kind": "nfs", "server": "nfs", "path": "/x"}
            for slug in ("iris", "wine", "digits")
        }
    )
    path = write_settings(settings_path.with_name("settings-datasets.yaml"), doc)
    backend = SlurmBackend(load_settings(path).jobs.slurm)
    app, gateway, engine = make_app(path, backend, NAMES)
    with TestClient(app) as client:
        yield {
            "gateway": gateway,
            "datasets_dir": datasets_dir,
            **{name: JobsClient(client, f"t-{name}") for name in NAMES},
        }
    engine.dispose()


def test_a_slurm_job_reads_its_dataset_under_datasets_dir(portal):
    bob = portal["bob"]
    response = bob.submit(
        project="uni-nlp", command=[*job_python(), "-c", READ], datasets=["iris", "wine"]
    )
    assert response.status_code == 201, response.text
    done = wait_for_state(portal["gateway"], bob, response.json()["id"], FINAL)
    text = bob.logs(done["id"]).json()["text"]
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0), text
    assert text.splitlines()[0] == f"iris,wine {portal['datasets_dir']}"
    assert text.splitlines()[-1] == "dataset,wine"


def test_a_dataset_of_another_tenant_is_refused_before_slurm_sees_the_job(portal):
    response = portal["alice"].submit(project="acme-vision", command=["true"], datasets=["wine"])
    assert response.status_code == 403
    assert "There is no dataset 'wine' that you can see" in response.json()["detail"]
