"""Small datasets for the mount and job tests: real folders, the embedded default's rules.

Same rules as ``hub_config/settings.yaml``: iris is public, wine is granted to uni-nlp,
digits to acme-vision with terms version "1". The demo users there: alice (acme-vision),
bob (acme-vision and uni-nlp), carol (no project).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aitestbed.portal import models
from sqlalchemy import select
from sqlalchemy.orm import Session

# The example settings' pseudonymized demo dataset; tests about the three datasets above
# leave it out (tests/unit/test_pseudonymized_demo.py and the safe-zone tests cover it).
PSEUDONYMIZED_DEMO = "patients-demo"


def without_pseudonymized_demo(doc: dict) -> dict:
    doc["datasets"] = [d for d in doc.get("datasets", []) if d["slug"] != PSEUDONYMIZED_DEMO]
    return doc


RULES = {
    "iris": {"visibility": "public"},
    "wine": {"visibility": "granted", "projects": ["uni-nlp"]},
    "digits": {
        "visibility": "granted",
        "projects": ["acme-vision"],
        "terms": {"version": "1", "text": "Do not try to identify the writers."},
    },
}


def write_dataset_folders(root: Path) -> dict[str, Path]:
    """One small folder per dataset, with a CSV whose first line names the dataset."""
    folders = {}
    for slug in RULES:
        folder = root / slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.csv").write_text(f"dataset,{slug}\n1,2\n", encoding="utf-8")
        folders[slug] = folder
    return folders


def dataset_section(storage: dict[str, dict]) -> list[dict]:
    """The settings' ``datasets`` section with ``storage`` per slug."""
    return [
        {"slug": slug, "title": slug.title(), "storage": storage[slug], **rule}
        for slug, rule in RULES.items()
        if slug in storage
    ]


def local_section(root: Path) -> list[dict]:
    folders = write_dataset_folders(root)
    return dataset_section({slug: {"kind": "local", "path": str(p)} for slug, p in folders.items()})


def accept_terms(session: Session, user: str, slug: str, version: str = "1") -> None:
    """Record an acceptance as the catalog API does (the API itself is tested elsewhere)."""
    user_id = session.scalar(select(models.User.id).where(models.User.name == user))
    dataset_id = session.scalar(select(models.Dataset.id).where(models.Dataset.slug == slug))
    session.add(
        models.TermsAcceptance(
            user_id=user_id,
            dataset_id=dataset_id,
            terms_version=version,
            accepted_at=datetime.now(UTC),
        )
    )


def audit_entries(session: Session, action: str) -> list[tuple[str, str, bool, str | None]]:
    """``(user, dataset, allowed, project)`` of every audit entry of ``action``, in order."""
    rows = session.scalars(
        select(models.DatasetAuditEntry)
        .where(models.DatasetAuditEntry.action == action)
        .order_by(models.DatasetAuditEntry.id)
    )
    return [(r.user, r.dataset, r.allowed, r.project) for r in rows]
