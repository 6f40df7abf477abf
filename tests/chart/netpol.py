"""Who may reach whom, computed from rendered NetworkPolicies (networking.k8s.io/v1).

A small, static evaluator of the NetworkPolicy semantics, enough for the chart's policies:
a pod selected by no policy of a type is open in that direction; a pod selected by any
policy of a type accepts exactly the union of those policies' rules. A rule matches when
one of its ports matches (no ports: every port) and one of its peers matches (no peers:
everyone). Peers: ``podSelector`` (the policy's namespace), ``namespaceSelector`` (with an
optional ``podSelector``), and ``ipBlock`` (``cidr`` minus ``except``). ``ipBlock`` is
applied to pod addresses too (as Calico and Cilium do for pod IPs outside the cluster's
own handling): it is the stricter reading for a chart that promises what sessions cannot
reach. Selectors: ``matchLabels`` and ``matchExpressions`` (In, NotIn, Exists,
DoesNotExist). Named ports are not used by the chart and are not resolved.

What it does not model: Services (a Service is reached at its pods' ports after
translation, so a policy is about the target pod and port), host-network pods, node-local
traffic the CNI always allows (kubelet probes), and CNI-specific extensions.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str


@dataclass(frozen=True)
class Address:
    """An address outside the cluster's pods (a database, slurmrestd, the internet)."""

    name: str
    ip: str


Endpoint = Pod | Address


@dataclass
class Cluster:
    policies: list[dict[str, Any]]
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)

    def namespace_labels(self, name: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": name} | self.namespaces.get(name, {})

    def allowed(self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"):
        """Whether ``source`` may open ``port`` on ``target`` under the policies."""
        if isinstance(source, Pod) and not self._direction(
            source, "Egress", "egress", "to", target, port, protocol
        ):
            return False
        return not isinstance(target, Pod) or self._direction(
            target, "Ingress", "ingress", "from", source, port, protocol
        )

    def _direction(self, pod, kind, rules_key, peers_key, other, port, protocol) -> bool:
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and kind in policy_types(p)
            and selector_matches(p["spec"].get("podSelector") or {}, pod.labels)
        ]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(rules_key) or []:
                if port_matches(rule.get("ports"), port, protocol) and any_peer_matches(
                    self, policy, rule.get(peers_key), other
                ):
                    return True
        return False


def policy_types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return spec["policyTypes"]
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        low = int(entry["port"])
        high = int(entry.get("endPort", low))
        if low <= port <= high:
            return True
    return False


def in_block(ip: str, block: dict[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])


def any_peer_matches(cluster: Cluster, policy, peers: list[dict[str, Any]] | None, other) -> bool:
    if not peers:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            if in_block(other.ip, peer["ipBlock"]):
                return True
            continue
        if not isinstance(other, Pod):
            continue
        if "namespaceSelector" in peer:
            labels = cluster.namespace_labels(other.namespace)
            if not selector_matches(peer["namespaceSelector"], labels):
                continue
        elif other.namespace != policy["metadata"]["namespace"]:
            continue
        if selector_matches(peer.get("podSelector") or {}, other.labels):
            return True
    return False
