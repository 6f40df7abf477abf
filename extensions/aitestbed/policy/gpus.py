"""Which GPUs of this machine a session or job may be given: pure decisions over an inventory.

The inventory (:class:`GpuDevice` each) comes from NVML, from the simulated GPUs of the
demo, or from a test (:mod:`aitestbed.gpu_inventory`). A whole-GPU flavor gets whole GPUs
of its product; a MIG flavor gets one MIG instance of its profile (on a GPU of its product,
when it names one). A GPU with MIG enabled is never given whole: its instances are.
Devices already assigned (``taken``, by UUID) are never given again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aitestbed.policy.admission import Decision
from aitestbed.policy.model import FlavorSpec


@dataclass(frozen=True)
class GpuDevice:
    """One device a session can be given: a whole GPU or a MIG instance."""

    uuid: str  # GPU-... or MIG-...: what CUDA_VISIBLE_DEVICES takes
    product: str  # normalised like the Kubernetes label: "NVIDIA-A100-SXM4-80GB"
    index: int = 0  # the GPU's NVML index (a MIG instance: its parent's)
    mig_profile: str | None = None  # "1g.10gb" for a MIG instance, None for a whole GPU
    mig_enabled: bool = False  # a whole GPU split into MIG instances (never given whole)
    simulated: bool = False


def product_name(name: str | bytes) -> str:
    """NVML's product name as flavors spell it: "NVIDIA A100-SXM4-80GB" ->
    "NVIDIA-A100-SXM4-80GB" (the label GPU feature discovery puts on Kubernetes nodes)."""
    text = name.decode() if isinstance(name, bytes) else name
    return "-".join(text.split())


def devices_needed(flavor: FlavorSpec) -> int:
    """Devices one session of ``flavor`` holds: one MIG instance, or its whole GPUs."""
    if not flavor.uses_gpu:
        return 0
    return 1 if flavor.mig_profile else flavor.gpus


def _kind(flavor: FlavorSpec, many: bool = False) -> str:
    """What the flavor needs, in words: "NVIDIA-A100-SXM4-80GB GPUs", "MIG 1g.10gb
    instances on NVIDIA-A100-SXM4-80GB GPUs"."""
    gpu = f"{flavor.gpu_product} GPU" if flavor.gpu_product else "GPU"
    if flavor.mig_profile:
        where = f" on {gpu}s" if flavor.gpu_product else ""
        return f"MIG {flavor.mig_profile} instance{'s' if many else ''}{where}"
    return gpu + ("s" if many else "")


def candidates(flavor: FlavorSpec, inventory: Sequence[GpuDevice]) -> list[GpuDevice]:
    """The devices of this machine a session of ``flavor`` could be given, in index order."""
    if not flavor.uses_gpu:
        return []
    result = [
        d
        for d in inventory
        if (flavor.gpu_product is None or d.product == flavor.gpu_product)
        and (
            d.mig_profile == flavor.mig_profile
            if flavor.mig_profile
            else d.mig_profile is None and not d.mig_enabled
        )
    ]
    return sorted(result, key=lambda d: (d.index, d.uuid))


def unservable_reason(flavor: FlavorSpec, inventory: Sequence[GpuDevice]) -> str:
    """Why this machine can never run ``flavor`` (one sentence), "" when it can."""
    if not flavor.uses_gpu:
        return ""
    found = len(candidates(flavor, inventory))
    need = devices_needed(flavor)
    if found >= need:
        return ""
    if found == 0:
        return (
            f"This machine has no {_kind(flavor)}, so the flavor {flavor.slug!r} cannot start "
            "here; choose another flavor or ask the operators."
        )
    return (
        f"The flavor {flavor.slug!r} needs {need} {_kind(flavor, need > 1)} and this machine "
        f"has only {found}; choose a smaller flavor or ask the operators."
    )


def places(
    flavor: FlavorSpec, inventory: Sequence[GpuDevice], taken: Collection[str]
) -> tuple[int, int]:
    """(free, total) sessions of ``flavor`` this machine can hold with what is not taken."""
    need = devices_needed(flavor)
    if need == 0:
        return (0, 0)
    found = candidates(flavor, inventory)
    free = [d for d in found if d.uuid not in taken]
    return (len(free) // need, len(found) // need)


def choose(
    flavor: FlavorSpec, inventory: Sequence[GpuDevice], taken: Collection[str]
) -> tuple[tuple[GpuDevice, ...], Decision]:
    """The devices a new session of ``flavor`` gets (lowest index first), or the refusal."""
    reason = unservable_reason(flavor, inventory)
    if reason:
        return (), Decision.refuse("no-capacity", reason)
    need = devices_needed(flavor)
    found = candidates(flavor, inventory)
    free = [d for d in found if d.uuid not in taken]
    if len(free) < need:
        return (), Decision.refuse(
            "no-capacity",
            f"All {len(found)} {_kind(flavor, len(found) > 1)} of this machine are in use right "
            f"now, so the flavor {flavor.slug!r} cannot start; try again later or choose another "
            "flavor.",
        )
    return tuple(free[:need]), Decision(True)


def choose_for_job(
    count: int, inventory: Sequence[GpuDevice], taken: Collection[str]
) -> tuple[tuple[GpuDevice, ...], str]:
    """``count`` free whole GPUs (any product) for a local job, or why not (one sentence)."""
    whole = [d for d in inventory if d.mig_profile is None and not d.mig_enabled]
    whole.sort(key=lambda d: (d.index, d.uuid))
    if count > len(whole):
        return (), (
            f"The job asks for {count} GPUs and this machine has {len(whole)} whole GPUs; "
            f"ask for at most {len(whole)}."
        )
    free = [d for d in whole if d.uuid not in taken]
    if count > len(free):
        return (), (
            f"Only {len(free)} of this machine's {len(whole)} GPUs are free right now and the "
            f"job asks for {count}; try again when a session or job has stopped."
        )
    return tuple(free[:count]), ""


def visible_devices(devices: Sequence[GpuDevice]) -> dict[str, str]:
    """The environment that shows a process exactly ``devices`` (nothing for no device).

    Simulated devices are named too, and ``AITESTBED_GPU_SIMULATED=1`` says that they are
    not real: CUDA finds no device behind those UUIDs, and nothing here pretends otherwise.
    """
    if not devices:
        return {}
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(d.uuid for d in devices),
        "NVIDIA_VISIBLE_DEVICES": ",".join(d.uuid for d in devices),
        "AITESTBED_GPUS": ",".join(d.uuid for d in devices),
    }
    if any(d.simulated for d in devices):
        env["AITESTBED_GPU_SIMULATED"] = "1"
    return env
