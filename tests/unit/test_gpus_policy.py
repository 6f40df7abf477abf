"""Which devices a flavor or job gets on this machine: pure decisions over an inventory."""

from __future__ import annotations

import pytest
from aitestbed.policy.gpus import (
    GpuDevice,
    choose,
    choose_for_job,
    places,
    product_name,
    unservable_reason,
    visible_devices,
)
from aitestbed.policy.model import FlavorSpec

A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"
WHOLE = FlavorSpec("a100x1", "1 x A100", cpu=8, memory="64Gi", gpus=1, gpu_product=A100)
PAIR = FlavorSpec("a100x2", "2 x A100", cpu=8, memory="64Gi", gpus=2, gpu_product=A100)
ANY = FlavorSpec("gpu", "1 x any GPU", cpu=8, memory="64Gi", gpus=1)
H1 = FlavorSpec("h100x1", "1 x H100", cpu=8, memory="64Gi", gpus=1, gpu_product=H100)
SLICE = FlavorSpec(
    "a100-1g", "MIG 1g", cpu=4, memory="16Gi", mig_profile="1g.10gb", gpu_product=A100
)
SLICE3 = FlavorSpec("a100-3g", "MIG 3g", cpu=4, memory="16Gi", mig_profile="3g.40gb")
CPU = FlavorSpec("cpu", "CPU", cpu=2, memory="4Gi")


def gpu(n, product=A100, **kw):
    return GpuDevice(f"GPU-{n}", product, n, **kw)


def mig(parent, slot, profile="1g.10gb"):
    return GpuDevice(f"MIG-{parent}-{slot}", A100, parent, mig_profile=profile)


# A mixed machine: GPUs 0 and 1 whole, GPU 2 split into three 1g slices and one 3g slice,
# GPU 3 an H100.
MIXED = (
    gpu(0),
    gpu(1),
    gpu(2, mig_enabled=True),
    mig(2, 0),
    mig(2, 1),
    mig(2, 2),
    mig(2, 3, "3g.40gb"),
    gpu(3, H100),
)


def uuids(devices):
    return [d.uuid for d in devices]


@pytest.mark.parametrize(
    ("flavor", "taken", "expected"),
    [
        (WHOLE, set(), ["GPU-0"]),
        (WHOLE, {"GPU-0"}, ["GPU-1"]),
        (PAIR, set(), ["GPU-0", "GPU-1"]),
        (ANY, {"GPU-0", "GPU-1"}, ["GPU-3"]),  # never the MIG-enabled GPU 2 whole
        (H1, set(), ["GPU-3"]),
        (SLICE, {"MIG-2-0"}, ["MIG-2-1"]),
        (SLICE3, set(), ["MIG-2-3"]),
    ],
)
def test_choose_gives_free_devices_of_the_flavor(flavor, taken, expected):
    devices, decision = choose(flavor, MIXED, taken)
    assert decision.allowed and uuids(devices) == expected


@pytest.mark.parametrize(
    ("flavor", "taken", "reason"),
    [
        (
            WHOLE,
            {"GPU-0", "GPU-1"},
            "All 2 NVIDIA-A100-SXM4-80GB GPUs of this machine are in use right now, so the "
            "flavor 'a100x1' cannot start; try again later or choose another flavor.",
        ),
        (
            PAIR,
            {"GPU-1"},
            "All 2 NVIDIA-A100-SXM4-80GB GPUs of this machine are in use right now, so the "
            "flavor 'a100x2' cannot start; try again later or choose another flavor.",
        ),
        (
            SLICE,
            {"MIG-2-0", "MIG-2-1", "MIG-2-2"},
            "All 3 MIG 1g.10gb instances on NVIDIA-A100-SXM4-80GB GPUs of this machine are in "
            "use right now, so the flavor 'a100-1g' cannot start; try again later or choose "
            "another flavor.",
        ),
    ],
)
def test_exhaustion_is_refused_for_capacity(flavor, taken, reason):
    devices, decision = choose(flavor, MIXED, taken)
    assert devices == () and decision.code == "no-capacity" and decision.reason == reason


@pytest.mark.parametrize(
    ("flavor", "inventory", "reason"),
    [
        (
            H1,
            (gpu(0),),
            "This machine has no NVIDIA-H100-80GB-HBM3 GPU, so the flavor 'h100x1' cannot "
            "start here; choose another flavor or ask the operators.",
        ),
        (
            SLICE,
            (gpu(0),),
            "This machine has no MIG 1g.10gb instance on NVIDIA-A100-SXM4-80GB GPUs, so the "
            "flavor 'a100-1g' cannot start here; choose another flavor or ask the operators.",
        ),
        (
            SLICE3,
            (),
            "This machine has no MIG 3g.40gb instance, so the flavor 'a100-3g' cannot start "
            "here; choose another flavor or ask the operators.",
        ),
        (
            PAIR,
            (gpu(0), gpu(1, H100)),
            "The flavor 'a100x2' needs 2 NVIDIA-A100-SXM4-80GB GPUs and this machine has only "
            "1; choose a smaller flavor or ask the operators.",
        ),
    ],
)
def test_a_flavor_the_machine_cannot_serve_says_why(flavor, inventory, reason):
    assert unservable_reason(flavor, inventory) == reason
    devices, decision = choose(flavor, inventory, set())
    assert devices == () and (decision.code, decision.reason) == ("no-capacity", reason)


def test_places_count_sessions_from_free_devices():
    assert places(WHOLE, MIXED, set()) == (2, 2)
    assert places(WHOLE, MIXED, {"GPU-1"}) == (1, 2)
    assert places(PAIR, MIXED, {"GPU-1"}) == (0, 1)
    assert places(SLICE, MIXED, {"MIG-2-2"}) == (2, 3)
    assert places(H1, (gpu(0),), set()) == (0, 0)
    assert places(CPU, MIXED, set()) == (0, 0)
    assert unservable_reason(CPU, ()) == "" and unservable_reason(WHOLE, MIXED) == ""


def test_release_and_restart_are_the_same_decision():
    """Free is whatever is not held: a release frees the device, and a restart that reads
    the held devices back chooses exactly what the running process would have."""
    first, _ = choose(WHOLE, MIXED, set())
    second, _ = choose(WHOLE, MIXED, set(uuids(first)))
    assert uuids(first) == ["GPU-0"] and uuids(second) == ["GPU-1"]
    after_release, _ = choose(WHOLE, MIXED, set(uuids(second)))
    assert uuids(after_release) == ["GPU-0"]


def test_jobs_get_whole_gpus_of_any_product():
    devices, problem = choose_for_job(2, MIXED, {"GPU-0"})
    assert problem == "" and uuids(devices) == ["GPU-1", "GPU-3"]
    assert choose_for_job(4, MIXED, set()) == (
        (),
        "The job asks for 4 GPUs and this machine has 3 whole GPUs; ask for at most 3.",
    )
    assert choose_for_job(2, MIXED, {"GPU-0", "GPU-3"}) == (
        (),
        "Only 1 of this machine's 3 GPUs are free right now and the job asks for 2; try "
        "again when a session or job has stopped.",
    )


def test_visible_devices_name_the_uuids_and_say_when_simulated():
    assert visible_devices(()) == {}
    env = visible_devices((gpu(0), mig(2, 1)))
    assert env == {
        "CUDA_VISIBLE_DEVICES": "GPU-0,MIG-2-1",
        "NVIDIA_VISIBLE_DEVICES": "GPU-0,MIG-2-1",
        "AITESTBED_GPUS": "GPU-0,MIG-2-1",
    }
    assert visible_devices((gpu(0, simulated=True),))["AITESTBED_GPU_SIMULATED"] == "1"


def test_product_names_are_spelled_like_flavors():
    assert product_name(b"NVIDIA A100-SXM4-80GB") == A100
    assert product_name("NVIDIA H100 80GB HBM3") == H100
