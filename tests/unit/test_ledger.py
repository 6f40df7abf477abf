"""The usage ledger: closes charged exactly once, the migration's backfill, and admission's
own refusal of a negative GPU count (a defect planted in the layers before it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from aitestbed.portal import ledger, models
from aitestbed.portal.auth import Identity
from aitestbed.portal.db import alembic_config, make_engine, migrate, session_factory, transaction
from aitestbed.portal.jobs import gateway as gateway_module
from aitestbed.portal.jobs.gateway import JobError
from aitestbed.portal.jobs.local import LocalBackend
from aitestbed.portal.usage import usage_by_project
from alembic import command
from sqlalchemy import func, select, text

from tests.jobs_support import make_app, write_settings
from tests.ledger_support import recomputed_usage

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def gateway(tmp_path, settings_doc, monkeypatch, database_url):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["jobs"]["partitions"].append(
        {"name": "gpu", "gpus_per_node": 4, "max_nodes": 2, "max_time_minutes": 600}
    )
    (tmp_path / "state" / "homes" / "alice").mkdir(parents=True)
    path = write_settings(tmp_path / "settings.yaml", settings_doc)
    backend = LocalBackend(tmp_path / "state" / "jobs")
    _, gateway, engine = make_app(path, backend, ["alice"])
    yield gateway
    for job_dir in (tmp_path / "state" / "jobs").glob("*"):
        backend.cancel(job_dir.name, "")
    engine.dispose()


def _ids(session) -> tuple[int, int]:
    project = session.scalar(select(models.Project.id).where(models.Project.slug == "acme-vision"))
    user = session.scalar(select(models.User.id).where(models.User.name == "alice"))
    return project, user


def _closed_total(session, project_id: int) -> float:
    return session.scalar(
        select(models.ProjectLedger.closed_gpu_hours).where(
            models.ProjectLedger.project_id == project_id
        )
    )


def test_a_session_is_charged_once_however_often_it_is_closed(gateway):
    sessions = gateway.sessions
    with transaction(sessions) as session:
        project, user = _ids(session)
        record = models.SessionRecord(
            user_id=user,
            project_id=project,
            flavor="a100x1",
            image="pytorch",
            gpus=2.0,
            started_at=NOW - timedelta(hours=3),
        )
        session.add(record)
    with transaction(sessions) as session:
        before = _closed_total(session, project) or 0.0
        assert ledger.stop_session(session, record.id, NOW) is True
    for closer in (
        lambda s: ledger.stop_session(s, record.id, NOW + timedelta(hours=1)),
        lambda s: ledger.close_sessions(s, [record.id], NOW + timedelta(hours=2)),
    ):
        with transaction(sessions) as session:
            assert closer(session) in (False, [])
    with sessions() as session:
        assert _closed_total(session, project) == pytest.approx(before + 6.0)
        assert session.get(models.SessionRecord, record.id).gpu_hours == pytest.approx(6.0)
        usage = usage_by_project(session, [project], NOW)[project]
        history = recomputed_usage(session.get_bind(), NOW)[project]
        assert usage.gpu_hours_used == pytest.approx(history[0])


def test_a_job_is_ended_and_charged_once(gateway):
    sessions = gateway.sessions
    with transaction(sessions) as session:
        project, _ = _ids(session)
        job = models.Job(
            uid="ledger0001",
            owner="alice",
            unix_user="alice",
            project_id=project,
            name="j",
            kind="command",
            spec={},
            backend="local",
            state="RUNNING",
            reason="",
            partition="gpu",
            nodes=1,
            gpus_per_node=4,
            time_limit_minutes=60,
            working_dir="/tmp",
            output_path="/tmp/x",
        )
        session.add(job)
    for attempt in range(2):
        with transaction(sessions) as session:
            ended = ledger.end_job(session, job.id, 2.0, state="COMPLETED", ended_at=NOW)
            assert ended == ((project, 2.0) if attempt == 0 else None)
            ledger.charge(session, {ended[0]: ended[1]} if ended else {})
    with transaction(sessions) as session:  # a poller that still saw it running
        assert ledger.update_active_job(session, job.id, state="RUNNING", reason="") == 0
    with sessions() as session:
        assert session.get(models.Job, job.id).state == "COMPLETED"
        assert _closed_total(session, project) == pytest.approx(2.0)
        usage = usage_by_project(session, [project], NOW)[project]
        assert (usage.gpu_hours_used, usage.gpus_in_use) == (pytest.approx(2.0), 0.0)


def test_the_migration_backfills_the_ledger_from_the_history(database_url):
    """From the schema before the ledger, across every later migration (on SQLite, batch
    migrations copy tables: no record may be lost on the way)."""
    engine = make_engine(database_url)
    config = alembic_config(engine)
    for revision in ("0002", "0004"):  # the schema before the ledger
        command.upgrade(config, revision)
    day = "2026-01-01"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (id, slug, title, description, gpu_hours_budget, "
                "max_concurrent_gpus, storage_quota_gb, valid_from, valid_until, created_at) "
                "VALUES (7, 'p', 'P', '', 100, 4, 1, :d, :d, :t), "
                "(8, 'q', 'Q', '', 100, 4, 1, :d, :d, :t)"
            ),
            {"d": day, "t": NOW},
        )
        connection.execute(
            text("INSERT INTO users (id, name, is_operator, created_at) VALUES (1, 'u', 0=1, :t)"),
            {"t": NOW},
        )
        sessions = [(1.5, NOW - timedelta(hours=2), NOW, 3.0), (0.5, NOW, None, None)]
        for gpus, started, stopped, hours in sessions:
            connection.execute(
                text(
                    "INSERT INTO session_records (user_id, project_id, server_name, flavor, "
                    "image, gpus, started_at, stopped_at, gpu_hours) "
                    "VALUES (1, 7, '', 'f', 'i', :g, :s, :e, :h)"
                ),
                {"g": gpus, "s": started, "e": stopped, "h": hours},
            )
        jobs = [("a", "COMPLETED", 1.25), ("b", "FAILED", None), ("c", "RUNNING", None)]
        for uid, state, charged in jobs:
            connection.execute(
                text(
                    "INSERT INTO jobs (uid, owner, unix_user, project_id, name, kind, spec, "
                    "backend, state, reason, partition, nodes, gpus_per_node, "
                    "time_limit_minutes, working_dir, output_path, submitted_at, "
                    "gpu_hours_charged) VALUES (:u, 'u', 'u', 7, 'n', 'command', '{}', 'local', "
                    ":s, '', 'gpu', 1, 2, 60, '/', '/o', :t, :c)"
                ),
                {"u": uid, "s": state, "t": NOW, "c": charged},
            )
    migrate(engine)
    with session_factory(engine)() as session:
        assert _closed_total(session, 7) == pytest.approx(4.25)
        assert _closed_total(session, 8) == 0.0
        later = NOW + timedelta(hours=1)
        usage = usage_by_project(session, [7, 8], later)
        expected = recomputed_usage(engine, later)
        assert (usage[7].gpu_hours_used, usage[7].gpus_in_use, usage[7].running_sessions) == (
            pytest.approx(expected[7][0]),
            expected[7][1],
            expected[7][2],
        )
        assert usage[7].gpus_in_use == 2.5 and usage[7].reserved_gpu_hours == 2.0
        assert usage[7].running_sessions == 1
    engine.dispose()


# -- a negative GPU count, planted in the layers before admission -------------------------


ALICE = Identity("alice", hub_admin=False, scopes=frozenset())


def _job_count(gateway) -> int:
    with gateway.sessions() as session:
        return session.scalar(select(func.count()).select_from(models.Job))


def test_admission_refuses_a_negative_gpu_count_the_spec_let_through(gateway, monkeypatch):
    real_validate = gateway_module.validate

    def lax_validate(request, **kwargs):  # the planted defect: the spec's bound is gone
        spec = real_validate({**request, "gpus_per_node": 1}, **kwargs)
        return dataclasses.replace(spec, gpus_per_node=request["gpus_per_node"])

    monkeypatch.setattr(gateway_module, "validate", lax_validate)
    body = {"project": "acme-vision", "partition": "gpu", "command": ["sleep", "60"]}
    with pytest.raises(JobError) as refused:
        gateway.submit(ALICE, {**body, "gpus_per_node": -4}, None)
    assert (refused.value.status, refused.value.field) == (403, "gpus_per_node")
    assert refused.value.detail == (
        "a job cannot ask for a negative number of GPUs (-4); ask for 0 or more."
    )
    assert _job_count(gateway) == 0
    # The cap is whole after the attempt: 8 GPUs do not pass a 4-GPU cap.
    with pytest.raises(JobError) as over:
        gateway.submit(ALICE, {**body, "nodes": 2, "gpus_per_node": 4}, None)
    assert over.value.detail.startswith("the project may use 4 GPUs at a time and holds 0;")
    assert _job_count(gateway) == 0


def test_a_recorded_negative_job_frees_no_gpus(gateway):
    """Even a -4 GPU job in the database (an older defect) lowers no count: sums clamp at 0."""
    with transaction(gateway.sessions) as session:
        project, _ = _ids(session)
        session.add(
            models.Job(
                uid="negative01",
                owner="alice",
                unix_user="alice",
                project_id=project,
                name="neg",
                kind="command",
                spec={},
                backend="local",
                backend_job_id="negative01",
                state="RUNNING",
                reason="",
                partition="gpu",
                nodes=1,
                gpus_per_node=-4,
                time_limit_minutes=60,
                working_dir="/tmp",
                output_path="/tmp/neg",
            )
        )
    body = {"project": "acme-vision", "partition": "gpu", "command": ["sleep", "60"]}
    job, created = gateway.submit(ALICE, {**body, "gpus_per_node": 4}, None)
    assert created and job.total_gpus == 4
    with pytest.raises(JobError) as over:
        gateway.submit(ALICE, {**body, "gpus_per_node": 4}, None)
    assert over.value.detail.startswith("the project may use 4 GPUs at a time and holds 4;")
    with gateway.sessions() as session:
        assert usage_by_project(session, [project], NOW)[project].gpus_in_use == 4
