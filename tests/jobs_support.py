"""Helpers shared by the job tests: a portal app with a job gateway, driven by TestClient."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from aitestbed.portal.app import create_app
from aitestbed.portal.auth import Identity
from aitestbed.portal.jobs.gateway import JobGateway
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

PREFIX = "/services/portal/"


class TableIdentity:
    """Resolves tokens from a fixed table, as the hub would."""

    def __init__(self, names) -> None:
        self.tokens = {
            f"t-{name}": Identity(name, hub_admin=False, scopes=frozenset()) for name in names
        }

    async def resolve(self, token):
        return self.tokens.get(token)


def write_settings(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


class JobsClient:
    """The job API as one user sees it."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"token {token}"}

    def submit(self, key: str | None = None, **body):
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        return self.client.post(PREFIX + "api/jobs", json=body, headers=headers)

    def get(self, job_id: int):
        return self.client.get(f"{PREFIX}api/jobs/{job_id}", headers=self.headers)

    def list(self):
        return self.client.get(PREFIX + "api/jobs", headers=self.headers)

    def cancel(self, job_id: int):
        return self.client.post(f"{PREFIX}api/jobs/{job_id}/cancel", headers=self.headers)

    def logs(self, job_id: int):
        return self.client.get(f"{PREFIX}api/jobs/{job_id}/logs", headers=self.headers)


def make_app(settings_path: Path, backend, names, poll_interval=None, **gateway_options):
    settings = load_settings(settings_path)
    engine = prepare_database(settings)
    from aitestbed.portal.db import session_factory

    gateway = JobGateway(session_factory(engine), settings, backend, **gateway_options)
    app = create_app(
        engine=engine,
        identity=TableIdentity(names),
        prefix=PREFIX,
        jobs=gateway,
        poll_interval=poll_interval,
    )
    return app, gateway, engine


def wait_for_state(gateway: JobGateway, api: JobsClient, job_id: int, states, timeout=90):
    """Drive the poller until the job reaches one of ``states``; returns the job body."""
    deadline = time.monotonic() + timeout
    body = {}
    while time.monotonic() < deadline:
        gateway.poll_once()
        body = api.get(job_id).json()
        if body["state"] in states:
            return body
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not reach {states}: {body}")


def python_notebook(*sources: str, parameters: str | None = None):
    """A Python 3 notebook of code cells; ``parameters`` becomes papermill's tagged cell."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    if parameters is not None:
        tagged = nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})
        cells.insert(0, tagged)
    notebook.cells = cells
    return notebook
