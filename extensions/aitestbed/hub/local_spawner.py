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
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import DatasetMount
from aitestbed.policy.safezone import OUTBOX_FOLDER, SAFE_MODE_ARGS, safe_mode_environment


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
    # What one machine cannot do of safe mode: the session is a process of this machine's
    # user, with this machine's network (docs/datasets.md).
    safe_mode_enforcement = (
        "On this single-machine installation JupyterLab refuses downloads and exports, but "
        "the network is not closed: the session can still reach the internet and other "
        "local services, and its code can copy files anywhere the server's user can write. "
        "Use the Kubernetes installation for data that must stay inside."
    )

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
        self.session_environment = {
            **local_environment(flavor, image, project, folder),
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
