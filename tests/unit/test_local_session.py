"""The embedded default's session process: its PATH, its terminals' shell, and closing its
usage record when the portal is already gone (the hub stopping its services first)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

from aitestbed.hub.local_spawner import PortalLocalSpawner, session_path
from jupyterhub.objects import Server

from tests.harness import free_port


def test_session_path_puts_the_environment_first_once():
    assert session_path(Path("/venv/bin"), "/usr/bin:/venv/bin:/bin") == ("/venv/bin:/usr/bin:/bin")
    assert session_path(Path("/venv/bin"), None).startswith("/venv/bin:")


def test_closing_a_record_with_the_portal_gone_warns_in_one_line(tmp_path, caplog):
    user = SimpleNamespace(
        name="alice", id=1, url="/user/alice/", escaped_name="alice", server=Server()
    )
    spawner = PortalLocalSpawner(
        user=user,
        orm_spawner=None,
        home_dir_template=str(tmp_path / "homes" / "{username}"),
        projects_root=str(tmp_path / "projects"),
        portal_url=f"http://127.0.0.1:{free_port()}/services/portal/",
        portal_token="t",
    )
    spawner.session_record_id = 7

    with caplog.at_level(logging.WARNING):
        asyncio.run(spawner.close_session())  # no exception reaches the hook chain
    assert spawner.session_record_id is None
    (record,) = [r for r in caplog.records if "usage record 7" in r.getMessage()]
    assert "the portal closes it when it runs again" in record.getMessage()
    assert record.exc_info is None


def test_image_cards_say_which_listed_frameworks_this_machine_lacks():
    from aitestbed.hub.local_settings import NOT_INSTALLED, framework_labels

    have = {"numpy", "pandas", "sklearn"}
    assert framework_labels(["numpy", "scikit-learn", "pytorch"], have.__contains__) == (
        "numpy",
        "scikit-learn",
        "pytorch" + NOT_INSTALLED,
    )


def test_the_local_spawner_marks_the_cards_from_its_own_environment(tmp_path, monkeypatch):
    from aitestbed.hub import local_spawner
    from aitestbed.policy.model import ImageSpec

    monkeypatch.setattr(local_spawner, "module_installed", lambda module: module != "torch")
    user = SimpleNamespace(
        name="alice", id=1, url="/user/alice/", escaped_name="alice", server=Server()
    )
    spawner = PortalLocalSpawner(
        user=user,
        orm_spawner=None,
        home_dir_template=str(tmp_path / "homes" / "{username}"),
        projects_root=str(tmp_path / "projects"),
    )
    cpu = ImageSpec("python-cpu", "Python (CPU)", "x", frameworks=("numpy", "pandas"))
    gpu = ImageSpec("pytorch", "PyTorch (CUDA)", "y", frameworks=("pytorch",))
    offered = spawner.images_as_offered([cpu, gpu])
    assert [i.frameworks for i in offered] == [
        ("numpy", "pandas"),
        ("pytorch (not installed on this machine)",),
    ]
