"""This machine's GPUs, behind one small interface (:class:`GpuSource`).

- :class:`NvmlSource`: the NVIDIA GPUs and MIG instances NVML reports, through
  ``nvidia-ml-py`` (``import pynvml``). Never by parsing ``nvidia-smi`` output.
- :class:`SimulatedSource`: ``site.simulated_gpus`` of the settings (the demo on a machine
  without GPUs): a declared number of GPUs of one product, marked simulated.
- :class:`FixedSource`: a given list (tests).

:func:`source_for` picks the one the settings ask for. The decisions over the inventory are
pure and live in :mod:`aitestbed.policy.gpus`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from aitestbed.policy.gpus import GpuDevice, product_name

log = logging.getLogger(__name__)
_PROFILE = re.compile(r"\bMIG\s+(\d+g\.\d+gb)\b")


class GpuSource(Protocol):
    simulated: bool

    def devices(self) -> tuple[GpuDevice, ...]:
        """Every device of this machine (whole GPUs and MIG instances)."""
        ...


class FixedSource:
    """A given inventory (tests)."""

    def __init__(self, devices: tuple[GpuDevice, ...] | list[GpuDevice], simulated=False):
        self._devices = tuple(devices)
        self.simulated = simulated

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._devices


class SimulatedSource(FixedSource):
    """``count`` simulated GPUs of ``product``: UUIDs that name no real device. The last
    ``mig_gpus`` of them are split into MIG instances of ``mig_profile`` (as many as fit in
    the 7 slices of a GPU)."""

    def __init__(
        self,
        count: int,
        product: str = "NVIDIA-A100-SXM4-80GB",
        mig_profile: str | None = None,
        mig_gpus: int = 0,
    ):
        devices = []
        split = count - (mig_gpus if mig_profile else 0)
        for index in range(count):
            uuid = f"GPU-simulated-{index:04d}"
            mig = index >= split
            devices.append(GpuDevice(uuid, product, index, mig_enabled=mig, simulated=True))
            if mig:
                assert mig_profile is not None
                per_gpu = 7 // int(mig_profile.split("g", 1)[0])
                devices += [
                    GpuDevice(
                        f"MIG-simulated-{index:04d}-{slot}",
                        product,
                        index,
                        mig_profile=mig_profile,
                        simulated=True,
                    )
                    for slot in range(per_gpu)
                ]
        super().__init__(tuple(devices), simulated=True)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def mig_profile(nvml: Any, handle: Any) -> str | None:
    """A MIG instance's profile ("1g.10gb"): from its NVML name ("NVIDIA A100-SXM4-80GB
    MIG 1g.10gb"), else from its slice count and memory."""
    match = _PROFILE.search(_text(nvml.nvmlDeviceGetName(handle)))
    if match:
        return match.group(1)
    try:
        attributes = nvml.nvmlDeviceGetAttributes(handle)
    except nvml.NVMLError:
        return None
    return f"{attributes.gpuInstanceSliceCount}g.{round(attributes.memorySizeMB / 1024)}gb"


def read_nvml(nvml: Any) -> tuple[GpuDevice, ...]:
    """The devices NVML reports (``nvml``: the ``pynvml`` module, or a fake of it)."""
    nvml.nvmlInit()
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            product = product_name(nvml.nvmlDeviceGetName(handle))
            try:
                current, _pending = nvml.nvmlDeviceGetMigMode(handle)
            except nvml.NVMLError:
                current = 0  # not a MIG-capable GPU
            enabled = current == nvml.NVML_DEVICE_MIG_ENABLE
            found.append(
                GpuDevice(
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    product=product,
                    index=index,
                    mig_enabled=enabled,
                )
            )
            if not enabled:
                continue
            for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                try:
                    instance = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                except nvml.NVMLError:
                    continue  # an empty slot
                profile = mig_profile(nvml, instance)
                if profile is None:
                    continue
                found.append(
                    GpuDevice(
                        uuid=_text(nvml.nvmlDeviceGetUUID(instance)),
                        product=product,
                        index=index,
                        mig_profile=profile,
                    )
                )
        return tuple(found)
    finally:
        nvml.nvmlShutdown()


class NvmlSource:
    """The machine's NVIDIA devices through NVML, read again at most every ``ttl`` seconds.

    No NVML library or driver (a laptop, a CPU server) means no devices, logged once; a
    read that fails later (a driver reset) keeps no devices until NVML answers again.
    """

    simulated = False

    def __init__(self, load: Callable[[], Any] | None = None, ttl: float = 30.0):
        self._load = load or _import_pynvml
        self._ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._devices: tuple[GpuDevice, ...] = ()
        self._warned = False

    def devices(self) -> tuple[GpuDevice, ...]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._ttl:
                self._devices = self._read()
                self._read_at = time.monotonic()
            return self._devices

    def _read(self) -> tuple[GpuDevice, ...]:
        try:
            nvml = self._load()
        except ImportError:
            self._warn("nvidia-ml-py is not installed; no GPUs are offered on this machine.")
            return ()
        try:
            return read_nvml(nvml)
        except nvml.NVMLError as error:
            self._warn(f"NVML cannot be read ({error}); no GPUs are offered on this machine.")
            return ()

    def _warn(self, message: str) -> None:
        if not self._warned:
            log.warning(message)
            self._warned = True


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def source_for(simulated_gpus: Any | None) -> GpuSource:
    """The settings' source: simulated GPUs when ``site.simulated_gpus`` declares some,
    else NVML (no devices where there is no NVIDIA driver)."""
    if simulated_gpus is not None and simulated_gpus.count > 0:
        return SimulatedSource(
            simulated_gpus.count,
            simulated_gpus.product,
            simulated_gpus.mig_profile,
            simulated_gpus.mig_gpus,
        )
    return NvmlSource()
