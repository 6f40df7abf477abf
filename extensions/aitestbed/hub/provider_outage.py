"""When the identity provider cannot be reached: keep signed-in users for a bounded grace.

A token refresh that cannot reach the provider (connection refused, a timeout, a 5xx) is
not the user's fault, and logging everyone out onto a login page whose button cannot work
helps nobody. So the hub keeps a signed-in user's session while the outage lasts at most
``grace`` seconds, logs one warning when the outage starts and one line when it ends, and
does not knock at the provider's door more than once every ``retry`` seconds (requests stay
fast). After the grace, users are asked to sign in again, and the sign-in page says the
sign-in service is unavailable until it is back.

:class:`ProviderOutage` holds only times; the decisions are its methods, tested with a
fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

log = logging.getLogger("aitestbed.oidc")
PROBE_TIMEOUT = 3.0


def provider_unreachable(error: BaseException) -> bool:
    """Whether an error means the provider did not answer (rather than refused us)."""
    if isinstance(error, HTTPClientError):
        return error.code == 599 or error.code >= 500  # 599: no answer (timeout, reset)
    return isinstance(error, OSError | asyncio.TimeoutError)


class ProviderOutage:
    def __init__(
        self,
        grace: float,
        *,
        retry: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.grace = grace
        self.retry = retry
        self.clock = clock
        self.log = logger
        self.since: float | None = None  # when the current outage began
        self.last_try: float = 0.0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def should_ask_provider(self) -> bool:
        """Outside an outage always; during one, once every ``retry`` seconds."""
        return self.since is None or self.clock() - self.last_try >= self.retry

    def failed(self, error: BaseException) -> None:
        now = self.clock()
        self.last_try = now
        if self.since is None:
            self.since = now
            self.log.warning(
                "The sign-in service cannot be reached (%s); signed-in users keep their "
                "sessions for up to %d s while it is down.",
                error or type(error).__name__,
                self.grace,
            )

    def answered(self) -> None:
        if self.since is not None:
            self.log.warning(
                "The sign-in service answers again after %d s.", self.clock() - self.since
            )
        self.since = None

    def keep_session(self) -> bool:
        """During an outage: whether a signed-in user keeps the session now."""
        return self.since is None or self.clock() - self.since < self.grace


async def provider_reachable(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether anything answers at ``url`` (any HTTP status counts as an answer)."""
    try:
        await AsyncHTTPClient().fetch(url, request_timeout=timeout, raise_error=False)
    except Exception:  # no connection, a timeout: not reachable
        return False
    return True
