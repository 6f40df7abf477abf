"""The ``courses`` section of the site settings: what a course is, and the rules between its
fields and the rest of the file (the JSON Schema checks each field alone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aitestbed.policy.courses import DAY_NAMES as DAYS
from aitestbed.policy.courses import Slot


@dataclass(frozen=True)
class CourseMember:
    user: str
    role: str = "student"


@dataclass(frozen=True)
class Course:
    slug: str
    title: str
    term_start: date
    term_end: date
    image: str
    flavor: str
    cpu_flavor: str | None = None
    description: str = ""
    slots: tuple[Slot, ...] = ()
    outside_slots: str = "none"
    gpu_hours: float = 0.0
    max_concurrent_gpus: int = 0
    student_gpu_hours: float | None = None
    materials_repo: str | None = None
    materials_branch: str = "main"
    members: tuple[CourseMember, ...] = ()


def parse_slot(doc: dict[str, Any]) -> Slot:
    return Slot(
        days=tuple(sorted(DAYS.index(d) for d in doc["days"])),
        start=time.fromisoformat(doc["start"]),
        end=time.fromisoformat(doc["end"]),
    )


def slot_problems(slots: list[dict[str, Any]], where: str) -> list[tuple[str, str]]:
    """End after start, and no two slots on the same day that overlap."""
    problems = []
    parsed = []
    for index, doc in enumerate(slots):
        slot = parse_slot(doc)
        if slot.end <= slot.start:
            problems.append(
                (f"{where}[{index}].end", f"{doc['end']} is not after the start {doc['start']}.")
            )
            continue
        for other_index, other in parsed:
            shared = set(slot.days) & set(other.days)
            if shared and slot.start < other.end and other.start < slot.end:
                day = DAYS[min(shared)]
                problems.append(
                    (
                        f"{where}[{index}]",
                        f"overlaps slot {other_index} on {day} "
                        f"({other.start:%H:%M}-{other.end:%H:%M}).",
                    )
                )
        parsed.append((index, slot))
    return problems


def timezone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a known time zone; use an IANA name such as Asia/Seoul."
    return None


def course_problems(
    courses: list[dict[str, Any]],
    flavors: dict[str, dict[str, Any]],
    image_slugs: set[str],
    project_slugs: set[str],
    parse_date,
) -> list[tuple[str, str]]:
    """Rules between a course and the catalog; ``flavors`` are the flavor documents."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, course in enumerate(courses):
        where = f"courses[{index}]"
        slug = course["slug"]
        if slug in seen:
            problems.append((f"{where}.slug", f"{slug!r} is listed twice."))
        if slug in project_slugs:
            problems.append(
                (
                    f"{where}.slug",
                    f"{slug!r} is already a project; courses and projects share names.",
                )
            )
        seen.add(slug)
        start = parse_date(course["term"]["start"], f"{where}.term.start", problems)
        end = parse_date(course["term"]["end"], f"{where}.term.end", problems)
        if start and end and end < start:
            problems.append((f"{where}.term.end", f"{end} is before the start {start}."))
        environment = course["environment"]
        if environment["image"] not in image_slugs:
            problems.append(
                (f"{where}.environment.image", f"no image {environment['image']!r} is defined.")
            )
        for key in ("flavor", "cpu_flavor"):
            flavor = environment.get(key)
            if flavor is not None and flavor not in flavors:
                problems.append((f"{where}.environment.{key}", f"no flavor {flavor!r} is defined."))
        cpu_flavor = environment.get("cpu_flavor")
        if cpu_flavor in flavors and _uses_gpu(flavors[cpu_flavor]):
            problems.append(
                (f"{where}.environment.cpu_flavor", f"{cpu_flavor!r} is not a CPU flavor.")
            )
        if (
            course.get("outside_slots") == "cpu-only"
            and cpu_flavor is None
            and all(_uses_gpu(f) for f in flavors.values())
        ):
            problems.append(
                (f"{where}.outside_slots", "cpu-only needs a CPU flavor; none is defined.")
            )
        problems += slot_problems(course.get("slots", []), f"{where}.slots")
        members = [m["user"] for m in course.get("members", [])]
        for position, user in enumerate(members):
            if user in members[:position]:
                problems.append((f"{where}.members[{position}].user", f"{user!r} is listed twice."))
    return problems


def _uses_gpu(flavor: dict[str, Any]) -> bool:
    return bool(flavor.get("gpus")) or bool(flavor.get("mig_profile"))


def first_cpu_flavor(flavors: list[dict[str, Any]]) -> str | None:
    return next((f["slug"] for f in flavors if not _uses_gpu(f)), None)


def build_course(doc: dict[str, Any], flavors: list[dict[str, Any]]) -> Course:
    environment = doc["environment"]
    allocation = doc.get("allocation", {})
    materials = doc.get("materials")
    return Course(
        slug=doc["slug"],
        title=doc["title"],
        description=doc.get("description", ""),
        term_start=date.fromisoformat(doc["term"]["start"]),
        term_end=date.fromisoformat(doc["term"]["end"]),
        image=environment["image"],
        flavor=environment["flavor"],
        cpu_flavor=environment.get("cpu_flavor") or first_cpu_flavor(flavors),
        slots=tuple(parse_slot(s) for s in doc.get("slots", [])),
        outside_slots=doc.get("outside_slots", "none"),
        gpu_hours=float(allocation.get("gpu_hours", 0)),
        max_concurrent_gpus=int(allocation.get("max_concurrent_gpus", 0)),
        student_gpu_hours=doc.get("student_gpu_hours"),
        materials_repo=materials["repo"] if materials else None,
        materials_branch=materials.get("branch", "main") if materials else "main",
        members=tuple(CourseMember(**m) for m in doc.get("members", [])),
    )
