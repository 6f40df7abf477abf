"""Demo data of the embedded default: written from scikit-learn's bundled datasets, complete,
consistent between CSV and Parquet, valid PNGs, read-only, written once, never fatal."""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import stat
import struct
import time
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aitestbed.portal.datasets import demo
from aitestbed.settings import Dataset, DatasetStorage


def _spec(slug: str, folder: Path, source: str | None = None) -> Dataset:
    storage = DatasetStorage(kind="local", path=str(folder), demo_source=source)
    return Dataset(slug=slug, title=f"{slug} title", storage=storage, license="CC-BY-4.0")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The three demo datasets, written once for the module (digits takes a moment)."""
    root = tmp_path_factory.mktemp("demo") / "datasets"
    specs = [_spec(name, root / name, f"sklearn-{name}") for name in ("iris", "wine", "digits")]
    assert demo.ensure_demo_datasets(specs) == ["iris", "wine", "digits"]
    return root, specs


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(("name", "rows", "columns"), [("iris", 150, 6), ("wine", 178, 15)])
def test_tables_agree_between_csv_and_parquet(written, name, rows, columns):
    root, _specs = written
    folder = root / name
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        f"{name}.csv",
        f"{name}.parquet",
    ]
    header, *body = _csv_rows(folder / f"{name}.csv")
    table = pq.read_table(folder / f"{name}.parquet")
    assert len(body) == table.num_rows == rows
    assert header == table.column_names and len(header) == columns
    assert header[-2:] == ["target", "class_name"]
    parquet_rows = table.to_pylist()
    for csv_row, parquet_row in zip(body, parquet_rows, strict=True):
        assert [float(v) for v in csv_row[:-1]] == [parquet_row[c] for c in header[:-1]]
        assert csv_row[-1] == parquet_row["class_name"]
    readme = (folder / "README.md").read_text()
    assert f"# {name} title" in readme and "CC-BY-4.0" in readme and "scikit-learn" in readme
    assert f"`{header[0]}`" in readme and "`target`" in readme


def test_iris_content_is_the_real_iris(written):
    root, _specs = written
    header, first, *_ = _csv_rows(root / "iris" / "iris.csv")
    assert header[0] == "sepal length (cm)"
    assert first == ["5.1", "3.5", "1.4", "0.2", "0", "setosa"]


def _parse_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and decoded pixels of an 8-bit greyscale PNG, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, interlace) == (8, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (width + 1)
    return width, height, raw


def test_digits_table_images_and_readme(written):
    root, _specs = written
    folder = root / "digits"
    header, *body = _csv_rows(folder / "digits.csv")
    table = pq.read_table(folder / "digits.parquet")
    assert len(body) == table.num_rows == 1797
    assert len(header) == 65 and header[0] == "pixel_0_0" and header[-1] == "target"
    assert table.column("target").to_pylist() == [int(row[-1]) for row in body]
    images = sorted(folder.glob("images/*/*.png"))
    assert len(images) == 1797
    assert sorted(p.name for p in (folder / "images").iterdir()) == [str(d) for d in range(10)]
    # row i is images/<target>/<i>.png, and its pixels are the row's grey levels
    row = 42
    image = folder / "images" / body[row][-1] / f"{row:04d}.png"
    width, height, raw = _parse_png(image.read_bytes())
    assert (width, height) == (32, 32)
    scanlines = [raw[y * 33 : (y + 1) * 33] for y in range(32)]
    assert all(line[0] == 0 for line in scanlines)  # filter "none"
    for index, level in enumerate(body[row][:-1]):
        y, x = divmod(index, 8)
        assert scanlines[y * 4][1 + x * 4] == 255 - round(int(level) * 255 / 16)
    assert "images/<digit>/<row>.png" in (folder / "README.md").read_text()


def test_files_and_folders_are_read_only(written):
    root, _specs = written
    for folder in (root / "iris", root / "digits"):
        modes = {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}
        folders = {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_dir()}
        assert modes == {0o444}
        assert folders | {stat.S_IMODE(folder.stat().st_mode)} == {0o555}
    # nothing half-written is left next to the datasets
    assert sorted(p.name for p in root.iterdir()) == ["digits", "iris", "wine"]


def test_second_call_writes_nothing(written, caplog):
    root, specs = written
    before = {p: p.stat().st_mtime_ns for p in (root / "iris").iterdir()}
    with caplog.at_level(logging.INFO, "aitestbed.portal.datasets"):
        assert demo.ensure_demo_datasets(specs) == []
    assert caplog.records == []
    assert {p: p.stat().st_mtime_ns for p in (root / "iris").iterdir()} == before


def test_only_missing_or_empty_local_demo_folders_are_written(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("keep me")
    specs = [
        _spec("empty", tmp_path / "empty", "sklearn-iris"),
        _spec("mine", tmp_path / "mine", "sklearn-iris"),
        _spec("plain", tmp_path / "plain"),  # no demo_source
        Dataset(
            slug="nfs",
            title="On NFS",
            storage=DatasetStorage(kind="nfs", server="nfs.example", path="/export/x"),
        ),
    ]
    with caplog.at_level(logging.INFO, "aitestbed.portal.datasets"):
        assert demo.ensure_demo_datasets(specs) == ["empty"]
    assert (tmp_path / "empty" / "iris.csv").is_file()
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["data.txt"]
    assert not (tmp_path / "plain").exists()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("Dataset empty: wrote demo data from sklearn-iris into ")


def test_a_failure_is_a_warning_and_leaves_nothing_behind(tmp_path, caplog, monkeypatch):
    def broken(folder, title, license):
        (folder / "half.csv").write_text("a,b\n")
        raise OSError("disk full")

    monkeypatch.setitem(demo.WRITERS, "sklearn-wine", broken)
    specs = [
        _spec("wine", tmp_path / "wine", "sklearn-wine"),
        _spec("iris", tmp_path / "iris", "sklearn-iris"),
    ]
    with caplog.at_level(logging.INFO, "aitestbed.portal.datasets"):
        assert demo.ensure_demo_datasets(specs) == ["iris"]  # the next one is still written
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "Dataset wine: could not write demo data" in warning.getMessage()
    assert "OSError: disk full" in warning.getMessage()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris"]


def _write_in_child(folder: str, queue) -> None:
    queue.put(demo.write_demo_dataset(Path(folder), "sklearn-iris", "Iris", "BSD-3-Clause"))


def test_two_processes_at_once_leave_one_complete_folder(tmp_path):
    folder = tmp_path / "iris"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_write_in_child, args=(str(folder), queue)) for _ in "ab"]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    results = sorted(queue.get(timeout=5) for _ in children)
    # exactly one wrote it; the other found (or lost the rename to) a complete folder
    assert results == [False, True]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "iris.csv", "iris.parquet"]
    assert len(_csv_rows(folder / "iris.csv")) == 151
    assert [p.name for p in tmp_path.iterdir()] == ["iris"]


def test_partial_folders_of_a_dead_writer_are_removed_when_stale(tmp_path):
    stale = tmp_path / ".partial-iris-dead"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "x.png").write_bytes(b"half")
    os.chmod(stale / "images", demo.FOLDER_MODE)
    fresh = tmp_path / ".partial-iris-writing"  # another process may be writing it now
    fresh.mkdir()
    other = tmp_path / ".partial-wine-dead"
    other.mkdir()
    two_hours_ago = time.time() - 7200
    for path in (stale, other):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert demo.write_demo_dataset(tmp_path / "iris", "sklearn-iris")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".partial-iris-writing",
        ".partial-wine-dead",  # another dataset's, left for that dataset's own write
        "iris",
    ]


def test_losing_the_rename_race_keeps_the_winners_folder(tmp_path, monkeypatch):
    folder = tmp_path / "iris"

    def slow_writer(partial, title, license):
        (partial / "mine.csv").write_text("x\n")
        # meanwhile another process finished first
        folder.mkdir()
        (folder / "iris.csv").write_text("theirs\n")

    monkeypatch.setitem(demo.WRITERS, "sklearn-iris", slow_writer)
    assert demo.write_demo_dataset(folder, "sklearn-iris") is False
    assert [p.name for p in folder.iterdir()] == ["iris.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["iris"]  # our partial folder is gone
