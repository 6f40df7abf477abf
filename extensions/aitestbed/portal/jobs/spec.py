"""Validation of a job request into a :class:`JobSpec` (pure: no files, no network).

Every refusal is a :class:`JobSpecError` naming the field and the reason, which the API
returns as a 422. Names that reach Slurm (job name, partition, environment variable names)
must match strict patterns; arguments and paths are data (quoted in the generated script,
never interpreted by a shell) but may not hold control characters, and every path must stay
under the allowed roots after ``..`` and symlinks are resolved.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aitestbed.settings import Jobs

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROJECT_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DATASET_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$")
MAX_DATASETS = 32
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is allowed in values, newline is not
RESERVED_ENV_PREFIXES = ("SLURM_", "AITESTBED_", "LD_", "BASH_FUNC_")
MAX_ARGS = 256
MAX_ARG_LENGTH = 4096
MAX_ENV = 128
MAX_SCRIPT_TEXT = 256 * 1024
MAX_PATH = 1024
MAX_PARAMETER_DEPTH = 32  # lists and mappings inside one notebook parameter

Kind = Literal["command", "script", "notebook"]


class JobSpecError(ValueError):
    """A request field is invalid; ``field`` names it and the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class JobSpec:
    """A validated job: every value is within the site's limits and safe to pass on."""

    name: str
    project: str
    kind: Kind
    working_dir: str
    partition: str
    gpu_type: str | None
    nodes: int
    gpus_per_node: int
    cpus_per_task: int
    memory_mb: int
    time_limit_minutes: int
    command: tuple[str, ...] = ()  # kind command: argv; kind script: the script's args
    script: str | None = None  # kind script: a file
    script_text: str | None = None  # kind script: inline text (the %%job magic)
    notebook: str | None = None
    notebook_output: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    distributed: Literal["none", "torchrun"] = "none"
    datasets: tuple[str, ...] = ()  # slugs; the gateway decides whether the user may use them

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def _text(name: str, value: Any, *, max_length: int = MAX_ARG_LENGTH) -> str:
    if not isinstance(value, str):
        raise JobSpecError(name, "must be a string.")
    if len(value) > max_length:
        raise JobSpecError(name, f"is longer than {max_length} characters.")
    if CONTROL.search(value):
        raise JobSpecError(name, "contains a control character (newline, NUL, ...).")
    return value


def _integer(name: str, value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobSpecError(name, "must be a whole number.")
    if value < low or value > high:
        raise JobSpecError(name, f"must be between {low} and {high} ({what}); got {value}.")
    return value


def _confine(
    name: str,
    raw: Any,
    base: str,
    roots: list[str],
    resolve: Callable[[str], str],
) -> str:
    path = _text(name, raw, max_length=MAX_PATH)
    if not path:
        raise JobSpecError(name, "must not be empty.")
    joined = posixpath.normpath(posixpath.join(base, path))
    resolved = posixpath.normpath(resolve(joined))
    for root in roots:
        root = posixpath.normpath(root)
        if resolved == root or resolved.startswith(root.rstrip("/") + "/"):
            return resolved
    raise JobSpecError(
        name,
        f"{path!r} is outside the folders jobs may use ({', '.join(roots)}); "
        "use your home or your project folder.",
    )


def allowed_roots(jobs: Jobs, unix_user: str, project: str) -> list[str]:
    home = jobs.home_template.format(user=unix_user)
    project_dir = jobs.project_dir_template.format(project=project)
    return [
        root.format(home=home, project_dir=project_dir, user=unix_user, project=project)
        for root in jobs.working_dir_roots
    ]


def _parameters(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JobSpecError("parameters", "must be a mapping of names to values.")
    if len(value) > MAX_ENV:
        raise JobSpecError("parameters", f"at most {MAX_ENV} parameters.")
    for key, item in value.items():
        if not isinstance(key, str) or not PARAM_NAME.match(key):
            raise JobSpecError(f"parameters.{key}", "is not a valid Python identifier.")
        if not isinstance(item, str | int | float | bool | list | dict | type(None)):
            raise JobSpecError(f"parameters.{key}", "must be a JSON value.")
        if isinstance(item, str):
            _text(f"parameters.{key}", item)
        _plain_json(f"parameters.{key}", item)
    return dict(value)


def json_depth(value: Any, limit: int = MAX_PARAMETER_DEPTH) -> int:
    """How many levels of lists and mappings ``value`` nests, counted level by level and
    stopping past ``limit``: a hostile value costs bounded work and never recurses."""
    depth, level = 0, [value]
    while depth <= limit:
        level = [
            child
            for item in level
            if isinstance(item, Mapping | list | tuple)
            for child in (item.values() if isinstance(item, Mapping) else item)
        ]
        if not level:
            break
        depth += 1
    return depth


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return True


def _plain_json(name: str, value: Any) -> None:
    """Refuse nesting deeper than ``MAX_PARAMETER_DEPTH`` and what JSON cannot carry."""
    if json_depth(value) > MAX_PARAMETER_DEPTH:
        raise JobSpecError(
            name, f"nests deeper than {MAX_PARAMETER_DEPTH} levels of lists and mappings."
        )
    if not _finite(value):  # recursion bounded by the depth just checked
        raise JobSpecError(name, "must hold finite numbers only (not NaN or infinity).")


def _environment(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JobSpecError("environment", "must be a mapping of names to strings.")
    if len(value) > MAX_ENV:
        raise JobSpecError("environment", f"at most {MAX_ENV} variables.")
    env = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise JobSpecError(
                f"environment.{key}", "a variable name is letters, digits and '_' only."
            )
        if key.startswith(RESERVED_ENV_PREFIXES):
            raise JobSpecError(
                f"environment.{key}", "names starting with SLURM_, AITESTBED_ or LD_ are reserved."
            )
        env[key] = _text(f"environment.{key}", item)
    return env


def _datasets(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise JobSpecError("datasets", "must be a list of dataset slugs.")
    if len(value) > MAX_DATASETS:
        raise JobSpecError("datasets", f"at most {MAX_DATASETS} datasets per job.")
    slugs: list[str] = []
    for index, slug in enumerate(value):
        if not isinstance(slug, str) or not DATASET_SLUG.match(slug):
            shown = repr(slug[:40]) if isinstance(slug, str) else type(slug).__name__
            raise JobSpecError(
                f"datasets[{index}]",
                f"{shown} is not a dataset slug (lower-case letters, digits and '-', at most "
                "60 characters); see aitestbed.datasets.list().",
            )
        if slug in slugs:
            raise JobSpecError(f"datasets[{index}]", f"{slug!r} is listed twice.")
        slugs.append(slug)
    return tuple(slugs)


def validate(
    request: Mapping[str, Any],
    *,
    jobs: Jobs,
    unix_user: str,
    images: Mapping[str, bool] | None = None,
    resolve: Callable[[str], str] = posixpath.normpath,
) -> JobSpec:
    """Check ``request`` (the API's submit body) against the site's ``jobs`` settings.

    ``images`` maps image slugs to whether they are GPU-capable; ``resolve`` resolves
    symlinks (``os.path.realpath`` where the cluster's filesystem is visible).
    """
    name = request.get("name") or "job"
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise JobSpecError(
            "name", "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    project = request.get("project")
    if not isinstance(project, str) or not re.match(
        r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", project
    ):
        raise JobSpecError("project", "name the project to charge (its slug).")

    partition_name = request.get("partition")
    if partition_name is not None and not isinstance(partition_name, str):
        raise JobSpecError("partition", "must be a string.")
    partition = jobs.partition(partition_name)
    if partition is None:
        known = ", ".join(p.name for p in jobs.partitions)
        raise JobSpecError("partition", f"unknown partition {partition_name!r}; choose {known}.")

    nodes = _integer("nodes", request.get("nodes", 1), 1, partition.max_nodes, "nodes")
    gpus = _integer(
        "gpus_per_node",
        request.get("gpus_per_node", 0),
        0,
        partition.gpus_per_node,
        f"GPUs per node in partition {partition.name}",
    )
    cpus = _integer(
        "cpus_per_task",
        request.get("cpus_per_task", 1),
        1,
        partition.cpus_per_node,
        f"CPUs per node in partition {partition.name}",
    )
    memory = _integer(
        "memory_mb",
        request.get("memory_mb", min(1024, partition.memory_per_node_mb)),
        1,
        partition.memory_per_node_mb,
        f"MB per node in partition {partition.name}",
    )
    minutes = _integer(
        "time_limit_minutes",
        request.get("time_limit_minutes", 60),
        1,
        partition.max_time_minutes,
        f"minutes in partition {partition.name}",
    )

    roots = allowed_roots(jobs, unix_user, project)
    home = jobs.home_template.format(user=unix_user)
    working_dir = _confine("working_dir", request.get("working_dir") or home, home, roots, resolve)

    kind = request.get("kind", "command")
    if kind not in ("command", "script", "notebook"):
        raise JobSpecError("kind", "must be command, script or notebook.")
    raw_args = request.get("command" if kind == "command" else "args") or []
    if not isinstance(raw_args, list | tuple):
        raise JobSpecError("command" if kind == "command" else "args", "must be a list.")
    if len(raw_args) > MAX_ARGS:
        raise JobSpecError("args", f"at most {MAX_ARGS} arguments.")
    args = tuple(_text(f"args[{i}]", a) for i, a in enumerate(raw_args))
    values: dict[str, Any] = {}
    if kind == "command":
        if not args or not args[0]:
            raise JobSpecError("command", "give the program and its arguments as a list.")
        if not re.match(r"^[A-Za-z0-9_./+-]+$", args[0]):
            raise JobSpecError(
                "command", f"{args[0]!r} is not a program name (letters, digits, '_./+-' only)."
            )
    elif kind == "script":
        if request.get("script_text") is not None:
            text = request["script_text"]
            if not isinstance(text, str) or not text.strip():
                raise JobSpecError("script_text", "must be the script's text.")
            if len(text) > MAX_SCRIPT_TEXT or "\x00" in text:
                raise JobSpecError("script_text", "is too long or holds a NUL character.")
            values["script_text"] = text
        else:
            values["script"] = _confine(
                "script", request.get("script"), working_dir, roots, resolve
            )
    else:
        notebook = _confine("notebook", request.get("notebook"), working_dir, roots, resolve)
        if not notebook.endswith(".ipynb"):
            raise JobSpecError("notebook", "must be a .ipynb file.")
        values["notebook"] = notebook
        values["notebook_output"] = notebook.removesuffix(".ipynb") + ".output.ipynb"
        values["parameters"] = _parameters(request.get("parameters"))

    image = request.get("image")
    if image is not None:
        catalog = images or {}
        if image not in catalog:
            raise JobSpecError("image", f"unknown image {image!r}.")
    distributed = request.get("distributed", "none") or "none"
    if distributed not in ("none", "torchrun"):
        raise JobSpecError("distributed", "must be none or torchrun.")
    if distributed == "torchrun" and kind == "notebook":
        raise JobSpecError("distributed", "torchrun runs a script or command, not a notebook.")

    return JobSpec(
        name=name,
        project=project,
        kind=kind,
        working_dir=working_dir,
        partition=partition.name,
        gpu_type=partition.gpu_type,
        nodes=nodes,
        gpus_per_node=gpus,
        cpus_per_task=cpus,
        memory_mb=memory,
        time_limit_minutes=minutes,
        command=args,
        environment=_environment(request.get("environment")),
        image=image,
        distributed=distributed,
        datasets=_datasets(request.get("datasets")),
        **values,
    )
