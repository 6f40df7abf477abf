"""Start-up of the portal service: database ready, settings applied, then serve."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from urllib.parse import urlparse

from sqlalchemy import Engine

from aitestbed.lifetime import expected_parent, stop_self, watch_parent
from aitestbed.portal.airlock.logic import AirlockSettings
from aitestbed.portal.datasets.demo import ensure_demo_datasets
from aitestbed.portal.db import make_engine, migrate, session_factory, transaction
from aitestbed.portal.seed import sync_settings
from aitestbed.settings import Settings

log = logging.getLogger("aitestbed.portal")

#: exit status of a portal that cannot listen on its port (the message is in the log)
EXIT_PORT_IN_USE = 3


class PortInUse(RuntimeError):
    """The portal's port is taken; the message says by what, probably, and what to do."""


def listen(host: str, port: int) -> socket.socket:
    """The portal's listening socket, bound before anything else is done, so that a port
    taken by another process is reported at once and in words."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno != errno.EADDRINUSE:
            raise
        raise PortInUse(
            f"The portal cannot listen on {host}:{port}: the port is in use, probably by a "
            "portal left running by an earlier hub; stop that process (`ss -ltnp "
            f"'sport = :{port}'` shows it) and the hub starts the portal again."
        ) from None
    sock.listen(2048)
    return sock


def run(app, sock: socket.socket) -> None:  # pragma: no cover - exercised by integration tests
    """Serve ``app`` on ``sock`` with uvicorn (behind the hub's proxy)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="info", access_log=False, proxy_headers=True)
    # The hub stops its services with SIGINT: uvicorn shuts down gracefully, then raises the
    # signal again, which is the expected end here and no traceback (as uvicorn.run does).
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


def exit_with_hub() -> None:
    """The fallback to the kernel's parent-death signal (``aitestbed.lifetime``): stop when
    the hub that started this portal is gone."""
    parent = expected_parent()
    if parent is None:
        return
    if os.getppid() != parent:
        log.error("The hub that started the portal (pid %s) is gone; the portal stops.", parent)
        raise SystemExit(1)

    def gone() -> None:
        log.warning("The hub that started the portal (pid %s) is gone; the portal stops.", parent)
        stop_self()

    watch_parent(parent, gone)


def prepare_database(settings: Settings) -> Engine:
    """Migrate the portal database to the current schema and apply the site settings.

    Demo datasets are written first, so that the settings sync measures their size.
    """
    ensure_demo_datasets(settings.datasets)
    engine = make_engine(settings.site.database_url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        sync_settings(session, settings)
    return engine


def make_backend(settings: Settings):
    """The job backend the site settings choose."""
    if settings.jobs.backend == "slurm":
        from aitestbed.portal.jobs.slurm import SlurmBackend

        assert settings.jobs.slurm is not None  # the schema requires the section
        return SlurmBackend(settings.jobs.slurm)
    from aitestbed.portal.jobs.local import LocalBackend

    return LocalBackend(settings.site.state_dir / "jobs")


def make_gateway(settings: Settings, engine: Engine, gpus=None):
    """The job gateway; ``gpus``: this machine's GPU source (local jobs get devices)."""
    from aitestbed.portal.jobs.gateway import JobGateway

    return JobGateway(session_factory(engine), settings, make_backend(settings), gpu_source=gpus)


def gpu_source(settings: Settings):
    """The embedded default gives devices from this machine's GPUs (simulated or NVML);
    on Kubernetes the cluster does."""
    if settings.site.mode != "embedded":
        return None
    from aitestbed.gpu_inventory import source_for

    return source_for(settings.site.simulated_gpus)


def serve(settings: Settings) -> None:  # pragma: no cover - exercised by integration tests
    """Run as a JupyterHub-managed service (reads the JUPYTERHUB_SERVICE_* environment)."""
    from jupyterhub.services.auth import HubOAuth

    from aitestbed.portal.app import create_app
    from aitestbed.portal.auth import HubIdentity
    from aitestbed.portal.token_cache import DEFAULT_TTL_SECONDS, CachedIdentity

    service_url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/portal/")
    host = os.environ.get("AITESTBED_PORTAL_BIND_HOST") or service_url.hostname or "127.0.0.1"
    exit_with_hub()
    try:
        sock = listen(host, service_url.port or 80)
    except PortInUse as error:
        log.error("%s", error)
        raise SystemExit(EXIT_PORT_IN_USE) from None
    engine = prepare_database(settings)
    from aitestbed.portal.courses.hub_groups import sync_forever
    from aitestbed.portal.notifications import Notifier, notifications_set
    from aitestbed.portal.reconcile import fetch_hub_users, reconcile_forever
    from aitestbed.portal.revocation import HubServers, revoke_forever

    interval = float(os.environ.get("AITESTBED_RECONCILE_SECONDS", "300"))
    sessions = session_factory(engine)
    gpus = gpu_source(settings)  # one inventory for sessions and local jobs
    app = create_app(
        engine=engine,
        identity=CachedIdentity(
            HubIdentity(HubOAuth()),
            ttl=float(os.environ.get("AITESTBED_TOKEN_CACHE_SECONDS", DEFAULT_TTL_SECONDS)),
        ),
        prefix=prefix,
        site_name=settings.site.name,
        jobs=make_gateway(settings, engine, gpus),
        poll_interval=settings.jobs.poll_interval_seconds,
        internal_token=os.environ.get("JUPYTERHUB_API_TOKEN"),
        state_dir=settings.site.state_dir,
        gpu_source=gpus,
        dataset_roots=settings.site.dataset_roots,
        airlock=AirlockSettings(
            project_dir_template=settings.jobs.project_dir_template,
            store=settings.site.state_dir / "airlock",
            stewards=frozenset(settings.site.data_stewards),
        ),
        notifier=Notifier(settings.notifications) if notifications_set(settings) else None,
        timezone=settings.site.timezone,
        # The embedded default links each dataset into the home (hub/local_settings.py).
        datasets_mount="~/datasets" if settings.site.mode == "embedded" else None,
        known_users=frozenset(u.name for u in settings.authentication.demo_users)
        if settings.authentication.kind == "demo"
        else None,
        homes_dir=settings.site.state_dir / "homes" if settings.site.mode == "embedded" else None,
        hub_users=lambda: fetch_hub_users(
            os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
        ),
        background=[
            lambda: reconcile_forever(
                sessions,
                os.environ["JUPYTERHUB_API_URL"],
                os.environ["JUPYTERHUB_API_TOKEN"],
                interval,
            ),
            lambda: revoke_forever(
                sessions,
                HubServers(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]),
                settings.site.revocation_grace_seconds,
            ),
            lambda: sync_forever(
                sessions,
                os.environ["JUPYTERHUB_API_URL"],
                os.environ["JUPYTERHUB_API_TOKEN"],
                float(os.environ.get("AITESTBED_COURSE_SYNC_SECONDS", "60")),
            ),
        ],
    )
    log.info("Portal service listening on %s%s", service_url.netloc, prefix)
    run(app, sock)
