"""What a session becomes on Kubernetes: pure functions from flavor, image and project to
KubeSpawner settings (the trait values KubeSpawner turns into the pod).

Every start sets every key below, so nothing leaks from one user's previous choice into the
next pod (a CPU flavor after a GPU flavor gets an empty ``extra_resource_limits``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aitestbed.policy.model import FlavorSpec, ImageSpec

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
NON_ROOT_UID = 1000
NON_ROOT_GID = 100
LABEL_PREFIX = "aitestbed.example/"


@dataclass(frozen=True)
class KubeSite:
    """Site-wide Kubernetes choices (from the settings' ``kubernetes`` section)."""

    home_storage: str = "10Gi"
    home_storage_class: str | None = None
    project_claim_template: str = "project-{project}"
    gpu_tolerations: tuple[dict[str, str], ...] = (
        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
    )
    image_pull_policy: str = "IfNotPresent"
    extra_node_selector: dict[str, str] = field(default_factory=dict)


def mig_resource(profile: str) -> str:
    """``1g.10gb`` -> ``nvidia.com/mig-1g.10gb`` (the device plugin's mixed strategy)."""
    return f"nvidia.com/mig-{profile}"


def gpu_limits(flavor: FlavorSpec) -> dict[str, str]:
    """Extended resources of the flavor; empty for CPU flavors."""
    if flavor.mig_profile:
        return {mig_resource(flavor.mig_profile): "1"}
    if flavor.gpus > 0:
        return {GPU_RESOURCE: str(flavor.gpus)}
    return {}


def _label_value(text: str) -> str:
    """A Kubernetes label value: at most 63 characters of [A-Za-z0-9-_.], alnum at ends."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:63].strip("-_.")
    return value or "none"


def shm_volume(flavor: FlavorSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A memory-backed /dev/shm sized per flavor (PyTorch data loaders need more than 64M)."""
    if not flavor.shm:
        return [], []
    volume = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": flavor.shm}}
    return [volume], [{"name": "dshm", "mountPath": "/dev/shm"}]  # noqa: S108 - in the pod


def storage_volumes(project: str, site: KubeSite) -> tuple[list[dict], list[dict]]:
    """The user's home (its own PVC) and the project's shared folder at /project."""
    claim = site.project_claim_template.format(project=project)
    volumes = [
        {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
        {"name": "project", "persistentVolumeClaim": {"claimName": claim}},
    ]
    mounts = [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "project", "mountPath": "/project"},
    ]
    return volumes, mounts


def security_settings() -> dict[str, Any]:
    """Non-root, no privilege escalation, no capabilities, the runtime's seccomp profile."""
    return {
        "uid": NON_ROOT_UID,
        "gid": NON_ROOT_GID,
        "fs_gid": NON_ROOT_GID,
        "privileged": False,
        "allow_privilege_escalation": False,
        "container_security_context": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_GID,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "pod_security_context": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_GID,
            "fsGroup": NON_ROOT_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def pod_settings(
    flavor: FlavorSpec, image: ImageSpec, project: str, site: KubeSite | None = None
) -> dict[str, Any]:
    """KubeSpawner trait values for one session of ``flavor`` x ``image`` in ``project``."""
    site = site or KubeSite()
    limits = gpu_limits(flavor)
    node_selector = dict(site.extra_node_selector)
    if flavor.uses_gpu and flavor.gpu_product:
        node_selector[GPU_PRODUCT_LABEL] = flavor.gpu_product
    shm_volumes, shm_mounts = shm_volume(flavor)
    store_volumes, store_mounts = storage_volumes(project, site)
    environment = {
        "AITESTBED_PROJECT": project,
        "AITESTBED_FLAVOR": flavor.slug,
        "AITESTBED_IMAGE": image.slug,
        "CPU_LIMIT": f"{flavor.cpu:g}",
    }
    if flavor.uses_gpu:
        environment["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
    else:
        # No GPU device is mounted; make the absence explicit to CUDA libraries too.
        environment["NVIDIA_VISIBLE_DEVICES"] = "void"
        environment["CUDA_VISIBLE_DEVICES"] = ""
    lifetime = (
        int(flavor.max_lifetime_hours * 3600) if flavor.max_lifetime_hours is not None else None
    )
    return {
        "image": image.image,
        "image_pull_policy": site.image_pull_policy,
        "cpu_guarantee": flavor.cpu,
        "cpu_limit": flavor.cpu,
        "mem_guarantee": flavor.memory,
        "mem_limit": flavor.memory,
        "extra_resource_guarantees": dict(limits),
        "extra_resource_limits": dict(limits),
        "node_selector": node_selector,
        "tolerations": [dict(t) for t in site.gpu_tolerations] if flavor.uses_gpu else [],
        "volumes": store_volumes + shm_volumes,
        "volume_mounts": store_mounts + shm_mounts,
        "storage_pvc_ensure": True,
        "storage_capacity": site.home_storage,
        "storage_class": site.home_storage_class,
        "environment": environment,
        "extra_labels": {
            f"{LABEL_PREFIX}project": _label_value(project),
            f"{LABEL_PREFIX}flavor": _label_value(flavor.slug),
            f"{LABEL_PREFIX}image": _label_value(image.slug),
        },
        "extra_annotations": {
            f"{LABEL_PREFIX}project": project,
            f"{LABEL_PREFIX}flavor": flavor.display_name,
            f"{LABEL_PREFIX}image": image.image,
            f"{LABEL_PREFIX}max-lifetime-seconds": str(lifetime) if lifetime else "none",
        },
        "automount_service_account_token": False,
        **security_settings(),
    }
