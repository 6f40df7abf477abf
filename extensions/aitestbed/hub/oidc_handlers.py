"""The sign-in pages of single sign-on: every failure says what happened and what to do.

OAuthenticator's handlers answer a failed sign-in with its internal wording ("OAuth state
missing from cookies", "OAuth state mismatch") or, when the token exchange fails, a bare
"500 : Internal Server Error". These subclasses translate each failure into one sentence for
the person in front of the browser, in the hub's error page (``hub/templates/error.html``
adds the link back to the sign-in), and check that the provider answers before sending the
browser there, so an outage shows "the sign-in service is unavailable" rather than a
browser error page.
"""

from __future__ import annotations

from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler
from tornado import web

from aitestbed.hub.provider_outage import provider_reachable

UNAVAILABLE = (
    "The sign-in service is unavailable right now, so you cannot sign in; "
    "try again in a few minutes."
)
START_AGAIN = "Start the sign-in again from the login page."
# The page's heading (JupyterHub shows the reason there, else the whole message twice).
SIGN_IN_FAILED = "Sign-in failed"
SIGN_IN_UNAVAILABLE = "Sign-in service unavailable"
# OAuthenticator's own wording -> what the person can understand and do.
CALLBACK_MESSAGES = {
    "OAuth state missing from cookies": (
        "This sign-in expired or was opened in another browser or tab. " + START_AGAIN
    ),
    "OAuth state missing from URL": (
        "The sign-in service sent the browser back without its sign-in reference. " + START_AGAIN
    ),
    "OAuth state mismatch": (
        "This sign-in answer does not belong to the sign-in started in this browser "
        "(it may have been used already). " + START_AGAIN
    ),
    "OAuth callback made without a code": (
        "The sign-in service sent the browser back without a sign-in code. " + START_AGAIN
    ),
    "Missing code_verifier": (
        "This sign-in expired or was opened in another browser or tab. " + START_AGAIN
    ),
}


def friendly_callback_error(error: web.HTTPError) -> web.HTTPError:
    """The same status with a sentence for the user instead of OAuthenticator's wording."""
    message = error.log_message or ""
    if message in CALLBACK_MESSAGES:
        return web.HTTPError(error.status_code, CALLBACK_MESSAGES[message], reason=SIGN_IN_FAILED)
    if message.startswith("OAuth error: "):
        detail = message.removeprefix("OAuth error: ")[:200]
        return web.HTTPError(
            400,
            f"The sign-in service did not sign you in ({detail}). " + START_AGAIN,
            reason=SIGN_IN_FAILED,
        )
    return error


class PortalLoginHandler(OAuthLoginHandler):
    """Sends the browser to the provider only when the provider answers."""

    async def get(self):
        probe = self.authenticator.provider_probe_url
        if probe and not await provider_reachable(probe):
            self.log.warning("Sign-in refused: the provider does not answer at %s", probe)
            raise web.HTTPError(503, UNAVAILABLE, reason=SIGN_IN_UNAVAILABLE)
        return super().get()


class PortalCallbackHandler(OAuthCallbackHandler):
    """The provider's answer: any failure becomes a clear page with a way back."""

    async def get(self):
        try:
            await super().get()
        except web.HTTPError as error:
            raise friendly_callback_error(error) from None
