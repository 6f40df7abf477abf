"""50 simultaneous REST starts of a flavor with 3 places, through the real hub: 3 start.

The hub's own capacity check reads the open sessions before any of the 50 is recorded, so
it lets them all through; the hub then sends the flavor's places with the start, and the
portal counts the flavor's open sessions again under its admission lock.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

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
        admitted = [a for a in answers if a.status_code in (201, 202)]
        refused = [a for a in answers if a.status_code == 409]
        assert (len(admitted), len(refused)) == (PLACES, len(STUDENTS) - PLACES), [
            (a.status_code, a.text[:200]) for a in answers if a.status_code not in (201, 202, 409)
        ]
        message = (
            f"All {PLACES} places for the flavor 'cpu-small' are in use right now; choose "
            "another flavor or try again later."
        )
        assert all(a.json()["message"] == message for a in refused)

        def servers() -> dict[str, dict]:
            users = requests.get(f"{portal.url}/hub/api/users", headers=admin, timeout=30).json()
            return {u["name"]: u["servers"] for u in users if u["servers"]}

        wait_until(
            lambda: (
                len(servers()) == PLACES
                and all(s.get("", {}).get("ready") for s in servers().values())
            ),
            timeout=180,
            what="the admitted servers",
        )
        usage = requests.get(f"{portal.portal_url}api/usage", headers=admin, timeout=30).json()
        assert [(u["slug"], u["running_sessions"]) for u in usage] == [("class", PLACES)]
