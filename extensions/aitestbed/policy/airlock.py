"""The airlock's rules (pure: no database, no files).

Results leave a safe-mode session only through the airlock: the user asks to export files
from the project's ``outbox`` folder with a reason, a data steward reviews each file (with
the automatic output checks of :mod:`aitestbed.policy.output_checks`) and approves or
declines it, and the requester downloads an approved file once. These functions decide
each step; the portal (:mod:`aitestbed.portal.airlock`) records it and writes the audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

PENDING = "pending"
APPROVED = "approved"
DECLINED = "declined"
MAX_FILES = 20
MAX_PATH = 255
MAX_FILE_BYTES = 50 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class AirlockDecision:
    allowed: bool
    code: str
    reason: str = ""
    status: int = 200


def _ok() -> AirlockDecision:
    return AirlockDecision(True, "ok")


def path_problem(path: str) -> str | None:
    """What is wrong with a path inside the outbox, as written by the user, or None.
    (That it is a regular file inside the outbox, not a link out, is checked on disk.)"""
    if not path or len(path) > MAX_PATH:
        return f"give a path inside the outbox of at most {MAX_PATH} characters."
    if _CONTROL.search(path):
        return "a path has no control characters or backslashes."
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return "give the path relative to the outbox folder, not an absolute path."
    if any(part in ("..", ".", "") for part in path.split("/")):
        return "a path inside the outbox has no '.' or '..' parts."
    if any(part.startswith(".") for part in pure.parts):
        return "hidden files are not exported."
    return None


def may_decide(requester: str, decider: str, *, is_steward: bool) -> AirlockDecision:
    """A data steward decides, never about their own request."""
    if not is_steward:
        return AirlockDecision(
            False, "not-a-steward", "Only data stewards review exports.", status=403
        )
    if requester == decider:
        return AirlockDecision(
            False,
            "own-request",
            "You asked for this export; another data steward must review it.",
            status=403,
        )
    return _ok()


def may_redecide(state: str) -> AirlockDecision:
    if state != PENDING:
        return AirlockDecision(
            False, "decided", f"This file has been {state} already; decisions are final.", 409
        )
    return _ok()


def may_download(state: str, requester: str, user: str, *, downloaded: bool) -> AirlockDecision:
    """Only the requester downloads, only an approved file, only once."""
    if user != requester:
        return AirlockDecision(
            False, "not-requester", "Only the person who asked for the export downloads it.", 403
        )
    if state != APPROVED:
        return AirlockDecision(
            False, "not-approved", f"This file is {state}, not approved: it stays inside.", 403
        )
    if downloaded:
        return AirlockDecision(
            False,
            "downloaded",
            "This file has been downloaded already; ask for a new export if you need it again.",
            410,
        )
    return _ok()
