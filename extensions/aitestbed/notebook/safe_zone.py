"""JupyterLab in safe mode: notebooks are edited, data files are not downloaded.

A session that mounts pseudonymized data runs in safe mode (the portal decides it at
admission). Its server is started with :data:`aitestbed.policy.safezone.SAFE_MODE_ARGS`,
command-line values that win over every configuration file, the user's own included:

* ``ServerApp.contents_manager_class`` = :class:`SafeContentsManager`: the contents API
  lists folders and serves notebooks (and small source files) for editing, but refuses
  the content of any other file, of a file outside the server's folder (a dataset link),
  and of a file posing as a notebook that is none (a data file renamed ``.ipynb``);
* ``ServerApp.extra_services`` = this module: its :data:`default_handlers` are loaded
  before the server's own, so ``/files/`` (raw files, ``?download=1``) and ``/nbconvert/``
  (exports in every format) answer 403 whoever asks, the UI or a script with the
  session's token.

Results leave the session only through the airlock: write them under the project's
``outbox`` folder (``$AITESTBED_OUTBOX``) and ask for an export on the portal's airlock
page, where a data steward reviews them.

What this does not stop (docs/datasets.md): code in a kernel or a terminal reads the data
and may print it, and on the embedded default it may also send it over the network; on
Kubernetes the safe-mode NetworkPolicy closes the network.

This module runs inside the session: it imports neither the hub nor the portal.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Integer, List, Unicode, default

from aitestbed.notebook.datasets import datasets_dir
from aitestbed.policy.safezone import OUTBOX_ENV

PROJECT_DIR_ENV = "AITESTBED_PROJECT_DIR"

REFUSED_DOWNLOAD = (
    "Safe mode: this session does not hand out files; put results in the outbox folder "
    "and ask for an export on the portal's airlock page."
)
REFUSED_EXPORT = (
    "Safe mode: notebooks are not exported from this session; put results in the outbox "
    "folder and ask for an export on the portal's airlock page."
)
NOT_A_NOTEBOOK = "Safe mode: {path} is not a notebook, and other files are not opened here."


class SafeContentsManager(AsyncLargeFileManager):
    """Contents for editing notebooks and code, never for downloading data."""

    source_suffixes = List(
        Unicode(),
        default_value=[".py", ".md", ".r", ".jl", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".txt"],
        config=True,
        help="Suffixes of files that open in the editor (code and notes), lower case.",
    )
    max_source_bytes = Integer(
        256 * 1024,
        config=True,
        help="Larger files do not open even with a source suffix: a data file renamed to "
        "one must not come out whole.",
    )
    outbox = Unicode(config=True, help="The project's outbox folder (from the environment).")

    @default("outbox")
    def _outbox_default(self) -> str:
        return os.environ.get(OUTBOX_ENV, "")

    @default("files_handler_class")
    def _files_handler_class_default(self):
        return RefusedInSafeMode

    @default("files_handler_params")
    def _files_handler_params_default(self):
        return {"message": REFUSED_DOWNLOAD}

    def content_refusal(self, path: str, type: str | None) -> str | None:
        """Why the content of ``path`` (asked as ``type``) is not served, or None."""
        path = path.strip("/")
        os_path = Path(self._get_os_path(path))
        if os_path.is_dir():
            return None
        real = os_path.resolve()
        if not any(_within(real, folder) for folder in self.editable_folders()):
            return REFUSED_DOWNLOAD  # a link out of the session's folders
        if any(_within(real, folder) for folder in dataset_folders()):
            return REFUSED_DOWNLOAD
        if type == "notebook" or (type is None and path.endswith(".ipynb")):
            return None  # checked to be a notebook when it is read
        if os_path.suffix.lower() in self.source_suffixes and (
            os_path.exists() and os_path.stat().st_size <= self.max_source_bytes
        ):
            return None
        return REFUSED_DOWNLOAD

    def editable_folders(self) -> list[Path]:
        """The server's folder and the project's shared folder (real paths)."""
        folders = [Path(self.root_dir).resolve()]
        project = os.environ.get(PROJECT_DIR_ENV)
        if project:
            folders.append(Path(project).resolve())
        return folders

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        if content:
            refusal = self.content_refusal(path, type)
            if refusal is not None and self.exists(path):
                self.log.warning("Safe mode: refused the content of %s", path)
                raise web.HTTPError(403, refusal)
        try:
            return await super().get(
                path, content=content, type=type, format=format, require_hash=require_hash
            )
        except web.HTTPError as error:
            # The server's own message quotes the start of an unreadable notebook: a data
            # file renamed .ipynb would leak its first bytes through it.
            if error.status_code == 400 and content and path.endswith(".ipynb"):
                self.log.warning("Safe mode: refused %s, which is not a notebook", path)
                raise web.HTTPError(403, NOT_A_NOTEBOOK.format(path=path.strip("/"))) from None
            raise


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def dataset_folders() -> list[Path]:
    """Where the session's datasets really are (the datasets folder and its links)."""
    root = datasets_dir()
    folders = [root.resolve()]
    with contextlib.suppress(OSError):  # no datasets folder: nothing mounted
        folders += [entry.resolve() for entry in root.iterdir()]
    return folders


class RefusedInSafeMode(JupyterHandler):
    """Answers 403 with one sentence to every method."""

    def initialize(self, message: str = REFUSED_DOWNLOAD, **_ignored) -> None:
        self.message = message

    def _refuse(self, *args, **kwargs):
        # JSON like the server's API errors (not its HTML error page), for scripts too.
        self.log.warning("Safe mode: refused %s %s", self.request.method, self.request.path)
        self.set_status(403)
        self.set_header("Content-Type", "application/json")
        if self.request.method == "HEAD":
            return self.finish()
        return self.finish(json.dumps({"message": self.message, "reason": None}))

    get = post = put = delete = patch = head = _refuse

    def check_xsrf_cookie(self):
        return None  # nothing happens here for a forged request to use


# Loaded by the server (ServerApp.extra_services) before its own handlers.
default_handlers = [
    (r"/files/(.*)", RefusedInSafeMode, {"message": REFUSED_DOWNLOAD}),
    (r"/nbconvert/(.*)", RefusedInSafeMode, {"message": REFUSED_EXPORT}),
]
