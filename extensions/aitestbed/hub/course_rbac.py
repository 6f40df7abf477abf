"""JupyterHub groups and roles for courses: instructors and assistants act on their own
students' servers through the hub's own RBAC, with no admin token anywhere.

Each course has two hub groups: ``course.<slug>`` (everyone in the course) and
``staff.<slug>`` (its instructors and assistants). The staff group holds one role whose
scopes are all filtered to the course group: list and read its users, start, stop and
open their servers. A dot cannot appear in a slug, so no course's group can be mistaken
for another course's staff group.

The groups, roles and the courses' settings members are created when the hub starts
(JupyterHub has no REST API for roles). Afterwards the portal keeps both groups' members
in line with its course rosters (join codes, roster imports, removals) through the hub's
groups API, with scopes limited to exactly these groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aitestbed.settings.courses import Course

STAFF_ROLES = ("instructor", "assistant")


def course_group(slug: str) -> str:
    return f"course.{slug}"


def staff_group(slug: str) -> str:
    return f"staff.{slug}"


def staff_scopes(slug: str) -> list[str]:
    """What a course's staff may do, only to the users of the course's group."""
    group = f"!group={course_group(slug)}"
    return [
        f"list:users{group}",
        f"read:users{group}",
        f"admin:servers{group}",
        f"access:servers{group}",
        f"read:groups!group={course_group(slug)}",
    ]


def course_groups(courses: Iterable[Course]) -> dict[str, dict[str, Any]]:
    """``JupyterHub.load_groups``: both groups of each course with its settings members."""
    groups: dict[str, dict[str, Any]] = {}
    for course in courses:
        groups[course_group(course.slug)] = {"users": sorted(m.user for m in course.members)}
        groups[staff_group(course.slug)] = {
            "users": sorted(m.user for m in course.members if m.role in STAFF_ROLES)
        }
    return groups


def course_roles(courses: Iterable[Course]) -> list[dict[str, Any]]:
    """One role per course, held by its staff group."""
    return [
        {
            "name": f"course-staff-{course.slug}",
            "description": f"Instructors and assistants of {course.slug}: their students' servers.",
            "scopes": staff_scopes(course.slug),
            "groups": [staff_group(course.slug)],
        }
        for course in courses
    ]


def portal_group_scopes(courses: Iterable[Course]) -> list[str]:
    """What the portal needs to keep the course groups' members in line, and no more."""
    scopes = []
    for course in courses:
        for group in (course_group(course.slug), staff_group(course.slug)):
            scopes.append(f"groups!group={group}")
    return scopes
