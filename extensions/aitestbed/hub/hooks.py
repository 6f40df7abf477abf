"""A chain of spawner hooks: features add steps, none overwrites another's.

JupyterHub has one ``pre_spawn_hook`` and one ``post_stop_hook`` slot. ``setup_portal``
puts a :class:`HookChain` in both and every feature registers its step by name. A hook an
operator set in their own config before is kept as the chain's first step.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("aitestbed.hooks")

Hook = Callable[[Any], Any]


class HookChain:
    def __init__(self) -> None:
        self._pre_spawn: list[tuple[str, Hook]] = []
        self._post_stop: list[tuple[str, Hook]] = []

    @staticmethod
    def _add(steps: list[tuple[str, Hook]], name: str, hook: Hook) -> None:
        if any(existing == name for existing, _ in steps):
            raise ValueError(f"A hook named {name!r} is already registered.")
        steps.append((name, hook))

    def add_pre_spawn(self, name: str, hook: Hook) -> None:
        """Run ``hook(spawner)`` before every start; an exception refuses the start."""
        self._add(self._pre_spawn, name, hook)

    def add_post_stop(self, name: str, hook: Hook) -> None:
        """Run ``hook(spawner)`` after every stop; an exception is logged, the rest still run."""
        self._add(self._post_stop, name, hook)

    @property
    def pre_spawn_names(self) -> list[str]:
        return [name for name, _ in self._pre_spawn]

    @property
    def post_stop_names(self) -> list[str]:
        return [name for name, _ in self._post_stop]

    async def pre_spawn_hook(self, spawner: Any) -> None:
        for _name, hook in self._pre_spawn:
            result = hook(spawner)
            if inspect.isawaitable(result):
                await result

    async def post_stop_hook(self, spawner: Any) -> None:
        for name, hook in self._post_stop:
            try:
                result = hook(spawner)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("post-stop hook %r failed for %s", name, spawner)

    def install(self, c: Any) -> None:
        """Put the chain into JupyterHub config ``c``, keeping hooks already configured."""
        for slot, adder in (
            ("pre_spawn_hook", self._pre_spawn),
            ("post_stop_hook", self._post_stop),
        ):
            existing = c.Spawner.get(slot) if slot in c.Spawner else None
            if existing is not None and existing != getattr(self, slot):
                adder.insert(0, (f"site-{slot}", existing))
        c.Spawner.pre_spawn_hook = self.pre_spawn_hook
        c.Spawner.post_stop_hook = self.post_stop_hook
