"""What a user is offered on the spawn page, computed from their projects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from aitestbed.policy.admission import check_period, check_quota, not_a_member
from aitestbed.policy.model import FlavorSpec, ImageSpec, ProjectState


@dataclass(frozen=True)
class FlavorOption:
    flavor: FlavorSpec
    available: bool
    reason: str = ""


@dataclass(frozen=True)
class ProjectOptions:
    project: ProjectState
    active: bool
    reason: str
    flavors: tuple[FlavorOption, ...]
    images: tuple[ImageSpec, ...]


def project_options(
    project: ProjectState,
    flavors: Sequence[FlavorSpec],
    images: Sequence[ImageSpec],
    today: date,
) -> ProjectOptions:
    period = check_period(project, today)
    allowed_flavors = [
        f
        for f in flavors
        if f.enabled and (project.allowed_flavors is None or f.slug in project.allowed_flavors)
    ]
    allowed_images = tuple(
        i
        for i in images
        if i.enabled and (project.allowed_images is None or i.slug in project.allowed_images)
    )
    offered = []
    for flavor in allowed_flavors:
        quota = check_quota(project, flavor)
        offered.append(FlavorOption(flavor, period.allowed and quota.allowed, quota.reason))
    return ProjectOptions(project, period.allowed, period.reason, tuple(offered), allowed_images)


def spawn_options(
    projects: Sequence[ProjectState],
    flavors: Sequence[FlavorSpec],
    images: Sequence[ImageSpec],
    today: date,
) -> list[ProjectOptions]:
    """Every project of the user with what it allows now; active projects first."""
    options = [project_options(p, flavors, images, today) for p in projects]
    return sorted(options, key=lambda o: (not o.active, o.project.slug))


def complete_request(
    options: Sequence[ProjectOptions], chosen: dict[str, str]
) -> tuple[dict[str, str], str]:
    """Fill what a start request left out with the obvious choice, never overriding a choice.

    Returns the completed choice and "" or, when no obvious choice exists, a reason. A
    student who just presses Start gets their one project, its first image and first
    available flavor; a user with several projects must say which one is charged.
    """
    result = dict(chosen)
    if "project" not in result:
        active = [o for o in options if o.active]
        if len(active) != 1:
            if not active:
                return result, "You have no active project, so no session can be started."
            return result, "You belong to several projects: choose the one to charge."
        result["project"] = active[0].project.slug
    project = next((o for o in options if o.project.slug == result["project"]), None)
    if project is None:
        return result, not_a_member(result["project"]).reason
    if "image" not in result and project.images:
        result["image"] = project.images[0].slug
    if "flavor" not in result:
        available = [o.flavor for o in project.flavors if o.available]
        if available:
            result["flavor"] = available[0].slug
        elif project.flavors:
            result["flavor"] = project.flavors[0].flavor.slug  # admission explains why not
    missing = [k for k in ("image", "flavor") if k not in result]
    if missing:
        return result, f"Project {project.project.slug!r} offers no {missing[0]} to start."
    return result, ""
