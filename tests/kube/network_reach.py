"""Which NetworkPolicies select a pod, and what they let it reach (for tests).

Kubernetes NetworkPolicies add up: a pod selected by several policies may reach what any
of them allows, and a pod selected by none is not restricted at all. This evaluates the
selectors a chart uses (``matchLabels`` and ``matchExpressions`` with ``In``, ``NotIn``,
``Exists`` and ``DoesNotExist``); it is no network plugin: it does not resolve peers to
addresses, so a test compares the allowed peers themselves.
"""

from __future__ import annotations

from typing import Any


def _expression_holds(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values", [])
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    matches = all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
    return matches and all(
        _expression_holds(e, labels) for e in selector.get("matchExpressions") or []
    )


def policies_for(policies: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in policies if selects(p["spec"]["podSelector"], labels)]


def egress_rules(policies: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every egress rule that applies to a pod with ``labels`` (None: unrestricted)."""
    chosen = [p for p in policies_for(policies, labels) if "Egress" in p["spec"]["policyTypes"]]
    if not chosen:
        return None
    return [rule for policy in chosen for rule in policy["spec"].get("egress", [])]
