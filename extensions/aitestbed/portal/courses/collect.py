"""Collect one folder from every student of a course into a staff member's home.

Embedded mode: homes are ``<state_dir>/homes/<user>``. The copy goes to the collector's
``collected/<course>/<UTC time>/<student>/``. It only reads the students' homes: every
directory is opened relative to the one above it without following links
(``O_NOFOLLOW``), so a link in a student's folder (or one swapped in while the copy runs)
never leads out of that home; links are listed, not copied. Each student's copy is bounded
in bytes and files; a folder over the bound is not kept (listed as too large), a missing one
is listed as missing. The destination is made the same way inside the collector's home, so
a link placed there does not send the copy elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
CHUNK = 1 << 20


@dataclass
class StudentCopy:
    user: str
    files: int = 0
    bytes: int = 0
    links: list[str] = field(default_factory=list)


@dataclass
class Collection:
    path: str  # inside the collector's home
    copied: list[StudentCopy]
    missing: list[str]
    too_large: list[str]


class TooLarge(Exception):
    pass


class CollectRefused(Exception):
    """The collector's home has no room for the copy as asked (e.g. a link on the way)."""


def _open_dirs(root_fd: int, parts: list[str], create: bool = False) -> int:
    """Open ``parts`` below ``root_fd`` one by one without following links."""
    fd = os.dup(root_fd)
    for part in parts:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
        try:
            following = os.open(part, DIRECTORY, dir_fd=fd)
        finally:
            os.close(fd)
        fd = following
    return fd


def _copy_tree(src_fd: int, dst_fd: int, copy: StudentCopy, prefix: str, limits) -> None:
    max_bytes, max_files = limits
    for name in sorted(os.listdir(src_fd)):
        info = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        shown = f"{prefix}{name}"
        if stat.S_ISLNK(info.st_mode):
            copy.links.append(shown)
        elif stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(name, DIRECTORY, dir_fd=src_fd)
            except OSError:  # swapped for a link meanwhile: not followed
                copy.links.append(shown)
                continue
            try:
                os.mkdir(name, 0o755, dir_fd=dst_fd)
                target = os.open(name, DIRECTORY, dir_fd=dst_fd)
                try:
                    _copy_tree(child, target, copy, f"{shown}/", limits)
                finally:
                    os.close(target)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            copy.files += 1
            if copy.files > max_files or copy.bytes + info.st_size > max_bytes:
                raise TooLarge
            _copy_file(name, src_fd, dst_fd, copy, max_bytes)
        # sockets, fifos, devices: not files to collect


def _copy_file(name: str, src_fd: int, dst_fd: int, copy: StudentCopy, max_bytes: int) -> None:
    try:
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=src_fd)
    except OSError:  # swapped for a link meanwhile
        copy.links.append(name)
        return
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            return
        target = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dst_fd
        )
        try:
            while chunk := os.read(source, CHUNK):
                copy.bytes += len(chunk)
                if copy.bytes > max_bytes:  # the file grew while it was copied
                    raise TooLarge
                os.write(target, chunk)
        finally:
            os.close(target)
    finally:
        os.close(source)


def collect(
    homes: Path,
    collector: str,
    course: str,
    students: list[str],
    folder: str,
    now: datetime,
    *,
    max_bytes: int,
    max_files: int,
) -> Collection:
    """Copy ``<home>/<folder>`` of each student into the collector's home (see above).
    ``folder`` was checked by ``policy.courses.folder_problem``."""
    parts = folder.strip("/").split("/")
    homes.mkdir(parents=True, exist_ok=True)
    homes_fd = os.open(homes, DIRECTORY)
    try:
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(collector, 0o755, dir_fd=homes_fd)
            base = _open_dirs(homes_fd, [collector, "collected", course], create=True)
        except OSError:
            raise CollectRefused(
                f"collected/{course} in your home is not a folder (a link or a file): "
                "rename it and collect again."
            ) from None
        try:
            stamp = now.strftime("%Y%m%d-%H%M%S")
            for attempt in range(100):
                name = stamp if attempt == 0 else f"{stamp}-{attempt}"
                try:
                    os.mkdir(name, 0o755, dir_fd=base)
                    break
                except FileExistsError:
                    continue
            else:
                raise RuntimeError("too many collections in the same second")
            run_fd = os.open(name, DIRECTORY, dir_fd=base)
        finally:
            os.close(base)
        result = Collection(f"collected/{course}/{name}", [], [], [])
        try:
            for student in students:
                _collect_one(homes_fd, run_fd, student, parts, result, (max_bytes, max_files))
        finally:
            os.close(run_fd)
        return result
    finally:
        os.close(homes_fd)


def _collect_one(homes_fd, run_fd, student, parts, result: Collection, limits) -> None:
    try:
        src = _open_dirs(homes_fd, [student, *parts])
    except OSError:  # no home, no folder, or a link on the way: nothing to collect
        result.missing.append(student)
        return
    copy = StudentCopy(student)
    try:
        os.mkdir(student, 0o755, dir_fd=run_fd)
        dst = os.open(student, DIRECTORY, dir_fd=run_fd)
        try:
            _copy_tree(src, dst, copy, "", limits)
        finally:
            os.close(dst)
        result.copied.append(copy)
    except TooLarge:
        shutil.rmtree(student, dir_fd=run_fd)
        result.too_large.append(student)
    finally:
        os.close(src)
