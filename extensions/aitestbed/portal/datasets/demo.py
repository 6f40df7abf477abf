"""Demo data of the embedded default, written from datasets shipped inside scikit-learn.

A local dataset whose storage names a ``demo_source`` (``sklearn-iris``, ``sklearn-wine``,
``sklearn-digits``, ``sklearn-diabetes-pseudonymized``: see :func:`patients_table`) and
whose folder is missing or empty is filled at start-up: a CSV and a Parquet file of the
table, PNG images for digits, and a README.md. Nothing is downloaded:
scikit-learn carries these three datasets in its wheel.

The folder appears in one step: the files are written into a temporary sibling folder, made
read-only, then renamed into place, so two portals starting at once never leave (or see) a
half-written folder. Building demo data is a convenience: a failure is logged as a warning
and never stops the portal.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("aitestbed.portal.datasets")

FILE_MODE = 0o444
FOLDER_MODE = 0o555
PARTIAL_PREFIX = ".partial-"
# A partial folder this old was left by a process that died while writing it.
STALE_PARTIAL_SECONDS = 3600
# Each 8 x 8 digit is written as a 32 x 32 PNG, so a thumbnail is big enough to see.
DIGIT_SCALE = 4


@dataclass(frozen=True)
class Table:
    """A demo table: column names and rows (numbers and strings), plus its README facts."""

    name: str  # file stem: <name>.csv, <name>.parquet
    columns: tuple[str, ...]
    rows: list[list[Any]]
    about: str  # README paragraphs: what the data is and where it comes from
    column_notes: dict[str, str]


def png_bytes(pixels: Sequence[Sequence[int]]) -> bytes:
    """An 8-bit greyscale PNG of ``pixels`` (rows of 0..255), written with zlib alone."""
    height, width = len(pixels), len(pixels[0])

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    # filter type 0 (none) before each row
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def digit_pixels(values: Sequence[float], scale: int = DIGIT_SCALE) -> list[list[int]]:
    """64 grey levels 0..16 (16 = ink) -> dark ink on white, each pixel ``scale`` x ``scale``."""
    grey = [255 - round(float(v) * 255 / 16) for v in values]
    rows = [grey[r * 8 : r * 8 + 8] for r in range(8)]
    return [[v for v in row for _ in range(scale)] for row in rows for _ in range(scale)]


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _iris_or_wine(loader: Callable[[], Any], name: str, about: str) -> Table:
    bunch = loader()
    names = [str(n) for n in bunch.target_names]
    columns = (*[str(f) for f in bunch.feature_names], "target", "class_name")
    rows = [
        [*(float(v) for v in features), int(target), names[int(target)]]
        for features, target in zip(bunch.data, bunch.target, strict=True)
    ]
    notes = {str(f): "measurement (number)" for f in bunch.feature_names}
    notes["target"] = "class as a number: " + ", ".join(f"{i} = {n}" for i, n in enumerate(names))
    notes["class_name"] = "class as a name"
    return Table(name, columns, rows, about, notes)


def iris_table() -> Table:
    from sklearn.datasets import load_iris

    about = (
        "Fisher's iris data (1936): four measurements of 150 iris flowers, 50 of each of "
        "three species. From the UCI Machine Learning Repository, as shipped inside "
        "scikit-learn (`sklearn.datasets.load_iris`)."
    )
    return _iris_or_wine(load_iris, "iris", about)


def wine_table() -> Table:
    from sklearn.datasets import load_wine

    about = (
        "Chemical analysis of 178 wines grown in the same region of Italy by three "
        "cultivators: 13 constituents per wine. From the UCI Machine Learning Repository, "
        "as shipped inside scikit-learn (`sklearn.datasets.load_wine`)."
    )
    return _iris_or_wine(load_wine, "wine", about)


def digits_table() -> Table:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    columns = (*[f"pixel_{r}_{c}" for r in range(8) for c in range(8)], "target")
    rows = [
        [*(int(v) for v in pixels), int(target)]
        for pixels, target in zip(bunch.data, bunch.target, strict=True)
    ]
    about = (
        "1,797 handwritten digits, 8 x 8 pixels with 16 grey levels, written by 43 people: "
        "the test part of the UCI 'Optical Recognition of Handwritten Digits' data, as "
        "shipped inside scikit-learn (`sklearn.datasets.load_digits`).\n\n"
        "Row *i* of the table is also the image `images/<target>/<i>.png` (zero-padded to "
        f"four digits), scaled to {8 * DIGIT_SCALE} x {8 * DIGIT_SCALE} pixels, dark ink "
        "on white."
    )
    notes = {"pixel_<row>_<column>": "grey level 0 (paper) .. 16 (ink), row and column 0..7"}
    notes["target"] = "the digit, 0..9"
    return Table("digits", columns, rows, about, notes)


def _write_table(folder: Path, table: Table) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with (folder / f"{table.name}.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(table.columns)
        writer.writerows(table.rows)
    columns = {name: [row[i] for row in table.rows] for i, name in enumerate(table.columns)}
    pq.write_table(pa.table(columns), folder / f"{table.name}.parquet")


def _write_readme(folder: Path, table: Table, title: str, license: str, files: str) -> None:
    import sklearn

    notes = "\n".join(f"- `{name}`: {text}" for name, text in table.column_notes.items())
    folder.joinpath("README.md").write_text(
        f"# {title}\n\n{table.about}\n\n"
        f"- Rows: {len(table.rows)}\n- License: {license or 'see the source'}\n"
        f"- Source: scikit-learn {sklearn.__version__} (bundled data, no download)\n\n"
        f"## Files\n\n{files}\n\n## Columns\n\n{notes}\n",
        encoding="utf-8",
    )


def _table_files(name: str) -> str:
    return (
        f"- `{name}.csv`: the table, comma-separated with a header row\n"
        f"- `{name}.parquet`: the same table as Parquet"
    )


def write_iris(folder: Path, title: str, license: str) -> None:
    table = iris_table()
    _write_table(folder, table)
    _write_readme(folder, table, title, license, _table_files("iris"))


def write_wine(folder: Path, title: str, license: str) -> None:
    table = wine_table()
    _write_table(folder, table)
    _write_readme(folder, table, title, license, _table_files("wine"))


def write_digits(folder: Path, title: str, license: str) -> None:
    table = digits_table()
    _write_table(folder, table)
    for index, row in enumerate(table.rows):
        digit_folder = folder / "images" / str(row[-1])
        digit_folder.mkdir(parents=True, exist_ok=True)
        (digit_folder / f"{index:04d}.png").write_bytes(png_bytes(digit_pixels(row[:-1])))
    files = _table_files("digits") + "\n- `images/<digit>/<row>.png`: each digit as an image"
    _write_readme(folder, table, title, license, files)


# Synthetic people for the pseudonymized demo: names and record numbers are made up here
# (the diabetes data has none), then replaced by pseudonyms before anything is written.
FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas")
LAST_NAMES = ("Berger", "Fischer", "Hofmann", "Klein", "Lang", "Meyer", "Richter", "Wolf")
CLINICS = ("north", "south", "east", "west", "island")


def synthetic_identities(count: int) -> list[tuple[str, str]]:
    """``count`` made-up (name, record number) pairs, the same every time."""
    return [
        (
            f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i * 7) % len(LAST_NAMES)]}",
            f"MRN-{100000 + (i * 7919) % 900000:06d}",
        )
        for i in range(count)
    ]


def pseudonym(key: bytes, identity: tuple[str, str]) -> str:
    """A keyed hash of the identifiers: the same person gets the same pseudonym under one
    key, and without the key nobody can go back from the pseudonym to the person."""
    digest = hmac.new(key, "\x1f".join(identity).encode(), hashlib.sha256).hexdigest()
    return f"P-{digest[:12]}"


def patients_table(key: bytes | None = None) -> Table:
    """The diabetes study (442 patients) with pseudonyms for made-up identities and a
    made-up clinic: personal data's shape without anyone's data. ``key`` (random when
    None) is not kept: the demo's pseudonyms cannot be linked back even by the portal."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    key = key if key is not None else secrets.token_bytes(32)
    people = synthetic_identities(len(bunch.target))
    columns = ("patient", "clinic", *[str(f) for f in bunch.feature_names], "progression")
    rows = [
        [pseudonym(key, person), CLINICS[(index * 31) % 97 % len(CLINICS)]]
        + [_number(v) for v in features]
        + [_number(target)]
        for index, (person, features, target) in enumerate(
            zip(people, bunch.data, bunch.target, strict=True)
        )
    ]
    about = (
        "The diabetes study of Efron et al. (2004): ten baseline variables of 442 patients "
        "and a measure of disease progression one year later, as shipped inside "
        "scikit-learn (`sklearn.datasets.load_diabetes`).\n\n"
        "**Pseudonymized demo.** The study has no identifiers, so the portal made up a name "
        "and a record number per patient and a clinic, then replaced the name and record "
        "number by a pseudonym (a keyed hash whose key was thrown away). It stands in for "
        "pseudonymized personal data: sessions that mount it run in safe mode, and results "
        "leave only through the airlock."
    )
    notes = {
        "patient": "pseudonym of the (made-up) person, P- and 12 hex digits",
        "clinic": "made-up clinic: " + ", ".join(CLINICS),
        "age": "age in years",
        "sex": "1 or 2",
        "bmi": "body mass index",
        "bp": "average blood pressure",
        "s1 .. s6": "six blood serum measurements",
        "progression": "disease progression one year after baseline",
    }
    return Table("patients", columns, rows, about, notes)


def write_patients(folder: Path, title: str, license: str) -> None:
    table = patients_table()
    _write_table(folder, table)
    _write_readme(folder, table, title, license, _table_files("patients"))


WRITERS: dict[str, Callable[[Path, str, str], None]] = {
    "sklearn-iris": write_iris,
    "sklearn-wine": write_wine,
    "sklearn-digits": write_digits,
    "sklearn-diabetes-pseudonymized": write_patients,
}


def _make_read_only(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for name in files:
            os.chmod(Path(root, name), FILE_MODE)
        for name in dirs:
            os.chmod(Path(root, name), FOLDER_MODE)
    os.chmod(folder, FOLDER_MODE)


def _remove(folder: Path) -> None:
    """Remove a (possibly read-only) folder we wrote."""
    with contextlib.suppress(FileNotFoundError):
        for root, dirs, _files in os.walk(folder):
            os.chmod(root, 0o700)
            for name in dirs:
                os.chmod(Path(root, name), 0o700)
        shutil.rmtree(folder)


def _is_filled(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _remove_stale_partials(folder: Path, now: float) -> None:
    """Remove what a process that died while writing ``folder`` left next to it."""
    for partial in folder.parent.glob(f"{PARTIAL_PREFIX}{folder.name}-*"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
                _remove(partial)
                log.info("Removed %s, left by an interrupted demo data write", partial)


def write_demo_dataset(folder: Path, source: str, title: str = "", license: str = "") -> bool:
    """Fill ``folder`` from ``source`` unless it has files; True if this call wrote it.

    Written next to ``folder`` first and renamed into place, so the folder is either absent
    (or empty) or complete, whoever else writes it at the same time.
    """
    if _is_filled(folder):
        return False
    writer = WRITERS[source]
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(folder, time.time())
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{folder.name}-", dir=folder.parent))
    try:
        writer(partial, title or folder.name, license)
        _make_read_only(partial)
        try:
            # rename(2) replaces an empty folder and fails on one with files in it
            partial.rename(folder)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST) and _is_filled(folder):
                return False  # another process was quicker; its folder is complete
            raise
        return True
    finally:
        _remove(partial)


def ensure_demo_datasets(datasets: Iterable[Any]) -> list[str]:
    """Write the demo data of each local dataset with a ``demo_source`` and no files yet.

    ``datasets`` are the site settings' ``Dataset`` entries. Returns the slugs written. Never
    raises: a dataset that cannot be written is logged as a warning and left as it is.
    """
    written = []
    for spec in datasets:
        storage = spec.storage
        if storage.kind != "local" or not storage.demo_source or not storage.path:
            continue
        folder = Path(storage.path)
        if storage.demo_source not in WRITERS:
            log.warning(
                "Dataset %s: unknown demo_source %r (known: %s); its folder is left as it is.",
                spec.slug,
                storage.demo_source,
                ", ".join(sorted(WRITERS)),
            )
            continue
        try:
            if write_demo_dataset(folder, storage.demo_source, spec.title, spec.license):
                log.info(
                    "Dataset %s: wrote demo data from %s into %s",
                    spec.slug,
                    storage.demo_source,
                    folder,
                )
                written.append(spec.slug)
        except Exception as error:  # demo data is a convenience; the portal must start
            log.warning(
                "Dataset %s: could not write demo data from %s into %s (%s: %s); the "
                "dataset stays empty. Check that scikit-learn and pyarrow are installed "
                "(the hub extra) and that the folder's parent is writable.",
                spec.slug,
                storage.demo_source,
                folder,
                type(error).__name__,
                error,
            )
    return written
