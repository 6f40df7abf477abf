"""values.schema.json: covers every value with a description and refuses invalid values."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .conftest import CHART, ROOT, template

pytestmark = pytest.mark.chart

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def walk(schema: dict[str, Any], path: str):
    """(path, subschema) of every property the chart itself defines."""
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        yield here, sub
        if key != "settings":
            yield from walk(sub, here)


def test_every_chart_value_has_a_description():
    missing = [path for path, sub in walk(SCHEMA, "") if not sub.get("description")]
    assert missing == []


def test_every_default_value_is_in_the_schema():
    def keys(values: dict[str, Any], schema: dict[str, Any], path: str):
        for key, value in values.items():
            sub = schema.get("properties", {}).get(key)
            if sub is None and "$ref" in schema:
                continue
            assert sub is not None, f"{path}{key} has no schema"
            if isinstance(value, dict) and key != "settings" and "properties" in sub:
                keys(value, sub, f"{path}{key}.")

    keys(yaml.safe_load((CHART / "values.yaml").read_text()), SCHEMA, "")


def test_settings_are_validated_by_the_site_settings_schema_itself():
    site = json.loads((ROOT / "extensions/aitestbed/settings/schema.json").read_text())
    site.pop("$schema")
    assert SCHEMA["$defs"]["siteSettings"] == site, "run: python scripts/sync-chart-schema.py"


INVALID = {
    "unknown top-level key": ({"hubb": {}}, "additional properties 'hubb'"),
    "latest tag": ({"hub": {"image": {"tag": "latest"}}}, "/hub/image/tag"),
    "root user": ({"podSecurity": {"runAsUser": 0}}, "/podSecurity/runAsUser"),
    "missing limits": (
        {"hub": {"resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": None}}},
        "/hub/resources",
    ),
    "bad CIDR": (
        {"singleuser": {"networkPolicy": {"egressCIDRs": ["10.0.0.0/33"]}}},
        "egressCIDRs",
    ),
    "ingress without hosts": ({"ingress": {"enabled": True}}, "/ingress/hosts"),
    "slurm without slurmrestd": ({"slurm": {"enabled": True}}, "/slurm/restdCIDRs"),
    "external database without host": (
        {"externalDatabase": {"enabled": True}},
        "/externalDatabase/host",
    ),
    "bad service type": ({"proxy": {"service": {"type": "ExternalName"}}}, "/proxy/service/type"),
    "unknown settings key": ({"settings": {"site": {"nmae": "x"}}}, "/settings/site"),
    "settings flavor memory": (
        {"settings": {"flavors": [{"slug": "x", "display_name": "X", "cpu": 1, "memory": "lots"}]}},
        "/settings/flavors/0/memory",
    ),
    "settings image slug": (
        {"settings": {"images": [{"slug": "Not_A_Slug", "display_name": "X", "image": "x:1"}]}},
        "/settings/images/0/slug",
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_values_are_refused_with_a_message_naming_the_value(helm, tmp_path, case):
    values, where = INVALID[case]
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    done = template(helm, values_file)
    assert done.returncode != 0, f"{case} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr
    assert where in done.stderr, done.stderr


def test_the_metadata_address_cannot_be_opened(helm, tmp_path):
    values_file = tmp_path / "values.yaml"
    values_file.write_text(
        yaml.safe_dump({"singleuser": {"networkPolicy": {"egressCIDRs": ["169.254.169.254/32"]}}})
    )
    done = template(helm, values_file)
    assert done.returncode != 0
    assert "cloud metadata endpoint" in done.stderr
