"""Single sign-on with OpenID Connect: OAuthenticator's GenericOAuthenticator, wired from the
site settings (``authentication.kind: oidc``), and the mapping from the provider's answer
to access in the portal.

Flow of one login:

1. authorization-code flow with PKCE against the provider (OAuthenticator);
2. :func:`grants_for` turns the userinfo (groups and other claims) into :class:`Grants`
   using the settings' ``oidc.mapping`` rules: a pure function, tested alone;
3. the grants decide whether the user may log in (refused users see
   ``oidc.refused_message``), whether they are an operator (JupyterHub admin) and which
   JupyterHub groups they are in (``manage_groups``: replaced at every login); a user whose
   cluster account (``jobs.user_mapping``) is a system account (denied name, UID below
   ``min_uid``) is refused with a sentence naming the account;
4. after the login is allowed, the project memberships and the instructor flag go to the
   portal over its internal API (``PUT api/internal/users/<name>/sso-grants``, through
   :class:`aitestbed.hub.portal_client.HubPortalClient`); what the provider no longer
   grants is removed there too. If the portal does not answer, the login fails with a
   sentence saying so, rather than letting someone in with stale access.

Tokens are kept in the encrypted ``auth_state`` and checked again with the provider when
older than ``refresh_age_seconds`` (the access token is refreshed when it expired; a user
the mapping no longer allows must log in again, and is then refused). Logout also ends the
provider session (RP-initiated logout with ``id_token_hint``).
"""

from __future__ import annotations

import json
import os
import pwd
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Any as AnyTrait
from traitlets import Float, Unicode

from aitestbed.hub.oidc_handlers import (
    SIGN_IN_FAILED,
    SIGN_IN_UNAVAILABLE,
    START_AGAIN,
    UNAVAILABLE,
    PortalCallbackHandler,
    PortalLoginHandler,
)
from aitestbed.hub.portal_client import PortalRefused, PortalUnavailable, shared_client
from aitestbed.hub.provider_outage import ProviderOutage, provider_reachable, provider_unreachable
from aitestbed.policy.cluster_accounts import check_cluster_account
from aitestbed.settings import Jobs, Oidc, OidcMapping, OidcMatch, Settings, SettingsError

GRANTS_KEY = "aitestbed_grants"
PORTAL_UNAVAILABLE = (
    "The portal service did not answer, so your project access cannot be updated; "
    "try to log in again in a minute."
)
ROLE_RANK = {"member": 0, "manager": 1}


# --- pure mapping -------------------------------------------------------------------------


def provider_groups(userinfo: Mapping[str, Any], groups_claim: str) -> frozenset[str]:
    """The user's groups from the provider's answer; a missing or odd claim means none."""
    value = userinfo.get(groups_claim)
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, list | tuple):
        return frozenset(str(item) for item in value if isinstance(item, str | int))
    return frozenset()


def matches(condition: OidcMatch, userinfo: Mapping[str, Any], groups: frozenset[str]) -> bool:
    """Whether one mapping condition holds for this user."""
    if condition.group is not None:
        return condition.group in groups
    if condition.claim is None:
        return False
    value = userinfo.get(condition.claim)
    values = value if isinstance(value, list | tuple) else [value]
    # Same type as well as equal: True == 1 in Python, but a claim 1 is not the value true.
    return any(v == condition.value and type(v) is type(condition.value) for v in values)


def _any(conditions: Iterable[OidcMatch], userinfo, groups) -> bool:
    return any(matches(c, userinfo, groups) for c in conditions)


@dataclass(frozen=True)
class Grants:
    """What the portal makes of one login."""

    allowed: bool
    operator: bool
    instructor: bool
    hub_groups: tuple[str, ...]
    projects: tuple[tuple[str, str], ...]  # (project slug, role), sorted by slug

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Grants:
        return cls(
            allowed=bool(data["allowed"]),
            operator=bool(data["operator"]),
            instructor=bool(data["instructor"]),
            hub_groups=tuple(data["hub_groups"]),
            projects=tuple((slug, role) for slug, role in data["projects"]),
        )


def grants_for(userinfo: Mapping[str, Any], mapping: OidcMapping, groups_claim: str) -> Grants:
    """Apply the settings' mapping rules to the provider's userinfo.

    - allowed: no ``allowed`` rules, or any of them matches, or the user is an operator;
    - hub groups: every matching ``hub_groups`` rule, without duplicates, sorted;
    - projects: every matching ``projects`` rule; the highest role per project wins.
    """
    groups = provider_groups(userinfo, groups_claim)
    operator = _any(mapping.operators, userinfo, groups)
    allowed = operator or not mapping.allowed or _any(mapping.allowed, userinfo, groups)
    hub_groups = sorted(
        {r.hub_group for r in mapping.hub_groups if matches(r.match, userinfo, groups)}
    )
    roles: dict[str, str] = {}
    for rule in mapping.projects:
        if matches(rule.match, userinfo, groups):
            current = roles.get(rule.project)
            if current is None or ROLE_RANK[rule.role] > ROLE_RANK[current]:
                roles[rule.project] = rule.role
    return Grants(
        allowed=allowed,
        operator=operator,
        instructor=_any(mapping.instructors, userinfo, groups),
        hub_groups=tuple(hub_groups),
        projects=tuple(sorted(roles.items())),
    )


@dataclass(frozen=True)
class Endpoints:
    authorize_url: str
    token_url: str
    userinfo_url: str
    end_session_url: str | None


def resolve_endpoints(oidc: Oidc, discovery: Mapping[str, Any] | None) -> Endpoints:
    """Endpoints given in the settings win over the discovery document's."""
    found = discovery or {}

    def pick(setting: str | None, key: str) -> str | None:
        return setting or found.get(key)

    endpoints = {
        "authorize_url": pick(oidc.authorize_url, "authorization_endpoint"),
        "token_url": pick(oidc.token_url, "token_endpoint"),
        "userinfo_url": pick(oidc.userinfo_url, "userinfo_endpoint"),
    }
    missing = [name for name, value in endpoints.items() if not value]
    if missing:
        raise SettingsError(
            f"authentication.oidc: the provider's discovery document names no {missing[0]}; "
            "set it in the settings."
        )
    return Endpoints(
        **endpoints, end_session_url=pick(oidc.end_session_url, "end_session_endpoint")
    )


def provider_logout_url(
    end_session_url: str, *, client_id: str, post_logout_redirect_uri: str, id_token: str | None
) -> str:
    """The RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0)."""
    params = {"client_id": client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token:
        params["id_token_hint"] = id_token
    separator = "&" if "?" in end_session_url else "?"
    return f"{end_session_url}{separator}{urlencode(params)}"


CALLBACK_PATH = "/hub/oauth_callback"


def public_base_url(oidc: Oidc, bind_url: str) -> str | None:
    """The portal's public URL as the provider sees it, or None when it cannot be known here.

    From ``callback_url`` when set; else from ``site.bind_url`` unless that is a wildcard
    address (0.0.0.0 behind a reverse proxy), where only the request knows the public host.
    """
    if oidc.callback_url:
        if oidc.callback_url.endswith(CALLBACK_PATH):
            return oidc.callback_url.removesuffix(CALLBACK_PATH)
        return None
    host = urlparse(bind_url).hostname or ""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - recognising a wildcard, not binding
        return None
    return bind_url.rstrip("/")


# --- edges: discovery, secret -------------------------------------------------------------


def fetch_discovery(issuer: str, *, timeout: float = 10) -> dict[str, Any]:
    """The provider's ``.well-known/openid-configuration`` (read once, at hub start)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - https?:// only (schema)
            document = json.load(response)
    except (OSError, ValueError) as error:
        raise SettingsError(
            f"authentication.oidc.issuer: cannot read {url} ({error}); check the issuer URL "
            "and that the provider is reachable from the hub."
        ) from None
    if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise SettingsError(
            f"authentication.oidc.issuer: {url} names issuer {document.get('issuer')!r}, "
            f"not {issuer!r}; use the provider's exact issuer URL."
        )
    return document


def read_client_secret(oidc: Oidc) -> str:
    """The client secret from its file, else from its environment variable."""
    if oidc.client_secret_file is not None:
        try:
            secret = oidc.client_secret_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SettingsError(
                f"authentication.oidc.client_secret_file: cannot read "
                f"{oidc.client_secret_file} ({error.strerror or error})."
            ) from None
        where = str(oidc.client_secret_file)
    else:
        secret = os.environ.get(oidc.client_secret_env, "").strip()
        where = f"${oidc.client_secret_env}"
    if not secret:
        raise SettingsError(
            f"authentication.oidc: the client secret is empty or missing ({where}); set "
            "client_secret_file or the environment variable client_secret_env names."
        )
    return secret


def cluster_account_uid(jobs: Jobs, account: str) -> int | None:
    """The account's UID when this host resolves cluster users (Slurm, user_check: passwd)."""
    if jobs.backend != "slurm" or jobs.slurm is None or jobs.slurm.user_check != "passwd":
        return None
    try:
        return pwd.getpwnam(account).pw_uid
    except KeyError:
        return None  # not created yet: the portal refuses its jobs until it exists


# --- the authenticator --------------------------------------------------------------------


class ProviderLogoutHandler(OAuthLogoutHandler):
    """Logout that also ends the session at the provider."""

    _id_token: str | None = None

    async def handle_logout(self):
        await super().handle_logout()
        user = self.current_user
        if user is not None:
            state = await user.get_auth_state() or {}
            self._id_token = state.get("id_token")

    async def render_logout_page(self):
        auth: PortalOIDCAuthenticator = self.authenticator
        if auth.end_session_url and not await provider_reachable(auth.end_session_url):
            # The hub session is already over; the provider's can only end once it is back.
            self.log.warning("Logout: the provider does not answer; ended the portal session only.")
            self.redirect(self.settings["login_url"])
            return
        if auth.end_session_url:
            self.redirect(
                provider_logout_url(
                    auth.end_session_url,
                    client_id=auth.client_id,
                    post_logout_redirect_uri=auth.post_logout_redirect_url
                    or f"{self.request.protocol}://{self.request.host}{self.settings['login_url']}",
                    id_token=self._id_token,
                )
            )
            return
        await super().render_logout_page()


class PortalOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator whose access decisions come from the portal's mapping rules."""

    login_handler = PortalLoginHandler
    callback_handler = PortalCallbackHandler
    logout_handler = ProviderLogoutHandler

    provider_probe_url = Unicode(
        "",
        help="""A URL of the provider that answers when it is up (the discovery document).
        The sign-in checks it before sending the browser to the provider, so an outage shows
        a page that says so. Empty: no check.""",
    ).tag(config=True)

    provider_outage_grace = Float(
        1800.0,
        help="""Seconds a signed-in user keeps the hub session while the provider cannot be
        reached to recheck their tokens; afterwards they must sign in again.""",
    ).tag(config=True)

    _outage: ProviderOutage | None = None

    @property
    def provider_outage(self) -> ProviderOutage:
        if self._outage is None:
            self._outage = ProviderOutage(self.provider_outage_grace, logger=self.log)
        return self._outage

    mapping = AnyTrait(
        OidcMapping(),
        help="""Mapping rules (an ``aitestbed.settings.OidcMapping``) from provider groups and
        claims to login permission, operator/instructor roles, JupyterHub groups and portal
        project memberships. Filled from ``authentication.oidc.mapping`` in the settings.
        """,
    ).tag(config=True)

    groups_claim = Unicode(
        "groups",
        help="Userinfo claim with the user's provider groups, e.g. 'groups'.",
    ).tag(config=True)

    portal_url = Unicode(
        "",
        help="""Base URL of the portal service as the hub reaches it, e.g.
        http://127.0.0.1:8090/services/portal/. Project memberships and the instructor flag
        are sent there after each allowed login. Empty: not sent (unit tests).
        """,
    ).tag(config=True)

    portal_token = Unicode(
        "", help="The portal service's API token (the hub's credential for its internal API)."
    ).tag(config=True)

    jobs_settings = AnyTrait(
        None,
        help="""The settings' ``jobs`` section (an ``aitestbed.settings.Jobs``): the user
        mapping to cluster accounts and its rules (``min_uid``, ``denied_accounts``). A user
        whose account breaks them is refused at login. None: no check (unit tests).
        """,
    ).tag(config=True)

    end_session_url = Unicode(
        "",
        help="""The provider's end-session endpoint. When set, logout redirects there (with
        the id token as hint) so the provider session ends too. Empty: local logout only.
        """,
    ).tag(config=True)

    post_logout_redirect_url = Unicode(
        "",
        help="""Where the provider sends the browser after logout, e.g.
        https://portal.example.org/hub/login. Empty: the hub's login page on the host the
        logout request came to.""",
    ).tag(config=True)

    def check_allow_config(self):
        """Who may log in is the mapping's ``allowed`` rules (check_allowed), which
        JupyterHub's own check cannot see: say what they mean instead of its warning."""
        if self.mapping.allowed:
            self.log.info(
                "Single sign-on: %d allowed rule(s) decide who may log in.",
                len(self.mapping.allowed),
            )
        else:
            self.log.info(
                "Single sign-on: anyone the provider authenticates may log in "
                "(oidc.mapping.allowed is empty); projects decide who may start servers."
            )

    def _check_cluster_account(self, username: str) -> None:
        """Refuse the login of a user whose cluster account (the jobs' user mapping) is a
        system account; the portal checks again at every submission."""
        if self.jobs_settings is None:
            return
        account = self.jobs_settings.unix_user(username)
        decision = check_cluster_account(
            account,
            cluster_account_uid(self.jobs_settings, account),
            min_uid=self.jobs_settings.account_min_uid,
            denied=self.jobs_settings.denied_accounts,
        )
        if not decision.allowed:
            self.log.warning(
                "Single sign-on: %s maps to the cluster account %r (%s); refused.",
                username,
                account,
                decision.code,
            )
            raise web.HTTPError(403, "%s", decision.reason)

    def _grants(self, auth_state: Mapping[str, Any]) -> Grants:
        userinfo = auth_state.get(self.user_auth_state_key) or {}
        return grants_for(userinfo, self.mapping, self.groups_claim)

    async def update_auth_model(self, auth_model):
        grants = self._grants(auth_model["auth_state"])
        auth_model["auth_state"][GRANTS_KEY] = grants.as_json()
        # Operator follows the provider both ways; site operators (admin_users) stay admins.
        auth_model["admin"] = grants.operator or auth_model["name"] in self.admin_users
        return auth_model

    async def get_user_groups(self, auth_state):
        return set(Grants.from_json(auth_state[GRANTS_KEY]).hub_groups)

    async def check_allowed(self, username, auth_model):
        if auth_model is None:
            return True
        self._check_cluster_account(username)
        if username in self.admin_users:
            return True
        grants = Grants.from_json(auth_model["auth_state"][GRANTS_KEY])
        if not grants.allowed:
            self.log.warning("Single sign-on: %s is not in an allowed group; refused.", username)
        return grants.allowed

    async def run_post_auth_hook(self, handler, auth_model):
        # The portal first, so that the site's post-login steps see the new memberships.
        await self._sync_portal(auth_model)
        return await super().run_post_auth_hook(handler, auth_model)

    async def authenticate(self, handler, data=None, **kwargs):
        """The token exchange at the provider; its failures become sentences, not a 500."""
        try:
            auth_model = await super().authenticate(handler, data, **kwargs)
        except web.HTTPError:
            raise
        except Exception as error:
            if provider_unreachable(error):
                self.log.warning("Sign-in: the provider does not answer: %s", error)
                raise web.HTTPError(503, UNAVAILABLE, reason=SIGN_IN_UNAVAILABLE) from None
            if isinstance(error, HTTPClientError):
                self.log.warning("Sign-in: the provider refused the token exchange: %s", error)
                raise web.HTTPError(
                    400,
                    "The sign-in service did not accept this sign-in (it may have expired). "
                    + START_AGAIN,
                    reason=SIGN_IN_FAILED,
                ) from None
            raise
        self.provider_outage.answered()
        return auth_model

    async def refresh_user(self, user, handler=None, **kwargs):
        outage = self.provider_outage
        if not outage.should_ask_provider():
            return self._during_outage(user, handler)
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        except Exception as error:
            if not provider_unreachable(error):
                raise
            outage.failed(error)
            return self._during_outage(user, handler)
        outage.answered()
        if not isinstance(refreshed, dict):
            return refreshed
        if not await self.check_allowed(user.name, refreshed):
            _mark_refusal(handler)
            return False  # log in again, and be refused there with the clear message
        await self._sync_portal(refreshed)
        return refreshed

    def _during_outage(self, user, handler) -> bool:
        """The provider is down: keep the session within the grace, then ask to sign in."""
        if self.provider_outage.keep_session():
            return True
        self.log.info("Sign-in service still down: %s must sign in again.", user.name)
        _mark_refusal(handler)
        return False

    async def _sync_portal(self, auth_model) -> None:
        if not self.portal_url:
            return
        grants = Grants.from_json(auth_model["auth_state"][GRANTS_KEY])
        name = auth_model["name"]
        portal = shared_client(self.portal_url, self.portal_token)
        try:
            changes = await portal.apply_sso_grants(
                name, instructor=grants.instructor, projects=grants.projects
            )
        except (PortalUnavailable, PortalRefused) as error:
            self.log.error("Single sign-on: could not update %s in the portal: %s", name, error)
            raise web.HTTPError(503, PORTAL_UNAVAILABLE) from None
        course_groups = changes.pop("course_groups", [])
        if any(changes.values()):
            self.log.info("Single sign-on: project memberships of %s: %s", name, changes)
        if self.manage_groups and auth_model.get("groups") is not None:
            # The authenticator sets the user's hub groups at each login: the provider's,
            # plus the groups of the user's courses (their staff's hub rights filter on them).
            auth_model["groups"] = sorted(set(auth_model["groups"]) | set(course_groups))


def _mark_refusal(handler) -> None:
    # JupyterHub 6.1 reads this attribute on a failed refresh of a cookie-authenticated
    # request before it is ever set; without it the refusal surfaces as an error log.
    if handler is not None and not hasattr(handler, "_token_authenticated"):
        handler._token_authenticated = False


def configure_oidc(c: Any, settings: Settings) -> None:
    """Set JupyterHub config ``c`` for single sign-on as ``authentication.oidc`` describes."""
    oidc = settings.authentication.oidc
    if oidc is None:  # the settings check refuses this; kept for direct callers
        raise SettingsError("authentication.oidc is required when kind is oidc.")
    from aitestbed.hub.setup import portal_api_token, portal_internal_url, read_or_create_secret

    discovery = fetch_discovery(oidc.issuer) if oidc.issuer else None
    endpoints = resolve_endpoints(oidc, discovery)
    public = public_base_url(oidc, settings.site.bind_url)
    state_dir = settings.site.state_dir

    c.JupyterHub.authenticator_class = "aitestbed.hub.oidc.PortalOIDCAuthenticator"
    auth = c.PortalOIDCAuthenticator
    auth.client_id = oidc.client_id
    auth.client_secret = read_client_secret(oidc)
    auth.authorize_url = endpoints.authorize_url
    auth.token_url = endpoints.token_url
    auth.userdata_url = endpoints.userinfo_url
    if oidc.callback_url or public:
        auth.oauth_callback_url = oidc.callback_url or f"{public}{CALLBACK_PATH}"
    # else: OAuthenticator builds the callback URL from each login request's own host.
    auth.scope = list(oidc.scopes)
    auth.username_claim = oidc.username_claim
    auth.enable_pkce = oidc.pkce
    auth.login_service = oidc.login_service
    auth.auto_login = oidc.auto_login
    auth.validate_server_cert = oidc.validate_server_cert
    auth.custom_403_message = oidc.refused_message
    auth.mapping = oidc.mapping
    auth.groups_claim = oidc.groups_claim
    auth.portal_url = portal_internal_url(settings)
    auth.portal_token = portal_api_token(settings)
    auth.jobs_settings = settings.jobs
    if oidc.end_provider_session and endpoints.end_session_url:
        auth.end_session_url = endpoints.end_session_url
        auth.post_logout_redirect_url = f"{public}/hub/login" if public else ""
    auth.admin_users = set(settings.site.operators)
    auth.manage_groups = True
    auth.enable_auth_state = True
    auth.auth_refresh_age = oidc.refresh_age_seconds
    auth.provider_outage_grace = oidc.provider_outage_grace_seconds
    auth.provider_probe_url = (
        oidc.issuer.rstrip("/") + "/.well-known/openid-configuration"
        if oidc.issuer
        else endpoints.authorize_url
    )
    auth.refresh_pre_spawn = oidc.refresh_age_seconds > 0
    # auth_state holds the tokens: encrypted with $JUPYTERHUB_CRYPT_KEY, else a key kept in
    # the state directory (mode 600), created on first start.
    if not os.environ.get("JUPYTERHUB_CRYPT_KEY"):
        c.CryptKeeper.keys = [read_or_create_secret(state_dir / "auth_state_crypt_key")]
