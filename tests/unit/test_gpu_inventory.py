"""This machine's GPUs: NVML read through a fake ``pynvml``, simulated GPUs from settings,
and (where an NVIDIA GPU and driver exist) the real NVML."""

from __future__ import annotations

import types

import pytest
from aitestbed.gpu_inventory import NvmlSource, SimulatedSource, read_nvml, source_for
from aitestbed.policy.gpus import GpuDevice
from aitestbed.settings import SimulatedGpus


class FakeNvmlError(Exception):
    pass


def fake_pynvml(gpus):
    """A stand-in for ``pynvml`` over ``gpus``: (name, uuid, mig mode or None, [MIG
    instances (name, uuid, attributes) or None for an empty slot])."""
    calls = []

    class Handle:
        def __init__(self, name, uuid, mig=None, instances=()):
            self.name, self.uuid, self.mig, self.instances = name, uuid, mig, instances

    handles = [Handle(*g) for g in gpus]

    def get_mig_mode(handle):
        if handle.mig is None:
            raise FakeNvmlError("Not Supported")
        return (handle.mig, handle.mig)

    def mig_by_index(handle, slot):
        entry = handle.instances[slot]
        if entry is None:
            raise FakeNvmlError("Not Found")
        return Handle(entry[0], entry[1], None, entry[2] if len(entry) > 2 else None)

    def attributes(handle):
        if handle.instances is None:
            raise FakeNvmlError("Not Supported")
        return handle.instances

    module = types.SimpleNamespace(
        NVMLError=FakeNvmlError,
        NVML_DEVICE_MIG_ENABLE=1,
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: len(handles),
        nvmlDeviceGetHandleByIndex=lambda i: handles[i],
        nvmlDeviceGetName=lambda h: h.name,
        nvmlDeviceGetUUID=lambda h: h.uuid,
        nvmlDeviceGetMigMode=get_mig_mode,
        nvmlDeviceGetMaxMigDeviceCount=lambda h: len(h.instances),
        nvmlDeviceGetMigDeviceHandleByIndex=mig_by_index,
        nvmlDeviceGetAttributes=attributes,
    )
    return module, calls


A100 = "NVIDIA-A100-SXM4-80GB"


def test_nvml_lists_whole_gpus_and_mig_instances_with_profiles():
    nvml, calls = fake_pynvml(
        [
            (b"NVIDIA A100-SXM4-80GB", b"GPU-0aaa", 0, []),
            (
                "NVIDIA A100-SXM4-80GB",
                "GPU-1bbb",
                1,
                [
                    ("NVIDIA A100-SXM4-80GB MIG 1g.10gb", "MIG-1b-0"),
                    None,
                    # No profile in the name: from slices and memory instead.
                    (
                        "MIG device",
                        "MIG-1b-2",
                        types.SimpleNamespace(gpuInstanceSliceCount=3, memorySizeMB=40448),
                    ),
                ],
            ),
            ("Tesla T4", "GPU-2ccc", None, []),  # not MIG-capable
        ]
    )
    assert read_nvml(nvml) == (
        GpuDevice("GPU-0aaa", A100, 0),
        GpuDevice("GPU-1bbb", A100, 1, mig_enabled=True),
        GpuDevice("MIG-1b-0", A100, 1, mig_profile="1g.10gb"),
        GpuDevice("MIG-1b-2", A100, 1, mig_profile="3g.40gb"),
        GpuDevice("GPU-2ccc", "Tesla-T4", 2),
    )
    assert calls == ["init", "shutdown"]


def test_nvml_source_without_library_or_driver_offers_no_gpus(caplog):
    def missing():
        raise ImportError("No module named 'pynvml'")

    assert NvmlSource(load=missing).devices() == ()
    assert "nvidia-ml-py is not installed" in caplog.text

    nvml, _ = fake_pynvml([])

    def no_driver():
        raise FakeNvmlError("Driver Not Loaded")

    nvml.nvmlInit = no_driver
    source = NvmlSource(load=lambda: nvml)
    assert source.devices() == ()
    assert "NVML cannot be read (Driver Not Loaded)" in caplog.text


def test_nvml_source_reads_again_after_its_ttl():
    nvml, calls = fake_pynvml([("NVIDIA A100-SXM4-80GB", "GPU-0", 0, [])])
    cached = NvmlSource(load=lambda: nvml, ttl=3600)
    assert len(cached.devices()) == 1 and len(cached.devices()) == 1
    assert calls == ["init", "shutdown"]
    fresh = NvmlSource(load=lambda: nvml, ttl=0)
    fresh.devices(), fresh.devices()
    assert calls.count("init") == 3


def test_simulated_gpus_from_settings():
    source = source_for(SimulatedGpus(count=2, product="NVIDIA-L4"))
    assert isinstance(source, SimulatedSource) and source.simulated
    assert source.devices() == (
        GpuDevice("GPU-simulated-0000", "NVIDIA-L4", 0, simulated=True),
        GpuDevice("GPU-simulated-0001", "NVIDIA-L4", 1, simulated=True),
    )
    assert isinstance(source_for(None), NvmlSource)
    assert isinstance(source_for(SimulatedGpus(count=0)), NvmlSource)


def real_gpus():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA driver or GPU on this machine")
    pynvml.nvmlShutdown()
    return pynvml


def test_real_nvml_discovers_this_machines_gpus():
    pynvml = real_gpus()
    devices = NvmlSource(load=lambda: pynvml).devices()
    whole = [d for d in devices if d.mig_profile is None]
    assert whole and all(d.uuid.startswith("GPU-") for d in whole)
    assert all(d.uuid.startswith("MIG-") for d in devices if d.mig_profile)
