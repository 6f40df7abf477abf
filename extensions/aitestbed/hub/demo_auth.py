"""Demo login for the embedded default: users and PBKDF2 password hashes from the settings.

Only hashes are stored (``pbkdf2_sha256$<iterations>$<salt>$<hash>``, base64 parts); make
one with ``aitestbed-hash-password``. Unknown users cost as much time as known ones, so the
login form does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import getpass
import hashlib
import hmac
import secrets
import sys

from jupyterhub.auth import Authenticator
from traitlets import Dict, Unicode

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    encode = base64.b64encode
    return f"{ALGORITHM}${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed hash."""
    try:
        algorithm, iterations, salt, expected = stored.split("$")
        if algorithm != ALGORITHM:
            return False
        digest = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


@functools.cache
def decoy_hash(iterations: int = DEFAULT_ITERATIONS) -> str:
    """Checked for unknown names, so their cost matches a real check (made on first use)."""
    return hash_password(secrets.token_hex(8), iterations=iterations)


class DemoAuthenticator(Authenticator):
    """Username + password checked against hashes from the site settings."""

    password_hashes = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""Username -> password hash (pbkdf2_sha256$iterations$salt$hash).

        Example: {"alice": "pbkdf2_sha256$600000$...$..."}; filled from the site settings.
        """,
    ).tag(config=True)

    async def authenticate(self, handler, data):
        name = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        if len(password) > 1024:
            return None
        stored = self.password_hashes.get(name)
        ok = await asyncio.to_thread(verify_password, password, stored or decoy_hash())
        if stored and ok:
            return name
        self.log.warning("Failed demo login for %r", name[:64])
        return None


def hash_password_cli() -> int:
    """Print a hash for the settings file (reads the password without echo)."""
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Again: "):
        print("The passwords differ; nothing printed.", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0
