"""What ``setup_portal`` makes of the settings: login, spawner, services and least-privilege
roles. The running result is covered by the integration tests."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest
from aitestbed.hub.demo_auth import DemoAuthenticator, hash_password, verify_password
from aitestbed.hub.setup import read_or_create_secret, setup_portal
from aitestbed.settings import Oidc, SettingsError, load_settings
from traitlets.config import Config

from tests.conftest import EXAMPLE_SETTINGS, REPO
from tests.harness import free_port

PRODUCTION_SETTINGS = REPO / "hub_config" / "settings.production.example.yaml"


@pytest.fixture
def settings(tmp_path):
    loaded = load_settings(EXAMPLE_SETTINGS)
    return dataclasses.replace(
        loaded, site=dataclasses.replace(loaded.site, state_dir=tmp_path / "state")
    )


def test_hub_configuration_from_settings(settings, tmp_path):
    c = Config()
    setup_portal(c, settings)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.authenticator_class == "aitestbed.hub.demo_auth.DemoAuthenticator"
    assert set(c.DemoAuthenticator.password_hashes) == {
        "alice",
        "bob",
        "carol",
        "olivia",
        "ingrid",
        "sam",
    }
    assert c.Authenticator.admin_users == {"olivia"}
    assert c.JupyterHub.spawner_class == "aitestbed.hub.local_spawner.PortalLocalSpawner"
    assert c.JupyterHub.concurrent_spawn_limit == 0  # the start queue holds a class instead
    assert "access:services!service=portal" in c.Spawner.server_token_scopes
    assert c.Spawner.environment["AITESTBED_PORTAL_URL"] == (
        "http://127.0.0.1:8090/services/portal/"
    )
    assert ("--allow-root" in c.Spawner.args) == (os.geteuid() == 0)
    # Terminals get an interactive shell, not a login shell that resets PATH.
    (shell,) = [a for a in c.Spawner.args if a.startswith("--ServerApp.terminado_settings=")]
    assert shell.endswith(("shell_command=/usr/bin/bash", "shell_command=/bin/bash"))
    assert c.JupyterHub.template_vars["announcement_login"].startswith("Demo accounts")
    # The hub's pages get the portal's top bar from the hub's own template.
    (templates,) = c.JupyterHub.template_paths
    page = (Path(templates) / "page.html").read_text()
    assert '{% extends "templates/page.html" %}' in page and "{{ portal }}usage" in page
    # The proxy token is generated once and kept private.
    token_file = tmp_path / "state" / "proxy_auth_token"
    assert c.ConfigurableHTTPProxy.auth_token == token_file.read_text()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_services_and_their_roles_are_least_privilege(settings):
    c = Config()
    setup_portal(c, settings)
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {"portal", "idle-culler"}
    assert services["portal"]["url"] == "http://127.0.0.1:8090"
    assert "--timeout=3600" in services["idle-culler"]["command"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["idle-culler"]["scopes"] == [
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    ]
    assert roles["user"]["scopes"] == ["self", "access:services!service=portal"]
    # The portal reads which servers run (to close stale usage records), stops the servers
    # of users whose project access ended, and keeps the members of the course groups in
    # line; nothing more (no admin:servers).
    assert roles["portal"] == {
        "name": "portal",
        "services": ["portal"],
        "scopes": [
            "list:users",
            "read:servers",
            "delete:servers",
            "groups!group=course.dl-101",
            "groups!group=staff.dl-101",
        ],
    }
    # The staff of a course act on its students' servers only, through a group role.
    assert roles["course-staff-dl-101"]["groups"] == ["staff.dl-101"]
    assert set(roles["course-staff-dl-101"]["scopes"]) == {
        "list:users!group=course.dl-101",
        "read:users!group=course.dl-101",
        "admin:servers!group=course.dl-101",
        "access:servers!group=course.dl-101",
        "read:groups!group=course.dl-101",
    }
    assert c.JupyterHub.load_groups == {
        "course.dl-101": {"users": ["ingrid", "sam"]},
        "staff.dl-101": {"users": ["ingrid"]},
    }


def test_culler_off_when_timeout_is_zero(settings):
    settings = dataclasses.replace(
        settings, site=dataclasses.replace(settings.site, idle_timeout_seconds=0)
    )
    c = Config()
    setup_portal(c, settings)
    assert [s["name"] for s in c.JupyterHub.services] == ["portal"]


def test_kubernetes_mode_configures_the_kube_spawner(tmp_path):
    settings = load_settings(PRODUCTION_SETTINGS)
    settings = dataclasses.replace(
        settings,
        site=dataclasses.replace(settings.site, state_dir=tmp_path / "state"),
        authentication=dataclasses.replace(settings.authentication, kind="demo"),
    )
    c = Config()
    setup_portal(c, settings)
    assert c.JupyterHub.spawner_class == "aitestbed.hub.kube_spawner.PortalKubeSpawner"
    kube = settings.kubernetes
    assert c.KubeSpawner.namespace == kube.namespace == "aitestbed"
    assert c.KubeSpawner.cmd == ["jupyterhub-singleuser"]
    assert c.PortalKubeSpawner.kube_site["home_storage"] == "50Gi"
    assert c.PortalKubeSpawner.kube_site["gpu_tolerations"][0]["key"] == "nvidia.com/gpu"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.hub_connect_url == "http://hub:8081"
    assert c.JupyterHub.hub_bind_url == "http://0.0.0.0:8081"
    assert c.Spawner.environment["AITESTBED_PORTAL_URL"] == kube.session_portal_url
    assert "--allow-root" not in c.Spawner.get("args", [])
    assert c.Spawner.pre_spawn_hook is not None


def _kube_settings(tmp_path, **kube):
    settings = load_settings(PRODUCTION_SETTINGS)
    return dataclasses.replace(
        settings,
        site=dataclasses.replace(
            settings.site, state_dir=tmp_path / "state", bind_url="http://0.0.0.0:8000"
        ),
        authentication=dataclasses.replace(settings.authentication, kind="demo"),
        kubernetes=dataclasses.replace(settings.kubernetes, **kube),
    )


def test_sessions_reach_the_portal_through_its_service_never_a_listen_address(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("AITESTBED_PORTAL_SERVICE_URL", raising=False)
    settings = _kube_settings(tmp_path, session_portal_url="")
    with pytest.raises(SettingsError) as refused:
        setup_portal(Config(), settings)
    assert "sessions cannot reach the portal at site.bind_url http://0.0.0.0:8000" in str(
        refused.value
    )
    assert "set kubernetes.session_portal_url" in str(refused.value)

    monkeypatch.setenv("AITESTBED_PORTAL_SERVICE_URL", "http://portal-aitestbed-portal:8090")
    c = Config()
    setup_portal(c, settings)
    assert c.Spawner.environment == {
        "AITESTBED_PORTAL_URL": "http://portal-aitestbed-portal:8090/services/portal/"
    }
    # The portal service the proxy routes to is the same Service.
    portal = next(s for s in c.JupyterHub.services if s["name"] == "portal")
    assert portal["url"] == "http://portal-aitestbed-portal:8090"

    explicit = _kube_settings(tmp_path, session_portal_url="http://other:9/services/portal/")
    c = Config()
    setup_portal(c, explicit)
    assert c.Spawner.environment["AITESTBED_PORTAL_URL"] == "http://other:9/services/portal/"


def test_capacity_reading_follows_the_setting(tmp_path):
    for value in (True, False):
        c = Config()
        setup_portal(c, _kube_settings(tmp_path, read_cluster_capacity=value))
        assert c.PortalKubeSpawner.read_cluster_capacity is value


def test_the_metrics_token_may_read_metrics_and_nothing_else(settings, monkeypatch):
    monkeypatch.delenv("AITESTBED_METRICS_API_TOKEN", raising=False)
    c = Config()
    setup_portal(c, settings)
    assert "metrics" not in [s["name"] for s in c.JupyterHub.services]
    assert "metrics" not in [r["name"] for r in c.JupyterHub.load_roles]

    monkeypatch.setenv("AITESTBED_METRICS_API_TOKEN", "a" * 64)
    c = Config()
    setup_portal(c, settings)
    assert {"name": "metrics", "api_token": "a" * 64} in c.JupyterHub.services
    assert {
        "name": "metrics",
        "services": ["metrics"],
        "scopes": ["read:metrics"],
    } in c.JupyterHub.load_roles


def _with_oidc(settings, **oidc):
    spec = Oidc(
        client_id="portal",
        authorize_url="https://idp.example/auth",
        token_url="https://idp.example/token",
        userinfo_url="https://idp.example/userinfo",
        **oidc,
    )
    auth = dataclasses.replace(settings.authentication, kind="oidc", oidc=spec)
    return dataclasses.replace(settings, authentication=auth)


def test_oidc_login_from_settings(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    monkeypatch.setenv("AITESTBED_OIDC_CLIENT_SECRET", "the-secret")
    c = Config()
    setup_portal(c, _with_oidc(settings, end_session_url="https://idp.example/logout"))
    assert c.JupyterHub.authenticator_class == "aitestbed.hub.oidc.PortalOIDCAuthenticator"
    auth = c.PortalOIDCAuthenticator
    assert auth.client_secret == "the-secret"
    assert auth.oauth_callback_url == "http://127.0.0.1:8000/hub/oauth_callback"
    assert (auth.enable_pkce, auth.manage_groups, auth.enable_auth_state) == (True, True, True)
    assert auth.userdata_url == "https://idp.example/userinfo"
    assert auth.end_session_url == "https://idp.example/logout"
    assert auth.post_logout_redirect_url == "http://127.0.0.1:8000/hub/login"
    assert auth.admin_users == {"olivia"}
    assert auth.portal_url == "http://127.0.0.1:8090/services/portal/"
    assert auth.portal_token == (tmp_path / "state" / "portal_api_token").read_text()
    # auth_state is encrypted with a key kept private in the state directory.
    key_file = tmp_path / "state" / "auth_state_crypt_key"
    assert c.CryptKeeper["keys"] == [key_file.read_text()]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Users without an active project are held before a server starts.
    assert callable(c.Spawner.pre_spawn_hook) and callable(c.JupyterHub.default_url)


def test_oidc_without_secret_or_unreachable_issuer_is_refused(settings, monkeypatch):
    monkeypatch.delenv("AITESTBED_OIDC_CLIENT_SECRET", raising=False)
    with pytest.raises(SettingsError, match="client secret is empty or missing"):
        setup_portal(Config(), _with_oidc(settings))
    monkeypatch.setenv("AITESTBED_OIDC_CLIENT_SECRET", "x")
    closed = f"http://127.0.0.1:{free_port()}"
    spec = Oidc(client_id="portal", issuer=closed)
    unreachable = dataclasses.replace(
        settings,
        authentication=dataclasses.replace(settings.authentication, kind="oidc", oidc=spec),
    )
    with pytest.raises(SettingsError, match=r"cannot read .*openid-configuration"):
        setup_portal(Config(), unreachable)


def test_secret_file_is_created_once(tmp_path):
    first = read_or_create_secret(tmp_path / "s")
    assert read_or_create_secret(tmp_path / "s") == first and len(first) == 64


def test_password_hashes():
    stored = hash_password("correct horse", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert verify_password("correct horse", stored)
    assert not verify_password("Correct horse", stored)
    assert hash_password("x", iterations=1000) != hash_password("x", iterations=1000)  # salted
    for broken in ("", "plain", "md5$1$a$b", "pbkdf2_sha256$x$a$b", "pbkdf2_sha256$1$!!$b"):
        assert not verify_password("x", broken)


async def test_demo_authenticator_checks_hashes():
    auth = DemoAuthenticator(password_hashes={"alice": hash_password("pw", iterations=1000)})
    assert await auth.authenticate(None, {"username": "alice", "password": "pw"}) == "alice"
    assert await auth.authenticate(None, {"username": "alice", "password": "nope"}) is None
    assert await auth.authenticate(None, {"username": "bob", "password": "pw"}) is None
    assert await auth.authenticate(None, {"username": "alice", "password": "x" * 5000}) is None
    assert await auth.authenticate(None, {}) is None


def test_kubernetes_mode_takes_the_charts_deployment_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("AITESTBED_NAMESPACE", "portal-prod")
    monkeypatch.setenv("AITESTBED_USER_PRIORITY_CLASS", "aitestbed-user")
    monkeypatch.setenv("AITESTBED_PORTAL_SERVICE_URL", "http://aitestbed-hub:8090")
    settings = load_settings(PRODUCTION_SETTINGS)
    settings = dataclasses.replace(
        settings,
        site=dataclasses.replace(settings.site, state_dir=tmp_path / "state"),
        authentication=dataclasses.replace(settings.authentication, kind="demo"),
    )
    c = Config()
    setup_portal(c, settings)
    assert c.KubeSpawner.namespace == "portal-prod"
    assert c.KubeSpawner.priority_class_name == "aitestbed-user"
    assert c.KubeSpawner.common_labels["app"] == "aitestbed"
    portal = next(s for s in c.JupyterHub.services if s["name"] == "portal")
    assert portal["url"] == "http://aitestbed-hub:8090"
    assert portal["environment"]["AITESTBED_PORTAL_BIND_HOST"] == "0.0.0.0"


def test_extra_config_runs_after_the_portal_in_name_order(settings, tmp_path, monkeypatch):
    from aitestbed.hub.setup import run_extra_config

    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "20-second.py").write_text("c.Spawner.start_timeout = c.Spawner.start_timeout * 2\n")
    (folder / "10-first.py").write_text("c.Spawner.start_timeout = 450\n")
    (folder / "notes.txt").write_text("not python")
    c = Config()
    setup_portal(c, settings)
    monkeypatch.delenv("AITESTBED_EXTRA_CONFIG_DIR", raising=False)
    assert run_extra_config(c) == []
    monkeypatch.setenv("AITESTBED_EXTRA_CONFIG_DIR", str(folder))
    assert run_extra_config(c) == ["10-first.py", "20-second.py"]
    assert c.Spawner.start_timeout == 900


def test_session_scheduling_choices_reach_the_kube_spawner(tmp_path):
    settings = _kube_settings(
        tmp_path,
        scheduler_name="portal-aitestbed-user-scheduler",
        image_pull_secrets=("regcred",),
        cpu_node_selector={"pool": "cpu"},
        cpu_tolerations=({"key": "pool", "operator": "Exists"},),
    )
    c = Config()
    setup_portal(c, settings)
    assert c.KubeSpawner.scheduler_name == "portal-aitestbed-user-scheduler"
    assert c.KubeSpawner.image_pull_secrets == ["regcred"]
    assert c.PortalKubeSpawner.kube_site["cpu_node_selector"] == {"pool": "cpu"}
    assert c.PortalKubeSpawner.kube_site["cpu_tolerations"] == [
        {"key": "pool", "operator": "Exists"}
    ]


def test_culler_settings_reach_the_culler(settings):
    from aitestbed.hub.setup import culler_command

    assert culler_command(settings)[3:] == ["--timeout=3600", "--concurrency=10"]
    site = dataclasses.replace(
        settings.site, idle_cull_every_seconds=120, idle_cull_concurrency=4, idle_cull_users=True
    )
    tuned = dataclasses.replace(settings, site=site)
    assert culler_command(tuned)[3:] == [
        "--timeout=3600",
        "--concurrency=4",
        "--cull-every=120",
        "--cull-users=True",
    ]
    c = Config()
    setup_portal(c, tuned)
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler")
    assert role["scopes"][-1] == "admin:users"
    c = Config()
    setup_portal(c, settings)
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler")
    assert "admin:users" not in role["scopes"]


def test_culler_settings_load_from_the_file(tmp_path):
    import yaml

    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"] |= {"idle_cull_every_seconds": 300, "idle_cull_users": True}
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = load_settings(path)
    assert (loaded.site.idle_cull_every_seconds, loaded.site.idle_cull_users) == (300, True)


def test_sessions_get_the_sites_extra_environment_but_never_the_portals_own(tmp_path):
    settings = _kube_settings(tmp_path, extra_environment={"PIP_INDEX_URL": "https://pypi.example"})
    c = Config()
    setup_portal(c, settings)
    assert c.Spawner.environment == {
        "PIP_INDEX_URL": "https://pypi.example",
        "AITESTBED_PORTAL_URL": settings.kubernetes.session_portal_url,
    }


@pytest.mark.parametrize("name", ["AITESTBED_PORTAL_URL", "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"])
def test_the_portals_own_variables_cannot_be_set_for_sessions(tmp_path, name):
    import yaml

    doc = yaml.safe_load(PRODUCTION_SETTINGS.read_text())
    doc["kubernetes"]["extra_environment"] = {name: "x"}
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    assert "kubernetes.extra_environment" in str(refused.value)
