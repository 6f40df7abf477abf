"""The policy layer: what a user is offered and every reason a start is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from aitestbed.policy.admission import admit
from aitestbed.policy.model import FlavorSpec, ImageSpec, ProjectState, SpawnRequest
from aitestbed.policy.options import complete_request, spawn_options

TODAY = date(2026, 11, 26)
CPU = FlavorSpec("cpu-small", "CPU small", cpu=2, memory="4Gi")
MIG = FlavorSpec("a100-1g-10gb", "MIG 1g", cpu=4, memory="16Gi", mig_profile="1g.10gb")
MIG3 = FlavorSpec("a100-3g-40gb", "MIG 3g", cpu=8, memory="32Gi", mig_profile="3g.40gb")
GPU1 = FlavorSpec("a100x1", "1 x A100", cpu=8, memory="64Gi", gpus=1)
GPU4 = FlavorSpec("a100x4", "4 x A100", cpu=32, memory="256Gi", gpus=4)
OLD = FlavorSpec("retired", "Retired", cpu=1, memory="1Gi", enabled=False)
FLAVORS = {f.slug: f for f in (CPU, MIG, MIG3, GPU1, GPU4, OLD)}
PY = ImageSpec("python-cpu", "Python", "py:1")
TORCH = ImageSpec("pytorch", "PyTorch", "torch:1", cuda="12.4", gpu_capable=True)
IMAGES = {i.slug: i for i in (PY, TORCH)}
ACME = ProjectState(
    slug="acme",
    title="ACME",
    valid_from=date(2026, 1, 1),
    valid_until=date(2027, 2, 28),
    gpu_hours_budget=100,
    gpu_hours_used=10,
    max_concurrent_gpus=4,
    gpus_in_use=0,
)


def decide(project=ACME, flavor="a100x1", image="pytorch", slug="acme", today=TODAY):
    return admit(SpawnRequest(slug, flavor, image), [project], FLAVORS, IMAGES, today)


def test_a_valid_start_is_admitted():
    assert decide().allowed
    assert decide(flavor="cpu-small", image="python-cpu").allowed


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"slug": "other"}, "not-a-member", "not a member of a project 'other'"),
        ({"today": date(2025, 12, 31)}, "not-yet-valid", "starts on 2026-01-01"),
        ({"today": date(2027, 3, 1)}, "expired", "ended on 2027-02-28"),
        # Never in the catalog, and retired from it, are said differently.
        ({"flavor": "h200x8"}, "unknown-flavor", "There is no flavor 'h200x8'; choose one"),
        ({"flavor": "retired"}, "unknown-flavor", "The flavor 'retired' is no longer offered"),
        ({"image": "made-up"}, "unknown-image", "There is no image 'made-up'; choose one"),
        (
            {"project": replace(ACME, allowed_flavors=("cpu-small",))},
            "flavor-not-allowed",
            "may not use the flavor '1 x A100'",
        ),
        (
            {"project": replace(ACME, allowed_images=("python-cpu",))},
            "image-not-allowed",
            "may not use the image 'PyTorch'",
        ),
        (
            {"project": replace(ACME, gpu_hours_used=100)},
            "budget-exhausted",
            "used its 100 GPU-hours",
        ),
        (
            {"project": replace(ACME, gpus_in_use=3.5)},
            "gpu-cap-reached",
            "already uses 3.5 of its 4 GPUs",
        ),
        (
            {"flavor": "a100x4", "project": replace(ACME, gpus_in_use=1)},
            "gpu-cap-reached",
            "4 GPUs",
        ),
    ],
)
def test_every_refusal_has_a_code_and_one_sentence(kwargs, code, words):
    decision = decide(**kwargs)
    assert not decision.allowed
    assert decision.code == code
    assert words in decision.reason
    assert decision.reason.endswith(".") and "\n" not in decision.reason


def test_cpu_flavors_stay_available_when_gpu_budget_or_cap_is_used_up():
    exhausted = replace(ACME, gpu_hours_used=500, gpus_in_use=4)
    assert decide(project=exhausted, flavor="cpu-small", image="python-cpu").allowed
    assert not decide(project=exhausted, flavor="a100-1g-10gb").allowed


def test_mig_slices_count_as_their_share_of_a_gpu():
    assert MIG.gpu_equivalent == pytest.approx(1 / 7)
    assert MIG3.gpu_equivalent == pytest.approx(3 / 7)
    assert GPU4.gpu_equivalent == 4
    assert CPU.gpu_equivalent == 0
    # 3 GPUs + 4/7 + 3/7 fill a 4-GPU cap exactly; one more slice does not fit.
    nearly_full = replace(ACME, gpus_in_use=3 + 4 / 7)
    assert decide(project=nearly_full, flavor="a100-3g-40gb").allowed
    assert not decide(project=replace(ACME, gpus_in_use=4), flavor="a100-1g-10gb").allowed


def test_options_follow_the_project_and_explain_unavailable_flavors():
    limited = replace(
        ACME,
        slug="uni",
        title="Uni",
        allowed_flavors=("cpu-small", "a100x4"),
        allowed_images=("python-cpu",),
        gpus_in_use=1,
    )
    expired = replace(ACME, slug="old", title="Old", valid_until=date(2026, 6, 30))
    options = spawn_options(
        [expired, limited, ACME], list(FLAVORS.values()), list(IMAGES.values()), TODAY
    )
    assert [o.project.slug for o in options] == ["acme", "uni", "old"]  # active first
    uni = options[1]
    assert [i.slug for i in uni.images] == ["python-cpu"]
    assert [(f.flavor.slug, f.available) for f in uni.flavors] == [
        ("cpu-small", True),
        ("a100x4", False),
    ]
    assert "already uses 1 of its 4 GPUs" in uni.flavors[1].reason
    assert not options[2].active and "ended on 2026-06-30" in options[2].reason
    assert "retired" not in [f.flavor.slug for f in options[0].flavors]


def test_complete_request_fills_only_what_is_missing():
    one = spawn_options([ACME], list(FLAVORS.values()), list(IMAGES.values()), TODAY)
    assert complete_request(one, {}) == (
        {"project": "acme", "image": "python-cpu", "flavor": "cpu-small"},
        "",
    )
    chosen = {"project": "acme", "flavor": "a100x1", "image": "pytorch"}
    assert complete_request(one, chosen) == (chosen, "")
    two = spawn_options(
        [ACME, replace(ACME, slug="b", title="B")],
        list(FLAVORS.values()),
        list(IMAGES.values()),
        TODAY,
    )
    assert (
        complete_request(two, {})[1] == "You belong to several projects: choose the one to charge."
    )
    assert (
        complete_request([], {})[1] == "You have no active project, so no session can be started."
    )


def test_cluster_accounts_refused_by_name_or_uid_with_one_sentence():
    from aitestbed.policy.cluster_accounts import DEFAULT_DENIED_ACCOUNTS, check_cluster_account

    rules = {"min_uid": 1000, "denied": DEFAULT_DENIED_ACCOUNTS}
    assert check_cluster_account("alice", 1001, **rules).allowed
    assert check_cluster_account("alice", None, **rules).allowed  # unknown UID: names only
    assert check_cluster_account("alice", 1000, **rules).allowed
    for account in ("root", "slurm", "munge", "nobody", "daemon"):
        decision = check_cluster_account(account, 65534, **rules)
        assert (decision.allowed, decision.code) == (False, "denied-account")
        assert decision.reason == (
            f"The cluster account {account!r} is a system account that portal jobs may not "
            "use; ask the operators to map you to a personal account."
        )
    low = check_cluster_account("backupsvc", 999, **rules)
    assert (low.allowed, low.code) == (False, "system-uid")
    assert low.reason == (
        "The cluster account 'backupsvc' has UID 999, below the smallest UID portal jobs may "
        "use (1000); ask the operators to map you to a personal account."
    )
    assert check_cluster_account("root", 0, min_uid=0, denied=()).allowed  # rules are settings
