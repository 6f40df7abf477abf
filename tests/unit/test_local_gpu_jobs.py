"""Local GPU jobs (the embedded default with simulated GPUs): a GPU job holds devices of
its own, sees exactly them, and gives them back when it ends."""

from __future__ import annotations

import pytest
from aitestbed.gpu_inventory import SimulatedSource
from aitestbed.portal import models
from aitestbed.portal.jobs.local import LocalBackend
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jobs_support import JobsClient, make_app, wait_for_state, write_settings

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
SHOW = 'echo "CVD=$CUDA_VISIBLE_DEVICES SIM=${AITESTBED_GPU_SIMULATED:-0}"'


@pytest.fixture
def local(tmp_path, settings_doc, monkeypatch, database_url):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["jobs"]["partitions"].append(
        {"name": "gpu", "gpus_per_node": 4, "max_time_minutes": 600}
    )
    path = write_settings(tmp_path / "settings.yaml", settings_doc)
    (tmp_path / "state" / "homes" / "alice").mkdir(parents=True)
    backend = LocalBackend(tmp_path / "state" / "jobs")
    app, gateway, engine = make_app(
        path, backend, ["alice"], gpu_source=SimulatedSource(2, "NVIDIA-A100-SXM4-80GB")
    )
    with TestClient(app) as client:
        yield JobsClient(client, "t-alice"), gateway, engine
    for job_dir in (tmp_path / "state" / "jobs").glob("*"):
        backend.cancel(job_dir.name, "")
    engine.dispose()


def held(engine) -> dict[str, int | None]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(models.GpuAssignment.device_uuid, models.GpuAssignment.job_id)
        )
        return dict(rows.all())


def submit(alice, command, gpus):
    return alice.submit(project="acme-vision", partition="gpu", gpus_per_node=gpus, command=command)


def test_gpu_jobs_hold_their_own_devices_until_they_end(local):
    alice, gateway, engine = local
    first = submit(alice, ["bash", "-c", f"{SHOW}; sleep 30"], 1)
    second = submit(alice, ["bash", "-c", SHOW], 1)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    first, second = first.json(), second.json()
    assert held(engine) == {
        "GPU-simulated-0000": first["id"],
        "GPU-simulated-0001": second["id"],
    }
    refused = submit(alice, ["true"], 1)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "gpus_per_node: Only 0 of this machine's 2 GPUs are free right now and the job asks "
        "for 1; try again when a session or job has stopped."
    )
    cpu = alice.submit(project="acme-vision", command=["bash", "-c", SHOW])
    assert cpu.status_code == 201
    done = wait_for_state(gateway, alice, second["id"], FINAL)
    assert done["state"] == "COMPLETED"
    assert alice.logs(second["id"]).json()["text"].strip() == "CVD=GPU-simulated-0001 SIM=1"
    wait_for_state(gateway, alice, cpu.json()["id"], FINAL)
    assert alice.logs(cpu.json()["id"]).json()["text"].strip() == "CVD= SIM=0"
    assert held(engine) == {"GPU-simulated-0000": first["id"]}  # released with the end
    assert alice.cancel(first["id"]).status_code == 200
    wait_for_state(gateway, alice, first["id"], FINAL)
    assert held(engine) == {}
    too_many = submit(alice, ["true"], 3)
    assert too_many.status_code == 409
    assert too_many.json()["detail"] == (
        "gpus_per_node: The job asks for 3 GPUs and this machine has 2 whole GPUs; ask for at "
        "most 2."
    )
    assert submit(alice, ["true"], 2).status_code == 201
