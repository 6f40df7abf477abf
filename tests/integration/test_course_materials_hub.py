"""A course's materials through the real hub, proxy, portal and local spawner: the first
course session clones them into the student's home with nbgitpuller, the student edits, the
course updates, the next session brings the update and keeps the student's change.

The sessions are the stand-in of tests/faults/singleuser_standin.py: what is tested is the
spawner's step in front of the server's command. Bounded: about a minute."""

from __future__ import annotations

import pytest
import requests

from tests.faults.singleuser_standin import hub_config_lines
from tests.harness import running_portal, wait_until
from tests.unit.test_course_materials import commit, git

pytestmark = pytest.mark.integration

USERS = {"ingrid": "i-pw", "stu1": "s-pw"}
CHOICE = {"project": "lab-m", "flavor": "cpu-small", "image": "python-cpu"}


def course(repo) -> dict:
    return {
        "slug": "lab-m",
        "title": "Lab with materials",
        "term": {"start": "2026-01-01", "end": "2027-12-31"},
        "slots": [{"days": ["mon"], "start": "09:00", "end": "10:00"}],
        "outside_slots": "allowed",
        "environment": {"image": "python-cpu", "flavor": "cpu-small"},
        "allocation": {"gpu_hours": 10, "max_concurrent_gpus": 1},
        "materials": {"repo": str(repo), "branch": "main"},
        "members": [{"user": "ingrid", "role": "instructor"}, {"user": "stu1"}],
    }


def test_materials_arrive_update_and_keep_the_students_change(tmp_path):
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-b", "main")
    commit(upstream, {"lesson1.py": "# v1\n", "README.md": "readme v1\n"}, "week 1")
    with running_portal(
        tmp_path / "hub",
        USERS,
        sections={"courses": [course(upstream)]},
        hub_config=hub_config_lines(),
    ) as portal:
        session = portal.login("stu1", USERS["stu1"])
        token = session.post(
            f"{portal.url}/hub/api/users/stu1/tokens", json={"expires_in": 900}, timeout=60
        ).json()["token"]
        headers = {"Authorization": f"token {token}"}

        def server(method: str) -> requests.Response:
            return requests.request(
                method,
                f"{portal.url}/hub/api/users/stu1/server",
                json=CHOICE if method == "POST" else None,
                headers=headers,
                timeout=120,
            )

        def ready() -> bool:
            user = requests.get(f"{portal.url}/hub/api/users/stu1", headers=headers, timeout=60)
            model = user.json()["servers"].get("")
            return bool(model and model["ready"])

        def stopped() -> bool:
            user = requests.get(f"{portal.url}/hub/api/users/stu1", headers=headers, timeout=60)
            return "" not in user.json()["servers"]

        materials = tmp_path / "hub" / "state" / "homes" / "stu1" / "materials" / "lab-m"
        assert server("POST").status_code in (201, 202)
        wait_until(ready, timeout=120, what="the first course session")
        assert (materials / "lesson1.py").read_text() == "# v1\n"
        assert "Course materials are up to date in" in portal.log()
        assert server("DELETE").status_code in (202, 204)
        wait_until(stopped, timeout=60, what="the session to stop")

        (materials / "lesson1.py").write_text("# my answer\n")
        commit(upstream, {"lesson1.py": "# v2\n", "README.md": "readme v2\n", "l2.py": "2\n"}, "2")

        assert server("POST").status_code in (201, 202)
        wait_until(ready, timeout=120, what="the second course session")
        assert (materials / "lesson1.py").read_text() == "# my answer\n"
        assert (materials / "README.md").read_text() == "readme v2\n"
        assert (materials / "l2.py").read_text() == "2\n"
        assert server("DELETE").status_code in (202, 204)
        wait_until(stopped, timeout=60, what="the session to stop")
