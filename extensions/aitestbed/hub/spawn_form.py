"""The spawn page's form, rendered on the server from the policy's options.

Each project has its own block of image and flavor choices (``image-<project>``,
``flavor-<project>``); only the chosen project's block is enabled, so only its choices are
submitted. :func:`form_choice` turns the submitted form into ``project/flavor/image``.

JupyterHub puts this inside its own spawn page (Bootstrap 5), so it uses the hub's look.
Everything that comes from the settings or the database is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.options import ProjectOptions

STYLE = """
<style>
.aitb-cards{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}
.aitb-card{border:1px solid #ccc;border-radius:.4rem;padding:.5rem .75rem;min-width:14rem;
  max-width:22rem;cursor:pointer}
.aitb-card input{margin-right:.4rem}
.aitb-card.disabled{opacity:.55;cursor:not-allowed}
.aitb-muted{color:#666;font-size:.9em}
.aitb-project{display:none}
.aitb-project.shown{display:block}
/* The hub's orange Start button has white text at 2.9:1; a darker orange reaches 5.5:1. */
#spawn_form .btn-jupyter{--bs-btn-bg:#b14a0e;--bs-btn-border-color:#9a400c;
  --bs-btn-hover-bg:#9a400c;--bs-btn-hover-border-color:#853709;--bs-btn-active-bg:#853709}
</style>
"""

SCRIPT = """
<script>
(function(){
  var select = document.getElementById('aitb-project');
  function show(){
    document.querySelectorAll('.aitb-project').forEach(function(el){
      var on = el.dataset.project === select.value;
      el.classList.toggle('shown', on);
      el.querySelectorAll('input').forEach(function(i){ i.disabled = !on || i.dataset.off; });
    });
  }
  select.addEventListener('change', show); show();
})();
</script>
"""


@dataclass(frozen=True)
class ProjectDatasets:
    """The datasets a session of one project mounts, and the refused ones with the reason."""

    mounted: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()


def datasets_block(datasets: ProjectDatasets | None) -> str:
    """What the session will see under /datasets (read-only), and what it will not, why."""
    if datasets is None:
        return ""
    if datasets.mounted:
        names = ", ".join(f"<code>{escape(slug)}</code>" for slug in datasets.mounted)
        text = f"Datasets in this session (read-only): {names}."
    else:
        text = "No datasets are mounted in this project's sessions."
    parts = [f"<p class='aitb-muted aitb-datasets'>{text}"]
    for slug, reason in datasets.refused:
        parts.append(f"<br><code>{escape(slug)}</code> is not mounted: {escape(reason)}")
    parts.append("</p>")
    return "".join(parts)


def flavor_summary(flavor: FlavorSpec) -> str:
    if flavor.mig_profile:
        gpu = f"MIG slice {flavor.mig_profile}"
    elif flavor.gpus:
        gpu = f"{flavor.gpus} GPU{'s' if flavor.gpus > 1 else ''}"
    else:
        gpu = "no GPU"
    if flavor.gpu_product and flavor.uses_gpu:
        gpu += f" ({flavor.gpu_product})"
    text = f"{flavor.cpu:g} CPU, {flavor.memory} memory, {gpu}"
    if flavor.max_lifetime_hours:
        text += f", stops after {flavor.max_lifetime_hours:g} h"
    return text


def image_summary(image: ImageSpec) -> str:
    cuda = f"CUDA {image.cuda}" if image.cuda else "no CUDA"
    frameworks = ", ".join(image.frameworks) or "Python"
    return f"{frameworks}; {cuda}"


def _capacity_text(capacity: tuple[float, float] | None) -> str:
    if capacity is None:
        return ""
    free, total = capacity
    return f" &middot; {free:g} of {total:g} free now"


def _project_block(
    options: ProjectOptions,
    capacity: Mapping[str, tuple[float, float] | None],
    selected: Mapping[str, str],
    datasets: ProjectDatasets | None = None,
) -> str:
    project = options.project
    quota = (
        f"{project.gpu_hours_left:g} of {project.gpu_hours_budget:g} GPU-hours left; "
        f"{project.gpus_free:g} of {project.max_concurrent_gpus} GPUs free"
    )
    parts = [
        f"<div class='aitb-project' data-project='{escape(project.slug)}'>",
        f"<p class='aitb-muted'>Quota of {escape(project.title)}: {escape(quota)}.</p>",
    ]
    if not options.active:
        parts.append(f"<div class='alert alert-warning'>{escape(options.reason)}</div></div>")
        return "".join(parts)
    parts.append("<h4>Environment</h4><div class='aitb-cards'>")
    first = True
    for image in options.images:
        checked = image.slug == selected.get("image") or (first and "image" not in selected)
        first = False
        parts.append(
            "<label class='aitb-card'>"
            f"<input type='radio' name='image-{escape(project.slug)}'"
            f" value='{escape(image.slug)}'"
            f"{' checked' if checked else ''}>"
            f"<b>{escape(image.display_name)}</b><br>"
            f"<span class='aitb-muted'>{escape(image.description)}</span><br>"
            f"<span class='aitb-muted'>{escape(image_summary(image))}</span></label>"
        )
    parts.append("</div><h4>Hardware</h4><div class='aitb-cards'>")
    checked_one = False
    for option in options.flavors:
        flavor = option.flavor
        cap = capacity.get(flavor.slug)
        full = cap is not None and cap[0] <= 0
        available = option.available and not full
        reason = option.reason or ("No free capacity for this flavor right now." if full else "")
        want = selected.get("flavor") == flavor.slug or ("flavor" not in selected)
        checked = available and want and not checked_one
        checked_one = checked_one or checked
        parts.append(
            f"<label class='aitb-card{'' if available else ' disabled'}'"
            f" title='{escape(reason)}'>"
            f"<input type='radio' name='flavor-{escape(project.slug)}'"
            f" value='{escape(flavor.slug)}'"
            f"{' checked' if checked else ''}{'' if available else ' data-off=1 disabled'}>"
            f"<b>{escape(flavor.display_name)}</b><br>"
            f"<span class='aitb-muted'>{escape(flavor_summary(flavor))}"
            f"{_capacity_text(cap)}</span>"
            + (f"<br><span class='text-danger'>{escape(reason)}</span>" if reason else "")
            + "</label>"
        )
    parts.append("</div>")
    parts.append(datasets_block(datasets))
    parts.append("</div>")
    return "".join(parts)


# Where a user without an active project asks for one (the portal's access page).
ACCESS_PAGE = "services/portal/access"

# The hub's spawn page always shows its Start button; with nothing to start it would only
# reload the page, so the form hides it.
HIDE_START = "<style>#spawn_form .feedback-container{display:none}</style>"


def no_project_form(access_url: str) -> str:
    """What a user without a project sees instead of choices: where to ask, no Start."""
    return (
        f"{HIDE_START}<div class='alert alert-info' id='aitb-no-project'>You do not belong to "
        "any project yet, so there is nothing to start. "
        f"<a href='{escape(access_url)}' class='alert-link'>Ask for access</a> on the "
        "portal's access page; an operator decides, and you can start a server once you "
        "are in a project.</div>"
    )


def render_spawn_form(
    projects: Sequence[ProjectOptions],
    capacity: Mapping[str, tuple[float, float] | None],
    selected: Mapping[str, str] | None = None,
    datasets: Mapping[str, ProjectDatasets] | None = None,
    access_url: str = "/" + ACCESS_PAGE,
    capacity_note: str = "",
) -> str:
    """The form's HTML; ``capacity`` maps flavor slug to (free, total) or None if unknown;
    ``datasets`` maps a project slug to what its sessions mount; ``access_url`` is the
    portal's access page, where a user without a project asks for one; ``capacity_note``
    says why the free capacity is not shown, when it is not."""
    selected = selected or {}
    if not projects:
        return no_project_form(access_url)
    chosen = selected.get("project") or projects[0].project.slug
    parts = [
        STYLE,
        "<div class='mb-3'><label for='aitb-project' class='form-label'>"
        "<h4>Project</h4></label>"
        "<select id='aitb-project' name='project' class='form-select'>",
    ]
    for options in projects:
        slug = options.project.slug
        label = f"{options.project.title} ({slug})"
        if not options.active:
            label += " - not available"
        parts.append(
            f"<option value='{escape(slug)}'{' selected' if slug == chosen else ''}>"
            f"{escape(label)}</option>"
        )
    parts.append("</select></div>")
    if capacity_note:
        parts.append(f"<p class='aitb-muted aitb-capacity-note'>{escape(capacity_note)}</p>")
    datasets = datasets or {}
    parts += [_project_block(o, capacity, selected, datasets.get(o.project.slug)) for o in projects]
    parts.append(SCRIPT)
    return "".join(parts)


def form_choice(formdata: Mapping[str, list[str]]) -> dict[str, str | list[str]]:
    """The submitted form as the ``project``/``flavor``/``image`` options of a start: one
    text each (a field sent more than once stays a list, which the start refuses)."""

    def one(values: list[str]) -> str | list[str]:
        return values[0] if len(values) == 1 else list(values)

    choice: dict[str, str | list[str]] = {}
    project = formdata.get("project")
    if project:
        choice["project"] = one(project)
        for key in ("flavor", "image"):
            value = formdata.get(f"{key}-{project[0]}")
            if value:
                choice[key] = one(value)
    return choice
