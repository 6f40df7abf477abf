"""Render the settings schema as the Markdown reference in docs/settings.md.

``python -m aitestbed.settings.reference > docs/settings.md``; a test keeps the two in step.
"""

from __future__ import annotations

import json
from typing import Any

from aitestbed.settings import schema

INTRO = """# Site settings reference

The site settings are one YAML file (`hub_config/settings.yaml`, or the file named by
`$AITESTBED_SETTINGS`). The hub validates it at start against the JSON Schema in
`extensions/aitestbed/settings/schema.json`; this page is generated from that schema
(`python -m aitestbed.settings.reference > docs/settings.md`).

Dates are written `YYYY-MM-DD`. Quantities are Kubernetes quantities (`512Mi`, `4Gi`).
Slugs are lower-case letters, digits and dashes.
"""


def _type(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return name if name in ("flavor", "image", "project") else _type(defs[name], defs)
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and "items" in spec:
        return f"list of {_type(spec['items'], defs)}"
    return kind


def _rows(properties: dict[str, Any], required: list[str], prefix: str, defs) -> list[str]:
    rows = []
    for name, spec in properties.items():
        target = defs[spec["$ref"].rsplit("/", 1)[-1]] if "$ref" in spec else spec
        description = spec.get("description") or target.get("description", "")
        default = spec.get("default", target.get("default"))
        notes = []
        if name in required:
            notes.append("required")
        if default is not None:
            notes.append(f"default `{json.dumps(default)}`")
        text = description + (f" ({', '.join(notes)})" if notes else "")
        rows.append(f"| `{prefix}{name}` | {_type(spec, defs)} | {text} |")
        if target.get("type") == "object" and "properties" in target:
            rows += _rows(
                target["properties"], target.get("required", []), f"{prefix}{name}.", defs
            )
        items = target.get("items", {})
        if "$ref" in items:
            items = defs[items["$ref"].rsplit("/", 1)[-1]]
        if target.get("type") == "array" and items.get("type") == "object":
            rows += _rows(
                items["properties"], items.get("required", []), f"{prefix}{name}[].", defs
            )
    return rows


def render() -> str:
    doc = schema()
    defs = doc["$defs"]
    parts = [INTRO]
    header = ["| key | type | meaning |", "| --- | --- | --- |"]
    for section, spec in doc["properties"].items():
        parts.append(f"## `{section}`\n")
        if spec.get("description"):
            parts.append(spec["description"] + "\n")
        if spec.get("type") == "object" and "properties" in spec:
            rows = _rows(spec["properties"], spec.get("required", []), f"{section}.", defs)
            parts.append("\n".join(header + rows) + "\n")
        elif spec.get("type") == "array" and "$ref" in spec.get("items", {}):
            item = defs[spec["items"]["$ref"].rsplit("/", 1)[-1]]
            rows = _rows(item["properties"], item.get("required", []), f"{section}[].", defs)
            parts.append("Each entry:\n\n" + "\n".join(header + rows) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
