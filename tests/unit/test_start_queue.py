"""The start queue: bounded, first come first served, positions, and cancellation."""

from __future__ import annotations

import asyncio

import pytest
from aitestbed.hub.start_queue import StartQueue


async def test_at_most_slots_run_and_order_is_kept():
    queue = StartQueue(2)
    running, peak, order = 0, 0, []
    release = asyncio.Event()

    async def start(n):
        nonlocal running, peak
        async with queue.turn():
            running += 1
            peak = max(peak, running)
            order.append(n)
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(start(n)) for n in range(6)]
    await asyncio.sleep(0.01)
    assert (queue.running, queue.waiting) == (2, 4)
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and order == list(range(6))
    assert (queue.running, queue.waiting) == (0, 0)


async def test_positions_are_reported_while_waiting():
    queue = StartQueue(1)
    tickets: list[int] = []
    gate = asyncio.Event()

    async def start():
        async with queue.turn(tickets.append):
            await gate.wait()

    tasks = [asyncio.create_task(start()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert [queue.position(t) for t in tickets] == [None, 1, 2]
    gate.set()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_leaves_the_queue_and_frees_nothing_twice():
    queue = StartQueue(1)
    gate = asyncio.Event()

    async def start():
        async with queue.turn():
            await gate.wait()

    first = asyncio.create_task(start())
    second = asyncio.create_task(start())
    third = asyncio.create_task(start())
    await asyncio.sleep(0.01)
    second.cancel()
    await asyncio.sleep(0.01)
    assert queue.waiting == 1
    gate.set()
    await asyncio.gather(first, third)
    with pytest.raises(asyncio.CancelledError):
        await second
    assert (queue.running, queue.waiting) == (0, 0)


async def test_an_error_inside_the_turn_releases_the_slot():
    queue = StartQueue(1)
    with pytest.raises(RuntimeError):
        async with queue.turn():
            raise RuntimeError("start failed")
    async with queue.turn():
        assert queue.running == 1


def test_at_least_one_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        StartQueue(0)
