"""Single sign-on: the pure mapping from the provider's answer to access, the endpoint and
secret handling, and the authenticator's decisions (without a provider; the real flow is in
tests/oidc/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aitestbed.hub.oidc import (
    GRANTS_KEY,
    Grants,
    PortalOIDCAuthenticator,
    grants_for,
    matches,
    provider_groups,
    provider_logout_url,
    public_base_url,
    read_client_secret,
    resolve_endpoints,
)
from aitestbed.settings import (
    HubGroupRule,
    Oidc,
    OidcMapping,
    OidcMatch,
    ProjectRule,
    SettingsError,
)

MAPPING = OidcMapping(
    allowed=(OidcMatch(group="aitestbed-users"), OidcMatch(claim="org", value="acme")),
    operators=(OidcMatch(group="ops"),),
    instructors=(OidcMatch(group="teachers"),),
    hub_groups=(
        HubGroupRule(OidcMatch(group="gpu-users"), "gpu"),
        HubGroupRule(OidcMatch(group="gpu-admins"), "gpu"),
        HubGroupRule(OidcMatch(claim="email_verified", value=True), "verified"),
    ),
    projects=(
        ProjectRule(OidcMatch(group="acme"), "acme-vision", "member"),
        ProjectRule(OidcMatch(group="acme-leads"), "acme-vision", "manager"),
        ProjectRule(OidcMatch(claim="dept", value="nlp"), "uni-nlp", "member"),
    ),
)


def test_groups_claim_shapes():
    assert provider_groups({"groups": ["a", "b"]}, "groups") == {"a", "b"}
    assert provider_groups({"groups": "a"}, "groups") == {"a"}
    assert provider_groups({"groups": None}, "groups") == set()
    assert provider_groups({"groups": {"a": 1}}, "groups") == set()
    assert provider_groups({}, "groups") == set()
    assert provider_groups({"roles": ["x", None, 3]}, "roles") == {"x", "3"}


def test_conditions():
    info = {"groups": ["g"], "org": "acme", "tags": ["x", "y"], "email_verified": "true"}
    groups = provider_groups(info, "groups")
    assert matches(OidcMatch(group="g"), info, groups)
    assert not matches(OidcMatch(group="G"), info, groups)  # exact, case-sensitive
    assert matches(OidcMatch(claim="org", value="acme"), info, groups)
    assert not matches(OidcMatch(claim="org", value="acm"), info, groups)
    assert matches(OidcMatch(claim="tags", value="y"), info, groups)
    assert not matches(OidcMatch(claim="missing", value="y"), info, groups)
    # A string "true" is not the boolean true: no accidental grants from sloppy claims.
    assert not matches(OidcMatch(claim="email_verified", value=True), info, groups)
    assert not matches(OidcMatch(), info, groups)
    numbers = {"levels": [1, 2], "level": 1}
    assert matches(OidcMatch(claim="levels", value=2), numbers, frozenset())
    assert not matches(OidcMatch(claim="levels", value=True), numbers, frozenset())
    assert not matches(OidcMatch(claim="level", value=True), numbers, frozenset())


def test_member_of_allowed_group_gets_groups_roles_and_projects():
    grants = grants_for(
        {
            "groups": ["aitestbed-users", "gpu-users", "gpu-admins", "acme", "acme-leads"],
            "email_verified": True,
            "dept": "nlp",
        },
        MAPPING,
        "groups",
    )
    assert grants == Grants(
        allowed=True,
        operator=False,
        instructor=False,
        hub_groups=("gpu", "verified"),
        projects=(("acme-vision", "manager"), ("uni-nlp", "member")),  # highest role wins
    )


def test_allowed_by_claim_and_refused_otherwise():
    assert grants_for({"org": "acme"}, MAPPING, "groups").allowed
    refused = grants_for({"groups": ["acme"], "org": "other"}, MAPPING, "groups")
    assert refused.allowed is False
    assert refused.projects == (("acme-vision", "member"),)  # computed, but never applied


def test_operator_is_always_allowed_and_instructor_is_separate():
    grants = grants_for({"groups": ["ops", "teachers"]}, MAPPING, "groups")
    assert (grants.allowed, grants.operator, grants.instructor) == (True, True, True)
    assert grants.projects == () and grants.hub_groups == ()


def test_no_allowed_rules_means_everyone_the_provider_vouches_for():
    assert grants_for({}, OidcMapping(), "groups") == Grants(True, False, False, (), ())


def test_grants_round_trip_through_auth_state_json():
    grants = grants_for({"groups": ["aitestbed-users", "acme"]}, MAPPING, "groups")
    import json

    assert Grants.from_json(json.loads(json.dumps(grants.as_json()))) == grants


def test_endpoints_from_discovery_and_settings():
    discovery = {
        "authorization_endpoint": "https://idp/auth",
        "token_endpoint": "https://idp/token",
        "userinfo_endpoint": "https://idp/userinfo",
        "end_session_endpoint": "https://idp/logout",
    }
    found = resolve_endpoints(Oidc(client_id="c", issuer="https://idp"), discovery)
    assert (found.authorize_url, found.end_session_url) == (
        "https://idp/auth",
        "https://idp/logout",
    )
    mine = resolve_endpoints(
        Oidc(client_id="c", issuer="https://idp", token_url="https://proxy/token"), discovery
    )
    assert mine.token_url == "https://proxy/token"
    with pytest.raises(SettingsError, match="names no userinfo_url"):
        resolve_endpoints(
            Oidc(client_id="c", issuer="https://idp"), {**discovery, "userinfo_endpoint": ""}
        )


def test_provider_logout_url():
    url = provider_logout_url(
        "https://idp/logout",
        client_id="portal",
        post_logout_redirect_uri="https://portal/hub/login",
        id_token="abc",
    )
    assert url == (
        "https://idp/logout?client_id=portal&post_logout_redirect_uri="
        "https%3A%2F%2Fportal%2Fhub%2Flogin&id_token_hint=abc"
    )
    assert "id_token_hint" not in provider_logout_url(
        "https://idp/logout?x=1", client_id="p", post_logout_redirect_uri="u", id_token=None
    )


def test_client_secret_from_file_or_environment(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    assert read_client_secret(Oidc(client_id="c", client_secret_file=secret)) == "from-file"
    monkeypatch.setenv("MY_SECRET", "from-env")
    assert read_client_secret(Oidc(client_id="c", client_secret_env="MY_SECRET")) == "from-env"
    monkeypatch.delenv("MY_SECRET")
    with pytest.raises(SettingsError, match=r"\$MY_SECRET") as raised:
        read_client_secret(Oidc(client_id="c", client_secret_env="MY_SECRET"))
    assert "from-env" not in str(raised.value)
    with pytest.raises(SettingsError, match="cannot read"):
        read_client_secret(Oidc(client_id="c", client_secret_file=tmp_path / "missing"))


def _auth_model(name, userinfo, authenticator):
    return {
        "name": name,
        "admin": None,
        "auth_state": {authenticator.user_auth_state_key: userinfo},
    }


async def test_authenticator_applies_the_mapping():
    auth = PortalOIDCAuthenticator(mapping=MAPPING, admin_users={"root-op"})
    model = await auth.update_auth_model(
        _auth_model("dana", {"groups": ["aitestbed-users", "gpu-users", "ops"]}, auth)
    )
    assert model["admin"] is True
    assert await auth.get_user_groups(model["auth_state"]) == {"gpu"}
    assert await auth.check_allowed("dana", model)

    outsider = await auth.update_auth_model(_auth_model("eve", {"groups": ["x"]}, auth))
    assert outsider["admin"] is False  # operator status follows the provider both ways
    assert not await auth.check_allowed("eve", outsider)
    assert outsider["auth_state"][GRANTS_KEY]["allowed"] is False

    # Site operators (admin_users) stay admins and allowed whatever the provider says.
    site_op = await auth.update_auth_model(_auth_model("root-op", {}, auth))
    assert site_op["admin"] is True and await auth.check_allowed("root-op", site_op)


def test_public_url_for_callback_and_logout():
    plain = Oidc(client_id="c")
    assert public_base_url(plain, "http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert public_base_url(plain, "http://0.0.0.0:8000") is None  # only requests know it
    behind_proxy = Oidc(client_id="c", callback_url="https://portal.example.org/hub/oauth_callback")
    assert public_base_url(behind_proxy, "http://0.0.0.0:8000") == "https://portal.example.org"
    odd = Oidc(client_id="c", callback_url="https://portal.example.org/sso/cb")
    assert public_base_url(odd, "http://127.0.0.1:8000") is None


async def test_login_is_refused_for_a_system_cluster_account():
    from aitestbed.settings import Jobs, SlurmSettings
    from tornado import web

    slurm = SlurmSettings(rest_url="http://127.0.0.1:1", jwt_key_file=Path("/nonexistent"))
    jobs = Jobs(
        backend="slurm",
        slurm=slurm,
        user_overrides={"ops-bot": "bin"},
        denied_accounts=frozenset({"root", "slurm"}),
    )
    auth = PortalOIDCAuthenticator(mapping=MAPPING, admin_users={"root"}, jobs_settings=jobs)
    member = {"groups": ["aitestbed-users"]}
    dana = await auth.update_auth_model(_auth_model("dana", member, auth))
    assert await auth.check_allowed("dana", dana)  # no such account here: names only
    for name, reason in (
        ("root", "The cluster account 'root' is a system account that portal jobs may not use"),
        ("slurm", "The cluster account 'slurm' is a system account that portal jobs may not"),
        ("ops-bot", "The cluster account 'bin' has UID 2, below the smallest UID portal jobs"),
    ):
        model = await auth.update_auth_model(_auth_model(name, member, auth))
        with pytest.raises(web.HTTPError) as refused:
            await auth.check_allowed(name, model)  # site operators too: root stays root
        assert refused.value.status_code == 403
        message = refused.value.log_message % refused.value.args
        assert message.startswith(reason) and message.endswith(
            "; ask the operators to map you to a personal account."
        )
    # another template maps the same provider name to a personal account
    templated = PortalOIDCAuthenticator(
        mapping=MAPPING,
        jobs_settings=Jobs(backend="slurm", slurm=slurm, user_template="hpc-{name}"),
    )
    root = await templated.update_auth_model(_auth_model("root", member, templated))
    assert await templated.check_allowed("root", root)
