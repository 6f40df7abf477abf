"""Copy the site settings schema into the chart's values.schema.json ($defs.siteSettings).

The chart validates .Values.settings with the same JSON Schema the hub uses, so a settings
mistake fails `helm install` instead of the hub's start. Run after changing
extensions/aitestbed/settings/schema.json; tests/chart/test_schema.py checks they agree.
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE_SCHEMA = ROOT / "extensions" / "aitestbed" / "settings" / "schema.json"
VALUES_SCHEMA = ROOT / "helm" / "aitestbed" / "values.schema.json"


def embedded_site_schema() -> dict:
    """The site schema as an embedded resource: its own $id keeps its "#/$defs/..." refs local."""
    schema = json.loads(SITE_SCHEMA.read_text())
    schema.pop("$schema", None)
    return schema


def main() -> None:
    values_schema = json.loads(VALUES_SCHEMA.read_text())
    values_schema["$defs"]["siteSettings"] = embedded_site_schema()
    VALUES_SCHEMA.write_text(json.dumps(values_schema, indent=2) + "\n")


if __name__ == "__main__":
    main()
