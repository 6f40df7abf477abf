"""The Kubernetes session spawner: KubeSpawner pods shaped by the policy.

Every start sets every pod trait from :func:`aitestbed.hub.pod_settings.pod_settings`, so
nothing of a previous start (a GPU limit, a node selector) leaks into the next pod. Free
capacity per flavor comes from the Kubernetes API (nodes' allocatable GPUs and MIG slices
minus what pods request, see :mod:`aitestbed.hub.capacity`), so a start that cannot be
placed is refused at once with the reason instead of waiting in ``Pending``.

A flavor's lifetime limit is enforced twice: the pod carries ``activeDeadlineSeconds`` (the
kubelet ends it even while the hub is down) and :meth:`PortalKubeSpawner.poll` stops a
session past its deadline, which closes its usage record through the post-stop hooks. The
idle culler's ``--max-age`` is one value for all servers and is not used for this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float

from aitestbed.hub.capacity import free_capacity
from aitestbed.hub.pod_settings import (
    KubeSite,
    flavor_demand,
    lifetime_seconds,
    pod_settings,
    unmountable_in_pod,
)
from aitestbed.hub.policy_spawner import PolicySpawnerMixin
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import DatasetMount

LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
CAPACITY_OFF = (
    "Free GPU capacity is not shown: this site does not let the portal read the cluster's "
    "nodes (kubernetes.read_cluster_capacity is off); a start that does not fit waits for room."
)
CAPACITY_FORBIDDEN = (
    "Free GPU capacity is not shown: the portal may not read the cluster's nodes and pods "
    "(ask the operators to grant it, see docs/kubernetes.md); a start that does not fit waits "
    "for room."
)
CAPACITY_UNREADABLE = (
    "Free GPU capacity is not shown: the cluster's nodes and pods could not be read just now; "
    "a start that does not fit waits for room."
)


class PortalKubeSpawner(PolicySpawnerMixin, KubeSpawner):
    """KubeSpawner whose pods are decided by the portal's policy."""

    kube_site = Dict(
        help="Site-wide pod choices, the fields of aitestbed.hub.pod_settings.KubeSite, e.g. "
        "{'home_storage': '50Gi', 'gpu_tolerations': [{'key': 'nvidia.com/gpu', "
        "'operator': 'Exists', 'effect': 'NoSchedule'}]}.",
    ).tag(config=True)
    capacity_cache_seconds = Float(
        5.0,
        help="How long the cluster's nodes and pods, read for the free capacity per flavor, "
        "are reused before they are read again (spawn pages of a whole class at once "
        "cost one read).",
    ).tag(config=True)

    read_cluster_capacity = Bool(
        True,
        help="Read the cluster's nodes and pods (cluster-wide list permission) for the free "
        "capacity per flavor. False: no capacity is shown, and the spawn page says why.",
    ).tag(config=True)

    session_deadline = Float(None, allow_none=True)
    _configured_environment: dict[str, Any] | None = None

    _cluster_cache: ClassVar[dict[str, tuple[float, list, list]]] = {}

    @property
    def site(self) -> KubeSite:
        fields = dict(self.kube_site)
        for key in (
            "gpu_tolerations",
            "cpu_tolerations",
            "cpu_node_affinity_preferred",
            "extra_volumes",
            "extra_volume_mounts",
        ):
            if key in fields:
                fields[key] = tuple(fields[key])
        return KubeSite(**fields)

    def apply_session(
        self,
        flavor: FlavorSpec,
        image: ImageSpec,
        project: str,
        datasets: Sequence[DatasetMount] = (),
    ) -> None:
        settings = pod_settings(flavor, image, project, self.site, datasets)
        for slug in unmountable_in_pod(datasets):
            self.log.warning(
                "Dataset %s of %s has storage a pod cannot mount (a local folder, or an "
                "incomplete or unsafe pvc/nfs/host_path storage); not mounted. Give it pvc, "
                "nfs or host_path storage in the settings.",
                slug,
                self._log_name,
            )
            self.dataset_notes = [
                *self.dataset_notes,
                f"{slug} is not mounted: its storage is not reachable from the cluster "
                "(tell the operators)",
            ]
        # The configured environment (e.g. the portal's URL) stays; the session's is
        # added to that, never to the previous session's.
        if self._configured_environment is None:
            self._configured_environment = dict(self.environment)
        settings["environment"] = {**self._configured_environment, **settings["environment"]}
        for trait, value in settings.items():
            setattr(self, trait, value)
        lifetime = lifetime_seconds(flavor)
        self.session_deadline = time.time() + lifetime if lifetime else None
        # Our own new pod changes what is free: the next reader must see it.
        self._cluster_cache.pop(self.k8s_api_host, None)

    # -- free capacity ----------------------------------------------------------------

    async def _read_list(self, call, **kwargs) -> list[dict[str, Any]]:
        response = await call(_preload_content=False, **kwargs)
        if not 200 <= response.status <= 299:
            # Unread content is not checked by the client: a 403 must not pass as a list.
            raise ApiException(status=response.status, reason=response.reason)
        return json.loads(await response.read())["items"]

    async def cluster_state(self) -> tuple[list[dict], list[dict]]:
        """Nodes and live pods of the whole cluster, cached ``capacity_cache_seconds``."""
        key = self.k8s_api_host
        cached = self._cluster_cache.get(key)
        if cached and time.monotonic() - cached[0] < self.capacity_cache_seconds:
            return cached[1], cached[2]
        nodes = await self._read_list(self.api.list_node)
        pods = await self._read_list(self.api.list_pod_for_all_namespaces, field_selector=LIVE_PODS)
        self._cluster_cache[key] = (time.monotonic(), nodes, pods)
        return nodes, pods

    async def capacity(self, running: dict[str, int], flavors: list[FlavorSpec]):
        if not self.read_cluster_capacity:
            self.capacity_note = CAPACITY_OFF
            return {}
        try:
            nodes, pods = await self.cluster_state()
        except Exception as error:
            # Without the numbers the scheduler still decides; do not block every start.
            self.log.warning("Cannot read nodes and pods for the free capacity: %s", error)
            forbidden = getattr(error, "status", None) == 403
            self.capacity_note = CAPACITY_FORBIDDEN if forbidden else CAPACITY_UNREADABLE
            return {}
        self.capacity_note = ""
        return free_capacity(nodes, pods, [flavor_demand(f, self.site) for f in flavors])

    # -- lifetime ---------------------------------------------------------------------

    async def poll(self):
        status = await super().poll()
        if status is None and self.session_deadline and time.time() > self.session_deadline:
            self.log.info("%s reached its flavor's lifetime limit; stopping it.", self._log_name)
            await self.stop(now=True)
            return 0
        return status

    def get_state(self):
        state = super().get_state()
        if self.session_deadline:
            state["session_deadline"] = self.session_deadline
        return state

    def load_state(self, state):
        super().load_state(state)
        self.session_deadline = state.get("session_deadline")

    def clear_state(self):
        super().clear_state()
        self.session_deadline = None
