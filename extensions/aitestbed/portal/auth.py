"""Who is calling the portal: JupyterHub tokens and the hub's OAuth.

API clients (the notebook package, scripts) send a hub token in ``Authorization: token
<t>`` (or ``Bearer``). Browsers log in once through the hub's OAuth flow and then carry the
token in an HttpOnly cookie; the cookie is honoured for safe (GET/HEAD) requests only, so a
forged cross-site form cannot change anything.

A token is accepted only if the hub says it carries ``access:services!service=<portal>``
(JupyterHub's own rule for services). The hub caches nothing here that it did not say.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request

TOKEN_COOKIE = "aitestbed-portal-token"  # noqa: S105 - a cookie name, not a secret
STATE_COOKIE = "aitestbed-portal-oauth-state"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Identity:
    """A caller the hub vouched for."""

    name: str
    hub_admin: bool
    scopes: frozenset[str]


TokenResolver = Callable[[str], Awaitable[dict[str, Any] | None]]


def token_from_header(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


class HubIdentity:
    """Resolves hub tokens to identities and runs the OAuth login for pages.

    ``hub_auth`` is a :class:`jupyterhub.services.auth.HubOAuth` configured from the
    environment the hub gives a managed service.
    """

    def __init__(self, hub_auth: Any) -> None:
        self.hub_auth = hub_auth

    async def resolve(self, token: str) -> Identity | None:
        # No cache here: the portal's own (token_cache) bounds its size and lifetime.
        model = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
        if not model or model.get("kind", "user") != "user":
            return None
        if not self.hub_auth.check_scopes(self.hub_auth.access_scopes, model):
            return None
        return Identity(
            name=model["name"],
            hub_admin=bool(model.get("admin")),
            scopes=frozenset(model.get("scopes", ())),
        )

    def authorize_redirect(self, next_url: str) -> tuple[str, str]:
        """The hub URL to send a browser to, and the state to keep in a cookie."""
        state = secrets.token_urlsafe(24)
        query = urlencode(
            {
                "client_id": self.hub_auth.oauth_client_id,
                "redirect_uri": self.hub_auth.oauth_redirect_uri,
                "response_type": "code",
                "state": f"{state}:{next_url}",
            }
        )
        return f"{self.hub_auth.oauth_authorization_url}?{query}", state

    async def token_for_code(self, code: str) -> str:
        return await self.hub_auth.token_for_code(code, sync=False)


async def identify(request: Request) -> Identity:
    """FastAPI dependency: the calling identity, or 401/403 with the reason."""
    resolver: HubIdentity = request.app.state.identity
    token = token_from_header(request)
    if token is None and request.method in SAFE_METHODS:
        token = request.cookies.get(TOKEN_COOKIE)
    if token is None:
        raise HTTPException(
            401,
            "Authentication required: send your JupyterHub token as 'Authorization: token <t>'.",
        )
    identity = await resolver.resolve(token)
    if identity is None:
        raise HTTPException(
            403, "This token is not valid for the portal: it is unknown, expired or lacks access."
        )
    return identity
