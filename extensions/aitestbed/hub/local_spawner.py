"""The embedded default's session spawner: local processes, no Unix accounts needed.

Each user gets a home folder under the state directory and a JupyterLab process running as
the hub's own user. This gives no isolation between users: it is for evaluation,
development and a small course on one trusted server, never for tenants who must not see
each other (use the Kubernetes mode for that).
"""

from __future__ import annotations

from jupyterhub.spawner import SimpleLocalProcessSpawner


class PortalLocalSpawner(SimpleLocalProcessSpawner):
    """Local process sessions with a per-user home under the portal's state directory."""

    def user_env(self, env):
        env = super().user_env(env)
        env["JUPYTER_RUNTIME_DIR"] = f"{self.home_dir}/.local/share/jupyter/runtime"
        return env
