"""What a session becomes in the embedded default: the same decisions as on Kubernetes, as
environment and folders of a local process. No GPU is visible to a CPU flavor; a GPU flavor
sees exactly the devices the portal assigned it (``CUDA_VISIBLE_DEVICES``, with
``AITESTBED_GPU_SIMULATED=1`` when they are simulated). Every session runs as the hub's Unix
user, so that is advice, not a limit (docs/gpus.md).

Datasets: ``~/datasets/<slug>`` is a link to each allowed dataset's folder on this machine
(what ``/datasets/<slug>`` is in a pod), and ``AITESTBED_DATASETS_DIR`` says where that is.
The files themselves are read-only on disk, but every session runs as the hub's own Unix
user, who could make them writable again or read any dataset folder directly: the embedded
default does not isolate users (it is for one trusted team or a course on one server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from aitestbed.policy.gpus import GpuDevice, visible_devices
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import DatasetMount, datasets_environment

log = logging.getLogger(__name__)
LOCAL_KINDS = ("local", "host_path")  # storage with a folder on this machine


def local_environment(
    flavor: FlavorSpec,
    image: ImageSpec,
    project: str,
    project_dir: Path,
    gpus: Sequence[GpuDevice] = (),
) -> dict[str, str]:
    env = {
        "AITESTBED_PROJECT": project,
        "AITESTBED_FLAVOR": flavor.slug,
        "AITESTBED_IMAGE": image.slug,
        "AITESTBED_PROJECT_DIR": str(project_dir),
        "CPU_LIMIT": f"{flavor.cpu:g}",
    }
    if not flavor.uses_gpu or not gpus:
        # A GPU flavor without assigned devices (the portal does not assign them) sees
        # none either: never every GPU of the machine.
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    else:
        env.update(visible_devices(gpus))
    return env


def project_folder(projects_root: Path, project: str) -> Path:
    """The project's shared folder on this machine (what /project is on Kubernetes)."""
    return projects_root / project


def link_project_folder(home: Path, folder: Path) -> Path:
    """Make ``~/project`` point at the project's folder for this session."""
    folder.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    link = home / "project"
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == folder.resolve():
            return link
        if link.is_symlink():
            link.unlink()
        else:
            raise FileExistsError(
                f"{link} exists and is not the project link; rename it to use ~/project."
            )
    link.symlink_to(folder, target_is_directory=True)
    return link


def link_datasets(home: Path, datasets: Sequence[DatasetMount]) -> tuple[Path, list[str]]:
    """Make ``~/datasets`` hold links to exactly ``datasets``; returns the folder and the
    linked slugs.

    Links of earlier sessions that are not allowed now are removed. Real files or folders
    of the user there are never deleted: one in the place of a dataset to link refuses the
    start with a message saying what to rename; others are left alone. A dataset whose
    storage has no folder on this machine (pvc, nfs) or whose folder does not exist is not
    linked (and logged).
    """
    folder = home / "datasets"
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise FileExistsError(
            f"{folder} exists and is not a folder; rename it so that your datasets can "
            "appear there."
        )
    folder.mkdir(parents=True, exist_ok=True)
    targets: dict[str, Path] = {}
    for mount in datasets:
        path = mount.storage.get("path")
        if mount.kind not in LOCAL_KINDS or not path:
            log.warning("Dataset %s: %s storage has no folder here.", mount.slug, mount.kind)
            continue
        if not Path(path).is_dir():
            log.warning("Dataset %s: its folder %s does not exist; not linked.", mount.slug, path)
            continue
        targets[mount.slug] = Path(path)
    for entry in folder.iterdir():
        if entry.is_symlink():
            target = targets.get(entry.name)
            if target is None or entry.resolve() != target.resolve():
                entry.unlink()
        elif entry.name in targets:
            raise FileExistsError(
                f"{entry} exists and is not the link to the dataset {entry.name!r}; "
                "rename it to use the dataset."
            )
    for slug, target in targets.items():
        link = folder / slug
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return folder, sorted(targets)


def local_datasets_environment(folder: Path, slugs: Sequence[str]) -> dict[str, str]:
    return datasets_environment(str(folder), slugs)


def materials_command(
    python: str, repo: str, branch: str, folder: Path, command: Sequence[str]
) -> list[str]:
    """The session's command with the course's materials pulled first (in the session, by
    ``aitestbed.notebook.materials`` with nbgitpuller); an argument list, never a shell."""
    return [python, "-m", "aitestbed.notebook.materials", repo, branch, str(folder), "--", *command]


# Framework names on the image cards and the modules that provide them.
FRAMEWORK_MODULES = {
    "scikit-learn": "sklearn",
    "pytorch": "torch",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "torchvision": "torchvision",
    "jax": "jax",
}
NOT_INSTALLED = " (not installed on this machine)"


def framework_module(framework: str) -> str:
    return FRAMEWORK_MODULES.get(framework, framework.replace("-", "_"))


def framework_labels(
    frameworks: Sequence[str], installed: Callable[[str], bool]
) -> tuple[str, ...]:
    """The embedded default runs every image from one environment: a framework a card
    lists but the environment lacks is said so on the card, not promised."""
    return tuple(
        name if installed(framework_module(name)) else name + NOT_INSTALLED for name in frameworks
    )
