"""The airlock's pure rules and the output checks, table by table."""

from __future__ import annotations

import pytest
from aitestbed.policy.airlock import (
    APPROVED,
    DECLINED,
    PENDING,
    may_decide,
    may_download,
    may_redecide,
    path_problem,
)
from aitestbed.policy.output_checks import check_csv, check_output, dominated, small_cells


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("table.csv", None),
        ("results/figure 1.png", None),
        ("", "give a path inside the outbox of at most 255 characters."),
        ("x" * 256, "give a path inside the outbox of at most 255 characters."),
        ("../secret.csv", "a path inside the outbox has no '.' or '..' parts."),
        ("a/../../b", "a path inside the outbox has no '.' or '..' parts."),
        ("./a.csv", "a path inside the outbox has no '.' or '..' parts."),
        ("dir/", "a path inside the outbox has no '.' or '..' parts."),
        ("/etc/passwd", "give the path relative to the outbox folder, not an absolute path."),
        ("..\\x", "a path has no control characters or backslashes."),
        ("a\x00b", "a path has no control characters or backslashes."),
        ("a\nb", "a path has no control characters or backslashes."),
        (".ssh/id_rsa", "hidden files are not exported."),
    ],
)
def test_paths(path, problem):
    assert path_problem(path) == problem


@pytest.mark.parametrize(
    ("requester", "decider", "steward", "code", "status"),
    [
        ("alice", "bob", True, "ok", 200),
        ("alice", "alice", True, "own-request", 403),
        ("alice", "bob", False, "not-a-steward", 403),
        ("alice", "alice", False, "not-a-steward", 403),
    ],
)
def test_who_may_decide(requester, decider, steward, code, status):
    decision = may_decide(requester, decider, is_steward=steward)
    assert (decision.code, decision.status, decision.allowed) == (code, status, code == "ok")


@pytest.mark.parametrize(
    ("state", "allowed"), [(PENDING, True), (APPROVED, False), (DECLINED, False)]
)
def test_decisions_are_final(state, allowed):
    assert may_redecide(state).allowed is allowed


@pytest.mark.parametrize(
    ("state", "user", "downloaded", "code", "status"),
    [
        (APPROVED, "alice", False, "ok", 200),
        (APPROVED, "alice", True, "downloaded", 410),
        (APPROVED, "bob", False, "not-requester", 403),
        (DECLINED, "alice", False, "not-approved", 403),
        (PENDING, "alice", False, "not-approved", 403),
    ],
)
def test_download_once_by_the_requester_of_an_approved_file(state, user, downloaded, code, status):
    decision = may_download(state, "alice", user, downloaded=downloaded)
    assert (decision.code, decision.status) == (code, status)


@pytest.mark.parametrize(
    ("values", "small"),
    [([0, 10, 11], []), ([1, 9, 10], [1, 9]), ([], []), ([0.5], [0.5])],
)
def test_small_cells(values, small):
    assert small_cells(values) == small


@pytest.mark.parametrize(
    ("contributions", "result"),
    [
        ([100, 1, 1, 1], True),  # one contributor makes the total
        ([50, 45, 5], True),  # two make 95 %
        ([30, 30, 20, 20], False),
        ([10, 10], True),  # two contributions are always dominated by the two largest
        ([], False),
        ([0, 0], False),
    ],
)
def test_dominance(contributions, result):
    assert dominated(contributions) is result


def test_csv_findings_name_the_column_and_the_rule():
    text = "region,patients,income\nnorth,25,1000\nsouth,3,900\neast,40,98000\n"
    findings = [(f.check, f.message) for f in check_csv(text)]
    assert findings == [
        (
            "threshold",
            "Column 'patients': 1 cell(s) count fewer than 10 (e.g. 3); suppress or merge them.",
        ),
        (
            "dominance",
            "Column 'income': the 2 largest values make up more than 90% of its total; a "
            "total may reveal who contributed it.",
        ),
    ]
    assert check_csv("region,patients\nnorth,25\nsouth,30\neast,40\n") == []


def test_files_the_checks_cannot_read_are_said_so():
    (finding,) = check_output("plot.png", b"\x89PNG")
    assert (finding.check, finding.message) == (
        "not-checked",
        "No automatic check reads this kind of file; review it.",
    )
