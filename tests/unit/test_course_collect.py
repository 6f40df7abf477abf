"""Collecting a folder from every student of a course into the collector's home: complete
copies, the students' files unchanged, links never followed out of a home, bounded size,
missing folders listed, bad folder names refused naming the field, other courses 404."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from aitestbed.policy.courses import folder_problem
from fastapi.testclient import TestClient

from tests.unit.test_courses_api import call, make_app, page, settings_for


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): kind, mode, mtime, content hash."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                found[str(path)] = ("dir", info.st_mode, info.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path)] = ("file", info.st_mode, info.st_mtime_ns, digest)
    return found


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def course_homes(tmp_path, database_url, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    homes = tmp_path / "homes"
    app, engine = make_app(settings_for(tmp_path, database_url))
    app.state.homes_dir = homes
    app.state.collect_limits = (10_000, 50)
    secret = tmp_path / "outside" / "secret.txt"
    write(secret, "not yours")
    # sam: a complete folder with a subfolder, a link out of the home and a link to a dir
    write(homes / "sam" / "hw1" / "answer.py", "print(42)\n")
    write(homes / "sam" / "hw1" / "data" / "notes.md", "# notes\n")
    (homes / "sam" / "hw1" / "stolen.txt").symlink_to(secret)
    (homes / "sam" / "hw1" / "peek").symlink_to(homes / "student02")
    write(homes / "sam" / "other" / "private.txt", "not collected")
    # student01: the folder itself is a link (to another student's home): not followed
    (homes / "student01").mkdir(parents=True)
    (homes / "student01" / "hw1").symlink_to(homes / "student02" / "hw1")
    # student02: a folder over the bound; student03: no folder; sue (ml-201) has one too
    write(homes / "student02" / "hw1" / "big.bin", "x" * 20_000)
    (homes / "student03").mkdir()
    write(homes / "sue" / "hw1" / "answer.py", "sue's\n")
    with TestClient(app) as client:
        enrolled = client.post(
            "/services/portal/api/courses/dl-101/roster",
            content="user,role\nstudent01\nstudent02\nstudent03\n",
            headers={"Authorization": "token t-ingrid", "Content-Type": "text/csv"},
        )
        assert enrolled.status_code == 200, enrolled.text
        yield client, homes
    engine.dispose()


def test_collect_copies_complete_folders_and_leaves_the_students_files(course_homes):
    client, homes = course_homes
    before = snapshot(homes)
    answer = call(client, "POST", "courses/dl-101/collect", "ingrid", json={"folder": "hw1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["path"].startswith("collected/dl-101/")
    assert body["copied"] == [
        {"user": "sam", "files": 2, "bytes": 18, "links": ["peek", "stolen.txt"]}
    ]
    assert body["missing"] == ["student01", "student03"]
    assert body["too_large"] == ["student02"]

    copy = homes / "ingrid" / body["path"]
    assert sorted(p.name for p in copy.iterdir()) == ["sam"]  # nothing kept of student02
    assert (copy / "sam" / "answer.py").read_text() == "print(42)\n"
    assert (copy / "sam" / "data" / "notes.md").read_text() == "# notes\n"
    assert not (copy / "sam" / "stolen.txt").exists() and not (copy / "sam" / "peek").exists()
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    # The students' homes are exactly as before (the collector's home is new).
    after = {k: v for k, v in snapshot(homes).items() if not k.startswith(str(homes / "ingrid"))}
    assert after == before

    again = call(client, "POST", "courses/dl-101/collect", "tom", json={"folder": "hw1/data"})
    assert again.status_code == 200
    assert (homes / "tom" / again.json()["path"] / "sam" / "notes.md").exists()


def test_a_burst_of_collections_keeps_each_one_whole(course_homes):
    """Eight collections at the same moment (the same second): eight folders, each one
    complete, none mixed with another."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.unit.test_courses_api import served

    client, homes = course_homes
    with served(client.app) as api:

        def collect(_n):
            return httpx.post(
                api + "courses/dl-101/collect",
                json={"folder": "hw1"},
                headers={"Authorization": "token t-ingrid"},
                timeout=120,
            )

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(collect, range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    paths = {a.json()["path"] for a in answers}
    assert len(paths) == 8
    for path in paths:
        copy = homes / "ingrid" / path
        assert sorted(p.name for p in copy.iterdir()) == ["sam"]
        assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*")) == [
            "sam",
            "sam/answer.py",
            "sam/data",
            "sam/data/notes.md",
        ]


@pytest.mark.parametrize(
    "folder", ["../sam", "hw1/../../sam", "/etc", "~sam/hw1", "a//b", ".", "hw1\\x", "  "]
)
def test_folders_outside_the_home_are_refused_naming_the_field(course_homes, folder):
    client, homes = course_homes
    answer = call(client, "POST", "courses/dl-101/collect", "ingrid", json={"folder": folder})
    assert answer.status_code == 422
    assert answer.json()["field"] == "folder"
    assert folder_problem(folder).rstrip(".") == answer.json()["errors"][0]["message"]
    assert not (homes / "ingrid").exists()


@pytest.mark.parametrize(
    ("user", "status", "code"),
    [
        ("sue", 404, "unknown-course"),
        ("ivan", 404, "unknown-course"),
        ("sam", 403, "not-course-staff"),
    ],
)
def test_only_the_courses_staff_collect(course_homes, user, status, code):
    client, homes = course_homes
    answer = call(client, "POST", "courses/dl-101/collect", user, json={"folder": "hw1"})
    assert answer.status_code == status and answer.json()["detail"]["code"] == code
    assert not (homes / user / "collected").exists()


def test_a_link_in_the_collectors_home_is_not_followed(course_homes):
    client, homes = course_homes
    (homes / "ingrid").mkdir()
    (homes / "ingrid" / "collected").symlink_to(homes / "student03")
    answer = call(client, "POST", "courses/dl-101/collect", "ingrid", json={"folder": "hw1"})
    assert answer.status_code == 409
    assert answer.json()["detail"]["message"].startswith("collected/dl-101 in your home is not")
    assert list((homes / "student03").iterdir()) == []


def test_no_local_homes_says_so(course_homes):
    client, _homes = course_homes
    client.app.state.homes_dir = None
    answer = call(client, "POST", "courses/dl-101/collect", "ingrid", json={"folder": "hw1"})
    assert answer.status_code == 501 and answer.json()["detail"]["code"] == "no-local-homes"


def test_the_page_button_collects_and_lists_the_result(course_homes):
    client, _homes = course_homes
    shown = page(client, "ingrid", "courses/dl-101/collect", folder="hw1")
    assert shown.status_code == 200 and 'id="collected"' in shown.text
    assert "No such folder: student01, student03." in shown.text
    assert "Too large, not copied: student02." in shown.text
    bad = page(client, "ingrid", "courses/dl-101/collect", folder="../sam")
    assert bad.status_code == 422 and "Give a folder inside the students&#39; homes" in bad.text
    assert page(client, "sam", "courses/dl-101/collect", folder="hw1").status_code == 404
