"""What a session becomes in the embedded default: the same decisions as on Kubernetes, as
environment and folders of a local process. No GPU is visible to a CPU flavor."""

from __future__ import annotations

from pathlib import Path

from aitestbed.policy.model import FlavorSpec, ImageSpec


def local_environment(
    flavor: FlavorSpec, image: ImageSpec, project: str, project_dir: Path
) -> dict[str, str]:
    env = {
        "AITESTBED_PROJECT": project,
        "AITESTBED_FLAVOR": flavor.slug,
        "AITESTBED_IMAGE": image.slug,
        "AITESTBED_PROJECT_DIR": str(project_dir),
        "CPU_LIMIT": f"{flavor.cpu:g}",
    }
    if not flavor.uses_gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
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
