"""A roster CSV, checked row by row before anything is imported (pure: text in, rows out).

Columns: ``user`` (required) and ``role`` (student, assistant or instructor; default
student). A header row is required; other columns (a name or an e-mail for the
instructor's own use) are ignored. Every problem is reported with its line and column, so
one upload tells the instructor everything to fix.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROLES = ("student", "assistant", "instructor")
MAX_ROWS = 2000
MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class RosterRow:
    user: str
    role: str


@dataclass(frozen=True)
class RosterProblem:
    line: int
    column: str
    message: str


def _shown(value: str) -> str:
    return repr(value[:40] + ("..." if len(value) > 40 else ""))


def parse_roster(
    text: str, known_users: Collection[str] | None = None
) -> tuple[list[RosterRow], list[RosterProblem]]:
    """The rows, or every problem found; ``known_users`` (None: anyone the identity
    provider knows, unknowable here) refuses names that cannot log in."""
    if len(text.encode()) > MAX_BYTES:
        return [], [RosterProblem(0, "", f"The file is larger than {MAX_BYTES // 1024} KB.")]
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "user" not in header:
        return [], [RosterProblem(1, "user", "The first line must name the columns: user,role.")]
    reader.fieldnames = header
    rows: list[RosterRow] = []
    problems: list[RosterProblem] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append(RosterProblem(line, "", f"More than {MAX_ROWS} rows; split the file."))
            break
        user = (record.get("user") or "").strip()
        role = (record.get("role") or "").strip().lower() or "student"
        row_ok = True
        if not USERNAME.match(user):
            problems.append(
                RosterProblem(
                    line,
                    "user",
                    f"{_shown(user)} is not a user name (lower-case letters, digits, . _ -).",
                )
            )
            row_ok = False
        elif user in seen:
            problems.append(
                RosterProblem(line, "user", f"{user!r} is already on line {seen[user]}.")
            )
            row_ok = False
        elif known_users is not None and user not in known_users:
            problems.append(RosterProblem(line, "user", f"No account {user!r} can log in here."))
            row_ok = False
        if role not in ROLES:
            problems.append(
                RosterProblem(line, "role", f"{_shown(role)} is not one of {', '.join(ROLES)}.")
            )
            row_ok = False
        if USERNAME.match(user):
            seen.setdefault(user, line)
        if row_ok:
            rows.append(RosterRow(user, role))
    if not rows and not problems:
        problems.append(RosterProblem(2, "user", "The roster lists nobody."))
    return (rows if not problems else []), problems
