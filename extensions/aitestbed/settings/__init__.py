"""Site settings: the one YAML file an operator edits.

The file is validated against ``schema.json`` (beside this module) and then against the
rules a schema cannot express (references between sections, date order, duplicate slugs).
Any problem stops the start with one :class:`SettingsError` whose message names the file,
the key path and the problem, for example::

    Invalid site settings in /etc/aitestbed/settings.yaml:
      - projects[0].allocation.valid_until: '2027-02-30' is not a valid date (YYYY-MM-DD).

The result is a tree of frozen dataclasses; nothing else in the project reads the YAML.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aitestbed.policy.cluster_accounts import DEFAULT_DENIED_ACCOUNTS, DEFAULT_MIN_UID
from aitestbed.policy.safezone import PSEUDONYMIZED, default_class
from aitestbed.settings.courses import Course, build_course, course_problems, timezone_problem

SETTINGS_ENV = "AITESTBED_SETTINGS"
DATABASE_URL_ENV = "AITESTBED_DATABASE_URL"
MAX_REPORTED_PROBLEMS = 10


class SettingsError(Exception):
    """The settings file is missing, unreadable or invalid; the message says where and why."""


@dataclass(frozen=True)
class Flavor:
    slug: str
    display_name: str
    cpu: float
    memory: str
    description: str = ""
    gpus: int = 0
    gpu_product: str | None = None
    mig_profile: str | None = None
    shm: str | None = None
    max_lifetime_hours: float | None = None
    capacity: int | None = None

    @property
    def uses_gpu(self) -> bool:
        return self.gpus > 0 or self.mig_profile is not None


@dataclass(frozen=True)
class Image:
    slug: str
    display_name: str
    image: str
    description: str = ""
    frameworks: tuple[str, ...] = ()
    cuda: str | None = None
    gpu_capable: bool = False


@dataclass(frozen=True)
class Allocation:
    gpu_hours: float
    max_concurrent_gpus: int
    valid_from: date
    valid_until: date
    storage_quota_gb: int = 0
    slurm_account: str | None = None


@dataclass(frozen=True)
class Member:
    user: str
    role: str = "member"


@dataclass(frozen=True)
class Project:
    slug: str
    title: str
    allocation: Allocation
    description: str = ""
    flavors: tuple[str, ...] | None = None
    images: tuple[str, ...] | None = None
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class DatasetStorage:
    """Where a dataset's files are; which fields are set depends on ``kind``."""

    kind: str  # local | pvc | nfs | host_path
    path: str | None = None  # local: resolved absolute folder; nfs, host_path: as given
    claim: str | None = None
    sub_path: str = ""
    server: str | None = None
    demo_source: str | None = None


@dataclass(frozen=True)
class DatasetTerms:
    version: str
    text: str


@dataclass(frozen=True)
class GrantPurpose:
    """Why a project may use a dataset, and until when (``datasets[].purposes``)."""

    purpose: str
    expires: date


@dataclass(frozen=True)
class Dataset:
    slug: str
    title: str
    storage: DatasetStorage
    description: str = ""
    tags: tuple[str, ...] = ()
    license: str = ""
    version: str = "1"
    visibility: str = "granted"  # public | granted
    projects: tuple[str, ...] = ()
    # open | licensed | pseudonymized (aitestbed.policy.safezone); attribute name avoids
    # the keyword the document uses ("class").
    data_class: str = "licensed"
    purposes: Mapping[str, GrantPurpose] = field(default_factory=dict)
    terms: DatasetTerms | None = None
    cluster_path: str | None = None
    size_bytes: int | None = None
    file_count: int | None = None


@dataclass(frozen=True)
class DemoUser:
    name: str
    password_hash: str


@dataclass(frozen=True)
class OidcMatch:
    """A condition on the provider's answer: membership of ``group``, or ``claim == value``."""

    group: str | None = None
    claim: str | None = None
    value: str | bool | float | None = None


@dataclass(frozen=True)
class HubGroupRule:
    match: OidcMatch
    hub_group: str


@dataclass(frozen=True)
class ProjectRule:
    match: OidcMatch
    project: str
    role: str = "member"


@dataclass(frozen=True)
class OidcMapping:
    """Provider groups and claims -> who may log in, roles, hub groups, project memberships."""

    allowed: tuple[OidcMatch, ...] = ()
    operators: tuple[OidcMatch, ...] = ()
    instructors: tuple[OidcMatch, ...] = ()
    hub_groups: tuple[HubGroupRule, ...] = ()
    projects: tuple[ProjectRule, ...] = ()


DEFAULT_SECRET_ENV = "AITESTBED_OIDC_CLIENT_SECRET"  # noqa: S105 - a variable name
DEFAULT_REFUSED_MESSAGE = (
    "Your account is not allowed to use this portal. Ask your project manager or the data "
    "center support to add you to an allowed group, then log in again."
)


@dataclass(frozen=True)
class Oidc:
    client_id: str
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    end_session_url: str | None = None
    client_secret_file: Path | None = None
    client_secret_env: str = DEFAULT_SECRET_ENV
    callback_url: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    pkce: bool = True
    login_service: str = "single sign-on"
    auto_login: bool = False
    refresh_age_seconds: int = 300
    # Provider outages (docs/sso.md): how long signed-in users keep their sessions.
    provider_outage_grace_seconds: int = 1800
    end_provider_session: bool = True
    validate_server_cert: bool = True
    refused_message: str = DEFAULT_REFUSED_MESSAGE
    mapping: OidcMapping = field(default_factory=OidcMapping)


@dataclass(frozen=True)
class Authentication:
    kind: str = "demo"
    login_hint: str = ""
    demo_users: tuple[DemoUser, ...] = ()
    oidc: Oidc | None = None


@dataclass(frozen=True)
class SimulatedGpus:
    """``site.simulated_gpus``: GPUs the embedded default pretends to have (the demo)."""

    count: int = 0
    product: str = "NVIDIA-A100-SXM4-80GB"
    mig_profile: str | None = None
    mig_gpus: int = 0


@dataclass(frozen=True)
class Site:
    name: str
    state_dir: Path
    mode: str = "embedded"
    bind_url: str = "http://127.0.0.1:8000"
    hub_port: int = 8081
    portal_port: int = 8090
    proxy_api_port: int = 8001
    database_url: str = ""
    hub_database_url: str = ""
    operators: tuple[str, ...] = ()
    # Who reviews exports through the airlock besides the operators (docs/datasets.md).
    data_stewards: tuple[str, ...] = ()
    idle_timeout_seconds: int = 3600
    idle_cull_every_seconds: int = 0
    idle_cull_concurrency: int = 10
    idle_cull_users: bool = False
    session_start_timeout_seconds: int = 120
    timezone: str = "UTC"
    simulated_gpus: SimulatedGpus | None = None
    # Folders the operator API may place local/host_path datasets under (resolved paths);
    # empty: the state folder's datasets folder.
    dataset_roots: tuple[Path, ...] = ()
    # Revocation that takes effect (docs/sso.md): warning, then stop after this grace.
    revocation_grace_seconds: int = 300


@dataclass(frozen=True)
class Kubernetes:
    """The ``kubernetes`` section (used when ``site.mode`` is ``kubernetes``)."""

    namespace: str = "aitestbed"
    api_url: str = ""
    hub_connect_url: str = ""
    session_portal_url: str = ""
    home_storage: str = "10Gi"
    home_storage_class: str | None = None
    project_claim_template: str = "project-{project}"
    image_pull_policy: str = "IfNotPresent"
    node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: tuple[dict[str, str], ...] | None = None
    read_cluster_capacity: bool = True
    cpu_node_selector: dict[str, str] = field(default_factory=dict)
    cpu_tolerations: tuple[dict[str, str], ...] = ()
    cpu_node_affinity_preferred: tuple[dict[str, Any], ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    scheduler_name: str = ""
    extra_environment: dict[str, str] = field(default_factory=dict)
    home_storage_type: str = "dynamic"
    home_static_claim: str = ""
    home_static_sub_path: str = "home/{username}"
    project_volume: bool = True
    extra_volumes: tuple[dict[str, Any], ...] = ()
    extra_volume_mounts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Partition:
    """A partition users may submit batch jobs to, with the most a job may ask of it."""

    name: str
    display_name: str = ""
    default: bool = False
    gpu_type: str | None = None
    gpus_per_node: int = 0
    cpus_per_node: int = 4
    memory_per_node_mb: int = 4096
    max_nodes: int = 1
    max_time_minutes: int = 1440


@dataclass(frozen=True)
class SlurmSettings:
    rest_url: str
    jwt_key_file: Path
    api_version: str = "v0.0.38"
    token_lifetime_seconds: int = 300
    poll_user: str = "slurm"
    job_completion_file: Path | None = None
    accounting: bool = False
    user_check: str = "passwd"
    request_timeout_seconds: float = 15.0


@dataclass(frozen=True)
class Jobs:
    """The ``jobs`` section: backend, partitions, working-directory rules, user mapping."""

    backend: str = "local"
    poll_interval_seconds: float = 5.0
    partitions: tuple[Partition, ...] = (Partition(name="local", default=True),)
    working_dir_roots: tuple[str, ...] = ("{home}", "{project_dir}")
    home_template: str = "/home/{user}"
    project_dir_template: str = "/projects/{project}"
    user_template: str = "{name}"
    user_overrides: dict[str, str] = field(default_factory=dict)
    #: accounts below this UID, or named in ``denied_accounts``, never run portal jobs
    account_min_uid: int = DEFAULT_MIN_UID
    denied_accounts: frozenset[str] = frozenset(DEFAULT_DENIED_ACCOUNTS)
    container_launcher: str = "none"
    image_prefix: str = ""
    datasets_dir: str = "/datasets"
    papermill: tuple[str, ...] = ("python3", "-m", "papermill")
    slurm: SlurmSettings | None = None

    def partition(self, name: str | None) -> Partition | None:
        """The partition called ``name``; with None the default one."""
        if name is None:
            return next((p for p in self.partitions if p.default), self.partitions[0])
        return next((p for p in self.partitions if p.name == name), None)

    def unix_user(self, portal_name: str) -> str:
        """The Unix account on the cluster that runs ``portal_name``'s jobs."""
        return self.user_overrides.get(portal_name) or self.user_template.format(name=portal_name)


# --- notifications of access requests (docs/sso.md) ---------------------------------------


@dataclass(frozen=True)
class Smtp:
    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str = "AITESTBED_SMTP_PASSWORD"  # noqa: S105 - a variable name
    timeout_seconds: int = 20


@dataclass(frozen=True)
class Webhook:
    url: str
    timeout_seconds: int = 10


@dataclass(frozen=True)
class Notifications:
    smtp: Smtp | None = None
    webhook: Webhook | None = None


def _build_notifications(doc: dict[str, Any]) -> Notifications:
    smtp = doc.get("smtp")
    webhook = doc.get("webhook")
    return Notifications(
        smtp=Smtp(**{**smtp, "recipients": tuple(smtp["recipients"])}) if smtp else None,
        webhook=Webhook(**webhook) if webhook else None,
    )


@dataclass(frozen=True)
class Settings:
    path: Path
    site: Site
    authentication: Authentication
    flavors: tuple[Flavor, ...]
    images: tuple[Image, ...]
    projects: tuple[Project, ...] = ()
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    jobs: Jobs = field(default_factory=Jobs)
    datasets: tuple[Dataset, ...] = ()
    courses: tuple[Course, ...] = ()
    notifications: Notifications = field(default_factory=Notifications)

    def flavor(self, slug: str) -> Flavor | None:
        return next((f for f in self.flavors if f.slug == slug), None)

    def image(self, slug: str) -> Image | None:
        return next((i for i in self.images if i.slug == slug), None)


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the settings file (also the source of the reference docs)."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


class _StringDatesLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text, so the schema sees what the operator wrote."""


_StringDatesLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def key_path(parts: Any) -> str:
    """Render a jsonschema path deque as ``projects[0].allocation.gpu_hours``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _schema_problems(document: Any, definition: str | None = None) -> list[tuple[str, str]]:
    root = schema()
    if definition:  # one definition of the schema, e.g. a dataset sent to the operator API
        root = {"$defs": root["$defs"], "$ref": f"#/$defs/{definition}"}
    validator = jsonschema.Draft202012Validator(root)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        message = error.message
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        if error.validator in ("pattern", "enum", "type") and hint:
            message = f"{message} ({hint})"
        problems.append((key_path(error.absolute_path), message))
    return problems


def _parse_date(value: str, where: str, problems: list[tuple[str, str]]) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append((where, f"{value!r} is not a valid date (YYYY-MM-DD)."))
        return None


def _duplicates(items: list[dict[str, Any]], key: str, section: str, problems) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        value = item[key]
        if value in seen:
            problems.append((f"{section}[{index}].{key}", f"{value!r} is defined twice."))
        seen.add(value)


def _project_rules(
    project: dict[str, Any], where: str, flavor_slugs: set[str], image_slugs: set[str]
) -> list[tuple[str, str]]:
    """Rules of one project beyond the schema: its dates, catalog names and members."""
    problems: list[tuple[str, str]] = []
    allocation = project["allocation"]
    start = _parse_date(allocation["valid_from"], f"{where}allocation.valid_from", problems)
    end = _parse_date(allocation["valid_until"], f"{where}allocation.valid_until", problems)
    if start and end and end < start:
        problems.append((f"{where}allocation.valid_until", f"{end} is before valid_from {start}."))
    for section, known in (("flavors", flavor_slugs), ("images", image_slugs)):
        for position, slug in enumerate(project.get(section, [])):
            if slug not in known:
                problems.append(
                    (f"{where}{section}[{position}]", f"no {section[:-1]} {slug!r} is defined.")
                )
    members = [m["user"] for m in project.get("members", [])]
    for position, user in enumerate(members):
        if user in members[:position]:
            problems.append((f"{where}members[{position}].user", f"{user!r} is listed twice."))
    return problems


def project_problems(
    doc: Any, *, flavor_slugs: set[str], image_slugs: set[str]
) -> list[tuple[str, str]]:
    """One project entry checked exactly as in the settings file (the portal's console and
    project API use this); (key path, message) pairs, empty when it is valid."""
    problems = [(w, m[:300]) for w, m in _schema_problems(doc, "project")]
    return problems or _project_rules(doc, "", flavor_slugs, image_slugs)


def _semantic_problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules between sections; runs only on a document that passed the schema."""
    problems: list[tuple[str, str]] = []
    _duplicates(doc["flavors"], "slug", "flavors", problems)
    _duplicates(doc["images"], "slug", "images", problems)
    _duplicates(doc.get("projects", []), "slug", "projects", problems)
    for index, flavor in enumerate(doc["flavors"]):
        if flavor.get("mig_profile") and flavor.get("gpus", 0):
            problems.append(
                (f"flavors[{index}]", "a flavor has either whole GPUs or a MIG slice, not both.")
            )
    flavor_slugs = {f["slug"] for f in doc["flavors"]}
    image_slugs = {i["slug"] for i in doc["images"]}
    for index, project in enumerate(doc.get("projects", [])):
        problems += _project_rules(project, f"projects[{index}].", flavor_slugs, image_slugs)
    project_slugs = {p["slug"] for p in doc.get("projects", [])}
    course_slugs = {c["slug"] for c in doc.get("courses", [])}
    zone_problem = timezone_problem(doc["site"].get("timezone", "UTC"))
    if zone_problem:
        problems.append(("site.timezone", zone_problem))
    problems += course_problems(
        doc.get("courses", []),
        {f["slug"]: f for f in doc["flavors"]},
        image_slugs,
        project_slugs,
        _parse_date,
    )
    # Datasets are granted to projects and courses alike (a course is a project).
    problems += _dataset_problems(doc.get("datasets", []), project_slugs | course_slugs)
    partitions = doc.get("jobs", {}).get("partitions", [])
    _duplicates(partitions, "name", "jobs.partitions", problems)
    if sum(1 for p in partitions if p.get("default")) > 1:
        problems.append(("jobs.partitions", "mark at most one partition as default."))
    auth = doc.get("authentication", {"kind": "demo"})
    if auth["kind"] == "demo":
        _duplicates(auth.get("demo_users", []), "name", "authentication.demo_users", problems)
    if auth["kind"] == "oidc":
        problems += _oidc_problems(auth.get("oidc"), {p["slug"] for p in doc.get("projects", [])})
        problems += _demo_left_in_sso(auth, doc.get("site", {}))
    return problems


# --- single sign-on: a clean switch from the demo (docs/sso.md) ---------------------------


def _demo_left_in_sso(auth: dict[str, Any], site: dict[str, Any]) -> list[tuple[str, str]]:
    """With ``kind: oidc``, the demo's keys are errors: refused, never silently kept.

    - ``demo_users`` and ``login_hint`` (the demo accounts and their passwords) would be
      kept in the file and shown on the login page and by the launcher;
    - ``site.operators`` would make anyone whose provider username is on that list an
      operator, and a username is a claim many providers let users choose; operators come
      from the provider's groups (``oidc.mapping.operators``) instead.
    """
    problems = []
    if auth.get("demo_users"):
        problems.append(
            (
                "authentication.demo_users",
                "demo accounts are not used with kind: oidc; remove them (people sign in "
                "at the identity provider).",
            )
        )
    if auth.get("login_hint"):
        problems.append(
            (
                "authentication.login_hint",
                "the demo login hint is not shown with kind: oidc; remove it (the login page "
                "names the sign-in service from oidc.login_service).",
            )
        )
    if site.get("operators"):
        problems.append(
            (
                "site.operators",
                "is refused with kind: oidc, because a username is a claim users can often "
                "choose at the provider; name the operators' group in "
                "authentication.oidc.mapping.operators instead.",
            )
        )
    return problems


def _dataset_problems(datasets: list[dict[str, Any]], project_slugs: set[str]):
    problems: list[tuple[str, str]] = []
    _duplicates(datasets, "slug", "datasets", problems)
    for index, dataset in enumerate(datasets):
        where = f"datasets[{index}]"
        grants = dataset.get("projects", [])
        if grants and dataset.get("visibility", "granted") == "public":
            problems.append(
                (
                    f"{where}.projects",
                    "a public dataset is open to every user; remove the projects or set "
                    "visibility: granted.",
                )
            )
        problems += _pseudonymized_problems(dataset, where)
        for position, slug in enumerate(grants):
            if slug not in project_slugs:
                problems.append(
                    (f"{where}.projects[{position}]", f"no project {slug!r} is defined.")
                )
        storage = dataset["storage"]
        if storage["kind"] in ("nfs", "host_path") and not storage["path"].startswith("/"):
            problems.append((f"{where}.storage.path", "must be an absolute path for this kind."))
        if storage.get("demo_source") and storage["kind"] != "local":
            problems.append((f"{where}.storage.demo_source", "is only for kind: local."))
        extra = {"path", "claim", "sub_path", "server"} - set(_STORAGE_FIELDS[storage["kind"]])
        for name in sorted(extra & set(storage)):
            problems.append((f"{where}.storage.{name}", f"is not used by kind {storage['kind']}."))
    return problems


def _pseudonymized_problems(dataset: dict[str, Any], where: str) -> list[tuple[str, str]]:
    purposes = dataset.get("purposes", {})
    grants = dataset.get("projects", [])
    problems = [
        (f"{where}.purposes.{slug}", "names a project the dataset is not granted to.")
        for slug in sorted(set(purposes) - set(grants))
    ]
    for slug, entry in sorted(purposes.items()):
        _parse_date(entry["expires"], f"{where}.purposes.{slug}.expires", problems)
    if dataset.get("class") != PSEUDONYMIZED:
        return problems
    if dataset.get("visibility", "granted") != "granted":
        problems.append(
            (f"{where}.visibility", "a pseudonymized dataset must be granted, not public.")
        )
    if not dataset.get("terms"):
        problems.append((f"{where}.terms", "a pseudonymized dataset needs terms of use."))
    for position, slug in enumerate(grants):
        if slug not in purposes:
            problems.append(
                (
                    f"{where}.projects[{position}]",
                    f"a pseudonymized dataset needs a purpose and an expiry for {slug!r} "
                    f"(purposes.{slug}).",
                )
            )
    return problems


_STORAGE_FIELDS = {
    "local": ("path", "demo_source"),
    "pvc": ("claim", "sub_path"),
    "nfs": ("server", "path"),
    "host_path": ("path",),
}


def _folder(text: str, base: Path, state_dir: Path) -> Path:
    """A folder named in the settings: ``{state_dir}`` and ``~`` expanded, relative to
    ``base``."""
    folder = Path(os.path.expanduser(text.replace("{state_dir}", str(state_dir))))
    return folder if folder.is_absolute() else (base / folder).resolve()


def _build_dataset(doc: dict[str, Any], base: Path, state_dir: Path) -> Dataset:
    storage = dict(doc["storage"])
    if storage["kind"] == "local":
        storage["path"] = str(_folder(storage["path"], base, state_dir))
    terms = doc.get("terms")
    return Dataset(
        slug=doc["slug"],
        title=doc["title"],
        storage=DatasetStorage(**storage),
        description=doc.get("description", ""),
        tags=tuple(doc.get("tags", ())),
        license=doc.get("license", ""),
        version=doc.get("version", "1"),
        visibility=doc.get("visibility", "granted"),
        projects=tuple(doc.get("projects", ())),
        data_class=doc.get("class") or default_class(doc.get("visibility", "granted")),
        purposes={
            slug: GrantPurpose(entry["purpose"], date.fromisoformat(entry["expires"]))
            for slug, entry in doc.get("purposes", {}).items()
        },
        terms=DatasetTerms(**terms) if terms else None,
        cluster_path=doc.get("cluster_path"),
        size_bytes=doc.get("size_bytes"),
        file_count=doc.get("file_count"),
    )


class DatasetInvalid(ValueError):
    """A dataset document is invalid; ``problems`` are (key path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))
        self.problems = problems


def dataset_from_document(
    doc: Any, *, project_slugs: set[str], state_dir: Path, base: Path | None = None
) -> Dataset:
    """One dataset entry, validated exactly as in the settings file (the operator API uses
    this). Local paths must be absolute when there is no ``base`` folder to resolve them."""
    problems = [(w, m[:300]) for w, m in _schema_problems(doc, "dataset")]
    if not problems:
        problems = _dataset_problems([doc], project_slugs)
        problems = [(w.removeprefix("datasets[0]."), m) for w, m in problems]
        path = doc["storage"].get("path", "")
        if base is None and doc["storage"]["kind"] == "local" and not path.startswith("/"):
            problems.append(("storage.path", "must be an absolute path."))
    if problems:
        raise DatasetInvalid(problems)
    return _build_dataset(doc, base or Path("/"), state_dir)


class CourseInvalid(ValueError):
    """A course document with problems: ``(key path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in problems))
        self.problems = problems


def course_from_document(
    doc: Any,
    *,
    flavors: list[dict[str, Any]],
    image_slugs: set[str],
    project_slugs: set[str],
) -> Course:
    """One course entry, validated exactly as in the settings file (the operator API uses
    this). ``flavors`` are the catalog's flavors as documents (slug, gpus, mig_profile);
    ``project_slugs`` are the names already taken by other projects and courses."""
    problems = [(w, m[:300]) for w, m in _schema_problems(doc, "course")]
    if not problems:
        problems = course_problems(
            [doc], {f["slug"]: f for f in flavors}, image_slugs, project_slugs, _parse_date
        )
        problems = [(w.removeprefix("courses[0]."), m) for w, m in problems]
    if problems:
        raise CourseInvalid(problems)
    return build_course(doc, flavors)


def _match_problem(rule: dict[str, Any]) -> str | None:
    has_group, has_claim = "group" in rule, "claim" in rule
    if has_group == has_claim:
        return "give either group or claim (with value), not both or neither."
    if has_claim and "value" not in rule:
        return "a claim condition needs a value."
    if has_group and "value" in rule:
        return "value goes with claim, not with group."
    return None


def _oidc_problems(oidc: dict[str, Any] | None, project_slugs: set[str]) -> list[tuple[str, str]]:
    where = "authentication.oidc"
    if oidc is None:
        return [(where, "kind is oidc, so this section is required (see docs/sso.md).")]
    problems: list[tuple[str, str]] = []
    endpoints = ("authorize_url", "token_url", "userinfo_url")
    if "issuer" not in oidc and not all(name in oidc for name in endpoints):
        problems.append(
            (where, "give the issuer (discovery) or all of authorize_url, token_url, userinfo_url.")
        )
    mapping = oidc.get("mapping", {})
    for section in ("allowed", "operators", "instructors", "hub_groups", "projects"):
        for index, rule in enumerate(mapping.get(section, [])):
            problem = _match_problem(rule)
            if problem:
                problems.append((f"{where}.mapping.{section}[{index}]", problem))
    for index, rule in enumerate(mapping.get("projects", [])):
        if rule["project"] not in project_slugs:
            problems.append(
                (
                    f"{where}.mapping.projects[{index}].project",
                    f"no project {rule['project']!r} is defined under projects.",
                )
            )
    return problems


def _match(rule: dict[str, Any]) -> OidcMatch:
    return OidcMatch(group=rule.get("group"), claim=rule.get("claim"), value=rule.get("value"))


def _build_oidc(doc: dict[str, Any] | None, base: Path) -> Oidc | None:
    if doc is None:
        return None
    doc = dict(doc)
    mapping = doc.pop("mapping", {})
    secret_file = doc.pop("client_secret_file", None)
    if secret_file is not None:
        secret_file = Path(os.path.expanduser(secret_file))
        if not secret_file.is_absolute():
            secret_file = (base / secret_file).resolve()
    if "scopes" in doc:
        doc["scopes"] = tuple(doc["scopes"])
    return Oidc(
        **doc,
        client_secret_file=secret_file,
        mapping=OidcMapping(
            allowed=tuple(_match(r) for r in mapping.get("allowed", [])),
            operators=tuple(_match(r) for r in mapping.get("operators", [])),
            instructors=tuple(_match(r) for r in mapping.get("instructors", [])),
            hub_groups=tuple(
                HubGroupRule(match=_match(r), hub_group=r["hub_group"])
                for r in mapping.get("hub_groups", [])
            ),
            projects=tuple(
                ProjectRule(match=_match(r), project=r["project"], role=r.get("role", "member"))
                for r in mapping.get("projects", [])
            ),
        ),
    )


def _build(doc: dict[str, Any], path: Path) -> Settings:
    site_doc = dict(doc["site"])
    state_dir = Path(os.path.expanduser(site_doc.pop("state_dir", "state")))
    if not state_dir.is_absolute():
        state_dir = (path.parent / state_dir).resolve()
    site_doc["operators"] = tuple(site_doc.get("operators", ()))
    if site_doc.get("simulated_gpus") is not None:
        site_doc["simulated_gpus"] = SimulatedGpus(**site_doc["simulated_gpus"])
    site_doc["dataset_roots"] = tuple(
        _folder(root, path.parent, state_dir)
        for root in site_doc.get("dataset_roots", ["{state_dir}/datasets"])
    )
    site_doc["data_stewards"] = tuple(site_doc.get("data_stewards", ()))
    site = Site(state_dir=state_dir, **site_doc)
    if not site.database_url:
        site = replace(site, database_url=f"sqlite:///{state_dir / 'portal.sqlite'}")
    if not site.hub_database_url:
        site = replace(site, hub_database_url=f"sqlite:///{state_dir / 'jupyterhub.sqlite'}")
    auth_doc = dict(doc.get("authentication", {"kind": "demo"}))
    auth = Authentication(
        kind=auth_doc["kind"],
        login_hint=auth_doc.get("login_hint", ""),
        demo_users=tuple(DemoUser(**u) for u in auth_doc.get("demo_users", [])),
        oidc=_build_oidc(auth_doc.get("oidc"), path.parent),
    )
    flavors = tuple(Flavor(**f) for f in doc["flavors"])
    images = tuple(
        Image(**{**i, "frameworks": tuple(i.get("frameworks", ()))}) for i in doc["images"]
    )
    projects = []
    for p in doc.get("projects", []):
        a = p["allocation"]
        allocation = Allocation(
            **{
                **a,
                "valid_from": date.fromisoformat(a["valid_from"]),
                "valid_until": date.fromisoformat(a["valid_until"]),
            }
        )
        projects.append(
            Project(
                slug=p["slug"],
                title=p["title"],
                description=p.get("description", ""),
                allocation=allocation,
                flavors=tuple(p["flavors"]) if "flavors" in p else None,
                images=tuple(p["images"]) if "images" in p else None,
                members=tuple(Member(**m) for m in p.get("members", [])),
            )
        )
    kube_doc = dict(doc.get("kubernetes", {}))
    for key in (
        "gpu_tolerations",
        "cpu_tolerations",
        "cpu_node_affinity_preferred",
        "image_pull_secrets",
        "extra_volumes",
        "extra_volume_mounts",
    ):
        if key in kube_doc:
            kube_doc[key] = tuple(kube_doc[key])
    return Settings(
        path=path,
        site=site,
        authentication=auth,
        flavors=flavors,
        images=images,
        projects=tuple(projects),
        kubernetes=Kubernetes(**kube_doc),
        jobs=_build_jobs(doc.get("jobs", {}), state_dir),
        datasets=tuple(_build_dataset(d, path.parent, state_dir) for d in doc.get("datasets", [])),
        courses=tuple(build_course(c, doc["flavors"]) for c in doc.get("courses", [])),
        notifications=_build_notifications(doc.get("notifications", {})),
    )


def _build_jobs(doc: dict[str, Any], state_dir: Path) -> Jobs:
    def under_state(template: str) -> str:
        expanded = os.path.expanduser(template)
        return expanded if os.path.isabs(expanded) else str(state_dir / expanded)

    defaults = Jobs()
    slurm = None
    if "slurm" in doc:
        slurm_doc = dict(doc["slurm"])
        slurm_doc["jwt_key_file"] = Path(under_state(slurm_doc["jwt_key_file"]))
        if slurm_doc.get("job_completion_file"):
            slurm_doc["job_completion_file"] = Path(under_state(slurm_doc["job_completion_file"]))
        slurm = SlurmSettings(**slurm_doc)
    mapping = doc.get("user_mapping", {})
    partitions = tuple(Partition(**p) for p in doc.get("partitions", ())) or defaults.partitions
    return Jobs(
        backend=doc.get("backend", defaults.backend),
        poll_interval_seconds=float(
            doc.get("poll_interval_seconds", defaults.poll_interval_seconds)
        ),
        partitions=partitions,
        working_dir_roots=tuple(doc.get("working_dir_roots", defaults.working_dir_roots)),
        home_template=under_state(doc.get("home_template", defaults.home_template)),
        project_dir_template=under_state(
            doc.get("project_dir_template", defaults.project_dir_template)
        ),
        user_template=mapping.get("template", defaults.user_template),
        user_overrides=dict(mapping.get("overrides", {})),
        account_min_uid=int(mapping.get("min_uid", defaults.account_min_uid)),
        denied_accounts=frozenset(mapping.get("denied_accounts", defaults.denied_accounts)),
        container_launcher=doc.get("container_launcher", defaults.container_launcher),
        image_prefix=doc.get("image_prefix", defaults.image_prefix),
        datasets_dir=doc.get("datasets_dir", defaults.datasets_dir),
        papermill=tuple(doc.get("papermill", defaults.papermill)),
        slurm=slurm,
    )


def _format(path: Path, problems: list[tuple[str, str]]) -> str:
    lines = [f"Invalid site settings in {path}:"]
    lines += [f"  - {where}: {what}" for where, what in problems[:MAX_REPORTED_PROBLEMS]]
    if len(problems) > MAX_REPORTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_REPORTED_PROBLEMS} more problems.")
    lines.append("Fix the file and start again (reference: docs/settings.md).")
    return "\n".join(lines)


def parse_settings(text: str, path: Path) -> Settings:
    """Validate settings text; ``path`` is used in messages and to resolve relative paths."""
    try:
        doc = yaml.load(text, Loader=_StringDatesLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(parse)"
        problem = getattr(error, "problem", None) or str(error)
        raise SettingsError(_format(path, [(where, f"not valid YAML: {problem}.")])) from None
    if not isinstance(doc, dict):
        raise SettingsError(_format(path, [("(top level)", "the file must hold a mapping.")]))
    problems = _schema_problems(doc)
    if not problems:
        problems = _semantic_problems(doc)
    if problems:
        raise SettingsError(_format(path, problems))
    settings = _build(doc, path)
    override = os.environ.get(DATABASE_URL_ENV)
    if override:
        settings = replace(settings, site=replace(settings.site, database_url=override))
    return settings


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the settings file given, else the one named by $AITESTBED_SETTINGS."""
    chosen = path or os.environ.get(SETTINGS_ENV)
    if not chosen:
        raise SettingsError(
            f"No site settings file given: set {SETTINGS_ENV} to the path of your settings.yaml."
        )
    resolved = Path(chosen).expanduser().resolve()
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(
            f"Cannot read site settings {resolved}: {error.strerror or error}."
        ) from None
    return parse_settings(text, resolved)
