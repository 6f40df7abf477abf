"""Start-up of the portal service: database ready, settings applied, then serve."""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

from sqlalchemy import Engine

from aitestbed.portal.datasets.demo import ensure_demo_datasets
from aitestbed.portal.db import make_engine, migrate, session_factory, transaction
from aitestbed.portal.seed import sync_settings
from aitestbed.settings import Settings

log = logging.getLogger("aitestbed.portal")


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


def make_gateway(settings: Settings, engine: Engine):
    from aitestbed.portal.jobs.gateway import JobGateway

    return JobGateway(session_factory(engine), settings, make_backend(settings))


def serve(settings: Settings) -> None:  # pragma: no cover - exercised by integration tests
    """Run as a JupyterHub-managed service (reads the JUPYTERHUB_SERVICE_* environment)."""
    import uvicorn
    from jupyterhub.services.auth import HubOAuth

    from aitestbed.portal.app import create_app
    from aitestbed.portal.auth import HubIdentity

    service_url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/portal/")
    engine = prepare_database(settings)
    from aitestbed.portal.notifications import Notifier, notifications_set
    from aitestbed.portal.reconcile import reconcile_forever
    from aitestbed.portal.revocation import HubServers, revoke_forever

    interval = float(os.environ.get("AITESTBED_RECONCILE_SECONDS", "300"))
    sessions = session_factory(engine)
    app = create_app(
        engine=engine,
        identity=HubIdentity(HubOAuth(cache_max_age=60)),
        prefix=prefix,
        site_name=settings.site.name,
        jobs=make_gateway(settings, engine),
        poll_interval=settings.jobs.poll_interval_seconds,
        internal_token=os.environ.get("JUPYTERHUB_API_TOKEN"),
        state_dir=settings.site.state_dir,
        notifier=Notifier(settings.notifications) if notifications_set(settings) else None,
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
        ],
    )
    log.info("Portal service listening on %s%s", service_url.netloc, prefix)
    uvicorn.run(
        app,
        host=os.environ.get("AITESTBED_PORTAL_BIND_HOST") or service_url.hostname or "127.0.0.1",
        port=service_url.port or 80,
        log_level="info",
        access_log=False,
        proxy_headers=True,
    )
