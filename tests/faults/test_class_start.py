"""A class of 100 presses Start at the same moment: every server starts, none fails.

Real hub, proxy and portal service (tests/harness.py), the embedded default's spawner with
admission by the portal and usage records; 100 users each send
``POST /hub/api/users/<name>/server`` with their own token, released together. The start
queue is opened to 100 slots, so that all 100 starts run their whole path at once (300
calls to the portal, 100 readiness checks): the hardest case for the hub's plumbing; the
shipped queue (one slot per CPU core) only spreads the same work out. Before the hub had its
own client for the portal and for readiness checks, 48 of these 100 starts failed with
"Timeout in request queue" (the shared default client's 10 connections).

The sessions are the stand-in of ``tests/faults/singleuser_standin.py`` instead of
JupyterLab (its docstring says what it does and does not do), so that 100 fit on a 2-core
machine: this checks the hub's and the portal's plumbing under a burst (the hub's calls to
the portal, the start queue, the session records), not JupyterLab's own start-up.

Invariant after the burst: 100 servers ready, 0 failed starts, and every running server has
exactly one open usage record in the portal (and there is no other open record).
Bounded: about 4 minutes at most, typically well under one.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from aitestbed.portal import models
from aitestbed.portal.db import make_engine, session_factory
from aitestbed.settings import load_settings
from sqlalchemy import func, select

from tests.faults.singleuser_standin import hub_config_lines
from tests.harness import running_portal, wait_until

pytestmark = pytest.mark.integration

CLASS_SIZE = 100
OPERATOR = "olivia"
CHOICE = {"project": "acme-vision", "flavor": "cpu-small", "image": "python-cpu"}
READY_WITHIN = 180  # seconds for the whole class, once every request was answered


def class_sections(names: list[str]) -> dict:
    """The example site with ``names`` as members of acme-vision and room for them all on
    the CPU flavor (capacity is not what this test is about)."""
    import yaml

    from tests.harness import REPO

    doc = yaml.safe_load((REPO / "hub_config" / "settings.yaml").read_text())
    for flavor in doc["flavors"]:
        if flavor["slug"] == CHOICE["flavor"]:
            flavor["capacity"] = 2 * len(names)
    for project in doc["projects"]:
        if project["slug"] == CHOICE["project"]:
            project["members"] += [{"user": name} for name in names]
    return {"flavors": doc["flavors"], "projects": doc["projects"]}


def user_tokens(portal, names: list[str]) -> tuple[str, dict[str, str]]:
    """(the operator's token, a token of each user) made by the operator (a hub admin)."""
    operator = portal.login(OPERATOR, "pw")
    made = operator.post(
        f"{portal.url}/hub/api/users/{OPERATOR}/tokens", json={"expires_in": 3600}, timeout=60
    )
    assert made.status_code == 201, made.text
    admin = {"Authorization": f"token {made.json()['token']}"}

    def token(name: str) -> str:
        response = requests.post(
            f"{portal.url}/hub/api/users/{name}/tokens",
            json={"expires_in": 3600, "note": "class start"},
            headers=admin,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    with ThreadPoolExecutor(8) as pool:
        tokens = dict(zip(names, pool.map(token, names), strict=True))
    return made.json()["token"], tokens


def press_start_together(portal, tokens: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Every user's start request, released at the same moment: name -> (status, body)."""
    gate = threading.Barrier(len(tokens))

    def start(name: str) -> tuple[int, str]:
        gate.wait(timeout=60)
        response = requests.post(
            f"{portal.url}/hub/api/users/{name}/server",
            json=CHOICE,
            headers={"Authorization": f"token {tokens[name]}"},
            timeout=120,
        )
        return response.status_code, response.text[:300]

    with ThreadPoolExecutor(len(tokens)) as pool:
        return dict(zip(tokens, pool.map(start, tokens), strict=True))


def hub_servers(portal, admin_token: str) -> dict[str, dict]:
    """Every active user's default server model, from the hub (all pages)."""
    servers: dict[str, dict] = {}
    offset = 0
    while True:
        response = requests.get(
            f"{portal.url}/hub/api/users",
            params={"state": "active", "offset": offset, "limit": 200},
            headers={
                "Authorization": f"token {admin_token}",
                "Accept": "application/jupyterhub-pagination+json",
            },
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        for user in body["items"]:
            if "" in user["servers"]:
                servers[user["name"]] = user["servers"][""]
        following = body["_pagination"]["next"]
        if not following:
            return servers
        offset = following["offset"]


def open_records(settings_path: Path) -> dict[tuple[str, str], int]:
    """(user, server name) -> number of open usage records in the portal database."""
    engine = make_engine(load_settings(settings_path).site.database_url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(models.User.name, models.SessionRecord.server_name, func.count())
                .join(models.User, models.User.id == models.SessionRecord.user_id)
                .where(models.SessionRecord.stopped_at.is_(None))
                .group_by(models.User.name, models.SessionRecord.server_name)
            ).all()
    finally:
        engine.dispose()
    return {(name, server): count for name, server, count in rows}


def test_a_class_of_100_starts_at_once_with_no_failure(tmp_path):
    names = [f"student{i:03d}" for i in range(CLASS_SIZE)]
    users = {name: "pw" for name in [*names, OPERATOR]}
    began = time.monotonic()
    with running_portal(
        tmp_path / "class",
        users,
        sections=class_sections(names),
        hub_config=hub_config_lines() + f"c.PolicySpawnerMixin.start_slots = {CLASS_SIZE}\n",
    ) as portal:
        admin_token, tokens = user_tokens(portal, names)

        answers = press_start_together(portal, tokens)
        refused = {name: answer for name, answer in answers.items() if answer[0] not in (201, 202)}
        assert refused == {}

        def settled() -> tuple[dict[str, dict]] | None:
            servers = hub_servers(portal, admin_token)
            if any(model["pending"] for model in servers.values()):
                return None
            return (servers,)

        (servers,) = wait_until(settled, timeout=READY_WITHIN, interval=1, what="100 starts")
        failed = sorted(set(names) - {n for n, m in servers.items() if m["ready"]})
        assert failed == [], portal.log()[-3000:]
        assert open_records(portal.settings_path) == {(name, ""): 1 for name in names}
        log = portal.log()
        assert "Unhandled error starting" not in log
        assert "Timeout in request queue" not in log
    assert time.monotonic() - began < 240
