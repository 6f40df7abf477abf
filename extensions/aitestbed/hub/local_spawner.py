"""The embedded default's session spawner: local processes, no Unix accounts needed.

Each user gets a home folder under the state directory and a JupyterLab process running as
the hub's own user; the project's folder appears as ``~/project``. This gives no isolation
between users: it is for evaluation, development and a small course on one trusted server,
never for tenants who must not see each other (use the Kubernetes mode for that).
"""

from __future__ import annotations

from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Dict, Unicode

from aitestbed.hub.local_settings import link_project_folder, local_environment, project_folder
from aitestbed.hub.policy_spawner import PolicySpawnerMixin
from aitestbed.policy.model import FlavorSpec, ImageSpec


class PortalLocalSpawner(PolicySpawnerMixin, SimpleLocalProcessSpawner):
    """Local process sessions shaped by the policy (project folder, environment, no GPUs
    for CPU flavors)."""

    projects_root = Unicode(
        help="Folder holding one shared folder per project (the embedded /project)."
    ).tag(config=True)
    session_environment = Dict(help="Environment of the admitted session (set per start).")

    def apply_session(self, flavor: FlavorSpec, image: ImageSpec, project: str) -> None:
        folder = project_folder(Path(self.projects_root), project)
        link_project_folder(Path(self.home_dir), folder)
        self.session_environment = local_environment(flavor, image, project, folder)

    def get_env(self):
        env = super().get_env()
        env.update(self.session_environment)
        return env

    def user_env(self, env):
        env = super().user_env(env)
        env["JUPYTER_RUNTIME_DIR"] = f"{self.home_dir}/.local/share/jupyter/runtime"
        return env
