"""The portal's cache of the hub's answers about tokens: short-lived, bounded, keyed by hash.

A fake hub resolver counts its calls; the clock is a variable. The real hub check is
covered by the integration tests.
"""

from __future__ import annotations

import asyncio

import pytest
from aitestbed.portal.auth import Identity
from aitestbed.portal.token_cache import CachedIdentity, token_key

ALICE = Identity("alice", hub_admin=False, scopes=frozenset())


class FakeHub:
    """Knows some tokens; answers after a pause (a hub round trip); counts the calls."""

    def __init__(self, known):
        self.known = dict(known)
        self.calls = 0

    async def resolve(self, token):
        self.calls += 1
        await asyncio.sleep(0.01)
        return self.known.get(token)

    def authorize_redirect(self, next_url):
        return f"hub-login?next={next_url}", "state"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _cache(hub, **options):
    clock = Clock()
    return CachedIdentity(hub, clock=clock, **options), clock


def test_revoked_token_stops_working_within_the_ttl():
    hub = FakeHub({"t-alice": ALICE})
    cache, clock = _cache(hub, ttl=30)

    async def scenario():
        assert await cache.resolve("t-alice") == ALICE
        del hub.known["t-alice"]  # revoked on the hub
        clock.now += 29.9
        assert await cache.resolve("t-alice") == ALICE  # still inside the TTL
        clock.now += 0.1
        assert await cache.resolve("t-alice") is None  # the TTL is over: asked again
        assert await cache.resolve("t-alice") is None

    asyncio.run(scenario())
    assert hub.calls == 3  # refusals are not kept


def test_a_new_token_works_at_once_and_zero_ttl_keeps_nothing():
    hub = FakeHub({})
    cache, _ = _cache(hub, ttl=0)

    async def scenario():
        assert await cache.resolve("t-new") is None
        hub.known["t-new"] = ALICE
        assert await cache.resolve("t-new") == ALICE
        assert await cache.resolve("t-new") == ALICE

    asyncio.run(scenario())
    assert hub.calls == 3 and len(cache) == 0


def test_entries_are_bounded_oldest_first_and_keyed_by_hash():
    tokens = {f"secret-token-{i}": Identity(f"u{i}", False, frozenset()) for i in range(30)}
    hub = FakeHub(tokens)
    cache, _ = _cache(hub, ttl=30, max_entries=10)

    async def scenario():
        # A burst of 30 different tokens at once: never more than 10 kept.
        results = await asyncio.gather(*(cache.resolve(t) for t in tokens))
        assert [r.name for r in results] == [f"u{i}" for i in range(30)]

    asyncio.run(scenario())
    assert len(cache) == 10
    assert "secret-token-29" in cache and "secret-token-19" not in cache
    assert not any("secret" in key for key in cache._entries)
    assert token_key("secret-token-29") in cache._entries


def test_simultaneous_requests_with_one_token_ask_the_hub_once():
    hub = FakeHub({"t-alice": ALICE})
    cache, _ = _cache(hub, ttl=30)

    async def burst():
        return await asyncio.gather(*(cache.resolve("t-alice") for _ in range(50)))

    assert asyncio.run(burst()) == [ALICE] * 50
    assert hub.calls == 1


def test_a_failing_hub_fails_every_waiter_and_is_asked_again():
    class DownHub(FakeHub):
        async def resolve(self, token):
            self.calls += 1
            await asyncio.sleep(0.01)
            raise ConnectionError("hub down")

    hub = DownHub({})
    cache, _ = _cache(hub, ttl=30)

    async def burst():
        return await asyncio.gather(
            *(cache.resolve("t-alice") for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(burst())
    assert [type(r) for r in results] == [ConnectionError] * 5 and hub.calls == 1
    asyncio.run(burst())
    assert hub.calls == 2 and len(cache) == 0


def test_the_login_flow_is_the_wrapped_resolvers():
    cache, _ = _cache(FakeHub({}))
    assert cache.authorize_redirect("/p/") == ("hub-login?next=/p/", "state")


@pytest.mark.parametrize("options", [{"ttl": -1}, {"max_entries": 0}])
def test_bad_settings_are_refused(options):
    with pytest.raises(ValueError, match="ttl must be >= 0 and max_entries >= 1"):
        CachedIdentity(FakeHub({}), **options)
