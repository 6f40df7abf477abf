"""Start the real OpenID Connect provider (npm oidc-provider, tests/oidc/provider.mjs).

The provider's users live in a JSON file the tests rewrite to change someone's groups at
the provider; the provider reads it at every login.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from tests.harness import REPO, free_port, wait_until

SCRIPT = Path(__file__).with_name("provider.mjs")
CLIENT_ID = "aitestbed-portal"


@dataclass
class Provider:
    issuer: str
    client_secret: str
    users_file: Path
    log_path: Path

    def set_user(self, name: str, password: str, groups: list[str], **claims) -> None:
        users = json.loads(self.users_file.read_text())
        users[name] = {
            "password": password,
            "claims": {
                "email": f"{name}@example.org",
                "email_verified": True,
                **claims,
                "groups": groups,
            },
        }
        self.users_file.write_text(json.dumps(users))

    config_path: Path | None = None
    process: subprocess.Popen | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> None:
        """Start the provider (again, on the same port; its sessions and tokens are new)."""
        assert self.config_path is not None
        mark = len(self.log())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["node", str(SCRIPT), str(self.config_path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process

        def ready():
            if process.poll() is not None:
                raise RuntimeError(f"the provider exited:\n{self.log()}")
            return "READY" in self.log()[mark:]

        wait_until(ready, timeout=30, what="the OIDC provider")

    def stop(self) -> None:
        """Stop the provider (an outage): nothing listens on its port until start()."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def node_available() -> bool:
    return shutil.which("node") is not None and (REPO / "node_modules" / "oidc-provider").exists()


@contextlib.contextmanager
def running_provider(
    workdir: Path, hub_url: str, client_secret: str, *, access_token_ttl: int = 3600
) -> Iterator[Provider]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    users_file = workdir / "users.json"
    users_file.write_text("{}")
    config = {
        "port": port,
        "client_id": CLIENT_ID,
        "client_secret": client_secret,
        "redirect_uris": [f"{hub_url}/hub/oauth_callback"],
        "post_logout_redirect_uris": [f"{hub_url}/hub/login"],
        "users_file": str(users_file),
        "access_token_ttl": access_token_ttl,
    }
    config_path = workdir / "provider.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / "provider.log"
    log_path.write_bytes(b"")
    provider = Provider(
        f"http://127.0.0.1:{port}", client_secret, users_file, log_path, config_path
    )
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()


def oidc_settings(provider: Provider, secret_file: Path, **oidc) -> dict:
    """The ``authentication`` section of a portal that logs in at ``provider``."""
    return {
        "kind": "oidc",
        "oidc": {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret_file": str(secret_file),
            "scopes": ["openid", "profile", "email", "groups"],
            "login_service": "Test SSO",
            "mapping": {
                "allowed": [{"group": "aitestbed-users"}],
                "operators": [{"group": "aitestbed-operators"}],
                "instructors": [{"group": "teachers"}],
                "hub_groups": [
                    {"group": "gpu-users", "hub_group": "gpu"},
                    {"claim": "email_verified", "value": True, "hub_group": "verified"},
                ],
                "projects": [
                    {"group": "acme-vision-users", "project": "acme-vision"},
                    {"group": "uni-nlp-leads", "project": "uni-nlp", "role": "manager"},
                ],
            },
            **oidc,
        },
    }


FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


def provider_login(
    hub_url: str, name: str, password: str, session: requests.Session | None = None
) -> tuple[requests.Session, requests.Response]:
    """The authorization-code flow as a browser does it: hub -> provider login form ->
    callback -> hub. Returns the session and the last response (redirects followed)."""
    session = session or requests.Session()
    page = session.get(f"{hub_url}/hub/oauth_login?next=/hub/", timeout=60)
    page.raise_for_status()
    if "/interaction/" not in page.url:  # still signed in at the provider
        return session, page
    action = FORM_ACTION.search(page.text)
    assert action, f"the provider shows its login form:\n{page.text[:500]}"
    response = session.post(
        urljoin(page.url, action.group(1)),
        data={"prompt": "login", "login": name, "password": password},
        timeout=120,
    )
    return session, response
