"""The usage reconciler reads every page of the hub's active users.

Real hub, proxy and portal; the hub answers at most 3 users a page
(``api_page_max_limit``, default page 2) and 7 servers run (the stand-in sessions of
``singleuser_standin.py``), so their list spans three pages. One more usage record is open
for a user with no server: it stands for a session that ended while the hub could not tell
the portal (the case the reconciler exists for). The portal reconciles every second.

Invariant: the reconciler closes that record and no record of a running server, also in the
rounds after it.
"""

from __future__ import annotations

import time

import pytest
import requests
from aitestbed.portal import models
from aitestbed.portal.db import make_engine, session_factory
from aitestbed.settings import load_settings

from tests.faults.singleuser_standin import hub_config_lines
from tests.faults.test_class_start import (
    CHOICE,
    OPERATOR,
    class_sections,
    hub_servers,
    open_records,
    press_start_together,
    user_tokens,
)
from tests.harness import running_portal, wait_until

pytestmark = pytest.mark.integration

RUNNING = 7
PAGE = "c.JupyterHub.api_page_default_limit = 2\nc.JupyterHub.api_page_max_limit = 3\n"


def record_stopped_at(settings_path, record_id: int):
    engine = make_engine(load_settings(settings_path).site.database_url)
    try:
        with session_factory(engine)() as session:
            return session.get(models.SessionRecord, record_id).stopped_at
    finally:
        engine.dispose()


def test_reconcile_pages_through_the_hub_and_closes_only_what_stopped(tmp_path):
    names = [f"student{i}" for i in range(RUNNING)]
    users = {name: "pw" for name in [*names, OPERATOR]}
    with running_portal(
        tmp_path / "pages",
        users,
        sections=class_sections(names),
        env={"AITESTBED_RECONCILE_SECONDS": "1"},
        hub_config=hub_config_lines() + PAGE,
    ) as portal:
        admin_token, tokens = user_tokens(portal, names)
        answers = press_start_together(portal, tokens)
        assert {n: a for n, a in answers.items() if a[0] not in (201, 202)} == {}

        def all_ready() -> bool:
            servers = hub_servers(portal, admin_token)
            return sorted(n for n, m in servers.items() if m["ready"]) == names

        wait_until(all_ready, timeout=120, interval=0.5, what=f"{RUNNING} servers")
        # One page holds 3 users: the hub itself says so.
        page = requests.get(
            f"{portal.url}/hub/api/users",
            params={"state": "active", "limit": 200},
            headers={
                "Authorization": f"token {admin_token}",
                "Accept": "application/jupyterhub-pagination+json",
            },
            timeout=30,
        ).json()
        assert (len(page["items"]), page["_pagination"]["total"]) == (3, RUNNING)

        state = load_settings(portal.settings_path).site.state_dir
        stale = requests.post(
            f"{portal.portal_url}api/internal/sessions",
            json={"user": "alice", **CHOICE},
            headers={"Authorization": f"token {(state / 'portal_api_token').read_text()}"},
            timeout=30,
        )
        assert stale.status_code == 201, stale.text
        stale_id = stale.json()["id"]
        running = {(name, ""): 1 for name in names}
        assert open_records(portal.settings_path) == {**running, ("alice", ""): 1}

        wait_until(
            lambda: record_stopped_at(portal.settings_path, stale_id) is not None,
            timeout=60,
            what="the reconciler to close the record of the server that is not running",
        )
        assert open_records(portal.settings_path) == running
        time.sleep(3)  # a few more rounds
        assert open_records(portal.settings_path) == running
