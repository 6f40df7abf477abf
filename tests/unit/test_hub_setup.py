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
    assert set(c.DemoAuthenticator.password_hashes) == {"alice", "bob", "carol", "olivia"}
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
    # The portal reads which servers run (to close stale usage records) and stops the
    # servers of users whose project access ended; nothing more (no admin:servers).
    assert roles["portal"] == {
        "name": "portal",
        "services": ["portal"],
        "scopes": ["list:users", "read:servers", "delete:servers"],
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
