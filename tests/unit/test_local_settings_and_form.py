"""The embedded default's mapping of a session, and the spawn page's form."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from aitestbed.hub.local_settings import link_project_folder, local_environment, project_folder
from aitestbed.hub.spawn_form import render_spawn_form
from aitestbed.policy.options import spawn_options

from tests.unit.test_policy import ACME, CPU, FLAVORS, GPU1, IMAGES, MIG, PY, TODAY, TORCH


def test_cpu_sessions_see_no_gpu(tmp_path):
    env = local_environment(CPU, PY, "acme", tmp_path / "p")
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["AITESTBED_PROJECT"] == "acme" and env["AITESTBED_PROJECT_DIR"] == str(
        tmp_path / "p"
    )
    for flavor in (GPU1, MIG):
        assert "CUDA_VISIBLE_DEVICES" not in local_environment(flavor, TORCH, "acme", tmp_path)


def test_project_folder_link(tmp_path):
    home, folder = tmp_path / "home", project_folder(tmp_path / "projects", "acme")
    link = link_project_folder(home, folder)
    assert link.resolve() == folder.resolve()
    assert link_project_folder(home, folder) == link  # idempotent
    other = project_folder(tmp_path / "projects", "uni")
    assert link_project_folder(home, other).resolve() == other.resolve()  # switched project


def test_a_real_folder_named_project_is_never_replaced(tmp_path):
    home = tmp_path / "home"
    (home / "project").mkdir(parents=True)
    (home / "project" / "work.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="rename it"):
        link_project_folder(home, tmp_path / "projects" / "acme")
    assert (home / "project" / "work.txt").read_text() == "mine"


def _form(projects, capacity=None, selected=None):
    options = spawn_options(projects, list(FLAVORS.values()), list(IMAGES.values()), TODAY)
    return render_spawn_form(options, capacity or {}, selected)


def test_form_shows_projects_images_flavors_and_quota():
    html = _form(
        [ACME, replace(ACME, slug="uni", title="Uni <lab>", allowed_images=("python-cpu",))]
    )
    assert "name='project'" in html and "<option value='acme' selected>" in html
    assert "Uni &lt;lab&gt; (uni)" in html and "<lab>" not in html
    assert "90 of 100 GPU-hours left; 4 of 4 GPUs free" in html
    assert "CUDA 12.4" in html and "no CUDA" in html
    assert "MIG slice 1g.10gb" in html and "1 GPU" in html
    assert "name='flavor-acme' value='cpu-small' checked" in html
    assert "name='flavor-uni' value='cpu-small' checked" in html
    assert "name='image-uni' value='python-cpu' checked" in html
    assert "name='image-uni' value='pytorch'" not in html


def test_form_marks_full_and_refused_flavors_unselectable():
    busy = replace(ACME, gpus_in_use=4)
    html = _form([busy], capacity={"cpu-small": (0, 8)})
    assert "0 of 8 free now" in html
    assert "No free capacity for this flavor right now." in html
    assert "already uses 4 of its 4 GPUs" in html
    assert "name='flavor-acme' value='a100x1' data-off=1 disabled" in html


def test_form_keeps_a_previous_choice_and_explains_inactive_projects():
    expired = replace(ACME, slug="old", title="Old", valid_until=date(2026, 1, 31))
    html = _form(
        [ACME, expired], selected={"project": "acme", "flavor": "a100x1", "image": "pytorch"}
    )
    assert "name='flavor-acme' value='a100x1' checked" in html
    assert "name='image-acme' value='pytorch' checked" in html
    assert "Old (old) - not available" in html and "ended on 2026-01-31" in html


def test_form_without_projects_links_the_access_page_and_hides_start():
    html = render_spawn_form([], {}, access_url="/x/services/portal/access")
    assert "<a href='/x/services/portal/access' class='alert-link'>Ask for access</a>" in html
    # The hub's Start button would only reload the page: the form hides it.
    assert "#spawn_form .feedback-container{display:none}" in html
    assert "href='/services/portal/access'" in render_spawn_form([], {})
    hostile = render_spawn_form([], {}, access_url="/'><script>x</script>")
    assert "<script>x" not in hostile and "&lt;script&gt;x" in hostile


def test_form_choice_reads_only_the_chosen_project_block():
    from aitestbed.hub.spawn_form import form_choice

    submitted = {
        "project": ["uni"],
        "flavor-uni": ["cpu-small"],
        "image-uni": ["python-cpu"],
        "flavor-acme": ["a100x1"],
    }
    assert form_choice(submitted) == {
        "project": "uni",
        "flavor": "cpu-small",
        "image": "python-cpu",
    }
    assert form_choice({}) == {}
    # A field sent twice stays a list: the start refuses it.
    assert form_choice({"project": ["uni", "acme"]}) == {"project": ["uni", "acme"]}


@pytest.mark.parametrize(
    "options",
    [{"project": ["acme-vision"]}, {"project": ["acme-vision", "uni-nlp"]}, {"flavor": []}],
)
def test_lists_are_refused_even_of_one_item(options):
    from aitestbed.hub.policy_spawner import clean_user_options
    from tornado import web

    with pytest.raises(web.HTTPError) as refused:
        clean_user_options(options)
    assert refused.value.status_code == 400
    key = next(iter(options))
    assert refused.value.log_message == f"The session option {key!r} must be a non-empty text."
    assert clean_user_options({"project": " acme-vision "}) == {"project": "acme-vision"}


def test_form_shows_each_projects_datasets_and_why_others_are_not_mounted():
    from aitestbed.hub.spawn_form import ProjectDatasets

    options = spawn_options([ACME], list(FLAVORS.values()), list(IMAGES.values()), TODAY)
    datasets = {
        ACME.slug: ProjectDatasets(
            mounted=("iris", "wine"),
            refused=(("digits", "Accept version 1 of the terms <first>."),),
        )
    }
    html = render_spawn_form(options, {}, None, datasets)
    assert "Datasets in this session (read-only): <code>iris</code>, <code>wine</code>." in html
    assert (
        "<code>digits</code> is not mounted: Accept version 1 of the terms &lt;first&gt;." in html
    )
    empty = render_spawn_form(options, {}, None, {ACME.slug: ProjectDatasets()})
    assert "No datasets are mounted in this project's sessions." in empty
    assert "aitb-datasets" not in render_spawn_form(options, {}, None)  # portal said nothing


def test_form_says_why_the_free_capacity_is_not_shown():
    options = spawn_options([ACME], list(FLAVORS.values()), list(IMAGES.values()), TODAY)
    note = "Free GPU capacity is not shown: the cluster's <nodes> could not be read."
    html = render_spawn_form(options, {}, None, None, capacity_note=note)
    assert (
        "<p class='aitb-muted aitb-capacity-note'>Free GPU capacity is not shown: the "
        "cluster&#x27;s &lt;nodes&gt; could not be read.</p>"
    ) in html
    assert "aitb-capacity-note" not in render_spawn_form(options, {}, None)
