"""Dataset mounts as pure decisions: pod volumes, embedded links, job placement and binds."""

from __future__ import annotations

import os
import shlex

import pytest
from aitestbed.hub.local_settings import link_datasets
from aitestbed.hub.pod_settings import dataset_volumes, pod_settings, unmountable_in_pod
from aitestbed.policy.model import FlavorSpec, ImageSpec
from aitestbed.policy.mounts import DatasetMount, parse_mounts, refusal_messages
from aitestbed.portal.jobs.datasets import DatasetPlacementError, JobDataset, slurm_placement
from aitestbed.portal.jobs.script import render
from aitestbed.portal.jobs.spec import JobSpecError, validate
from aitestbed.settings import Jobs

PVC = DatasetMount("digits", {"kind": "pvc", "claim": "datasets", "sub_path": "digits/v1"})
NFS = DatasetMount("wine", {"kind": "nfs", "server": "nfs.example.org", "path": "/export/wine"})
HOST = DatasetMount("iris", {"kind": "host_path", "path": "/data/iris"})
LOCAL = DatasetMount("toy", {"kind": "local", "path": "/srv/portal/datasets/toy"})
CPU = FlavorSpec(slug="cpu-small", display_name="CPU", cpu=2, memory="4Gi")
IMAGE = ImageSpec(slug="python-cpu", display_name="Python", image="example/python:1")


def test_each_storage_kind_becomes_a_read_only_volume_at_datasets_slug():
    volumes, mounts = dataset_volumes([PVC, NFS, HOST])
    assert volumes == [
        {"name": "ds-digits", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}},
        {"name": "ds-iris", "hostPath": {"path": "/data/iris", "type": "Directory"}},
        {
            "name": "ds-wine",
            "nfs": {"server": "nfs.example.org", "path": "/export/wine", "readOnly": True},
        },
    ]
    assert mounts == [
        {
            "name": "ds-digits",
            "mountPath": "/datasets/digits",
            "readOnly": True,
            "subPath": "digits/v1",
        },
        {"name": "ds-iris", "mountPath": "/datasets/iris", "readOnly": True},
        {"name": "ds-wine", "mountPath": "/datasets/wine", "readOnly": True},
    ]


def test_local_storage_is_not_mountable_in_a_pod_and_is_left_out():
    assert unmountable_in_pod([PVC, LOCAL]) == ["toy"]
    volumes, mounts = dataset_volumes([LOCAL, PVC])
    assert [v["name"] for v in volumes] == ["ds-digits"]
    assert [m["mountPath"] for m in mounts] == ["/datasets/digits"]


@pytest.mark.parametrize(
    "storage",
    [
        {"kind": "pvc", "claim": "d", "sub_path": "../other-tenant"},
        {"kind": "pvc", "claim": "d", "sub_path": "/abs"},
        {"kind": "pvc", "claim": "d", "sub_path": "a//b"},
        {"kind": "pvc"},
        {"kind": "nfs", "server": "nfs"},
        {"kind": "host_path", "path": "relative"},
    ],
)
def test_unsafe_or_incomplete_storage_is_not_mounted(storage):
    mount = DatasetMount("odd", storage)
    assert unmountable_in_pod([mount]) == ["odd"]
    assert dataset_volumes([mount]) == ([], [])


def test_volume_names_are_dns_labels_for_the_longest_slugs():
    slug = "a" * 30 + "-" + "b" * 29
    volumes, _ = dataset_volumes([DatasetMount(slug, {"kind": "pvc", "claim": "c"})])
    assert len(volumes[0]["name"]) == 63


def test_pod_settings_add_dataset_volumes_and_environment_afresh_every_start():
    first = pod_settings(CPU, IMAGE, "acme-vision", datasets=[PVC, NFS, LOCAL])
    names = [v["name"] for v in first["volumes"]]
    assert {"ds-digits", "ds-wine"} <= set(names) and "ds-toy" not in names
    assert first["environment"]["AITESTBED_DATASETS_DIR"] == "/datasets"
    assert first["environment"]["AITESTBED_DATASETS"] == "digits,wine"  # toy is not there
    second = pod_settings(CPU, IMAGE, "acme-vision", datasets=[])
    assert not [v for v in second["volumes"] if v["name"].startswith("ds-")]
    assert not [m for m in second["volume_mounts"] if m["mountPath"].startswith("/datasets")]
    assert second["environment"]["AITESTBED_DATASETS"] == ""
    assert second["environment"]["AITESTBED_DATASETS_DIR"] == "/datasets"


def test_portal_answer_is_parsed_and_a_bad_slug_is_refused():
    mounts = parse_mounts(
        [
            {"slug": "wine", "version": "1", "storage": {"kind": "nfs"}, "mount_path": "x"},
            {"slug": "iris", "version": "2", "storage": {"kind": "pvc", "claim": "d"}},
        ]
    )
    assert [(m.slug, m.kind, m.mount_path) for m in mounts] == [
        ("iris", "pvc", "/datasets/iris"),
        ("wine", "nfs", "/datasets/wine"),
    ]
    for slug in ("../etc", "A", "x" * 61, "a;b"):
        with pytest.raises(ValueError, match="invalid dataset slug"):
            parse_mounts([{"slug": slug, "storage": {}}])


def test_refusals_become_messages_the_user_can_act_on():
    messages = refusal_messages(
        [
            {"slug": "digits", "code": "terms-not-accepted", "reason": "Accept ..."},
            {"slug": "odd", "code": "other", "reason": "Some reason."},
        ]
    )
    assert messages[0].startswith("digits is not mounted: accept its terms first")
    assert messages[1] == "odd is not mounted: Some reason."


# -- the embedded default: links in ~/datasets -----------------------------------------


def _local(slug, folder):
    return DatasetMount(slug, {"kind": "local", "path": str(folder)})


def test_links_are_exactly_the_allowed_datasets_and_stale_ones_go(tmp_path):
    data = {name: tmp_path / "data" / name for name in ("iris", "wine", "digits")}
    for folder in data.values():
        folder.mkdir(parents=True)
    home = tmp_path / "home"
    folder, linked = link_datasets(
        home, [_local("iris", data["iris"]), _local("wine", data["wine"])]
    )
    assert folder == home / "datasets" and linked == ["iris", "wine"]
    assert sorted(p.name for p in folder.iterdir()) == ["iris", "wine"]
    assert os.readlink(folder / "wine") == str(data["wine"])
    # The next session may use digits and iris only: wine's link goes, the user's file stays.
    (folder / "notes.txt").write_text("mine")
    _, linked = link_datasets(
        home, [_local("digits", data["digits"]), _local("iris", data["iris"])]
    )
    assert linked == ["digits", "iris"]
    assert sorted(p.name for p in folder.iterdir()) == ["digits", "iris", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"
    assert data["wine"].is_dir()  # only the link was removed


def test_a_link_pointing_elsewhere_is_replaced(tmp_path):
    real, other = tmp_path / "iris", tmp_path / "other"
    real.mkdir()
    other.mkdir()
    (tmp_path / "home" / "datasets").mkdir(parents=True)
    (tmp_path / "home" / "datasets" / "iris").symlink_to(other)
    link_datasets(tmp_path / "home", [_local("iris", real)])
    assert (tmp_path / "home" / "datasets" / "iris").resolve() == real


def test_a_real_folder_in_the_place_of_a_dataset_is_never_deleted(tmp_path):
    real = tmp_path / "iris"
    real.mkdir()
    mine = tmp_path / "home" / "datasets" / "iris"
    mine.mkdir(parents=True)
    (mine / "work.csv").write_text("mine")
    with pytest.raises(FileExistsError, match="rename it"):
        link_datasets(tmp_path / "home", [_local("iris", real)])
    assert (mine / "work.csv").read_text() == "mine"


def test_datasets_that_are_a_file_or_a_link_are_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "datasets").write_text("not a folder")
    with pytest.raises(FileExistsError, match="not a folder"):
        link_datasets(home, [])
    (home / "datasets").unlink()
    (home / "datasets").symlink_to(tmp_path)
    with pytest.raises(FileExistsError, match="not a folder"):
        link_datasets(home, [])


def test_storage_without_a_folder_here_is_not_linked(tmp_path):
    _, linked = link_datasets(tmp_path / "home", [PVC, _local("gone", tmp_path / "missing"), NFS])
    assert linked == []
    assert list((tmp_path / "home" / "datasets").iterdir()) == []


# -- jobs: validation, placement, script ------------------------------------------------


def _spec(jobs: Jobs, **request):
    return validate(
        {"project": "acme-vision", "command": ["python", "train.py"], **request},
        jobs=jobs,
        unix_user="alice",
        images={"pytorch": True},
    )


@pytest.mark.parametrize(
    ("datasets", "field"),
    [
        (["../etc"], "datasets[0]"),
        (["iris", "a;rm -rf /"], "datasets[1]"),
        (["x" * 10_000], "datasets[0]"),
        (["Iris"], "datasets[0]"),
        ([""], "datasets[0]"),
        ([3], "datasets[0]"),
        (["iris", "iris"], "datasets[1]"),
        ("iris", "datasets"),
        ([f"d{i}" for i in range(33)], "datasets"),
    ],
)
def test_hostile_dataset_lists_are_refused_naming_the_field(datasets, field):
    with pytest.raises(JobSpecError) as error:
        _spec(Jobs(), datasets=datasets)
    assert error.value.field == field
    assert len(str(error.value)) < 300  # a 10 kB slug is not echoed back


def test_valid_dataset_lists_are_kept_in_order():
    assert _spec(Jobs(), datasets=["wine", "iris"]).datasets == ("wine", "iris")
    assert _spec(Jobs()).datasets == ()


IRIS = JobDataset("iris", {"kind": "nfs"}, None)
WINE = JobDataset("wine", {"kind": "nfs"}, "/lustre/shared/wine-v2")


def test_container_jobs_bind_each_cluster_path_at_datasets_slug():
    binds, env = slurm_placement([IRIS, WINE], datasets_dir="/datasets/", in_container=True)
    assert binds == [
        ("/datasets/iris", "/datasets/iris"),
        ("/lustre/shared/wine-v2", "/datasets/wine"),
    ]
    assert env == {"AITESTBED_DATASETS_DIR": "/datasets", "AITESTBED_DATASETS": "iris,wine"}


def test_jobs_without_container_read_datasets_dir_and_refuse_other_places():
    binds, env = slurm_placement([IRIS], datasets_dir="/gpfs/datasets", in_container=False)
    assert binds == []
    assert env == {"AITESTBED_DATASETS_DIR": "/gpfs/datasets", "AITESTBED_DATASETS": "iris"}
    with pytest.raises(DatasetPlacementError, match=r"jobs\.datasets_dir"):
        slurm_placement([WINE], datasets_dir="/gpfs/datasets", in_container=False)
    sneaky = JobDataset("iris", {}, "/gpfs/datasets/../etc")
    with pytest.raises(DatasetPlacementError):
        slurm_placement([sneaky], datasets_dir="/gpfs/datasets", in_container=False)


@pytest.mark.parametrize("path", ["/data/a,b", "/data/a:/etc", "relative/path", "/data/a\nb"])
def test_cluster_paths_that_break_bind_syntax_are_refused(path):
    with pytest.raises(DatasetPlacementError, match="cannot be bound"):
        slurm_placement([JobDataset("iris", {}, path)], datasets_dir="/d", in_container=True)


def _exec_words(script: str) -> list[str]:
    line = next(line for line in script.splitlines() if line.startswith("exec "))
    return shlex.split(line)[1:]


def test_apptainer_binds_every_dataset_read_only():
    spec = _spec(Jobs(container_launcher="apptainer"), image="pytorch", datasets=["iris", "wine"])
    binds = [("/datasets/iris", "/datasets/iris"), ("/lustre/my dir/wine", "/datasets/wine")]
    script = render(
        spec,
        job_uid="u1",
        container_launcher="apptainer",
        image_ref="docker://pt",
        dataset_binds=binds,
    )
    assert _exec_words(script) == [
        "apptainer", "exec",
        "--bind", "/datasets/iris:/datasets/iris:ro",
        "--bind", "/lustre/my dir/wine:/datasets/wine:ro",
        "docker://pt", "python", "train.py",
    ]  # fmt: skip


def test_pyxis_mounts_every_dataset_read_only():
    spec = _spec(Jobs(container_launcher="pyxis"), image="pytorch", datasets=["iris", "wine"])
    binds = [("/datasets/iris", "/datasets/iris"), ("/lustre/wine", "/datasets/wine")]
    script = render(
        spec, job_uid="u1", container_launcher="pyxis", image_ref="reg#pt", dataset_binds=binds
    )
    words = _exec_words(script)
    assert (
        "--container-mounts=/datasets/iris:/datasets/iris:ro,/lustre/wine:/datasets/wine:ro"
        in words
    )
    assert words[-2:] == ["python", "train.py"]


def test_no_container_means_no_binds_in_the_script():
    spec = _spec(Jobs(), datasets=["iris"])
    script = render(spec, job_uid="u1", dataset_binds=[("/x", "/datasets/iris")])
    assert _exec_words(script) == ["python", "train.py"]
    assert "/datasets" not in script


# -- the local spawner puts it together -------------------------------------------------


def _local_spawner(tmp_path):
    from types import SimpleNamespace

    from aitestbed.hub.local_spawner import PortalLocalSpawner
    from jupyterhub.objects import Server

    user = SimpleNamespace(
        name="alice", id=1, url="/user/alice/", escaped_name="alice", server=Server()
    )
    return PortalLocalSpawner(
        user=user,
        orm_spawner=None,
        home_dir_template=str(tmp_path / "homes" / "{username}"),
        projects_root=str(tmp_path / "projects"),
    )


def test_local_spawner_links_sets_the_environment_and_tells_what_is_missing(tmp_path):
    (tmp_path / "data" / "iris").mkdir(parents=True)
    spawner = _local_spawner(tmp_path)
    datasets = [
        _local("iris", tmp_path / "data" / "iris"),
        _local("gone", tmp_path / "nothing"),
        PVC,
    ]
    spawner.apply_session(CPU, IMAGE, "acme-vision", datasets)
    home = tmp_path / "homes" / "alice"
    assert spawner.session_environment["AITESTBED_DATASETS_DIR"] == str(home / "datasets")
    assert spawner.session_environment["AITESTBED_DATASETS"] == "iris"
    assert spawner.session_environment["AITESTBED_PROJECT"] == "acme-vision"
    assert [p.name for p in (home / "datasets").iterdir()] == ["iris"]
    assert [n.split(":")[0] for n in spawner.dataset_notes] == [
        "digits is not mounted",
        "gone is not mounted",
    ]
    # The next start of the same spawner with no datasets: nothing is left over.
    spawner.dataset_notes = []
    spawner.apply_session(CPU, IMAGE, "acme-vision", [])
    assert spawner.session_environment["AITESTBED_DATASETS"] == ""
    assert list((home / "datasets").iterdir()) == []


def test_a_user_folder_in_the_way_refuses_the_start_with_a_message(tmp_path):
    from tornado import web

    (tmp_path / "data" / "iris").mkdir(parents=True)
    (tmp_path / "homes" / "alice" / "datasets" / "iris").mkdir(parents=True)
    spawner = _local_spawner(tmp_path)
    with pytest.raises(web.HTTPError) as error:
        spawner.apply_session(
            CPU, IMAGE, "acme-vision", [_local("iris", tmp_path / "data" / "iris")]
        )
    assert error.value.status_code == 409
    assert "rename it" in error.value.log_message
