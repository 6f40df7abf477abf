"""The curated images: hadolint-clean Dockerfiles, and images/catalog.yaml as the one source."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import CHART, ROOT

IMAGES = ROOT / "images"
CATALOG = yaml.safe_load((IMAGES / "catalog.yaml").read_text())
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
# The keys of an image in the site settings schema; the catalog adds how it is built.
SETTINGS_KEYS = (
    "slug",
    "display_name",
    "description",
    "image",
    "frameworks",
    "cuda",
    "gpu_capable",
)


def as_settings(entry: dict) -> dict:
    return {key: entry[key] for key in SETTINGS_KEYS if key in entry}


def hadolint() -> str:
    return str(Path(sys.executable).with_name("hadolint"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_is_clean_under_hadolint(dockerfile):
    done = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_really_reports_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    done = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3007" in done.stdout


def parent_image(dockerfile: Path) -> str:
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    return stages[-1]


def installs_the_notebook_package(dockerfile: Path) -> bool:
    return (
        re.search(
            r'pip install[^\n]*(\\\n[^\n]*)*"/tmp/aitestbed\[notebook\]"', dockerfile.read_text()
        )
        is not None
    )


def test_every_catalog_image_has_a_dockerfile_that_installs_the_notebook_package():
    base = CATALOG["base"]
    assert installs_the_notebook_package(ROOT / base["dockerfile"])
    assert "USER ${NB_UID}" in (ROOT / base["dockerfile"]).read_text()  # non-root
    for entry in CATALOG["images"]:
        dockerfile = ROOT / entry["dockerfile"]
        assert dockerfile.is_file(), entry["slug"]
        assert (
            installs_the_notebook_package(dockerfile) or parent_image(dockerfile) == base["image"]
        ), f"{entry['slug']}: neither installs aitestbed[notebook] nor builds FROM the base"
        # Each image proves at build time that the notebook side imports.
        assert "import aitestbed.notebook" in dockerfile.read_text(), entry["slug"]


def test_every_dockerfile_is_in_the_catalog():
    listed = {CATALOG["base"]["dockerfile"], CATALOG["hub"]["dockerfile"]}
    listed |= {entry["dockerfile"] for entry in CATALOG["images"]}
    assert {str(p.relative_to(ROOT)) for p in DOCKERFILES} == listed


def test_catalog_images_are_pinned_and_described():
    slugs = [entry["slug"] for entry in CATALOG["images"]]
    assert len(slugs) == len(set(slugs))
    for entry in CATALOG["images"]:
        assert entry["image"].startswith(CATALOG["registry"] + "/"), entry["slug"]
        assert entry["image"].endswith(":" + CATALOG["version"]), entry["slug"]
        assert entry["description"] and entry["frameworks"], entry["slug"]
        assert (entry["cuda"] is not None) == entry["gpu_capable"], entry["slug"]
    assert any(not e["gpu_capable"] for e in CATALOG["images"]), "no CPU course image"


def test_the_chart_values_carry_exactly_the_catalog():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["settings"]["images"] == [as_settings(e) for e in CATALOG["images"]]
    assert (
        values["hub"]["image"]["repository"] + ":" + values["hub"]["image"]["tag"]
        == (CATALOG["hub"]["image"])
    )


def test_every_image_the_example_settings_name_is_in_the_catalog():
    example = yaml.safe_load((ROOT / "hub_config" / "settings.production.example.yaml").read_text())
    assert example["images"] == [as_settings(e) for e in CATALOG["images"]]


def test_the_pre_puller_pulls_exactly_the_catalog(renders):
    pulled = {
        c["image"]
        for o in renders["defaults"].find("DaemonSet")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert pulled == {entry["image"] for entry in CATALOG["images"]}


def test_the_embedded_default_offers_only_catalog_images():
    """The embedded default runs the local environment (refs unused) but names catalog images."""
    embedded = yaml.safe_load((ROOT / "hub_config" / "settings.yaml").read_text())
    catalog = {entry["slug"]: entry for entry in CATALOG["images"]}
    for image in embedded["images"]:
        assert image["slug"] in catalog, image["slug"]
        assert image["gpu_capable"] == catalog[image["slug"]]["gpu_capable"], image["slug"]


def test_the_build_context_leaves_out_local_environments():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".tools", "node_modules", ".git"} <= set(ignored)


def pinned_install(dockerfile: Path) -> list[str]:
    """The requirements of the Dockerfile's `pip install -c constraints.txt ...` step."""
    text = dockerfile.read_text().replace("\\\n", " ")
    match = re.search(r"pip install --no-cache-dir -c \S+constraints\.txt (.*?)(&&|$)", text, re.M)
    assert match, f"{dockerfile}: no pip install with the project's constraints"
    return [arg.strip('"').replace("/tmp/aitestbed[", ".[") for arg in match.group(1).split()]


@pytest.mark.parametrize("image", ["notebook-base", "hub"])
def test_the_pinned_python_packages_of_an_image_resolve_with_the_project_constraints(image):
    """pip resolves the image's pinned set (from PyPI, nothing installed): a conflict fails here
    instead of in `docker build`."""
    requirements = pinned_install(IMAGES / image / "Dockerfile")
    assert all("==" in r or r.startswith(".[") for r in requirements), requirements
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            "requirements/constraints.txt",
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
