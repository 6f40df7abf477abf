"""The safeguards of pseudonymized data (aitestbed.policy.safezone), table by table."""

from __future__ import annotations

from datetime import date

import pytest
from aitestbed.policy.safezone import (
    LICENSED,
    OPEN,
    PSEUDONYMIZED,
    default_class,
    grant_in_force,
    grant_problems,
    linkage_decision,
    safe_mode,
    split_unlinked,
)

TODAY = date(2026, 11, 30)
LATER = date(2027, 6, 30)
BEFORE = date(2026, 11, 29)


@pytest.mark.parametrize(("visibility", "expected"), [("public", OPEN), ("granted", LICENSED)])
def test_default_class_follows_visibility_never_pseudonymized(visibility, expected):
    assert default_class(visibility) == expected


@pytest.mark.parametrize(
    ("data_class", "purpose", "expires", "expected"),
    [
        (OPEN, None, None, []),
        (LICENSED, None, None, []),
        (LICENSED, "x", BEFORE, [("expires_on", "2026-11-29 is in the past.")]),
        (PSEUDONYMIZED, "churn model", LATER, []),
        (PSEUDONYMIZED, "churn model", TODAY, []),
        (
            PSEUDONYMIZED,
            None,
            LATER,
            [("purpose", "a pseudonymized dataset is granted for a named purpose; say what for.")],
        ),
        (
            PSEUDONYMIZED,
            "   ",
            LATER,
            [("purpose", "a pseudonymized dataset is granted for a named purpose; say what for.")],
        ),
        (
            PSEUDONYMIZED,
            "churn model",
            None,
            [("expires_on", "a pseudonymized dataset is granted until a date; give the expiry.")],
        ),
        (
            PSEUDONYMIZED,
            "x" * 501,
            BEFORE,
            [
                ("purpose", "must be at most 500 characters."),
                ("expires_on", "2026-11-29 is in the past."),
            ],
        ),
    ],
)
def test_grant_problems(data_class, purpose, expires, expected):
    assert grant_problems(data_class, purpose, expires, TODAY) == expected


@pytest.mark.parametrize(
    ("data_class", "purpose", "expires", "in_force"),
    [
        (OPEN, None, None, True),
        (LICENSED, None, None, True),
        (LICENSED, None, BEFORE, False),
        (PSEUDONYMIZED, "p", LATER, True),
        (PSEUDONYMIZED, "p", TODAY, True),  # the expiry is the last day with access
        (PSEUDONYMIZED, "p", BEFORE, False),
        (PSEUDONYMIZED, None, LATER, False),
        (PSEUDONYMIZED, "", LATER, False),
        (PSEUDONYMIZED, "p", None, False),
    ],
)
def test_grant_in_force(data_class, purpose, expires, in_force):
    assert grant_in_force(data_class, purpose, expires, TODAY) is in_force


REFUSAL = (
    "The pseudonymized datasets 'a' and 'b' may not be combined without an operator's "
    "linkage approval; ask the operators, or use one of them at a time."
)


@pytest.mark.parametrize(
    ("classes", "approved", "allowed"),
    [
        ({}, [], True),
        ({"a": PSEUDONYMIZED}, [], True),
        ({"a": PSEUDONYMIZED, "o": OPEN, "l": LICENSED}, [], True),
        ({"a": PSEUDONYMIZED, "b": PSEUDONYMIZED}, [], False),
        ({"a": PSEUDONYMIZED, "b": PSEUDONYMIZED}, [("a", "b")], True),
        ({"a": PSEUDONYMIZED, "b": PSEUDONYMIZED}, [("b", "a")], True),  # order-free
        ({"a": PSEUDONYMIZED, "b": PSEUDONYMIZED, "c": PSEUDONYMIZED}, [("a", "b")], False),
        (
            {"a": PSEUDONYMIZED, "b": PSEUDONYMIZED, "c": PSEUDONYMIZED},
            [("a", "b"), ("b", "c"), ("a", "c")],
            True,
        ),
    ],
)
def test_linkage_needs_an_approval_for_every_pair(classes, approved, allowed):
    decision = linkage_decision(classes, approved)
    assert decision.allowed is allowed
    assert decision.code == ("ok" if allowed else "linkage-not-approved")


def test_linkage_refusal_names_the_first_unapproved_pair():
    decision = linkage_decision({"b": PSEUDONYMIZED, "a": PSEUDONYMIZED}, [])
    assert decision.reason == REFUSAL


def test_unlinked_session_keeps_the_other_datasets_and_leaves_out_all_pseudonymized():
    kept, left = split_unlinked({"a": PSEUDONYMIZED, "b": PSEUDONYMIZED, "o": OPEN}, [])
    assert kept == ["o"]
    assert [(slug, d.code, d.reason) for slug, d in left] == [
        ("a", "linkage-not-approved", REFUSAL),
        ("b", "linkage-not-approved", REFUSAL),
    ]
    assert split_unlinked({"a": PSEUDONYMIZED, "o": OPEN}, []) == (["a", "o"], [])


@pytest.mark.parametrize(
    ("classes", "safe", "datasets"),
    [
        ({}, False, ()),
        ({"o": OPEN, "l": LICENSED}, False, ()),
        ({"o": OPEN, "p": PSEUDONYMIZED}, True, ("p",)),
        ({"q": PSEUDONYMIZED, "p": PSEUDONYMIZED}, True, ("p", "q")),
    ],
)
def test_safe_mode_when_one_mounted_dataset_is_pseudonymized(classes, safe, datasets):
    mode = safe_mode(classes)
    assert (mode.safe, mode.datasets) == (safe, datasets)
    assert mode.reason.startswith("Safe mode: this session mounts pseudonymized data") is safe
