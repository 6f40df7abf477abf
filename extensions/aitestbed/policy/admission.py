"""May this start go ahead? One function, every refusal reason in one sentence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from aitestbed.policy.model import FlavorSpec, ImageSpec, ProjectState, SpawnRequest

# A tolerance for float sums of MIG shares (3 x 1/7 + 4/7 must equal 1).
EPSILON = 1e-9


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    code: str = "ok"

    @classmethod
    def refuse(cls, code: str, reason: str) -> Decision:
        return cls(False, reason, code)


ALLOW = Decision(True)


def not_a_member(slug: str) -> Decision:
    return Decision.refuse(
        "not-a-member",
        f"You are not a member of a project {slug[:63]!r}; choose one of your projects.",
    )


def check_flavor(project: ProjectState, flavor: FlavorSpec | None, slug: str) -> Decision:
    if flavor is None:
        return Decision.refuse(
            "unknown-flavor",
            f"There is no flavor {slug[:63]!r}; choose one offered on the spawn page.",
        )
    if not flavor.enabled:
        return Decision.refuse(
            "unknown-flavor",
            f"The flavor {slug!r} is no longer offered; choose another one on the spawn page.",
        )
    if project.allowed_flavors is not None and flavor.slug not in project.allowed_flavors:
        return Decision.refuse(
            "flavor-not-allowed",
            f"Project {project.slug!r} may not use the flavor {flavor.display_name!r}.",
        )
    return ALLOW


def check_image(project: ProjectState, image: ImageSpec | None, slug: str) -> Decision:
    if image is None:
        return Decision.refuse(
            "unknown-image",
            f"There is no image {slug[:63]!r}; choose one offered on the spawn page.",
        )
    if not image.enabled:
        return Decision.refuse(
            "unknown-image",
            f"The image {slug!r} is no longer offered; choose another one on the spawn page.",
        )
    if project.allowed_images is not None and image.slug not in project.allowed_images:
        return Decision.refuse(
            "image-not-allowed",
            f"Project {project.slug!r} may not use the image {image.display_name!r}.",
        )
    return ALLOW


def check_period(project: ProjectState, today: date) -> Decision:
    if today < project.valid_from:
        return Decision.refuse(
            "not-yet-valid",
            f"Project {project.slug!r} starts on {project.valid_from.isoformat()}; "
            "sessions can be started from then on.",
        )
    if today > project.valid_until:
        return Decision.refuse(
            "expired",
            f"Project {project.slug!r} ended on {project.valid_until.isoformat()}; "
            "ask an operator to extend the allocation.",
        )
    return ALLOW


def check_quota(project: ProjectState, flavor: FlavorSpec) -> Decision:
    """GPU flavors need GPU-hours left and room under the concurrent-GPU cap."""
    if not flavor.uses_gpu:
        return ALLOW
    if project.gpu_hours_left <= EPSILON:
        return Decision.refuse(
            "budget-exhausted",
            f"Project {project.slug!r} has used its {project.gpu_hours_budget:g} GPU-hours; "
            "CPU flavors remain available.",
        )
    if project.gpus_in_use + flavor.gpu_equivalent > project.max_concurrent_gpus + EPSILON:
        return Decision.refuse(
            "gpu-cap-reached",
            f"Project {project.slug!r} already uses {project.gpus_in_use:g} of its "
            f"{project.max_concurrent_gpus} GPUs; stop a session or choose a smaller flavor.",
        )
    return ALLOW


def no_capacity_reason(flavor: str, total: float) -> str:
    if total <= 0:
        return (
            f"No node in service offers what the flavor {flavor!r} needs (its GPU type or "
            "MIG slice); choose another flavor or ask the operators."
        )
    return (
        f"All {total:g} places for the flavor {flavor!r} are in use right now; choose "
        "another flavor or try again later."
    )


def check_capacity(flavor: str, open_sessions: int, places: int | None) -> Decision:
    """A flavor with ``places`` sessions (None: no known limit) holding ``open_sessions``."""
    if places is None or open_sessions < places:
        return ALLOW
    if places <= 0:
        return Decision.refuse(
            "no-capacity",
            f"The flavor {flavor!r} has no free place right now; choose another flavor or "
            "try again later.",
        )
    return Decision.refuse("no-capacity", no_capacity_reason(flavor, places))


def admit(
    request: SpawnRequest,
    projects: Sequence[ProjectState],
    flavors: Mapping[str, FlavorSpec],
    images: Mapping[str, ImageSpec],
    today: date,
) -> Decision:
    """Decide one start; the first failing check gives the reason."""
    project = next((p for p in projects if p.slug == request.project), None)
    if project is None:
        return Decision.refuse(
            "not-a-member",
            f"You are not a member of a project {request.project!r}; choose one of your projects.",
        )
    flavor = flavors.get(request.flavor)
    for decision in (
        check_period(project, today),
        check_flavor(project, flavor, request.flavor),
        check_image(project, images.get(request.image), request.image),
    ):
        if not decision.allowed:
            return decision
    assert flavor is not None  # check_flavor refused otherwise
    return check_quota(project, flavor)
