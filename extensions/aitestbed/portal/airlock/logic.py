"""The airlock's steps against the database and the files, each one audited.

The rules are pure (:mod:`aitestbed.policy.airlock`, :mod:`aitestbed.policy.output_checks`);
this module reads a project's outbox, keeps a copy of each file asked for (what the steward
reviews is exactly what leaves, whatever happens in the outbox afterwards), records the
decisions and hands out an approved file once. Every step, allowed or refused, is an entry
in the dataset audit log (actions ``airlock-*``) in the caller's transaction: a caller that
catches :class:`AirlockRefused` commits before answering, so refusals stay recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from aitestbed.policy import airlock as rules
from aitestbed.policy.output_checks import check_output
from aitestbed.policy.safezone import OUTBOX_FOLDER
from aitestbed.portal import models, queries
from aitestbed.portal.auth import Identity
from aitestbed.portal.datasets.access import active_projects, audit


@dataclass(frozen=True)
class AirlockSettings:
    """Where outboxes are (``{project}`` in the project folder template), where reviewed
    copies are kept, and who reviews besides the operators."""

    project_dir_template: str
    store: Path
    stewards: frozenset[str] = field(default_factory=frozenset)

    def outbox(self, project: str) -> Path:
        return Path(self.project_dir_template.format(project=project)) / OUTBOX_FOLDER


class AirlockRefused(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field


def is_steward(session: Session, identity: Identity, settings: AirlockSettings) -> bool:
    return identity.name in settings.stewards or queries.is_operator(session, identity)


def _record(session, user, action, allowed, project, detail, reason="ok"):
    audit(
        session,
        user=user,
        action=action,
        allowed=allowed,
        reason=reason,
        project=project,
        detail=detail,
    )


def read_outbox_file(outbox: Path, path: str) -> bytes:
    """The bytes of ``path`` inside ``outbox``: a regular file reached without any link,
    not larger than the limit, and a real notebook when it is called one."""
    problem = rules.path_problem(path)
    if problem:
        raise AirlockRefused(422, "bad-path", problem)
    current = outbox
    for part in PurePosixPath(path).parts:
        current = current / part
        if current.is_symlink():
            raise AirlockRefused(422, "link", f"{path} is a link; only files in the outbox leave.")
    root = outbox.resolve()
    real = current.resolve()
    if root not in real.parents:
        raise AirlockRefused(422, "outside", f"{path} is not inside the outbox.")
    try:
        fd = os.open(current, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise AirlockRefused(404, "missing", f"There is no file {path} in the outbox.") from None
    except OSError as error:
        raise AirlockRefused(
            422, "unreadable", f"{path} cannot be read ({error.strerror}).", None
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise AirlockRefused(422, "not-a-file", f"{path} is not a regular file.")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > rules.MAX_FILE_BYTES:
            raise AirlockRefused(
                413, "too-large", f"{path} is larger than {rules.MAX_FILE_BYTES} bytes."
            )
        data = handle.read(rules.MAX_FILE_BYTES + 1)
    if path.lower().endswith(".ipynb") and not _is_notebook(data):
        raise AirlockRefused(
            422,
            "not-a-notebook",
            f"{path} is called a notebook but is none; name it for what it is.",
        )
    return data


def _is_notebook(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except ValueError:
        return False
    return isinstance(document, dict) and "nbformat" in document and "cells" in document


def create_request(
    session: Session,
    settings: AirlockSettings,
    user: str,
    project: str,
    paths: list[str],
    reason: str,
    today: date,
) -> models.ExportRequest:
    """Ask to export ``paths`` of ``project``'s outbox; refused whole at the first bad file."""
    detail = f"files={paths!r}"[:1000]
    if project not in active_projects(session, user, today):
        _record(session, user, "airlock-request", False, project, detail, "not-a-member")
        raise AirlockRefused(
            403,
            "not-a-member",
            f"You are not a member of an active project {project!r}.",
            "project",
        )
    if len(set(paths)) != len(paths):
        raise AirlockRefused(422, "duplicate", "Name each file once.", "files")
    outbox = settings.outbox(project)
    contents = []
    for index, path in enumerate(paths):
        try:
            contents.append((path, read_outbox_file(outbox, path)))
        except AirlockRefused as refused:
            _record(
                session, user, "airlock-request", False, project, f"path={path!r}",
                f"{refused.code}: {refused}",
            )  # fmt: skip
            refused.field = f"files[{index}]"
            raise
    row = models.ExportRequest(
        project_id=session.scalar(select(models.Project.id).where(models.Project.slug == project)),
        requester=user,
        reason=reason,
        created_at=models.utcnow(),
    )
    session.add(row)
    session.flush()
    folder = settings.store / str(row.id)
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in contents:
        findings = [f.__dict__ for f in check_output(path, data)]
        entry = models.ExportFile(
            path=path,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            findings=findings,
            state=rules.PENDING,
            note="",
        )
        row.files.append(entry)
        session.flush()
        (folder / str(entry.id)).write_bytes(data)
    _record(session, user, "airlock-request", True, project, f"request={row.id} {detail}")
    return row


def load_request(session: Session, request_id: int) -> models.ExportRequest | None:
    return session.scalar(
        select(models.ExportRequest)
        .where(models.ExportRequest.id == request_id)
        .options(
            selectinload(models.ExportRequest.files), selectinload(models.ExportRequest.project)
        )
    )


def _file(session: Session, request_id: int, file_id: int) -> models.ExportFile:
    row = session.get(models.ExportFile, file_id)
    if row is None or row.request_id != request_id:
        raise AirlockRefused(404, "unknown", f"There is no file {file_id} in request {request_id}.")
    return row


def decide(
    session: Session,
    settings: AirlockSettings,
    identity: Identity,
    request_id: int,
    file_id: int,
    approve: bool,
    note: str,
) -> models.ExportFile:
    """A steward approves or declines one file (final); never their own request's."""
    row = _file(session, request_id, file_id)
    request = row.request
    action = "airlock-approve" if approve else "airlock-decline"
    detail = f"request={request_id} file={file_id} path={row.path!r} note={note!r}"[:1000]
    for decision in (
        rules.may_decide(
            request.requester, identity.name, is_steward=is_steward(session, identity, settings)
        ),
        rules.may_redecide(row.state),
    ):
        if not decision.allowed:
            _record(
                session, identity.name, action, False, request.project.slug, detail,
                f"{decision.code}: {decision.reason}",
            )  # fmt: skip
            raise AirlockRefused(decision.status, decision.code, decision.reason)
    # Conditional: two stewards deciding at once cannot both decide.
    done = session.execute(
        update(models.ExportFile)
        .where(models.ExportFile.id == file_id, models.ExportFile.state == rules.PENDING)
        .values(
            state=rules.APPROVED if approve else rules.DECLINED,
            decided_by=identity.name,
            decided_at=models.utcnow(),
            note=note,
        )
    )
    if done.rowcount != 1:
        raise AirlockRefused(409, "decided", "This file has been decided already.")
    session.refresh(row)
    _record(session, identity.name, action, True, request.project.slug, detail)
    return row


def claim_download(
    session: Session, settings: AirlockSettings, user: str, request_id: int, file_id: int
) -> tuple[models.ExportFile, bytes]:
    """The approved file for its requester, once: the claim is one conditional update, so
    of simultaneous downloads exactly one gets the file."""
    row = _file(session, request_id, file_id)
    request = row.request
    detail = f"request={request_id} file={file_id} path={row.path!r}"
    decision = rules.may_download(
        row.state, request.requester, user, downloaded=row.downloaded_at is not None
    )
    claimed = False
    if decision.allowed:
        done = session.execute(
            update(models.ExportFile)
            .where(models.ExportFile.id == file_id, models.ExportFile.downloaded_at.is_(None))
            .values(downloaded_at=models.utcnow())
        )
        claimed = done.rowcount == 1
        if not claimed:
            decision = rules.may_download(row.state, request.requester, user, downloaded=True)
    if not claimed:
        _record(
            session, user, "airlock-download", False, request.project.slug, detail,
            f"{decision.code}: {decision.reason}",
        )  # fmt: skip
        raise AirlockRefused(decision.status, decision.code, decision.reason)
    data = (settings.store / str(request_id) / str(file_id)).read_bytes()
    _record(session, user, "airlock-download", True, request.project.slug, detail)
    return row, data
