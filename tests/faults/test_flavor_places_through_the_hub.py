"""50 simultaneous REST starts of a flavor with 3 places, through the real hub: 3 start.

The invariant is read from the portal's own records: at no moment were more than 3 sessions
of the flavor open, and the places were filled.

The hub's own capacity check reads the open sessions before any of the 50 is recorded, so
it lets them all through; the hub then sends the flavor's places with the start, and the
portal counts the flavor's open sessions again under its admission lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness import REPO, running_portal, wait_until

pytestmark = pytest.mark.integration

STUDENTS = [f"s{i:02d}" for i in range(50)]
USERS = {"olivia": "olivia-pw", **dict.fromkeys(STUDENTS, "pw")}
PLACES = 3
CHOICE = {"project": "class", "flavor": "cpu-small", "image": "python-cpu"}


def _sections() -> dict:
    base = yaml.safe_load((REPO / "hub_config" / "settings.yaml").read_text())
    flavors = [
        {**f, "capacity": PLACES} if f["slug"] == "cpu-small" else f for f in base["flavors"]
    ]
    project = {
        "slug": "class",
        "title": "A class starting at once",
        "allocation": {
            "gpu_hours": 10,
            "max_concurrent_gpus": 0,
            "storage_quota_gb": 1,
            "valid_from": "2026-01-01",
            "valid_until": "2030-12-31",
        },
        "flavors": ["cpu-small"],
        "images": ["python-cpu"],
        "members": [{"user": name} for name in STUDENTS],
    }
    return {"flavors": flavors, "projects": [project], "datasets": []}


def test_fifty_simultaneous_starts_of_a_three_place_flavor_start_three(tmp_path):
    with running_portal(tmp_path, USERS, sections=_sections()) as portal:
        olivia = portal.login("olivia", USERS["olivia"])
        token = olivia.post(
            f"{portal.url}/hub/api/users/olivia/tokens", json={"expires_in": 900}, timeout=30
        ).json()["token"]
        admin = {"Authorization": f"token {token}"}
        gate = threading.Barrier(len(STUDENTS))

        def start(name: str) -> requests.Response:
            gate.wait()
            return requests.post(
                f"{portal.url}/hub/api/users/{name}/server", json=CHOICE, headers=admin, timeout=120
            )

        with ThreadPoolExecutor(len(STUDENTS)) as pool:
            answers = list(pool.map(start, STUDENTS))
        # 201: started; 202: still starting after the hub's 10 s (it may yet be refused
        # by the portal and fail); 409: refused at once. Nothing else.
        assert {a.status_code for a in answers} <= {201, 202, 409}, [
            (a.status_code, a.text[:200]) for a in answers
        ]
        refused = [a for a in answers if a.status_code == 409]
        assert len(refused) >= len(STUDENTS) - sum(a.status_code == 202 for a in answers) - PLACES
        message = (
            f"All {PLACES} places for the flavor 'cpu-small' are in use right now; choose "
            "another flavor or try again later."
        )
        assert all(a.json()["message"] == message for a in refused)

        def servers() -> dict[str, dict]:
            users = requests.get(f"{portal.url}/hub/api/users", headers=admin, timeout=30).json()
            return {u["name"]: u["servers"][""] for u in users if u["servers"].get("")}

        def settled() -> dict[str, dict] | None:
            """The servers once none is pending any more (a refused late start is gone)."""
            now = servers()
            return now if all(s["ready"] and not s["pending"] for s in now.values()) else None

        running = wait_until(settled, timeout=180, what="every start to finish or fail")
        records = session_records(tmp_path / "state" / "portal.sqlite")
        # The places were filled and never exceeded, at any moment of the burst.
        assert most_open_at_once(records) == PLACES, records
        # Every running server has its open record, and no other record is open. (A start
        # that fails after its admission closes its record and frees its place: then fewer
        # than PLACES servers run, which is right.)
        assert sorted(running) == sorted(user for user, _, stopped in records if not stopped)
        usage = requests.get(f"{portal.portal_url}api/usage", headers=admin, timeout=30).json()
        running_by_project = {u["slug"]: u["running_sessions"] for u in usage}
        assert running_by_project["class"] == len(running)
        assert sum(running_by_project.values()) == len(running)  # (the demo course: none)


def session_records(database: Path) -> list[tuple[str, str, str | None]]:
    """(user, started, stopped) of every session record, read from the portal's database."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(
            "SELECT u.name, r.started_at, r.stopped_at FROM session_records r "
            "JOIN users u ON u.id = r.user_id ORDER BY r.id"
        ).fetchall()


def most_open_at_once(records: list[tuple[str, str, str | None]]) -> int:
    """The largest number of records open at the same moment (times are ISO text, which
    sorts like time; a close at the moment of an open counts first)."""
    events = [(started, 1) for _, started, _ in records]
    events += [(stopped, -1) for _, _, stopped in records if stopped]
    most = now = 0
    for _, step in sorted(events):
        now += step
        most = max(most, now)
    return most
