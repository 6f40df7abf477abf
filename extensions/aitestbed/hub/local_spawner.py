"""The embedded default's session spawner: local processes, no Unix accounts needed.

Each user gets a home folder under the state directory and a JupyterLab process running as
the hub's own user; the project's folder appears as ``~/project`` and each dataset the user
may use in the session's project as ``~/datasets/<slug>`` (a link to its read-only files).
This gives no isolation between users: it is for evaluation, development and a small course
on one trusted server, never for tenants who must not see each other (use the Kubernetes
mode for that).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Dict, Unicode

from aitestbed.hub.local_settings import (
    link_datasets,
    link_project_folder,
    local_datasets_environment,
    local_environment,
    project_folder,
)
from aitestbed.hub.policy_spawner import PolicySpawnerMixin
from aitestbed.policy.gpus import GpuDevice
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import DatasetMount


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
        except FileExistsError as error:
            raise web.HTTPError(409, str(error)) from None
        self.session_environment = {
            **local_environment(flavor, image, project, folder, self.assigned_gpus()),
            **local_datasets_environment(datasets_dir, linked),
        }
        for slug in sorted({d.slug for d in datasets} - set(linked)):
            self.dataset_notes = [
                *self.dataset_notes,
                f"{slug} is not mounted: its files are not on this machine (tell the operators)",
            ]

    def assigned_gpus(self) -> list[GpuDevice]:
        return [GpuDevice(**d) for d in self.gpu_devices]

    def get_env(self):
        env = super().get_env()
        env.update(self.session_environment)
        return env

    def user_env(self, env):
        env = super().user_env(env)
        env["JUPYTER_RUNTIME_DIR"] = f"{self.home_dir}/.local/share/jupyter/runtime"
        # The session runs from the hub's Python environment: its commands (``aitestbed``,
        # ``pip``, ``jupyter``) must be found even when the hub was started without
        # activating that environment.
        env["PATH"] = session_path(Path(sys.executable).parent, env.get("PATH"))
        return env
