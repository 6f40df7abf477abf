"""Course decisions: class slots, the outside-slot policy, the term and a student's share.

Pure functions over plain data, like :mod:`aitestbed.policy.admission`: the portal loads a
:class:`CourseRule` and the user's GPU-hours, and calls :func:`admit_course_start` beside
the project admission (a course is a project: its period, flavors, images, budget and GPU
cap are checked there). Times are aware datetimes; slots are wall-clock times in the
site's time zone, so a slot at 09:00 stays at 09:00 across daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aitestbed.policy.admission import ALLOW, EPSILON, Decision

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STAFF_ROLES = frozenset({"instructor", "assistant"})
OUTSIDE_POLICIES = ("none", "cpu-only", "allowed")


@dataclass(frozen=True)
class Slot:
    """A weekly class slot: on ``days`` (0 = Monday) from ``start`` to ``end``."""

    days: tuple[int, ...]
    start: time
    end: time


@dataclass(frozen=True)
class CourseRule:
    slug: str
    title: str
    timezone: str
    term_start: date
    term_end: date
    slots: tuple[Slot, ...] = ()
    outside_slots: str = "none"
    cpu_flavor: str | None = None
    student_gpu_hours: float | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _occurrences(rule: CourseRule, day: date) -> list[tuple[datetime, datetime]]:
    zone = rule.zone
    return sorted(
        (datetime.combine(day, s.start, zone), datetime.combine(day, s.end, zone))
        for s in rule.slots
        if day.weekday() in s.days
    )


def current_slot(rule: CourseRule, now: datetime) -> tuple[datetime, datetime] | None:
    """The slot occurrence ``now`` falls in (start inclusive, end exclusive), in term."""
    local = now.astimezone(rule.zone)
    if not rule.term_start <= local.date() <= rule.term_end:
        return None
    for start, end in _occurrences(rule, local.date()):
        if start <= now < end:
            return start, end
    return None


def next_opening(rule: CourseRule, now: datetime) -> datetime | None:
    """When the next slot of the term starts after ``now``; None if no slot is left."""
    local = now.astimezone(rule.zone)
    day = max(local.date(), rule.term_start)
    while day <= min(rule.term_end, max(local.date(), rule.term_start) + timedelta(days=7)):
        for start, _end in _occurrences(rule, day):
            if start > now:
                return start
        day += timedelta(days=1)
    return None


def opening_words(moment: datetime, now: datetime) -> str:
    """'Monday 7 December at 09:00 (Asia/Seoul)'; the year only when it is not now's."""
    year = f" {moment.year}" if moment.year != now.astimezone(moment.tzinfo).year else ""
    return f"{moment:%A} {moment.day} {moment:%B}{year} at {moment:%H:%M} ({moment.tzinfo})"


def when_next(rule: CourseRule, now: datetime) -> str:
    """The sentence a student reads about the next class."""
    opening = next_opening(rule, now)
    if opening is None:
        return f"{rule.title} has no more class slots this term."
    return f"The next class of {rule.title} opens on {opening_words(opening, now)}."


def admit_course_start(
    rule: CourseRule,
    *,
    role: str,
    flavor: str,
    flavor_uses_gpu: bool,
    student_gpu_hours_used: float,
    now: datetime,
) -> Decision:
    """May this course member start ``flavor`` now? The first failing rule gives the reason.

    Staff (instructors, assistants) prepare outside class slots and have no per-student
    share; the course's own budget and GPU cap still apply to them through the project.
    """
    today = now.astimezone(rule.zone).date()
    if today < rule.term_start:
        return Decision.refuse(
            "course-not-started",
            f"{rule.title} starts on {rule.term_start:%A} {rule.term_start.day} "
            f"{rule.term_start:%B %Y}; sessions can be started from then on.",
        )
    if today > rule.term_end:
        return Decision.refuse(
            "course-ended",
            f"{rule.title} ended on {rule.term_end.day} {rule.term_end:%B %Y}; your files are "
            "kept, ask the instructor if you need them.",
        )
    if role in STAFF_ROLES:
        return ALLOW
    if rule.slots and current_slot(rule, now) is None:
        if rule.outside_slots == "none":
            return Decision.refuse(
                "outside-class-slot",
                f"{rule.title} is open only during its class slots. {when_next(rule, now)}",
            )
        if rule.outside_slots == "cpu-only" and flavor_uses_gpu:
            cpu = f" ({rule.cpu_flavor})" if rule.cpu_flavor else ""
            return Decision.refuse(
                "course-cpu-only",
                f"Outside class slots {rule.title} offers only its CPU flavor{cpu}. "
                f"{when_next(rule, now)}",
            )
    if (
        flavor_uses_gpu
        and rule.student_gpu_hours is not None
        and student_gpu_hours_used >= rule.student_gpu_hours - EPSILON
    ):
        return Decision.refuse(
            "student-budget-exhausted",
            f"You have used your {rule.student_gpu_hours:g} GPU-hours of {rule.title}; "
            "CPU sessions remain available, or ask the instructor for more.",
        )
    return ALLOW


def course_flavors(rule: CourseRule, gpu_flavor: str) -> tuple[str, ...]:
    """The flavors a course offers: its environment's, plus the CPU one for cpu-only."""
    if rule.outside_slots == "cpu-only" and rule.cpu_flavor and rule.cpu_flavor != gpu_flavor:
        return (gpu_flavor, rule.cpu_flavor)
    return (gpu_flavor,)
