"""One call wires the portal into a JupyterHub configuration: ``setup_portal(c, settings)``.

``hub_config/jupyterhub_config.py`` loads the site settings and calls this; everything the
hub needs (login, spawner, the portal and idle-culler services, roles, ports, state files)
is decided here from the settings, so the config file stays a few lines long.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from aitestbed.hub.hooks import HookChain
from aitestbed.settings import (
    DATABASE_URL_ENV,
    SETTINGS_ENV,
    Kubernetes,
    Settings,
    SettingsError,
)

PORTAL_SERVICE = "portal"
CULLER_SERVICE = "idle-culler"
PORTAL_URL_ENV = "AITESTBED_PORTAL_URL"
SESSION_SHELL = shutil.which("bash") or "/bin/sh"
REPO_ROOT = Path(__file__).resolve().parents[3]


def find_proxy_command() -> list[str]:
    """configurable-http-proxy: the project's local npm install first, then $PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return [str(local)]
    found = shutil.which("configurable-http-proxy")
    if found:
        return [found]
    raise SettingsError(
        "configurable-http-proxy was not found: run `make setup` (npm install) first."
    )


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A hex secret kept in ``path`` (mode 600), created on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def portal_api_token(settings: Settings) -> str:
    """The portal service's hub API token, which the hub also uses to call the portal."""
    return os.environ.get("AITESTBED_PORTAL_API_TOKEN") or read_or_create_secret(
        settings.site.state_dir / "portal_api_token"
    )


def portal_public_service_url(settings: Settings) -> str:
    """Where the proxy reaches the portal: in a Kubernetes pod, its Service (from the chart)."""
    return os.environ.get("AITESTBED_PORTAL_SERVICE_URL") or portal_service_url(settings)


def portal_service_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.site.portal_port}"


def user_scopes() -> list[str]:
    """What every user holds: their own things, and access to the portal service."""
    return ["self", f"access:services!service={PORTAL_SERVICE}"]


def server_token_scopes() -> list[str]:
    """The session's $JUPYTERHUB_API_TOKEN: the usual server scopes plus the portal."""
    return [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={PORTAL_SERVICE}",
    ]


def services(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The hub-managed services and the roles they hold."""
    env = {SETTINGS_ENV: str(settings.path)}
    for name in (DATABASE_URL_ENV, "AITESTBED_RECONCILE_SECONDS"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if os.environ.get("AITESTBED_PORTAL_SERVICE_URL"):
        # Reached from the proxy pod through a Service: listen beyond loopback.
        env["AITESTBED_PORTAL_BIND_HOST"] = "0.0.0.0"  # noqa: S104 - inside the hub pod
    service_list: list[dict[str, Any]] = [
        {
            "name": PORTAL_SERVICE,
            "display": True,
            "url": portal_public_service_url(settings),
            "command": [sys.executable, "-m", "aitestbed.portal", "serve"],
            "environment": env,
            "oauth_no_confirm": True,
            "api_token": portal_api_token(settings),
            # The first start migrates the database; a busy machine needs more than 30 s.
            "timeout": 120,
        }
    ]
    roles: list[dict[str, Any]] = [
        {"name": "user", "scopes": user_scopes()},
        # The portal closes usage records of servers the hub no longer runs, and stops the
        # servers of users whose project access ended (portal/revocation.py).
        {
            "name": PORTAL_SERVICE,
            "services": [PORTAL_SERVICE],
            "scopes": ["list:users", "read:servers", "delete:servers"],
        },
    ]
    if settings.site.idle_timeout_seconds > 0:
        service_list.append(
            {
                "name": CULLER_SERVICE,
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={settings.site.idle_timeout_seconds}",
                ],
            }
        )
        roles.append(
            {
                "name": CULLER_SERVICE,
                "services": [CULLER_SERVICE],
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            }
        )
    return service_list, roles


def _setup_authenticator(c: Any, settings: Settings) -> None:
    auth = settings.authentication
    if auth.kind == "oidc":
        from aitestbed.hub.oidc import configure_oidc

        configure_oidc(c, settings)
        return
    c.JupyterHub.authenticator_class = "aitestbed.hub.demo_auth.DemoAuthenticator"
    c.DemoAuthenticator.password_hashes = {u.name: u.password_hash for u in auth.demo_users}
    c.Authenticator.allowed_users = {u.name for u in auth.demo_users}
    c.Authenticator.admin_users = set(settings.site.operators)


def _setup_policy(c: Any, settings: Settings, chain: HookChain) -> None:
    """Every start is admitted by the portal; every stop closes its usage record."""
    c.PolicySpawnerMixin.portal_url = portal_internal_url(settings)
    c.PolicySpawnerMixin.portal_token = portal_api_token(settings)
    c.PolicySpawnerMixin.session_start_timeout = settings.site.session_start_timeout_seconds
    c.Spawner.http_timeout = settings.site.session_start_timeout_seconds
    # The start queue bounds the starts that run; JupyterHub's own limit (100 pending
    # starts) would answer the 101st student of a class with 429 instead of queueing them.
    c.JupyterHub.concurrent_spawn_limit = 0
    chain.add_pre_spawn("admission", lambda spawner: spawner.admit_session())
    chain.add_post_stop("usage-record", lambda spawner: spawner.close_session())


def portal_internal_url(settings: Settings) -> str:
    """Where the hub reaches the portal's internal API (the portal runs beside the hub)."""
    return f"{portal_service_url(settings)}/services/{PORTAL_SERVICE}/"


def _setup_project_gate(c: Any, settings: Settings, chain: HookChain) -> None:
    """Users without an active project land on the portal's access page, not a server."""
    from aitestbed.hub.portal_client import shared_client
    from aitestbed.hub.project_gate import ProjectGate

    gate = ProjectGate(shared_client(portal_internal_url(settings), portal_api_token(settings)))
    chain.add_pre_spawn("project-gate", gate.require_active_project)
    c.JupyterHub.default_url = gate.default_url
    c.Authenticator.post_auth_hook = gate.after_login


def _setup_notices(c: Any, settings: Settings) -> None:
    """The hub's pages show the portal's notices (revocation warnings, pending requests)."""
    from aitestbed.hub.notices import NoticeBoard
    from aitestbed.hub.portal_client import shared_client

    board = NoticeBoard(shared_client(portal_internal_url(settings), portal_api_token(settings)))
    c.JupyterHub.template_vars = {**c.JupyterHub.template_vars, "portal_notices": board}


def _setup_local_spawner(c: Any, settings: Settings) -> None:
    c.JupyterHub.spawner_class = "aitestbed.hub.local_spawner.PortalLocalSpawner"
    c.PortalLocalSpawner.home_dir_template = str(settings.site.state_dir / "homes" / "{username}")
    c.PortalLocalSpawner.projects_root = str(settings.site.state_dir / "projects")
    c.PortalLocalSpawner.flavor_capacity = {
        f.slug: f.capacity for f in settings.flavors if f.capacity is not None
    }
    c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
    c.Spawner.default_url = "/lab"
    c.Spawner.server_token_scopes = server_token_scopes()
    c.Spawner.environment = {
        PORTAL_URL_ENV: f"{portal_service_url(settings)}/services/{PORTAL_SERVICE}/"
    }
    # JupyterLab's terminals start a login shell by default, and a login shell's
    # /etc/profile replaces PATH: the session's own commands (``aitestbed``) would be
    # "command not found". An interactive shell keeps the session's environment.
    c.Spawner.args = [f"--ServerApp.terminado_settings=shell_command={SESSION_SHELL}"]
    if os.geteuid() == 0:
        # Embedded default as root (containers, CI): sessions run as the hub's user.
        c.Spawner.args.append("--allow-root")


def kube_site(kube: Kubernetes) -> dict[str, Any]:
    """The ``kubernetes`` settings as PortalKubeSpawner.kube_site (KubeSite's fields)."""
    site: dict[str, Any] = {
        "home_storage": kube.home_storage,
        "home_storage_class": kube.home_storage_class,
        "project_claim_template": kube.project_claim_template,
        "image_pull_policy": kube.image_pull_policy,
        "extra_node_selector": dict(kube.node_selector),
    }
    if kube.gpu_tolerations is not None:
        site["gpu_tolerations"] = [dict(t) for t in kube.gpu_tolerations]
    return site


def _setup_kube_spawner(c: Any, settings: Settings) -> None:
    kube = settings.kubernetes
    c.JupyterHub.spawner_class = "aitestbed.hub.kube_spawner.PortalKubeSpawner"
    # Pods outlive the hub: an upgrade or a crash of the hub must not end every session.
    c.JupyterHub.cleanup_servers = False
    c.KubeSpawner.namespace = kube.namespace
    if kube.api_url:
        c.KubeSpawner.k8s_api_host = kube.api_url
    c.PortalKubeSpawner.kube_site = kube_site(kube)
    # The curated images put jupyterhub-singleuser on their PATH.
    c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
    c.Spawner.default_url = "/lab"
    c.Spawner.server_token_scopes = server_token_scopes()
    portal_url = kube.session_portal_url or f"{settings.site.bind_url.rstrip('/')}/services/portal/"
    c.Spawner.environment = {PORTAL_URL_ENV: portal_url}
    if kube.hub_connect_url:
        # Pods reach the hub through its Kubernetes service, so it listens beyond loopback.
        c.JupyterHub.hub_connect_url = kube.hub_connect_url
        c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{settings.site.hub_port}"
    # The Helm chart's deployment facts (helm/aitestbed/templates/hub/deployment.yaml).
    if os.environ.get("AITESTBED_NAMESPACE"):
        c.KubeSpawner.namespace = os.environ["AITESTBED_NAMESPACE"]
    if os.environ.get("AITESTBED_USER_PRIORITY_CLASS"):
        c.KubeSpawner.priority_class_name = os.environ["AITESTBED_USER_PRIORITY_CLASS"]
    # The chart's NetworkPolicies select session pods by app=aitestbed.
    c.KubeSpawner.common_labels = {"app": "aitestbed", "heritage": "jupyterhub"}


def setup_portal(c: Any, settings: Settings) -> None:
    """Configure JupyterHub ``c`` for the portal described by ``settings``."""
    site = settings.site
    state = site.state_dir
    state.mkdir(parents=True, exist_ok=True)
    c.JupyterHub.bind_url = site.bind_url
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{site.hub_port}"
    c.JupyterHub.db_url = site.hub_database_url
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.template_vars = {"announcement_login": settings.authentication.login_hint}
    # The hub's pages carry the portal's top bar (hub/templates/page.html).
    c.JupyterHub.template_paths = [str(Path(__file__).with_name("templates"))]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{site.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = find_proxy_command()
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.auth_token = os.environ.get(
        "CONFIGPROXY_AUTH_TOKEN"
    ) or read_or_create_secret(state / "proxy_auth_token")
    _setup_authenticator(c, settings)
    if site.mode == "embedded":
        _setup_local_spawner(c, settings)
    elif site.mode == "kubernetes":
        _setup_kube_spawner(c, settings)
    else:
        raise SettingsError(
            f"{settings.path}: site.mode {site.mode!r} is not available in this version of the "
            "portal; use 'embedded' or 'kubernetes'."
        )
    chain = HookChain()
    _setup_project_gate(c, settings, chain)
    _setup_notices(c, settings)
    _setup_policy(c, settings, chain)
    chain.install(c)
    service_list, roles = services(settings)
    c.JupyterHub.services = service_list
    c.JupyterHub.load_roles = roles
