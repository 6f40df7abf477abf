"""Who may see and use which dataset (pure: no database, no files).

Two questions, asked everywhere a dataset is touched (catalog, files, mounts, jobs):

* **see**: may the user know the dataset exists (its title, description, terms)? Public
  datasets are seen by every logged-in user, granted ones by members of a project with an
  active allocation that holds a grant, every dataset by operators (they curate the catalog).
* **use**: may the user read its files, mount it or give it to a job? Only when entitled
  (public, or granted to the project in question, or to any of the user's active projects
  when no project is in question) *and* the current terms version, if there are terms, has
  been accepted by this user. Operators are not exempt from terms: the terms bind everyone
  who reads the data.

A refusal says why in one sentence a user can act on; the code lets programs branch.
Datasets a user may not see are answered as unknown, so names of other tenants' datasets
do not leak.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PUBLIC = "public"
GRANTED = "granted"


@dataclass(frozen=True)
class DatasetRule:
    """What the policy needs to know about one dataset."""

    slug: str
    visibility: str  # public | granted
    granted_projects: frozenset[str] = frozenset()
    terms_version: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Viewer:
    """The user asking: name, active project slugs (allocation valid today), operator?"""

    name: str
    projects: frozenset[str] = frozenset()
    is_operator: bool = False
    # dataset slug -> terms versions this user has accepted
    accepted: Mapping[str, frozenset[str]] | None = None

    def has_accepted(self, slug: str, version: str) -> bool:
        return version in (self.accepted or {}).get(slug, frozenset())


@dataclass(frozen=True)
class DatasetDecision:
    allowed: bool
    code: str  # ok | unknown | disabled | not-entitled | terms-not-accepted
    reason: str


def _ok() -> DatasetDecision:
    return DatasetDecision(True, "ok", "")


def unknown(slug: str) -> DatasetDecision:
    return DatasetDecision(
        False,
        "unknown",
        f"There is no dataset {slug!r} that you can see. Check the name in the catalog "
        "(aitestbed.datasets.list()).",
    )


def entitled(rule: DatasetRule, projects: Iterable[str]) -> bool:
    """Public, or granted to one of ``projects``."""
    return rule.visibility == PUBLIC or bool(rule.granted_projects & frozenset(projects))


def can_see(rule: DatasetRule, viewer: Viewer) -> bool:
    if not rule.enabled:
        return viewer.is_operator
    return viewer.is_operator or entitled(rule, viewer.projects)


def use_decision(
    rule: DatasetRule | None, viewer: Viewer, project: str | None = None, *, slug: str = ""
) -> DatasetDecision:
    """May ``viewer`` use the dataset's files, in ``project`` (None: any of theirs)?

    ``project`` must already be one of the viewer's active projects when given (the caller
    checks membership); a dataset granted only to another project is then not usable,
    even by a member of both: a session or job works for one project at a time.
    """
    if rule is None or not can_see(rule, viewer):
        return unknown(rule.slug if rule else slug)
    if not rule.enabled:
        return DatasetDecision(
            False, "disabled", f"The dataset {rule.slug!r} has been withdrawn from the catalog."
        )
    scope = viewer.projects if project is None else frozenset({project}) & viewer.projects
    if not entitled(rule, scope):
        where = f"the project {project!r}" if project else "any of your projects"
        return DatasetDecision(
            False,
            "not-entitled",
            f"The dataset {rule.slug!r} is not granted to {where}. Ask the operators to "
            "grant it, or work in a project that has it.",
        )
    if rule.terms_version and not viewer.has_accepted(rule.slug, rule.terms_version):
        return DatasetDecision(
            False,
            "terms-not-accepted",
            f"Accept version {rule.terms_version} of the terms of {rule.slug!r} first "
            f"(aitestbed.datasets.accept_terms({rule.slug!r}) or the dataset browser).",
        )
    return _ok()


def session_datasets(
    rules: Iterable[DatasetRule], viewer: Viewer, project: str
) -> tuple[list[str], list[tuple[str, DatasetDecision]]]:
    """For a session or job in ``project``: the slugs to mount (sorted), and the refused
    datasets the user could otherwise see with their decisions (for the audit log and a
    hint in the session's progress). Datasets the user cannot see are not mentioned."""
    mounted: list[str] = []
    refused: list[tuple[str, DatasetDecision]] = []
    for rule in sorted(rules, key=lambda r: r.slug):
        if not rule.enabled or not entitled(rule, frozenset({project}) & viewer.projects):
            continue
        decision = use_decision(rule, viewer, project)
        if decision.allowed:
            mounted.append(rule.slug)
        else:
            refused.append((rule.slug, decision))
    return mounted, refused
