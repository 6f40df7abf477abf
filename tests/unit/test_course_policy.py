"""Course decisions as pure functions: slots in the site's zone, the next opening in words,
the outside-slot policy, the term's edges and a student's share of the GPU-hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from aitestbed.policy.courses import (
    CourseRule,
    Slot,
    admit_course_start,
    course_flavors,
    current_slot,
    next_opening,
    opening_words,
)

SEOUL = ZoneInfo("Asia/Seoul")
MON_WED_9_12 = Slot(days=(0, 2), start=time(9), end=time(12))


def rule(**changes) -> CourseRule:
    base = {
        "slug": "dl-101",
        "title": "Deep Learning 101",
        "timezone": "Asia/Seoul",
        "term_start": date(2026, 9, 1),
        "term_end": date(2026, 12, 18),
        "slots": (MON_WED_9_12,),
        "outside_slots": "none",
        "cpu_flavor": "cpu-small",
        "student_gpu_hours": 10.0,
    }
    return CourseRule(**{**base, **changes})


def seoul(*args) -> datetime:
    return datetime(*args, tzinfo=SEOUL)


@pytest.mark.parametrize(
    ("now", "inside"),
    [
        (seoul(2026, 11, 30, 8, 59), False),  # Monday, a minute early
        (seoul(2026, 11, 30, 9, 0), True),  # the first minute
        (seoul(2026, 11, 30, 11, 59), True),
        (seoul(2026, 11, 30, 12, 0), False),  # the end is not in the slot
        (seoul(2026, 12, 1, 10, 0), False),  # Tuesday
        (seoul(2026, 12, 2, 10, 0), True),  # Wednesday
        (datetime(2026, 11, 30, 1, 0, tzinfo=UTC), True),  # 10:00 in Seoul
        (seoul(2026, 12, 21, 10, 0), False),  # a Monday after the term
    ],
)
def test_current_slot_is_wall_clock_in_the_sites_zone(now, inside):
    assert (current_slot(rule(), now) is not None) is inside


@pytest.mark.parametrize(
    ("now", "opening"),
    [
        (seoul(2026, 11, 30, 8, 0), seoul(2026, 11, 30, 9, 0)),
        (seoul(2026, 11, 30, 9, 0), seoul(2026, 12, 2, 9, 0)),  # in a slot: the next one
        (seoul(2026, 12, 2, 12, 0), seoul(2026, 12, 7, 9, 0)),
        (seoul(2026, 8, 1, 9, 0), seoul(2026, 9, 2, 9, 0)),  # term starts on a Tuesday
        (seoul(2026, 12, 16, 12, 0), None),  # the last Wednesday is over
    ],
)
def test_next_opening(now, opening):
    assert next_opening(rule(), now) == opening


def test_opening_words_say_day_date_time_and_zone_and_the_year_only_when_it_differs():
    now = seoul(2026, 11, 30, 8, 0)
    assert opening_words(seoul(2026, 12, 7, 9, 0), now) == "Monday 7 December at 09:00 (Asia/Seoul)"
    assert opening_words(seoul(2027, 1, 4, 9, 0), now) == (
        "Monday 4 January 2027 at 09:00 (Asia/Seoul)"
    )


def test_slots_keep_their_wall_clock_time_across_daylight_saving():
    berlin = rule(timezone="Europe/Berlin", slots=(Slot(days=(0,), start=time(9), end=time(10)),))
    before = next_opening(berlin, datetime(2026, 10, 13, tzinfo=UTC))
    after = next_opening(berlin, datetime(2026, 10, 27, tzinfo=UTC))
    assert (before.hour, after.hour) == (9, 9)
    assert before.utcoffset() != after.utcoffset()  # CEST, then CET


def decide(course=None, *, role="student", gpu=True, used=0.0, now=None):
    course = course or rule()
    return admit_course_start(
        course,
        role=role,
        flavor="a100-1g-10gb" if gpu else "cpu-small",
        flavor_uses_gpu=gpu,
        student_gpu_hours_used=used,
        now=now or seoul(2026, 11, 30, 10, 0),
    )


OUTSIDE = seoul(2026, 12, 1, 10, 0)  # a Tuesday


@pytest.mark.parametrize(
    ("case", "kwargs", "code"),
    [
        ("in a slot", {}, "ok"),
        ("outside, policy none", {"now": OUTSIDE}, "outside-class-slot"),
        ("outside, none, CPU too", {"now": OUTSIDE, "gpu": False}, "outside-class-slot"),
        (
            "outside, cpu-only, GPU",
            {"now": OUTSIDE, "course": rule(outside_slots="cpu-only")},
            "course-cpu-only",
        ),
        (
            "outside, cpu-only, CPU",
            {"now": OUTSIDE, "gpu": False, "course": rule(outside_slots="cpu-only")},
            "ok",
        ),
        ("outside, allowed", {"now": OUTSIDE, "course": rule(outside_slots="allowed")}, "ok"),
        ("no slots at all", {"now": OUTSIDE, "course": rule(slots=())}, "ok"),
        ("instructor outside", {"now": OUTSIDE, "role": "instructor"}, "ok"),
        ("assistant outside", {"now": OUTSIDE, "role": "assistant"}, "ok"),
        ("share used up", {"used": 10.0}, "student-budget-exhausted"),
        ("share nearly used", {"used": 9.99}, "ok"),
        ("share used, CPU", {"used": 10.0, "gpu": False}, "ok"),
        ("no per-student share", {"used": 99.0, "course": rule(student_gpu_hours=None)}, "ok"),
        ("instructor, share used", {"used": 99.0, "role": "instructor"}, "ok"),
        (
            "before the term",
            {"now": seoul(2026, 8, 31, 10, 0), "role": "instructor"},
            "course-not-started",
        ),
        ("first day of the term", {"now": seoul(2026, 9, 2, 10, 0)}, "ok"),
        ("last day of the term", {"now": seoul(2026, 12, 16, 10, 0)}, "ok"),
        (
            "after the term",
            {"now": seoul(2026, 12, 19, 0, 0), "role": "instructor"},
            "course-ended",
        ),
    ],
)
def test_admit_course_start(case, kwargs, code):
    assert decide(**kwargs).code == code, case


def test_refusals_say_when_the_next_class_opens():
    refused = decide(now=OUTSIDE)
    assert refused.reason == (
        "Deep Learning 101 is open only during its class slots. The next class of "
        "Deep Learning 101 opens on Wednesday 2 December at 09:00 (Asia/Seoul)."
    )
    cpu_only = decide(rule(outside_slots="cpu-only"), now=OUTSIDE)
    assert cpu_only.reason.startswith(
        "Outside class slots Deep Learning 101 offers only its CPU flavor (cpu-small). "
    )
    last = decide(now=seoul(2026, 12, 17, 10, 0))
    assert last.reason.endswith("Deep Learning 101 has no more class slots this term.")


def test_course_flavors():
    assert course_flavors(rule(), "a100-1g-10gb") == ("a100-1g-10gb",)
    assert course_flavors(rule(outside_slots="cpu-only"), "a100-1g-10gb") == (
        "a100-1g-10gb",
        "cpu-small",
    )
