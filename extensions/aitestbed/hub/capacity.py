"""How many more sessions of each flavor the cluster can place: pure arithmetic on the
Kubernetes API's nodes and pods (plain JSON dicts), no API calls here.

A GPU flavor needs ``units`` of one extended resource (``nvidia.com/gpu`` or a MIG resource
such as ``nvidia.com/mig-1g.10gb``) on one node that carries the flavor's node selector
labels. For every such node that is ready and schedulable, the free amount is its
allocatable amount minus what the pods bound to it request (pods that ended are not
counted); pods not yet bound to a node are taken from the matching nodes with the most room,
as the scheduler would have to. A node of 8 GPUs with 3 in use has room for one 4-GPU
session, not 1.25.

CPU flavors get ``None`` (not computed): CPU and memory are plentiful compared to GPUs and
the scheduler decides. Taints are not looked at: the flavors' tolerations are written for
the GPU nodes' taints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENDED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class FlavorDemand:
    """What one session of a flavor takes from one node."""

    slug: str
    resource: str | None  # None: a CPU flavor, not counted
    units: int = 1
    node_selector: Mapping[str, str] = field(default_factory=dict)


def _count(value: Any) -> int:
    """Extended resources are whole numbers ("8"); anything else counts as none."""
    try:
        return int(str(value))
    except ValueError:
        return 0


def pod_request(pod: Mapping[str, Any], resource: str) -> int:
    """What a pod asks of ``resource``: requests, else limits (Kubernetes' defaulting)."""
    total = 0
    for container in pod.get("spec", {}).get("containers", []):
        resources = container.get("resources") or {}
        wanted = (resources.get("requests") or {}).get(resource)
        if wanted is None:
            wanted = (resources.get("limits") or {}).get(resource)
        total += _count(wanted or 0)
    return total


def node_usable(node: Mapping[str, Any]) -> bool:
    if node.get("spec", {}).get("unschedulable"):
        return False
    conditions = node.get("status", {}).get("conditions") or []
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"


def _selected(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def free_per_node(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    resource: str,
    selector: Mapping[str, str],
) -> dict[str, tuple[int, int]]:
    """``{node: (free, allocatable)}`` of ``resource`` on the usable nodes ``selector`` picks."""
    table = {
        node["metadata"]["name"]: _count(
            (node.get("status", {}).get("allocatable") or {}).get(resource, 0)
        )
        for node in nodes
        if node_usable(node) and _selected(node, selector)
    }
    free = dict(table)
    pending = []
    for pod in pods:
        if pod.get("status", {}).get("phase") in ENDED_PHASES:
            continue
        wanted = pod_request(pod, resource)
        if not wanted:
            continue
        bound = pod.get("spec", {}).get("nodeName")
        if bound:
            if bound in free:
                free[bound] -= wanted
        elif _selected_by_pod(pod, selector):
            pending.append(wanted)
    for wanted in sorted(pending, reverse=True):
        roomiest = max(free, key=free.__getitem__, default=None)
        if roomiest is not None:
            free[roomiest] -= wanted
    return {name: (max(free[name], 0), table[name]) for name in table}


def _selected_by_pod(pod: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    """An unbound pod competes for these nodes unless its node selector rules them out."""
    own = pod.get("spec", {}).get("nodeSelector") or {}
    return all(selector.get(key, value) == value for key, value in own.items())


def free_capacity(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    flavors: Iterable[FlavorDemand],
) -> dict[str, tuple[int, int] | None]:
    """``{flavor slug: (sessions that fit now, sessions the idle cluster could hold)}``."""
    nodes, pods = list(nodes), list(pods)
    result: dict[str, tuple[int, int] | None] = {}
    for flavor in flavors:
        if flavor.resource is None or flavor.units <= 0:
            result[flavor.slug] = None
            continue
        per_node = free_per_node(nodes, pods, flavor.resource, flavor.node_selector)
        result[flavor.slug] = (
            sum(free // flavor.units for free, _ in per_node.values()),
            sum(total // flavor.units for _, total in per_node.values()),
        )
    return result
