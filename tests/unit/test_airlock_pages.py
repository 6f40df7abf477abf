"""The airlock page: a user asks with the form, a steward sees the findings and decides,
the requester downloads once; hostile names are shown escaped and refusals say why."""

from __future__ import annotations

import re

from tests.unit.test_airlock_api import SUMMARY, airlock, audit  # noqa: F401 (fixture)
from tests.unit.test_portal_api import PREFIX
from tests.unit.test_portal_pages import as_user, nav_keys, post


def test_ask_review_and_download_once_through_the_page(airlock):  # noqa: F811
    client, outbox = airlock
    (outbox / "<img src=x>.csv").write_text("a,n\nx,2\n")
    asked = post(
        client,
        "t-alice",
        "airlock/requests",
        project="acme-vision",
        files="counts.csv\ntables/summary.csv\n<img src=x>.csv",
        reason="figures for the paper",
    )
    assert asked.status_code == 303, asked.text
    page = as_user(client, "t-alice").get(PREFIX + "airlock")
    assert "airlock" in nav_keys(page.text)
    assert "Export request 1 is waiting" not in page.text  # the notice is on the redirect
    assert "&lt;img src=x&gt;.csv" in page.text and "<img src=x>" not in page.text
    assert 'value="approve"' not in page.text  # alice is a steward, but it is her request

    review = as_user(client, "t-bob").get(PREFIX + "airlock")
    assert review.text.count('value="approve"') == 3
    assert "1 cell(s) count fewer than 10 (e.g. 3)" in review.text
    ids = re.findall(r'id="export-file-(\d+)"', review.text)
    approve = post(
        client, "t-bob", f"airlock/requests/1/files/{ids[1]}/decision", decision="approve"
    )
    assert approve.status_code == 303
    decline = post(
        client, "t-bob", f"airlock/requests/1/files/{ids[0]}/decision", decision="decline"
    )
    assert decline.status_code == 303
    own = post(client, "t-alice", f"airlock/requests/1/files/{ids[2]}/decision", decision="approve")
    assert own.status_code == 403
    assert "You asked for this export; another data steward must review it." in own.text

    mine = as_user(client, "t-alice").get(PREFIX + "airlock").text
    link = f"airlock/requests/1/files/{ids[1]}/download"
    assert mine.count("Download once") == 1 and link in mine
    first = as_user(client, "t-alice").get(PREFIX + link)
    assert (first.status_code, first.content) == (200, SUMMARY.encode())
    second = as_user(client, "t-alice").get(PREFIX + link)
    assert second.status_code == 410
    assert "This file has been downloaded already" in second.text
    assert audit(client, "airlock-download") == [
        ("alice", True, "ok"),
        ("alice", False, "downloaded"),
    ]


def test_a_hostile_path_in_the_form_is_refused_with_the_reason(airlock):  # noqa: F811
    client, _ = airlock
    refused = post(
        client,
        "t-alice",
        "airlock/requests",
        project="acme-vision",
        files="../../etc/passwd",
        reason="x",
    )
    assert refused.status_code == 422
    assert "a path inside the outbox has no &#39;.&#39; or &#39;..&#39; parts." in refused.text
    assert audit(client, "airlock-request") == [("alice", False, "bad-path")]
