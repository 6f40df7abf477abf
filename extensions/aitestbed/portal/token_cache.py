"""A short-lived, bounded cache of the hub's answers about tokens.

Every API request carries a hub token, and asking the hub about it each time would cost a
round trip per request. The portal keeps the hub's answer for a token for ``ttl`` seconds
(``AITESTBED_TOKEN_CACHE_SECONDS``, default 30): a token revoked on the hub stops working
here within that time. Only acceptances are kept (a token the hub refused is asked about
again next time, so a new token works at once); entries are keyed by the SHA-256 of the
token, never the token itself; at most ``max_entries`` are kept (the oldest go first); and
simultaneous requests with the same unknown token ask the hub once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aitestbed.portal.auth import Identity

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_MAX_ENTRIES = 10_000


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class CachedIdentity:
    """Wraps a resolver (:class:`aitestbed.portal.auth.HubIdentity`) with the cache; every
    other attribute (the OAuth login) is the wrapped resolver's."""

    def __init__(
        self,
        inner: Any,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1")
        self.inner = inner
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Identity | None]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: str) -> bool:
        return token_key(token) in self._entries

    async def resolve(self, token: str) -> Identity | None:
        key = token_key(token)
        cached = self._entries.get(key)
        if cached is not None:
            expires, identity = cached
            if self.clock() < expires:
                return identity
            del self._entries[key]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            identity = await self.inner.resolve(token)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(identity)
            if identity is not None and self.ttl > 0:
                self._remember(key, identity)
            return identity
        finally:
            del self._pending[key]

    def _remember(self, key: str, identity: Identity) -> None:
        self._entries[key] = (self.clock() + self.ttl, identity)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        """Drop a token now (a logout, or a token known to be revoked)."""
        self._entries.pop(token_key(token), None)
