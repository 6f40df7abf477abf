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
from urllib.parse import urlparse

from aitestbed.hub.course_rbac import course_groups, course_roles, portal_group_scopes
from aitestbed.hub.hooks import HookChain
from aitestbed.lifetime import PARENT_PID_ENV
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
METRICS_SERVICE = "metrics"
METRICS_TOKEN_ENV = "AITESTBED_METRICS_API_TOKEN"  # noqa: S105 - a variable name
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


def tied_to_hub(command: list[str]) -> list[str]:
    """``command`` run so that it ends when the hub ends, even a hub killed with ``kill -9``
    (``aitestbed.lifetime``; the hub's pid travels in ``AITESTBED_PARENT_PID``)."""
    return [sys.executable, "-m", "aitestbed.lifetime", "--", *command]


def services(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The hub-managed services and the roles they hold.

    Both end with the hub (``tied_to_hub``): a restarted hub starts them afresh, and no
    orphan keeps the portal's port or runs a second culler.
    """
    # This runs inside the hub process, which loads its configuration itself.
    hub_pid = {PARENT_PID_ENV: str(os.getpid())}
    env = {SETTINGS_ENV: str(settings.path), **hub_pid}
    for name in (
        DATABASE_URL_ENV,
        "AITESTBED_RECONCILE_SECONDS",
        "AITESTBED_COURSE_SYNC_SECONDS",
        "AITESTBED_TOKEN_CACHE_SECONDS",
    ):
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
            "command": tied_to_hub([sys.executable, "-m", "aitestbed.portal", "serve"]),
            "environment": env,
            "oauth_no_confirm": True,
            "api_token": portal_api_token(settings),
            # The first start migrates the database; a busy machine needs more than 30 s.
            "timeout": 120,
        }
    ]
    roles: list[dict[str, Any]] = [
        {"name": "user", "scopes": user_scopes()},
        {
            "name": PORTAL_SERVICE,
            "services": [PORTAL_SERVICE],
            # list:users, read:servers: it closes usage records of servers the hub no longer
            # runs; delete:servers: it stops the servers of users whose project access ended
            # (portal/revocation.py); groups of the courses only: it keeps their members in line.
            "scopes": [
                "list:users",
                "read:servers",
                "delete:servers",
                *portal_group_scopes(settings.courses),
            ],
        },
        *course_roles(settings.courses),
    ]
    if settings.site.idle_timeout_seconds > 0:
        service_list.append(
            {
                "name": CULLER_SERVICE,
                "command": tied_to_hub(culler_command(settings)),
                "environment": hub_pid,
            }
        )
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        if settings.site.idle_cull_users:
            scopes.append("admin:users")  # deleting a user needs it
        roles.append({"name": CULLER_SERVICE, "services": [CULLER_SERVICE], "scopes": scopes})
    return service_list, roles


def culler_command(settings: Settings) -> list[str]:
    """jupyterhub-idle-culler as the settings ask (site.idle_*)."""
    site = settings.site
    command = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={site.idle_timeout_seconds}",
        f"--concurrency={site.idle_cull_concurrency}",
    ]
    if site.idle_cull_every_seconds:
        command.append(f"--cull-every={site.idle_cull_every_seconds}")
    if site.idle_cull_users:
        command.append("--cull-users=True")  # operators (admins) are never culled
    return command


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
    c.PortalLocalSpawner.start_state_dir = str(settings.site.state_dir / "starting-servers")
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
    if kube.cpu_node_selector:
        site["cpu_node_selector"] = dict(kube.cpu_node_selector)
    if kube.cpu_tolerations:
        site["cpu_tolerations"] = [dict(t) for t in kube.cpu_tolerations]
    if kube.cpu_node_affinity_preferred:
        site["cpu_node_affinity_preferred"] = [dict(t) for t in kube.cpu_node_affinity_preferred]
    site |= {
        "home_storage_type": kube.home_storage_type,
        "home_static_claim": kube.home_static_claim,
        "home_static_sub_path": kube.home_static_sub_path,
        "project_volume": kube.project_volume,
        "extra_volumes": [dict(v) for v in kube.extra_volumes],
        "extra_volume_mounts": [dict(m) for m in kube.extra_volume_mounts],
    }
    return site


def session_portal_url(settings: Settings) -> str:
    """Where a session pod reaches the portal (its $AITESTBED_PORTAL_URL).

    ``kubernetes.session_portal_url`` when set (the Helm chart sets its portal Service);
    else the portal Service the proxy uses ($AITESTBED_PORTAL_SERVICE_URL); else the public
    ``site.bind_url``, unless that is a wildcard address no pod can connect to.
    """
    suffix = f"/services/{PORTAL_SERVICE}/"
    if settings.kubernetes.session_portal_url:
        return settings.kubernetes.session_portal_url
    if os.environ.get("AITESTBED_PORTAL_SERVICE_URL"):
        return os.environ["AITESTBED_PORTAL_SERVICE_URL"].rstrip("/") + suffix
    host = urlparse(settings.site.bind_url).hostname or ""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - detecting, not binding
        raise SettingsError(
            f"{settings.path}: sessions cannot reach the portal at site.bind_url "
            f"{settings.site.bind_url} (an address to listen on, not to connect to): set "
            "kubernetes.session_portal_url, e.g. http://<portal service>:8090/services/portal/."
        )
    return settings.site.bind_url.rstrip("/") + suffix


def metrics_service() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The monitoring system's identity: a token that may read /hub/metrics and nothing else
    ($AITESTBED_METRICS_API_TOKEN, from the chart's Secret when its ServiceMonitor is on)."""
    token = os.environ.get(METRICS_TOKEN_ENV)
    if not token:
        return [], []
    service = {"name": METRICS_SERVICE, "api_token": token}
    role = {"name": METRICS_SERVICE, "services": [METRICS_SERVICE], "scopes": ["read:metrics"]}
    return [service], [role]


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
    c.Spawner.environment = {**kube.extra_environment, PORTAL_URL_ENV: session_portal_url(settings)}
    c.PortalKubeSpawner.read_cluster_capacity = kube.read_cluster_capacity
    if kube.scheduler_name:
        c.KubeSpawner.scheduler_name = kube.scheduler_name
    if kube.image_pull_secrets:
        c.KubeSpawner.image_pull_secrets = list(kube.image_pull_secrets)
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


EXTRA_CONFIG_ENV = "AITESTBED_EXTRA_CONFIG_DIR"


def run_extra_config(c: Any, directory: str | None = None) -> list[str]:
    """Run the operator's own configuration snippets after the portal's (the Helm chart's
    ``hub.extraConfig``): every ``*.py`` in ``directory`` (default ``$AITESTBED_EXTRA_CONFIG_DIR``)
    in name order, with ``c`` the configuration, as in jupyterhub_config.py. Returns the
    names run."""
    folder = directory or os.environ.get(EXTRA_CONFIG_ENV)
    if not folder:
        return []
    ran = []
    for path in sorted(Path(folder).glob("*.py")):
        code = compile(path.read_text(), str(path), "exec")
        exec(code, {"c": c, "__file__": str(path), "__name__": "extra_config"})  # noqa: S102
        ran.append(path.name)
    return ran


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
    metrics, metrics_roles = metrics_service()
    c.JupyterHub.services = service_list + metrics
    c.JupyterHub.load_roles = roles + metrics_roles
    if settings.authentication.kind != "oidc":
        # With single sign-on the authenticator manages the hub groups (manage_groups) and
        # JupyterHub refuses load_groups: there the course groups come with each login (the
        # portal answers them with the SSO grants, hub/oidc.py); the staff role creates its
        # group at start either way.
        c.JupyterHub.load_groups = course_groups(settings.courses)
