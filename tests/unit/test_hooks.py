"""The hook chain: features add steps, no step overwrites another."""

from __future__ import annotations

import pytest
from aitestbed.hub.hooks import HookChain
from traitlets.config import Config


async def test_steps_run_in_order_sync_and_async():
    calls = []
    chain = HookChain()
    chain.add_pre_spawn("a", lambda s: calls.append(("a", s)))

    async def second(spawner):
        calls.append(("b", spawner))

    chain.add_pre_spawn("b", second)
    await chain.pre_spawn_hook("sp")
    assert calls == [("a", "sp"), ("b", "sp")]


async def test_a_failing_pre_spawn_step_stops_the_start():
    chain = HookChain()
    later = []
    chain.add_pre_spawn("refuse", lambda s: (_ for _ in ()).throw(PermissionError("no")))
    chain.add_pre_spawn("later", later.append)
    with pytest.raises(PermissionError):
        await chain.pre_spawn_hook("sp")
    assert later == []


async def test_post_stop_steps_all_run_even_if_one_fails():
    chain = HookChain()
    ran = []
    chain.add_post_stop("broken", lambda s: 1 / 0)
    chain.add_post_stop("record", ran.append)
    await chain.post_stop_hook("sp")
    assert ran == ["sp"]


def test_names_are_unique():
    chain = HookChain()
    chain.add_pre_spawn("x", print)
    with pytest.raises(ValueError, match="already registered"):
        chain.add_pre_spawn("x", print)


async def test_install_keeps_a_hook_the_site_configured():
    seen = []
    c = Config()
    c.Spawner.pre_spawn_hook = lambda s: seen.append("site")
    chain = HookChain()
    chain.add_pre_spawn("policy", lambda s: seen.append("policy"))
    chain.install(c)
    assert chain.pre_spawn_names == ["site-pre_spawn_hook", "policy"]
    await c.Spawner.pre_spawn_hook("sp")
    assert seen == ["site", "policy"]
