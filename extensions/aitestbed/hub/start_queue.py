"""Bounded concurrency for session starts, first come first served, with queue positions.

A class pressing Start at 9:00 otherwise starts 20 JupyterLabs at once on a few cores;
each then takes so long that the hub gives up on some. Here at most ``slots`` starts run at
the same time (until the server answers); the others wait their turn and can see their
place in the queue.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class StartQueue:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a start queue needs at least one slot")
        self.slots = slots
        self._running = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._tickets = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return self._running

    def position(self, ticket: int) -> int | None:
        """1-based place of ``ticket`` in the queue; None once it is running or gone."""
        for index, (waiting_ticket, _) in enumerate(self._waiting):
            if waiting_ticket == ticket:
                return index + 1
        return None

    def _release(self) -> None:
        self._running -= 1
        while self._waiting and self._running < self.slots:
            _, future = self._waiting.pop(0)
            if not future.done():
                self._running += 1
                future.set_result(None)

    @asynccontextmanager
    async def turn(self, on_ticket=None) -> AsyncIterator[int]:
        """Wait for a slot and hold it inside the block; ``on_ticket(t)`` sees the ticket."""
        ticket = next(self._tickets)
        if on_ticket:
            on_ticket(ticket)
        if self._running < self.slots and not self._waiting:
            self._running += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((ticket, future))
            try:
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._release()  # the slot was handed over just as we gave up
                else:
                    self._waiting = [(t, f) for t, f in self._waiting if t != ticket]
                raise
        try:
            yield ticket
        finally:
            self._release()
