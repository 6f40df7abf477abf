"""checkov finds nothing in the rendered chart but the skips in helm/aitestbed/.checkov.yaml."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from .conftest import CHART, ROOT

pytestmark = pytest.mark.chart

CONFIG = CHART / ".checkov.yaml"


def configured_skips() -> list[str]:
    return yaml.safe_load(CONFIG.read_text())["skip-check"]


@pytest.fixture(scope="session")
def checkov_report(checkov, renders, tmp_path_factory):
    """One checkov run over every matrix render (checkov is slow: run it once per session)."""
    directory = tmp_path_factory.mktemp("checkov")
    for name, render in renders.items():
        (directory / f"{name}.yaml").write_text(render.text)
    done = subprocess.run(
        [
            checkov,
            "--config-file",
            str(CONFIG),
            "--directory",
            str(directory),
            "--output",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_reports_no_failed_check(checkov_report):
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 1000


def test_every_skip_is_still_needed(checkov, renders, tmp_path):
    """Without the config, checkov fails exactly the skipped checks on the default render."""
    (tmp_path / "defaults.yaml").write_text(renders["defaults"].text)
    done = subprocess.run(
        [
            checkov,
            "--skip-download",
            "--framework",
            "kubernetes",
            "--directory",
            str(tmp_path),
            "--output",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failed == set(configured_skips())


def test_every_skip_has_a_reason_in_the_config_and_is_listed_in_the_deploy_guide():
    text = CONFIG.read_text()
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for check in configured_skips():
        assert re.search(rf"^  # {check} \"", text, re.MULTILINE), f"{check}: no reason given"
        assert f"`{check}`" in deploy, f"{check} is not listed in docs/deploy.md"
    listed = set(re.findall(r"`(CKV2?_K8S_\d+)`", deploy))
    assert listed == set(configured_skips())
