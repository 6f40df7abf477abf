"""Client of the portal API for code running in a user's session.

It finds the portal and the credentials in the environment JupyterHub gives every session:

- ``$AITESTBED_PORTAL_URL``: the portal service (set by the hub); when missing it is
  derived from ``$JUPYTERHUB_API_URL`` (``.../hub/api`` -> ``.../services/portal/``);
- ``$JUPYTERHUB_API_TOKEN``: the session's own token, which the hub lets reach the portal.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

import requests

PORTAL_URL_ENV = "AITESTBED_PORTAL_URL"
DEFAULT_TIMEOUT = 10.0


class PortalError(RuntimeError):
    """The portal could not be reached or refused the request; the message says why.

    ``detail`` is the portal's own message and ``code`` its machine-readable reason, where
    the answer carried them (``{"detail": {"code": ..., "message": ...}}``).
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail if detail is not None else message


def discover_portal_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    url = env.get(PORTAL_URL_ENV)
    if url:
        return url if url.endswith("/") else url + "/"
    api = env.get("JUPYTERHUB_API_URL", "").rstrip("/")
    if api.endswith("/hub/api"):
        return api.removesuffix("hub/api") + "services/portal/"
    raise PortalError(
        f"Cannot find the portal: set {PORTAL_URL_ENV} (it is set in portal sessions)."
    )


class PortalClient:
    """Talks to the portal API with the session's token."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url if url is not None else discover_portal_url()
        if not self.url.endswith("/"):
            self.url += "/"
        self.token = token if token is not None else os.environ.get("JUPYTERHUB_API_TOKEN")
        if not self.token:
            raise PortalError("No token: JUPYTERHUB_API_TOKEN is not set in this environment.")
        self.timeout = timeout
        self.http = session or requests.Session()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self.http.request(
                method,
                self.url + path,
                headers={"Authorization": f"token {self.token}", **(headers or {})},
                json=json,
                params=params,
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise PortalError(f"The portal at {self.url} cannot be reached: {error}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:200]
            code = None
            if isinstance(detail, dict) and "message" in detail:
                code, detail = detail.get("code"), str(detail["message"])
            raise PortalError(
                f"The portal refused {path} ({response.status_code}): {detail}",
                status=response.status_code,
                code=code,
                detail=detail if isinstance(detail, str) else str(detail),
            )
        return response.json()

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params or None)

    def _post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self._request("POST", path, json=body, headers=headers)

    def health(self) -> dict[str, Any]:
        return self._get("api/health")

    def me(self) -> dict[str, Any]:
        """Your name, whether you are an operator, and your projects with allocations."""
        return self._get("api/me")

    def projects(self) -> list[dict[str, Any]]:
        return self._get("api/projects")

    def project(self, slug: str) -> dict[str, Any]:
        return self._get(f"api/projects/{requests.utils.quote(slug, safe='')}")

    def usage(self) -> list[dict[str, Any]]:
        """Your projects' GPU-hours used and GPUs in use right now."""
        return self._get("api/usage")

    def courses(self) -> list[dict[str, Any]]:
        """Your courses, with the staff's message to the class (``message``)."""
        return self._get("api/courses")

    # -- jobs (the friendlier API is aitestbed.jobs) --------------------------------------

    def submit_job(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._post("api/jobs", body, headers)

    def jobs(self) -> list[dict[str, Any]]:
        return self._get("api/jobs")

    def job(self, job_id: int) -> dict[str, Any]:
        return self._get(f"api/jobs/{int(job_id)}")

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        return self._post(f"api/jobs/{int(job_id)}/cancel")

    def job_logs(self, job_id: int, tail_bytes: int = 65536) -> dict[str, Any]:
        return self._get(f"api/jobs/{int(job_id)}/logs", tail_bytes=tail_bytes)

    # -- datasets (the friendlier API is aitestbed.datasets) ------------------------------

    def datasets(
        self, q: str = "", tag: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"q": q, "limit": limit, "offset": offset}
        if tag:
            params["tag"] = tag
        return self._get("api/datasets", **params)

    def dataset(self, slug: str) -> dict[str, Any]:
        return self._get(f"api/datasets/{_segment(slug)}")

    def accept_dataset_terms(self, slug: str, version: str) -> dict[str, Any]:
        return self._post(f"api/datasets/{_segment(slug)}/terms", {"version": version})

    def dataset_files(self, slug: str, path: str = "") -> dict[str, Any]:
        return self._request("GET", f"api/datasets/{_segment(slug)}/files", params={"path": path})

    def dataset_preview(self, slug: str, path: str, rows: int = 20) -> dict[str, Any]:
        params = {"path": path, "rows": rows}
        return self._request("GET", f"api/datasets/{_segment(slug)}/preview", params=params)


def _segment(value: str) -> str:
    """One URL path segment: a slug can never reach another endpoint."""
    if str(value) in ("", ".", ".."):  # the URL library would resolve these away
        raise PortalError(f"{value!r} is not a dataset name.")
    return requests.utils.quote(str(value), safe="")


def allocation_elapsed(valid_from: str, valid_until: str, today: date | None = None) -> float:
    """Share of the allocation period that has passed, clamped to 0..1."""
    start, end = date.fromisoformat(valid_from), date.fromisoformat(valid_until)
    today = today or date.today()
    total = (end - start).days + 1
    return min(max(((today - start).days + 1) / total, 0.0), 1.0) if total > 0 else 1.0
