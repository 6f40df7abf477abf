"""Site settings: the shipped examples are valid, and each kind of mistake stops the start
with one message naming the file, the key path and the problem."""

from __future__ import annotations

import copy
import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml
from aitestbed.settings import SettingsError, load_settings, parse_settings

from tests.harness import REPO, VENV_BIN

HUB_CONFIG_DIR = REPO / "hub_config"


def _check(doc: dict, tmp_path: Path) -> str:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"Invalid site settings in {path}:")
    return message


@pytest.mark.parametrize("name", ["settings.yaml", "settings.production.example.yaml"])
def test_shipped_examples_are_valid(name):
    settings = load_settings(HUB_CONFIG_DIR / name)
    assert settings.flavors and settings.images and settings.projects


def test_embedded_default_resolves_paths_and_defaults():
    settings = load_settings(HUB_CONFIG_DIR / "settings.yaml")
    assert settings.site.state_dir == (REPO / "state").resolve()
    assert settings.site.database_url == f"sqlite:///{REPO.resolve() / 'state' / 'portal.sqlite'}"
    acme = next(p for p in settings.projects if p.slug == "acme-vision")
    assert acme.allocation.valid_until == date(2027, 2, 28)
    assert acme.flavors is None  # omitted means every flavor
    assert settings.flavor("a100-1g-10gb").uses_gpu
    assert not settings.flavor("cpu-small").uses_gpu


def _mutate(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "where", "problem"),
    [
        (("site", "flavours"), 1, "site", "'flavours' was unexpected"),
        (("flavors", 0, "slug"), "CPU Small", "flavors[0].slug", "Lower-case letters"),
        (("flavors", 0, "memory"), "4GB", "flavors[0].memory", "Kubernetes quantity"),
        (("flavors", 0, "gpus"), -1, "flavors[0].gpus", "less than the minimum of 0"),
        (("flavors", 0, "gpus"), "two", "flavors[0].gpus", "is not of type 'integer'"),
        (("site", "bind_url"), "127.0.0.1:8000", "site.bind_url", "does not match"),
        (("site", "mode"), "cloud", "site.mode", "is not one of"),
        (
            ("projects", 0, "allocation", "valid_until"),
            "2027-02-30",
            "projects[0].allocation.valid_until",
            "'2027-02-30' is not a valid date",
        ),
        (
            ("projects", 0, "allocation", "valid_until"),
            "2025-01-01",
            "projects[0].allocation.valid_until",
            "is before valid_from",
        ),
        (
            ("projects", 1, "flavors"),
            ["cpu-small", "h200x8"],
            "projects[1].flavors[1]",
            "no flavor 'h200x8' is defined",
        ),
        (
            ("projects", 1, "images"),
            ["tensorflow"],
            "projects[1].images[0]",
            "no image 'tensorflow' is defined",
        ),
        (("flavors", 1, "gpus"), 1, "flavors[1]", "either whole GPUs or a MIG slice"),
        (
            ("authentication", "demo_users", 0, "password_hash"),
            "alice-demo",
            "authentication.demo_users[0].password_hash",
            "aitestbed-hash-password",
        ),
        (
            ("projects", 0, "members", 1, "role"),
            "owner",
            "projects[0].members[1].role",
            "is not one of",
        ),
    ],
)
def test_each_mistake_names_key_path_and_problem(
    settings_doc, tmp_path, path, value, where, problem
):
    doc = copy.deepcopy(settings_doc)
    _mutate(doc, path, value)
    message = _check(doc, tmp_path)
    line = next((ln for ln in message.splitlines() if ln.startswith(f"  - {where}:")), None)
    assert line is not None, message
    assert problem in line, message


def test_duplicate_slugs_are_refused(settings_doc, tmp_path):
    settings_doc["images"].append(dict(settings_doc["images"][0]))
    message = _check(settings_doc, tmp_path)
    assert "images[2].slug: 'python-cpu' is defined twice." in message


def test_missing_required_section(settings_doc, tmp_path):
    del settings_doc["flavors"]
    assert "(top level): 'flavors' is a required property" in _check(settings_doc, tmp_path)


def test_all_problems_are_reported_together(settings_doc, tmp_path):
    settings_doc["flavors"][0]["memory"] = "lots"
    settings_doc["images"][0]["slug"] = "Bad Slug"
    message = _check(settings_doc, tmp_path)
    assert "flavors[0].memory" in message and "images[0].slug" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("site:\n  name: x\n flavors: [\n")
    with pytest.raises(SettingsError, match=r"line \d+, column \d+: not valid YAML"):
        load_settings(path)


def test_not_a_mapping(tmp_path):
    with pytest.raises(SettingsError, match="the file must hold a mapping"):
        parse_settings("- just\n- a list\n", tmp_path / "s.yaml")


def test_missing_file_and_missing_variable(tmp_path, monkeypatch):
    with pytest.raises(SettingsError, match=r"Cannot read site settings .*nope\.yaml"):
        load_settings(tmp_path / "nope.yaml")
    monkeypatch.delenv("AITESTBED_SETTINGS", raising=False)
    with pytest.raises(SettingsError, match="set AITESTBED_SETTINGS"):
        load_settings()


def test_database_url_from_environment_overrides_file(monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", "postgresql://portal:secret@db/portal")
    settings = load_settings(HUB_CONFIG_DIR / "settings.yaml")
    assert settings.site.database_url == "postgresql://portal:secret@db/portal"


def test_hub_refuses_to_start_with_one_clear_message(settings_doc, tmp_path):
    """The real jupyterhub command with a broken file: exit 2, the message, no traceback."""
    settings_doc["flavors"][0]["memory"] = "4GB"
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(settings_doc))
    result = subprocess.run(
        [str(VENV_BIN / "jupyterhub"), "-f", str(HUB_CONFIG_DIR / "jupyterhub_config.py")],
        env={"AITESTBED_SETTINGS": str(path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"Invalid site settings in {path}:" in result.stderr
    assert "flavors[0].memory: '4GB' does not match" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_reference_is_generated_from_the_schema():
    from aitestbed.settings.reference import render

    committed = (REPO / "docs" / "settings.md").read_text()
    assert committed == render(), "regenerate: python -m aitestbed.settings.reference"


def test_jobs_section_of_both_examples():
    embedded = load_settings(HUB_CONFIG_DIR / "settings.yaml").jobs
    assert embedded.backend == "local" and embedded.slurm is None
    assert embedded.partition(None).name == "local"
    assert embedded.home_template == str((REPO / "state" / "homes" / "{user}").resolve())
    assert embedded.unix_user("alice") == "alice"
    production = load_settings(HUB_CONFIG_DIR / "settings.production.example.yaml").jobs
    assert production.backend == "slurm"
    assert production.partition(None).name == "a100"
    assert production.partition("h100").gpus_per_node == 8
    assert production.partition("nope") is None
    assert str(production.slurm.jwt_key_file) == "/etc/aitestbed/slurm/jwt_hs256.key"


@pytest.mark.parametrize(
    ("jobs", "where", "problem"),
    [
        ({"backend": "slurm"}, "jobs", "'slurm' is a required property"),
        ({"backend": "pbs"}, "jobs.backend", "is not one of"),
        ({"partitions": [{"name": "gpu;rm"}]}, "jobs.partitions[0].name", "does not match"),
        (
            {"partitions": [{"name": "g", "gpus_per_node": -1}]},
            "jobs.partitions[0].gpus_per_node",
            "minimum",
        ),
        ({"user_mapping": {"template": "static"}}, "jobs.user_mapping.template", "does not match"),
        (
            {"slurm": {"rest_url": "slurm:6820", "jwt_key_file": "k"}},
            "jobs.slurm.rest_url",
            "does not match",
        ),
        ({"partitions": [{"name": "a"}, {"name": "a"}]}, "jobs.partitions[1].name", "twice"),
        (
            {"partitions": [{"name": "a", "default": True}, {"name": "b", "default": True}]},
            "jobs.partitions",
            "at most one partition",
        ),
    ],
)
def test_jobs_section_mistakes(settings_doc, tmp_path, jobs, where, problem):
    settings_doc["jobs"] = jobs
    message = _check(settings_doc, tmp_path)
    assert f"  - {where}: " in message and problem in message


def _oidc_doc(settings_doc, **oidc):
    settings_doc["site"].pop("operators", None)  # refused with kind: oidc (see below)
    settings_doc["authentication"] = {
        "kind": "oidc",
        "oidc": {"client_id": "portal", "issuer": "https://sso.example.org/realms/x", **oidc},
    }
    return settings_doc


def test_oidc_section_is_read_with_defaults(settings_doc, tmp_path):
    doc = _oidc_doc(
        settings_doc,
        client_secret_file="secrets/oidc",
        mapping={
            "allowed": [{"group": "users"}],
            "hub_groups": [{"claim": "email_verified", "value": True, "hub_group": "verified"}],
            "projects": [{"group": "acme", "project": "acme-vision", "role": "manager"}],
        },
    )
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    oidc = load_settings(path).authentication.oidc
    assert oidc.client_secret_file == tmp_path / "secrets" / "oidc"
    assert oidc.client_secret_env == "AITESTBED_OIDC_CLIENT_SECRET"
    assert oidc.scopes == ("openid", "profile", "email")
    assert (oidc.username_claim, oidc.groups_claim, oidc.pkce) == (
        "preferred_username",
        "groups",
        True,
    )
    assert oidc.mapping.allowed[0].group == "users"
    assert oidc.mapping.hub_groups[0].match.value is True
    assert (oidc.mapping.projects[0].project, oidc.mapping.projects[0].role) == (
        "acme-vision",
        "manager",
    )


@pytest.mark.parametrize(
    ("oidc", "where", "problem"),
    [
        ({"client_secret": "x"}, "authentication.oidc", "'client_secret' was unexpected"),
        ({"issuer": "sso.example.org"}, "authentication.oidc.issuer", "does not match"),
        ({"client_secret_env": "1BAD"}, "authentication.oidc.client_secret_env", "match"),
        ({"pkce": "yes"}, "authentication.oidc.pkce", "is not of type 'boolean'"),
        (
            {"mapping": {"allowed": [{"group": "a", "claim": "b", "value": 1}]}},
            "authentication.oidc.mapping.allowed[0]",
            "either group or claim",
        ),
        (
            {"mapping": {"operators": [{"claim": "b"}]}},
            "authentication.oidc.mapping.operators[0]",
            "needs a value",
        ),
        (
            {"mapping": {"projects": [{"group": "a", "project": "nope"}]}},
            "authentication.oidc.mapping.projects[0].project",
            "no project 'nope'",
        ),
        (
            {"mapping": {"projects": [{"group": "a", "project": "acme-vision", "role": "owner"}]}},
            "authentication.oidc.mapping.projects[0].role",
            "is not one of",
        ),
        (
            {"mapping": {"hub_groups": [{"group": "a", "hub_group": "bad group!"}]}},
            "authentication.oidc.mapping.hub_groups[0].hub_group",
            "does not match",
        ),
    ],
)
def test_oidc_mistakes_are_named(settings_doc, tmp_path, oidc, where, problem):
    message = _check(_oidc_doc(settings_doc, **oidc), tmp_path)
    assert f"  - {where}: " in message and problem in message


def test_demo_keys_and_site_operators_are_refused_with_oidc_naming_each(settings_doc, tmp_path):
    doc = _oidc_doc(settings_doc)
    doc["authentication"]["login_hint"] = "Demo accounts: olivia / olivia-pw"
    doc["authentication"]["demo_users"] = [
        {"name": "olivia", "password_hash": "pbkdf2_sha256$1000$c2FsdA==$aGFzaA=="}
    ]
    doc["site"]["operators"] = ["olivia"]
    message = _check(doc, tmp_path)
    assert (
        "  - authentication.demo_users: demo accounts are not used with kind: oidc; remove "
        "them (people sign in at the identity provider)." in message
    )
    assert "  - authentication.login_hint: the demo login hint is not shown with kind: oidc" in (
        message
    )
    assert (
        "  - site.operators: is refused with kind: oidc, because a username is a claim users "
        "can often choose at the provider; name the operators' group in "
        "authentication.oidc.mapping.operators instead." in message
    )


def test_oidc_needs_its_section_and_endpoints(settings_doc, tmp_path):
    settings_doc["authentication"] = {"kind": "oidc"}
    assert "authentication.oidc: kind is oidc, so this section is required" in _check(
        settings_doc, tmp_path
    )
    settings_doc["authentication"] = {
        "kind": "oidc",
        "oidc": {"client_id": "p", "authorize_url": "https://idp/auth"},
    }
    assert "give the issuer (discovery) or all of authorize_url" in _check(settings_doc, tmp_path)


def test_cluster_account_rules_default_to_the_policy_and_can_be_set(tmp_path):
    from aitestbed.policy.cluster_accounts import DEFAULT_DENIED_ACCOUNTS, DEFAULT_MIN_UID
    from aitestbed.settings import schema

    mapping = schema()["properties"]["jobs"]["properties"]["user_mapping"]["properties"]
    assert mapping["denied_accounts"]["default"] == list(DEFAULT_DENIED_ACCOUNTS)
    assert mapping["min_uid"]["default"] == DEFAULT_MIN_UID
    doc = yaml.safe_load((REPO / "hub_config" / "settings.yaml").read_text())
    doc["jobs"]["user_mapping"] = {"min_uid": 5000, "denied_accounts": ["ops"]}
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    jobs = load_settings(path).jobs
    assert (jobs.account_min_uid, jobs.denied_accounts) == (5000, frozenset({"ops"}))
    doc["jobs"]["user_mapping"] = {"min_uid": 0}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=r"jobs\.user_mapping\.min_uid"):
        load_settings(path)
