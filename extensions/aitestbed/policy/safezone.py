"""Safeguards for pseudonymized data (pure: no database, no files).

Every dataset has a **class** that says how sensitive its contents are:

* ``open``: open data, no safeguards beyond the catalog's grants and terms;
* ``licensed``: data under a license (grants and terms, as for every dataset);
* ``pseudonymized``: personal data whose identifiers were replaced by pseudonyms. The law
  lets it be used for research and statistics under safeguards, so besides the grant and
  the terms it needs:

  - a named **purpose** and an **expiry** on each project's grant (a grant without them,
    or past its expiry, gives no access);
  - an operator's **linkage approval** before two pseudonymized datasets meet in one
    session or job (joining them is where re-identification happens);
  - **safe mode** for every session or job that mounts one (no egress, no downloads,
    results out only through the airlock).

The decisions take the shape of :mod:`aitestbed.policy.admission`: a value with
``allowed``, a ``code`` programs branch on and one sentence a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import combinations

OPEN = "open"
LICENSED = "licensed"
PSEUDONYMIZED = "pseudonymized"
DATA_CLASSES = (OPEN, LICENSED, PSEUDONYMIZED)

PURPOSE_MAX_LENGTH = 500

# A safe session's results go to this folder of its project (the airlock reads it).
OUTBOX_FOLDER = "outbox"
SAFE_MODE_ENV = "AITESTBED_SAFE_MODE"
OUTBOX_ENV = "AITESTBED_OUTBOX"
# Server arguments of a safe session: command-line values win over every configuration
# file, including the user's own ~/.jupyter, so the user cannot switch the refusals off.
SAFE_MODE_ARGS = (
    "--ServerApp.contents_manager_class=aitestbed.notebook.safe_zone.SafeContentsManager",
    "--ServerApp.extra_services=aitestbed.notebook.safe_zone",
)


def safe_mode_environment(outbox: str) -> dict[str, str]:
    """The environment that tells a session (and the notebook package) it is in safe mode."""
    return {SAFE_MODE_ENV: "1", OUTBOX_ENV: outbox}


def default_class(visibility: str) -> str:
    """The class a dataset has when its document names none: public data is open, granted
    data is licensed (never pseudonymized by default: that class is a deliberate choice)."""
    return OPEN if visibility == "public" else LICENSED


@dataclass(frozen=True)
class SafeDecision:
    allowed: bool
    code: str
    reason: str = ""


def _ok() -> SafeDecision:
    return SafeDecision(True, "ok")


def grant_problems(
    data_class: str, purpose: str | None, expires_on: date | None, today: date
) -> list[tuple[str, str]]:
    """Problems of a grant about to be made, as (field, message) pairs; none for open and
    licensed data (a purpose or expiry given for them is kept, not required)."""
    problems: list[tuple[str, str]] = []
    if purpose is not None and len(purpose) > PURPOSE_MAX_LENGTH:
        problems.append(("purpose", f"must be at most {PURPOSE_MAX_LENGTH} characters."))
    if expires_on is not None and expires_on < today:
        problems.append(("expires_on", f"{expires_on.isoformat()} is in the past."))
    if data_class != PSEUDONYMIZED:
        return problems
    if not (purpose or "").strip():
        problems.append(
            ("purpose", "a pseudonymized dataset is granted for a named purpose; say what for.")
        )
    if expires_on is None:
        problems.append(
            ("expires_on", "a pseudonymized dataset is granted until a date; give the expiry.")
        )
    return problems


def grant_in_force(
    data_class: str, purpose: str | None, expires_on: date | None, today: date
) -> bool:
    """Does a grant give access ``today``? A grant with an expiry ends after that day; a
    pseudonymized dataset's grant also needs a purpose and an expiry."""
    if expires_on is not None and expires_on < today:
        return False
    if data_class == PSEUDONYMIZED:
        return bool((purpose or "").strip()) and expires_on is not None
    return True


def linkage_pair(first: str, second: str) -> tuple[str, str]:
    """The order-free key of an approval for two datasets."""
    return (first, second) if first <= second else (second, first)


def linkage_decision(
    classes: Mapping[str, str], approved: Iterable[tuple[str, str]]
) -> SafeDecision:
    """May these datasets (slug -> class) meet in one session or job? Every pair of
    pseudonymized datasets among them needs an operator's approval (for the project)."""
    pseudonymized = sorted(slug for slug, kind in classes.items() if kind == PSEUDONYMIZED)
    have = {linkage_pair(*pair) for pair in approved}
    missing = [pair for pair in combinations(pseudonymized, 2) if pair not in have]
    if not missing:
        return _ok()
    first, second = missing[0]
    return SafeDecision(
        False,
        "linkage-not-approved",
        f"The pseudonymized datasets {first!r} and {second!r} may not be combined without "
        "an operator's linkage approval; ask the operators, or use one of them at a time.",
    )


def split_unlinked(
    classes: Mapping[str, str], approved: Iterable[tuple[str, str]]
) -> tuple[list[str], list[tuple[str, SafeDecision]]]:
    """For a session, which mounts everything its project may use: the slugs that stay
    (sorted) and the pseudonymized ones left out because their linkage is not approved.
    All pseudonymized datasets are left out then (none is preferred over another); the
    open and licensed ones stay."""
    decision = linkage_decision(classes, approved)
    if decision.allowed:
        return sorted(classes), []
    kept = sorted(slug for slug, kind in classes.items() if kind != PSEUDONYMIZED)
    left = sorted(slug for slug, kind in classes.items() if kind == PSEUDONYMIZED)
    return kept, [(slug, decision) for slug in left]


@dataclass(frozen=True)
class SafeMode:
    """Whether a session or job runs in safe mode, and the datasets that make it so."""

    safe: bool
    datasets: tuple[str, ...] = ()
    reason: str = ""


def safe_mode(classes: Mapping[str, str]) -> SafeMode:
    """Safe mode for the mounted datasets (slug -> class): on as soon as one is
    pseudonymized."""
    sensitive = tuple(sorted(slug for slug, kind in classes.items() if kind == PSEUDONYMIZED))
    if not sensitive:
        return SafeMode(False)
    names = ", ".join(sensitive)
    return SafeMode(
        True,
        sensitive,
        f"Safe mode: this session mounts pseudonymized data ({names}). It cannot reach the "
        "internet or download files; results leave only through the airlock "
        "(outbox folder, reviewed by a data steward).",
    )
