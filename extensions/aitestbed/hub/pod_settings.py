"""What a session becomes on Kubernetes: pure functions from flavor, image, project and the
datasets the portal allowed to KubeSpawner settings (the trait values KubeSpawner turns
into the pod).

Every start sets every key below, so nothing leaks from one user's previous choice into the
next pod (a CPU flavor after a GPU flavor gets an empty ``extra_resource_limits``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aitestbed.hub.capacity import FlavorDemand
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import MOUNT_ROOT, DatasetMount, datasets_environment

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
    cpu_node_selector: dict[str, str] = field(default_factory=dict)
    cpu_tolerations: tuple[dict[str, str], ...] = ()
    cpu_node_affinity_preferred: tuple[dict[str, Any], ...] = ()
    home_storage_type: str = "dynamic"
    home_static_claim: str = ""
    home_static_sub_path: str = "home/{username}"
    project_volume: bool = True
    extra_volumes: tuple[dict[str, Any], ...] = ()
    extra_volume_mounts: tuple[dict[str, Any], ...] = ()


_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``24Gi``, ``500M``) in bytes, as KubeSpawner wants it
    (its ``mem_limit`` reads ``G`` as 2**30, so the text cannot be passed on)."""
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity such as 24Gi.")
    return int(float(match.group("number")) * _FACTORS[match.group("suffix")])


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


def node_selector(flavor: FlavorSpec, site: KubeSite) -> dict[str, str]:
    """The site's node labels, plus the GPU product label for GPU flavors or the CPU nodes'
    labels for CPU flavors."""
    selector = dict(site.extra_node_selector)
    if not flavor.uses_gpu:
        selector.update(site.cpu_node_selector)
    elif flavor.gpu_product:
        selector[GPU_PRODUCT_LABEL] = flavor.gpu_product
    return selector


def flavor_demand(flavor: FlavorSpec, site: KubeSite | None = None) -> FlavorDemand:
    """What one session of ``flavor`` takes from a node, for the capacity arithmetic."""
    site = site or KubeSite()
    limits = gpu_limits(flavor)
    if not limits:
        return FlavorDemand(flavor.slug, None)
    ((resource, units),) = limits.items()
    return FlavorDemand(flavor.slug, resource, int(units), node_selector(flavor, site))


def lifetime_seconds(flavor: FlavorSpec) -> int | None:
    """The flavor's lifetime limit in seconds; None when it has none."""
    if flavor.max_lifetime_hours is None:
        return None
    return max(int(flavor.max_lifetime_hours * 3600), 1)


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
    """The user's home (``home_storage_type``: its own PVC, a folder of one shared claim, or
    none), the project's shared folder at /project (``project_volume``) and the site's extra
    volumes."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if site.home_storage_type == "dynamic":
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}})
        mounts.append({"name": "home", "mountPath": "/home/jovyan"})
    elif site.home_storage_type == "static":
        claim = {"claimName": site.home_static_claim}
        volumes.append({"name": "home", "persistentVolumeClaim": claim})
        mounts.append(
            {"name": "home", "mountPath": "/home/jovyan", "subPath": site.home_static_sub_path}
        )
    if site.project_volume:
        claim = site.project_claim_template.format(project=project)
        volumes.append({"name": "project", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "project", "mountPath": "/project"})
    volumes += [dict(v) for v in site.extra_volumes]
    mounts += [dict(m) for m in site.extra_volume_mounts]
    return volumes, mounts


def _safe_sub_path(sub_path: str) -> bool:
    parts = sub_path.split("/")
    return not sub_path.startswith("/") and ".." not in parts and "" not in parts


def _pod_source(mount: DatasetMount) -> dict[str, Any] | None:
    """The read-only volume source of a dataset, or None when a pod cannot mount it."""
    storage = mount.storage
    if mount.kind == "pvc" and storage.get("claim"):
        if storage.get("sub_path") and not _safe_sub_path(storage["sub_path"]):
            return None
        return {"persistentVolumeClaim": {"claimName": storage["claim"], "readOnly": True}}
    if mount.kind == "nfs" and storage.get("server") and storage.get("path"):
        return {"nfs": {"server": storage["server"], "path": storage["path"], "readOnly": True}}
    if mount.kind == "host_path" and storage.get("path", "").startswith("/"):
        return {"hostPath": {"path": storage["path"], "type": "Directory"}}
    return None


def unmountable_in_pod(mounts: Sequence[DatasetMount]) -> list[str]:
    """Slugs of datasets a pod cannot mount: ``local`` storage (a folder of the portal's
    machine, for the embedded default only) or incomplete storage (a sub_path with ``..``)."""
    return [m.slug for m in mounts if _pod_source(m) is None]


def dataset_volumes(mounts: Sequence[DatasetMount]) -> tuple[list[dict], list[dict]]:
    """Read-only volumes and mounts at /datasets/<slug> for the datasets a pod can mount.

    Every volume is read-only where Kubernetes allows it (PVC and NFS sources) and every
    volume mount is ``readOnly`` (for a host path, the mount is what makes it read-only);
    a host path must be an existing directory. Volume names are ``ds-<slug>`` (slugs have
    at most 60 characters: a valid DNS label). Storage the pod cannot mount (see
    :func:`unmountable_in_pod`) is left out.
    """
    volumes: list[dict] = []
    volume_mounts: list[dict] = []
    for mount in sorted(mounts, key=lambda m: m.slug):
        source = _pod_source(mount)
        if source is None:
            continue
        name = f"ds-{mount.slug}"
        volume_mount: dict[str, Any] = {
            "name": name,
            "mountPath": mount.mount_path,
            "readOnly": True,
        }
        if mount.kind == "pvc" and mount.storage.get("sub_path"):
            volume_mount["subPath"] = mount.storage["sub_path"]
        volumes.append({"name": name, **source})
        volume_mounts.append(volume_mount)
    return volumes, volume_mounts


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
    flavor: FlavorSpec,
    image: ImageSpec,
    project: str,
    site: KubeSite | None = None,
    datasets: Sequence[DatasetMount] = (),
) -> dict[str, Any]:
    """KubeSpawner trait values for one session of ``flavor`` x ``image`` in ``project``,
    with ``datasets`` (the portal's decision at admission) mounted read-only."""
    site = site or KubeSite()
    limits = gpu_limits(flavor)
    shm_volumes, shm_mounts = shm_volume(flavor)
    store_volumes, store_mounts = storage_volumes(project, site)
    data_volumes, data_mounts = dataset_volumes(datasets)
    skipped = set(unmountable_in_pod(datasets))
    environment = {
        "AITESTBED_PROJECT": project,
        "AITESTBED_FLAVOR": flavor.slug,
        "AITESTBED_IMAGE": image.slug,
        "CPU_LIMIT": f"{flavor.cpu:g}",
        **datasets_environment(MOUNT_ROOT, [d.slug for d in datasets if d.slug not in skipped]),
    }
    if flavor.uses_gpu:
        environment["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
    else:
        # No GPU device is mounted; make the absence explicit to CUDA libraries too.
        environment["NVIDIA_VISIBLE_DEVICES"] = "void"
        environment["CUDA_VISIBLE_DEVICES"] = ""
    lifetime = lifetime_seconds(flavor)
    return {
        "image": image.image,
        "image_pull_policy": site.image_pull_policy,
        "cpu_guarantee": flavor.cpu,
        "cpu_limit": flavor.cpu,
        "mem_guarantee": quantity_bytes(flavor.memory),
        "mem_limit": quantity_bytes(flavor.memory),
        "extra_resource_guarantees": dict(limits),
        "extra_resource_limits": dict(limits),
        "node_selector": node_selector(flavor, site),
        "tolerations": [
            dict(t) for t in (site.gpu_tolerations if flavor.uses_gpu else site.cpu_tolerations)
        ],
        "node_affinity_preferred": (
            [] if flavor.uses_gpu else [dict(t) for t in site.cpu_node_affinity_preferred]
        ),
        "volumes": store_volumes + shm_volumes + data_volumes,
        "volume_mounts": store_mounts + shm_mounts + data_mounts,
        "storage_pvc_ensure": site.home_storage_type == "dynamic",
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
        # The kubelet ends the pod at the flavor's lifetime, even while the hub is down.
        "extra_pod_config": {"activeDeadlineSeconds": lifetime} if lifetime else {},
        "automount_service_account_token": False,
        **security_settings(),
    }
