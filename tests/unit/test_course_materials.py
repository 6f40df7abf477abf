"""Course materials pulled with nbgitpuller itself, from a git repository made here: the
first pull clones, a student's edit survives the course's update of the same file, new and
changed course files arrive, a failing pull still starts the server, and the hub's local
spawner puts the step in front of the server's command only for a course with materials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aitestbed.hub.local_settings import materials_command
from aitestbed.notebook.materials import main, pull

GIT = ["git", "-c", "user.name=Course Staff", "-c", "user.email=staff@example.org"]


def git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-m", message)


@pytest.fixture
def upstream(tmp_path) -> Path:
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-b", "main")
    commit(repo, {"lesson1.py": "# lesson 1, v1\n", "README.md": "readme v1\n"}, "week 1")
    return repo


def test_pull_update_and_the_students_change_kept(upstream, tmp_path):
    folder = tmp_path / "home" / "materials" / "lab-m"
    assert pull(str(upstream), "main", str(folder)) == ""
    assert (folder / "lesson1.py").read_text() == "# lesson 1, v1\n"

    (folder / "lesson1.py").write_text("# my answer\n")  # the student works in the file
    (folder / "notes.txt").write_text("mine\n")  # and adds one
    commit(
        upstream,
        {"lesson1.py": "# lesson 1, v2\n", "README.md": "readme v2\n", "lesson2.py": "# 2\n"},
        "week 2",
    )
    assert pull(str(upstream), "main", str(folder)) == ""
    assert (folder / "lesson1.py").read_text() == "# my answer\n"  # the student's change kept
    assert (folder / "README.md").read_text() == "readme v2\n"  # the course's change arrives
    assert (folder / "lesson2.py").read_text() == "# 2\n"
    assert (folder / "notes.txt").read_text() == "mine\n"
    (folder / "README.md").unlink()  # a file the student deleted comes back
    assert pull(str(upstream), "main", str(folder)) == ""
    assert (folder / "README.md").read_text() == "readme v2\n"


def test_a_failing_pull_says_why_and_the_server_still_starts(tmp_path, capfd):
    missing = tmp_path / "no-such-repo"
    problem = pull(str(missing), "main", str(tmp_path / "home" / "materials" / "x"))
    assert problem.startswith("The course's materials could not be pulled: ")
    assert pull("--upload-pack=touch /tmp/x", "main", str(tmp_path / "m")) == (
        "The course's materials repository or branch is not valid; ask the staff."
    )
    marker = tmp_path / "started"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aitestbed.notebook.materials import main; main()",
            str(missing),
            "main",
            str(tmp_path / "home" / "materials" / "x"),
            "--",
            sys.executable,
            "-c",
            f"open({str(marker)!r}, 'w').write('up')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0 and marker.read_text() == "up"
    assert "The session starts with the files it has." in child.stderr


def test_bad_usage_is_refused():
    with pytest.raises(SystemExit, match=r"usage: python -m aitestbed\.notebook\.materials"):
        main(["repo", "main", "folder", "jupyterhub-singleuser"])


def test_the_spawner_command_is_an_argument_list():
    assert materials_command(
        "/py", "https://git.example.org/c.git", "main", Path("/h/materials/c"), ["serve", "-x"]
    ) == [
        "/py",
        "-m",
        "aitestbed.notebook.materials",
        "https://git.example.org/c.git",
        "main",
        "/h/materials/c",
        "--",
        "serve",
        "-x",
    ]
