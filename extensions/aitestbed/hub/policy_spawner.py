"""Spawners that start only what the policy admits, in a bounded start queue.

:class:`PolicySpawnerMixin` is the mechanism shared by both runtime places: it draws the
spawn page from the user's projects, asks the portal to admit (and record) each start,
waits for a start slot, and closes the session record on stop. What a session *becomes* is
left to ``apply_session``: local process settings (:class:`PortalLocalSpawner`) or
KubeSpawner pod settings (:class:`PortalKubeSpawner`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from datetime import date
from typing import Any, ClassVar
from urllib.parse import urlparse

from sqlalchemy import inspect as inspect_orm
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Dict, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from aitestbed.hub.portal_client import (
    HubPortalClient,
    PortalRefused,
    PortalUnavailable,
    shared_client,
)
from aitestbed.hub.spawn_form import (
    ACCESS_PAGE,
    ProjectDatasets,
    form_choice,
    render_spawn_form,
)
from aitestbed.hub.start_queue import StartQueue
from aitestbed.policy.admission import admit, no_capacity_reason
from aitestbed.policy.model import FlavorSpec, ImageSpec, ProjectState, SpawnRequest
from aitestbed.policy.mounts import DatasetMount, parse_mounts, refusal_messages
from aitestbed.policy.options import ProjectOptions, complete_request, spawn_options

OPTION_KEYS = ("project", "flavor", "image")
MAX_OPTION_LENGTH = 63
UNAVAILABLE = (
    "The portal service did not answer in time, so the start cannot be checked against "
    "your quota; try again in a minute."
)


def parse_context(context: dict[str, Any]):
    """Portal spawn-context JSON -> policy data."""
    projects = [
        ProjectState(
            slug=p["slug"],
            title=p["title"],
            role=p["role"],
            valid_from=date.fromisoformat(p["valid_from"]),
            valid_until=date.fromisoformat(p["valid_until"]),
            gpu_hours_budget=p["gpu_hours_budget"],
            gpu_hours_used=p["gpu_hours_used"],
            max_concurrent_gpus=p["max_concurrent_gpus"],
            gpus_in_use=p["gpus_in_use"],
            allowed_flavors=tuple(p["allowed_flavors"])
            if p["allowed_flavors"] is not None
            else None,
            allowed_images=tuple(p["allowed_images"]) if p["allowed_images"] is not None else None,
        )
        for p in context["projects"]
    ]
    flavors = [FlavorSpec(**f) for f in context["flavors"]]
    images = [ImageSpec(**{**i, "frameworks": tuple(i["frameworks"])}) for i in context["images"]]
    return projects, flavors, images, context.get("sessions_by_flavor", {})


def context_datasets(
    context: dict[str, Any], safe_mode_enforcement: str = ""
) -> dict[str, ProjectDatasets]:
    """Per project: the datasets its sessions mount, and the refused ones with the reason,
    and whether its sessions run in safe mode (with what this spawner enforces of it)."""
    return {
        project: ProjectDatasets(
            mounted=tuple(entry.get("mounted", ())),
            refused=tuple((r["slug"], r["reason"]) for r in entry.get("refused", ())),
            safe_mode=bool(entry.get("safe_mode")),
            safe_mode_reason=str(entry.get("safe_mode_reason") or ""),
            safe_mode_enforcement=safe_mode_enforcement,
        )
        for project, entry in (context.get("datasets") or {}).items()
    }


def clean_user_options(raw: dict[str, Any]) -> dict[str, str]:
    """Keep the known keys as short strings; anything else is refused by name. A list is
    refused too, even of one item (docs/sessions.md): the spawn form sends plain texts."""
    unknown = sorted(set(raw) - set(OPTION_KEYS))
    if unknown:
        raise web.HTTPError(400, f"Unknown session option {unknown[0][:40]!r}.")
    cleaned = {}
    for key in OPTION_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        if not isinstance(value, str) or not value.strip():
            raise web.HTTPError(400, f"The session option {key!r} must be a non-empty text.")
        if len(value) > MAX_OPTION_LENGTH:
            raise web.HTTPError(400, f"The session option {key!r} is too long.")
        cleaned[key] = value.strip()
    return cleaned


class PolicySpawnerMixin(LoggingConfigurable):
    """Mix in before a concrete spawner class."""

    portal_url = Unicode(
        help="Base URL of the portal service as the hub reaches it, e.g. "
        "http://127.0.0.1:8090/services/portal/.",
    ).tag(config=True)
    portal_token = Unicode(
        help="The portal service's API token; the hub uses it to admit and record sessions.",
    ).tag(config=True)
    portal_max_connections = Integer(
        20,
        help="Requests to the portal in flight at once (admission, usage records); more "
        "wait for a free connection. The hub's own HTTP client is not used for them.",
    ).tag(config=True)
    portal_request_timeout = Float(
        30, help="Seconds one request to the portal may take once it is sent."
    ).tag(config=True)
    portal_queue_timeout = Float(
        120,
        help="Seconds a request to the portal may wait for a free connection and retries "
        "before the start is refused with 503 (the portal is down or too busy).",
    ).tag(config=True)
    start_slots = Integer(
        0,
        help="How many sessions may start at the same time (until they answer); the rest "
        "queue. 0 means one per CPU core of this machine.",
    ).tag(config=True)
    session_start_timeout = Integer(
        120, help="Seconds one session may take to start once its turn has come."
    ).tag(config=True)
    flavor_capacity = Dict(
        help="Embedded default: sessions of each flavor this machine can hold, e.g. "
        "{'cpu-small': 8}. Flavors not listed have no known limit.",
    ).tag(config=True)

    session_record_id = Integer(None, allow_none=True)
    gpu_devices = List(help="The devices the portal assigned to this session (embedded).")
    gpu_places = Dict(help="Per GPU flavor: the portal's places from free devices.")
    session_choice = Dict()
    dataset_notes = List(help="Datasets of this start that are not mounted, and why.")
    session_materials = Dict(
        help="The course's materials of this start ({repo, branch}; empty: none)."
    )
    # Safe mode of the session being started (the portal decides it at admission).
    safe_mode = False
    # What this spawner enforces of safe mode, said on the spawn page (subclasses).
    safe_mode_enforcement = ""

    _queues: ClassVar[dict[str, StartQueue]] = {}

    @default("options_form")
    def _policy_options_form(self):
        return lambda spawner: spawner.render_options_form()

    @property
    def start_queue(self) -> StartQueue:
        key = type(self).__name__
        if key not in self._queues:
            self._queues[key] = StartQueue(self.start_slots or os.cpu_count() or 1)
        return self._queues[key]

    def portal(self) -> HubPortalClient:
        return shared_client(
            self.portal_url,
            self.portal_token,
            self.portal_max_connections,
            self.portal_request_timeout,
            self.portal_queue_timeout,
        )

    def capacity(
        self, running: dict[str, int], flavors: list[FlavorSpec]
    ) -> dict[str, tuple[float, float] | None]:
        """``{flavor slug: (free, total)}`` sessions; a flavor not listed has no known limit.

        The embedded default counts from ``flavor_capacity``; the Kubernetes spawner
        overrides this (it may return an awaitable) to ask the cluster.
        """
        result: dict[str, tuple[float, float] | None] = {
            slug: (max(total - running.get(slug, 0), 0), total)
            for slug, total in self.flavor_capacity.items()
        }
        # Where the portal assigns this machine's devices, GPU flavors count those.
        for slug, place in self.gpu_places.items():
            result[slug] = (place["free"], place["total"])
        return result

    def capacity_reasons(self) -> dict[str, str]:
        """Why this machine cannot serve a GPU flavor, per flavor (embedded)."""
        return {slug: p["reason"] for slug, p in self.gpu_places.items() if p.get("reason")}

    capacity_note = ""
    """Why the free capacity is not shown on the spawn page, when it is not (one sentence)."""

    async def free_capacity(
        self, options: list[ProjectOptions], running: dict[str, int]
    ) -> dict[str, tuple[float, float] | None]:
        flavors = {f.flavor.slug: f.flavor for o in options for f in o.flavors}
        result = self.capacity(running, list(flavors.values()))
        return await result if inspect.isawaitable(result) else result

    def images_as_offered(self, images: list[ImageSpec]) -> list[ImageSpec]:
        """The image cards as this installation can honour them (subclasses: the embedded
        default says which listed frameworks its one environment lacks)."""
        return images

    async def render_options_form(self) -> str:
        try:
            context = await self.portal().spawn_context(self.user.name)
        except (PortalUnavailable, PortalRefused):
            return f"<div class='alert alert-danger'>{UNAVAILABLE}</div>"
        projects, flavors, images, running = parse_context(context)
        self.gpu_places = context.get("gpu_places") or {}
        options = spawn_options(projects, flavors, self.images_as_offered(images), date.today())
        capacity = await self.free_capacity(options, running)
        return render_spawn_form(
            options,
            capacity,
            self.session_choice,
            context_datasets(context, self.safe_mode_enforcement),
            access_url=self.hub.base_url.removesuffix("hub/") + ACCESS_PAGE,
            capacity_note=" ".join(n for n in (self.capacity_note, context.get("gpu_note")) if n),
            capacity_reasons=self.capacity_reasons(),
            messages=context.get("messages") or {},
        )

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        return clean_user_options(form_choice(formdata))

    # -- the pre-spawn and post-stop steps (registered in the hook chain) ------------------

    async def admit_session(self) -> None:
        """Resolve the choice, have the portal admit and record it, then apply it."""
        chosen = clean_user_options(dict(self.user_options or {}))
        try:
            context = await self.portal().spawn_context(self.user.name)
        except PortalUnavailable:
            raise web.HTTPError(503, UNAVAILABLE) from None
        projects, flavors, images, running = parse_context(context)
        self.gpu_places = context.get("gpu_places") or {}
        options = spawn_options(projects, flavors, images, date.today())
        chosen, problem = complete_request(options, chosen)
        if problem:
            raise web.HTTPError(403, problem)
        # Refuse early with the policy's reason; the portal decides again when it records.
        decision = admit(
            SpawnRequest(chosen["project"], chosen["flavor"], chosen["image"]),
            projects,
            {f.slug: f for f in flavors},
            {i.slug: i for i in images},
            date.today(),
        )
        if not decision.allowed:
            raise web.HTTPError(403, decision.reason)
        capacity = (await self.free_capacity(options, running)).get(chosen["flavor"])
        if capacity is not None and capacity[0] <= 0:
            reason = self.capacity_reasons().get(chosen["flavor"])
            raise web.HTTPError(409, reason or no_capacity_reason(chosen["flavor"], capacity[1]))
        # The places of the flavor: what is free plus what its open sessions hold. The
        # portal counts the open sessions again under its admission lock, so concurrent
        # starts cannot all take the last place.
        places = None if capacity is None else int(capacity[0] + running.get(chosen["flavor"], 0))
        try:
            record = await self.portal().start_session(
                user=self.user.name, server_name=self.name, flavor_places=places, **chosen
            )
        except PortalUnavailable:
            raise web.HTTPError(503, UNAVAILABLE) from None
        except PortalRefused as refusal:
            status = 409 if refusal.status == 409 else 403 if refusal.status in (403, 404) else 400
            raise web.HTTPError(status, refusal.message) from None
        self.session_record_id = record["id"]
        self.session_choice = chosen
        self.session_materials = dict((context.get("materials") or {}).get(chosen["project"]) or {})
        self.gpu_devices = list(record.get("gpu_devices") or [])
        project = next(o for o in options if o.project.slug == chosen["project"])
        flavor = next(f.flavor for f in project.flavors if f.flavor.slug == chosen["flavor"])
        image = next(i for i in project.images if i.slug == chosen["image"])
        datasets = parse_mounts(record.get("datasets"))
        self.dataset_notes = refusal_messages(record.get("refused_datasets"))
        self.safe_mode = bool(record.get("safe_mode"))
        for note in self.dataset_notes:
            self.log.info("%s: %s", self._log_name, note)
        try:
            self.apply_session(flavor, image, chosen["project"], datasets)
        except BaseException:
            await self.close_session()  # the portal recorded a session that never starts
            raise

    async def close_session(self) -> None:
        if self.session_record_id is None:
            return
        try:
            await self.portal().stop_session(self.session_record_id)
        except PortalRefused as refusal:
            if refusal.status != 404:
                raise
        except PortalUnavailable as error:
            # E.g. the hub shutting down stops its services before the sessions. The
            # portal's reconciler closes records of servers that no longer run when it is
            # back; a traceback here would tell the operator nothing they can act on.
            self.log.warning(
                "%s: usage record %s not closed now (the portal cannot be reached: %s); the "
                "portal closes it when it runs again.",
                self._log_name,
                self.session_record_id,
                error,
            )
        self.session_record_id = None
        self.gpu_devices = []  # the portal gave them back with the record

    def apply_session(
        self,
        flavor: FlavorSpec,
        image: ImageSpec,
        project: str,
        datasets: list[DatasetMount] | tuple[DatasetMount, ...] = (),
    ) -> None:
        """Shape the session; ``datasets`` are exactly the ones to mount read-only."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------

    @default("start_timeout")
    def _queue_aware_start_timeout(self):
        # The hub's own timeout must outlast a wait in the queue; our own timeout below
        # limits the start itself once its turn has come.
        return 3600

    async def start(self):
        self._queue_ticket = None

        def remember(ticket):
            self._queue_ticket = ticket

        try:
            async with self.start_queue.turn(remember):
                self._queue_ticket = None
                result = await asyncio.wait_for(
                    self._start_and_wait(), timeout=self.session_start_timeout
                )
        except BaseException:
            await self.close_session()
            raise
        return result

    async def _start_and_wait(self):
        result = await super().start()
        url = result if isinstance(result, str) else f"http://{result[0]}:{result[1]}"
        self.save_started_process(url)
        # Hold the slot until the server answers: that is where a start spends its CPU.
        await self.wait_until_serving(f"{url.rstrip('/')}{self.server.base_url}api")
        return result

    def save_started_process(self, url: str) -> None:
        """Save the spawner's state (its process, its usage record) and the server's
        address in the hub's database as soon as the process exists, not only once it
        answers: a hub killed meanwhile then finds the process when it restarts and adopts
        or stops it (closing the record), instead of leaving it running unknown."""
        orm_spawner = getattr(self, "orm_spawner", None)
        mapped = inspect_orm(orm_spawner, raiseerr=False) if orm_spawner is not None else None
        db = mapped.session if mapped is not None else None
        if db is None:  # a spawner outside a hub (tests)
            return
        orm_spawner.state = self.get_state()
        address = urlparse(url)
        if self.server is not None and address.hostname and address.port:
            self.server.ip = address.hostname
            self.server.port = address.port
        db.commit()

    async def wait_until_serving(self, api_url: str) -> None:
        """Wait until *this* server answers 200 on its own API URL.

        Any answer is not enough: if two local servers were handed the same free port, the
        other one answers this URL with 404, and the hub would route this user to it. A
        process that exits while we wait fails the start at once, with its exit status.
        """
        # Its own client: the hub's default one (10 connections) also carries the hub's
        # proxy calls, and a busy queue there must not fail this start.
        client = AsyncHTTPClient(force_instance=True, max_clients=1)
        try:
            await self._poll_until_serving(client, api_url)
        finally:
            client.close()

    async def _poll_until_serving(self, client: AsyncHTTPClient, api_url: str) -> None:
        delay = 0.1
        while True:
            status = await self.poll()
            if status is not None:
                raise RuntimeError(
                    f"The session process exited with status {status} before it answered; "
                    "try starting again."
                )
            try:
                response = await client.fetch(api_url, request_timeout=5, raise_error=False)
                if response.code == 200:
                    return
            except (OSError, HTTPClientError):
                pass  # not listening yet, or too busy to answer within 5 s
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def progress(self):
        ticket = getattr(self, "_queue_ticket", None)
        while ticket is not None:
            place = self.start_queue.position(ticket)
            if place is None:
                break
            yield {
                "progress": 5,
                "message": f"Waiting for a start slot: number {place} in the queue "
                f"({self.start_queue.running} starting now).",
            }
            await asyncio.sleep(1)
            ticket = getattr(self, "_queue_ticket", None)
        for note in self.dataset_notes:
            yield {"progress": 35, "message": note}
        yield {"progress": 40, "message": "Starting your session ..."}
        parent = getattr(super(), "progress", None)
        if parent is not None:
            async for event in parent():
                yield event

    def get_state(self):
        state = super().get_state()
        if self.session_record_id is not None:
            state["session_record_id"] = self.session_record_id
        if self.session_choice:
            state["session_choice"] = dict(self.session_choice)
        if self.gpu_devices:
            state["gpu_devices"] = list(self.gpu_devices)  # a restarted hub still knows them
        return state

    def load_state(self, state):
        super().load_state(state)
        self.session_record_id = state.get("session_record_id")
        self.session_choice = state.get("session_choice", {})
        self.gpu_devices = state.get("gpu_devices", [])

    def clear_state(self):
        # The hub clears state before it runs the post-stop hooks: keep the record id so
        # the "usage-record" step can close it, and the choice to preselect the form.
        super().clear_state()
