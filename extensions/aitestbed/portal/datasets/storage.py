"""Where the operator API may point a dataset, and measuring its size away from requests.

A dataset the API adds or changes with ``local`` or ``host_path`` storage must lie under one
of the site's ``dataset_roots`` (settings: ``site.dataset_roots``; default: the embedded
demo's ``{state_dir}/datasets``). The portal's own state folder (databases, secrets, user
homes) is never a dataset, even when a root contains it: only its ``datasets`` folder is.
Local paths are judged after symlinks are resolved, so a link under a root cannot lead out.

Walking a folder to count its files can take minutes, so it never happens inside a request:
:class:`SizeMeasurer` does it on one background thread and writes the result to the
catalog, which says ``measuring`` until then.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.seed import folder_size

log = logging.getLogger("aitestbed.portal.datasets")

ROOTED_KINDS = ("local", "host_path")
SizeState = Literal["measured", "measuring", "unknown"]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def storage_problem(
    kind: str, path: str | None, roots: Iterable[Path], state_dir: Path
) -> str | None:
    """Why ``path`` may not hold a dataset of storage ``kind``; None when it may.

    ``local`` paths are resolved on this machine (symlinks followed); ``host_path`` is a path
    on the nodes, judged as written (normalised). Other kinds are not host paths.
    """
    if kind not in ROOTED_KINDS or not path:
        return None
    where = os.path.realpath(path) if kind == "local" else posixpath.normpath(path)
    state = os.path.realpath(state_dir)
    if _inside(state, where) or (
        _inside(where, state) and not _inside(where, os.path.join(state, "datasets"))
    ):
        return (
            f"{path!r} holds the portal's own state (databases, secrets, homes); "
            "keep datasets elsewhere."
        )
    allowed = [os.path.realpath(r) if kind == "local" else posixpath.normpath(r) for r in roots]
    if not any(_inside(where, root) for root in allowed):
        shown = ", ".join(map(str, roots)) or "none configured"
        return (
            f"{path!r} is outside the folders datasets may come from ({shown}); move the "
            "data under one of them or add its folder to site.dataset_roots in the settings."
        )
    return None


class SizeMeasurer:
    """Counts the bytes and files of local datasets on one background thread.

    ``measure`` returns at once; the result is written to the dataset's row only if its
    storage still names the folder that was measured (a later change wins).
    """

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions
        self._pending: dict[str, str] = {}  # slug -> folder being measured
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-size")

    def state(self, row: models.Dataset) -> SizeState:
        with self._lock:
            if row.slug in self._pending:
                return "measuring"
        return "measured" if row.size_bytes is not None else "unknown"

    def measure(self, slug: str, folder: str) -> None:
        with self._lock:
            self._pending[slug] = folder
        self._pool.submit(self._run, slug, folder)

    def resume(self) -> None:
        """Queue the API's local datasets whose size is unknown (a restart interrupted it).
        A convenience: a database that cannot be read now is logged, never fatal."""
        try:
            with self._sessions() as session:
                rows = session.scalars(
                    select(models.Dataset).where(
                        models.Dataset.source == "api", models.Dataset.size_bytes.is_(None)
                    )
                ).all()
                folders = {
                    row.slug: row.storage["path"]
                    for row in rows
                    if row.storage.get("kind") == "local" and row.storage.get("path")
                }
        except Exception:  # any driver error means the same here
            log.warning("Could not look for datasets to measure", exc_info=True)
            return
        for slug, folder in folders.items():
            self.measure(slug, folder)

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every queued measurement is done (tests and shutdown)."""
        self._pool.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, slug: str, folder: str) -> None:
        try:
            measured = folder_size(Path(folder))
            with self._sessions() as session:
                row = session.scalar(select(models.Dataset).where(models.Dataset.slug == slug))
                if row is not None and row.storage.get("path") == folder:
                    row.size_bytes, row.file_count = measured or (None, None)
                    session.commit()
        except Exception:  # a vanished folder or a database hiccup: the size stays unknown
            log.exception("Measuring dataset %s at %s failed", slug, folder)
        finally:
            with self._lock:
                if self._pending.get(slug) == folder:
                    del self._pending[slug]
