"""The embedded default's session spawner: local processes, no Unix accounts needed.

Each user gets a home folder under the state directory and a JupyterLab process running as
the hub's own user; the project's folder appears as ``~/project`` and each dataset the user
may use in the session's project as ``~/datasets/<slug>`` (a link to its read-only files).
This gives no isolation between users: it is for evaluation, development and a small course
on one trusted server, never for tenants who must not see each other (use the Kubernetes
mode for that).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Dict, Unicode

from aitestbed.hub.local_settings import (
    framework_labels,
    link_datasets,
    link_project_folder,
    local_datasets_environment,
    local_environment,
    materials_command,
    project_folder,
)
from aitestbed.hub.policy_spawner import PolicySpawnerMixin
from aitestbed.policy.gpus import GpuDevice
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import DatasetMount
from aitestbed.policy.safezone import OUTBOX_FOLDER, SAFE_MODE_ARGS, safe_mode_environment


def module_installed(module: str) -> bool:
    """Whether this environment (the sessions' too, in the embedded default) has ``module``."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def session_path(environment_bin: Path, inherited: str | None) -> str:
    """``PATH`` for a session: the environment's bin folder first, once."""
    parts = [p for p in (inherited or os.defpath).split(os.pathsep) if p]
    rest = [p for p in parts if p != str(environment_bin)]
    return os.pathsep.join([str(environment_bin), *rest])


class PortalLocalSpawner(PolicySpawnerMixin, SimpleLocalProcessSpawner):
    """Local process sessions shaped by the policy (project folder, environment, no GPUs
    for CPU flavors)."""

    projects_root = Unicode(
        help="Folder holding one shared folder per project (the embedded /project)."
    ).tag(config=True)
    session_environment = Dict(help="Environment of the admitted session (set per start).")
    materials_python = Unicode(
        sys.executable, help="The Python that pulls a course's materials before the server."
    ).tag(config=True)
    _server_cmd = None  # the configured command, before a course's materials step
    # What one machine cannot do of safe mode: the session is a process of this machine's
    # user, with this machine's network (docs/datasets.md).
    safe_mode_enforcement = (
        "On this single-machine installation JupyterLab refuses downloads and exports, but "
        "the network is not closed: the session can still reach the internet and other "
        "local services, and its code can copy files anywhere the server's user can write. "
        "Use the Kubernetes installation for data that must stay inside."
    )
    start_state_dir = Unicode(
        "",
        help="""Folder where a starting server's state (process id, address, usage record)
        is written the moment its process exists, before the hub's database has it. A hub
        killed in between finds the process from this file when it restarts, and adopts
        it (it answers) or stops it (closing its usage record), instead of leaving it
        running unknown. Empty: no file.""",
    ).tag(config=True)
    _recovered_url = ""

    def apply_session(
        self,
        flavor: FlavorSpec,
        image: ImageSpec,
        project: str,
        datasets: Sequence[DatasetMount] = (),
    ) -> None:
        folder = project_folder(Path(self.projects_root), project)
        try:
            link_project_folder(Path(self.home_dir), folder)
            datasets_dir, linked = link_datasets(Path(self.home_dir), datasets)
            if self.safe_mode:
                (folder / OUTBOX_FOLDER).mkdir(exist_ok=True)
        except FileExistsError as error:
            raise web.HTTPError(409, str(error)) from None
        if self._server_cmd is None:
            self._server_cmd = list(self.cmd)
        materials = self.session_materials
        self.cmd = (
            materials_command(
                self.materials_python,
                materials["repo"],
                materials.get("branch") or "main",
                Path(self.home_dir) / "materials" / project,
                self._server_cmd,
            )
            if materials.get("repo")
            else list(self._server_cmd)
        )
        self.session_environment = {
            **local_environment(flavor, image, project, folder, self.assigned_gpus()),
            **local_datasets_environment(datasets_dir, linked),
            **(safe_mode_environment(str(folder / OUTBOX_FOLDER)) if self.safe_mode else {}),
        }
        for slug in sorted({d.slug for d in datasets} - set(linked)):
            self.dataset_notes = [
                *self.dataset_notes,
                f"{slug} is not mounted: its files are not on this machine (tell the operators)",
            ]

    def get_args(self):
        return [*super().get_args(), *(SAFE_MODE_ARGS if self.safe_mode else ())]

    def assigned_gpus(self) -> list[GpuDevice]:
        return [GpuDevice(**d) for d in self.gpu_devices]

    def get_env(self):
        env = super().get_env()
        env.update(self.session_environment)
        return env

    def images_as_offered(self, images):
        """Every image runs from this machine's one environment: frameworks it lacks are
        marked on the cards (``local_settings.framework_labels``)."""
        return [
            replace(image, frameworks=framework_labels(image.frameworks, module_installed))
            for image in images
        ]

    def user_env(self, env):
        env = super().user_env(env)
        env["JUPYTER_RUNTIME_DIR"] = f"{self.home_dir}/.local/share/jupyter/runtime"
        # The session runs from the hub's Python environment: its commands (``aitestbed``,
        # ``pip``, ``jupyter``) must be found even when the hub was started without
        # activating that environment.
        env["PATH"] = session_path(Path(sys.executable).parent, env.get("PATH"))
        return env

    # -- a start the hub did not live to save ----------------------------------------------

    def _start_state_file(self) -> Path | None:
        if not self.start_state_dir or getattr(self, "orm_spawner", None) is None:
            return None
        return Path(self.start_state_dir) / f"spawner-{self.orm_spawner.id}.json"

    def save_started_process(self, url: str) -> None:
        path = self._start_state_file()
        if path is not None:
            # A plain file first: it is written in microseconds, the database commit after
            # it can take long on a loaded machine.
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"state": self.get_state(), "url": url}))
            temporary.replace(path)
        super().save_started_process(url)

    def clear_state(self):
        super().clear_state()
        self._recovered_url = ""
        path = self._start_state_file()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    async def poll(self):
        if self.proc is None and not self.pid:
            self._recover_started_process()
        return await super().poll()

    async def get_url(self):
        if self._recovered_url:
            return f"{self._recovered_url.rstrip('/')}{self.server.base_url}"
        return await super().get_url()

    def _recover_started_process(self) -> None:
        path = self._start_state_file()
        try:
            saved = json.loads(path.read_text()) if path is not None else None
        except (OSError, ValueError):
            saved = None
        if not saved:
            return
        pid = saved.get("state", {}).get("pid")
        if not pid or not _serves(pid, self.user.name, self.name):
            with contextlib.suppress(OSError):
                path.unlink()
            return
        self.load_state(saved["state"])
        self._recovered_url = saved.get("url", "")
        self.log.warning(
            "%s: found its server process %s, started just before the hub stopped",
            self._log_name,
            pid,
        )


def _serves(pid: int, user: str, server_name: str) -> bool:
    """Whether process ``pid`` is alive and the single-user server of ``user``'s
    ``server_name`` (its environment says so), not a process that reused the id."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/environ", "rb") as environ:
            variables = set(environ.read().split(b"\0"))
    except OSError:
        return False
    wanted = {f"JUPYTERHUB_USER={user}", f"JUPYTERHUB_SERVER_NAME={server_name}"}
    return {item.encode() for item in wanted} <= variables and os.getpid() != pid
