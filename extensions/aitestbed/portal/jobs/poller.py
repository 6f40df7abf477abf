"""One poller per backend: a background task that calls ``JobGateway.poll_once`` on a timer.

However many users look at their jobs, the backend sees one call per interval; API reads
come from the database the poller keeps current.
"""

from __future__ import annotations

import asyncio
import logging

from aitestbed.portal.jobs.backend import BackendUnavailable
from aitestbed.portal.jobs.gateway import JobGateway

log = logging.getLogger("aitestbed.portal.jobs")


async def poll_forever(gateway: JobGateway, interval: float) -> None:
    warned = False
    while True:
        try:
            await asyncio.to_thread(gateway.poll_once)
            warned = False
        except BackendUnavailable as error:
            if not warned:
                log.warning("Job poller: %s", error)
                warned = True
        except Exception:
            log.exception("Job poller failed; trying again")
        await asyncio.sleep(interval)
