"""The revocation decision (aitestbed.policy.revocation): what to warn, stop, rescind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aitestbed.policy.revocation import (
    ALLOCATION_ENDED,
    MEMBERSHIP_REMOVED,
    OpenSession,
    plan_revocations,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=3)


def session(rid=1, *, member=True, valid=True, warned_at=None):
    return OpenSession(rid, "rosa", "", "acme-vision", member, valid, warned_at)


def test_sessions_with_access_are_left_alone():
    assert plan_revocations([session()], NOW, GRACE).warn == ()
    assert plan_revocations([session()], NOW, GRACE).stop == ()


def test_removed_membership_is_warned_with_the_stop_time_then_stopped_after_the_grace():
    plan = plan_revocations([session(member=False)], NOW, GRACE)
    (warning,) = plan.warn
    assert (warning.code, warning.stop_at, plan.stop) == (MEMBERSHIP_REMOVED, NOW + GRACE, ())
    assert warning.reason.startswith("You are no longer a member of project acme-vision")
    warned = session(member=False, warned_at=NOW)
    just_before = plan_revocations([warned], NOW + GRACE - timedelta(seconds=1), GRACE)
    assert (just_before.warn, just_before.stop) == ((), ())
    (stop,) = plan_revocations([warned], NOW + GRACE, GRACE).stop
    assert stop.record_id == 1


def test_ended_allocation_is_revoked_with_its_own_reason():
    (warning,) = plan_revocations([session(valid=False)], NOW, GRACE).warn
    assert warning.code == ALLOCATION_ENDED
    assert "allocation of project acme-vision has ended" in warning.reason


def test_access_back_during_the_grace_rescinds_the_warning():
    plan = plan_revocations([session(warned_at=NOW)], NOW + timedelta(seconds=5), GRACE)
    assert (plan.warn, plan.stop, plan.rescind) == ((), (), (1,))


def test_zero_grace_warns_and_stops_at_once():
    plan = plan_revocations([session(2, member=False)], NOW, timedelta(0))
    assert [r.record_id for r in plan.warn] == [2] and [r.record_id for r in plan.stop] == [2]
