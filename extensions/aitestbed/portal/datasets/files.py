"""Reading a dataset's files for the catalog API: listings and previews, never outside the
dataset's root.

A requested path is data from the user. :func:`resolve_inside` refuses, before touching
the disk, anything that is not a plain relative path (absolute paths, ``..``, control
characters, over-long text), then resolves symlinks and refuses a result outside the root,
so a link inside a dataset cannot lead out of it either; a path out is refused the same
way whether its target exists or not. Previews read a bounded number of
bytes and rows whatever the file's size.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MAX_PATH_LENGTH = 1024
MAX_ENTRIES = 1000
MAX_PREVIEW_ROWS = 200
MAX_CELL = 500  # characters of one previewed value
MAX_TEXT_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_CSV_BYTES = 4 * 1024 * 1024  # read at most this much of a CSV for the first rows
COUNT_ROWS_BELOW = 32 * 1024 * 1024  # count a CSV's rows only when it is smaller than this
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
TEXT_TYPES = {".txt", ".md", ".json", ".yaml", ".yml", ".rst"}
TABLE_TYPES = {".csv", ".tsv", ".parquet"}


class FileProblem(Exception):
    """A request for a dataset file that cannot be served; ``status`` is the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def clean_relative(path: str) -> PurePosixPath:
    """``path`` as a relative POSIX path without ``.`` parts; refuses what could escape."""
    if len(path) > MAX_PATH_LENGTH:
        raise FileProblem(400, "bad-path", f"The path is longer than {MAX_PATH_LENGTH} characters.")
    if _CONTROL.search(path):
        raise FileProblem(400, "bad-path", "The path contains a control character.")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise FileProblem(
            400, "bad-path", "Give a path relative to the dataset, not an absolute one."
        )
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FileProblem(400, "bad-path", "The path may not contain '..'.")
    return PurePosixPath(*parts)


def resolve_inside(root: Path, path: str) -> tuple[Path, PurePosixPath]:
    """The real file or folder for ``path`` under ``root``; 400 outside, 404 when missing.

    Whether a path leads outside is decided before whether it exists, so a path out of the
    dataset gets the same answer whether its target exists or not (no oracle for files
    elsewhere on the machine).
    """
    relative = clean_relative(path)
    real_root = root.resolve()
    try:
        target = (real_root / relative).resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop, a name too long for the file system
        raise FileProblem(400, "bad-path", "The path cannot be resolved.") from None
    if target != real_root and real_root not in target.parents:
        raise FileProblem(400, "outside", "The path leads outside the dataset.")
    if not target.exists():
        raise FileProblem(404, "not-found", f"There is no {str(relative)!r} in this dataset.")
    return target, relative


def dataset_root(storage: dict[str, Any]) -> Path:
    """The folder the portal reads a dataset from; only local storage is readable here."""
    if storage.get("kind") != "local" or not storage.get("path"):
        raise FileProblem(
            409,
            "storage-not-readable",
            f"The portal cannot read {storage.get('kind', 'this')} storage; open the dataset "
            "in a session, where it is mounted read-only under /datasets.",
        )
    root = Path(storage["path"])
    if not root.is_dir():
        raise FileProblem(
            409, "storage-missing", "The dataset's folder is missing; tell the operators."
        )
    return root


@dataclass(frozen=True)
class Entry:
    name: str
    path: str
    type: str  # file | dir
    size: int | None


def list_folder(root: Path, path: str = "") -> tuple[str, list[Entry], bool]:
    """Entries of a folder of the dataset (folders first, then by name, at most
    ``MAX_ENTRIES``); links that lead outside the dataset are left out."""
    folder, relative = resolve_inside(root, path)
    if not folder.is_dir():
        raise FileProblem(400, "not-a-folder", f"{str(relative)!r} is a file; preview it instead.")
    real_root = root.resolve()
    entries = []
    with os.scandir(folder) as scan:
        for item in scan:
            real = Path(item.path).resolve()
            if real != real_root and real_root not in real.parents:
                continue
            is_dir = real.is_dir()
            entries.append(
                Entry(
                    name=item.name,
                    path=str(relative / item.name),
                    type="dir" if is_dir else "file",
                    size=None if is_dir else real.stat().st_size,
                )
            )
    entries.sort(key=lambda e: (e.type != "dir", e.name))
    return (
        str(relative) if str(relative) != "." else "",
        entries[:MAX_ENTRIES],
        len(entries) > MAX_ENTRIES,
    )


@dataclass
class Preview:
    path: str
    kind: str  # table | image | text
    media_type: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    total_rows: int | None = None
    data_base64: str | None = None
    text: str | None = None


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def _csv_preview(
    file: Path, rows: int, delimiter: str
) -> tuple[list[str], list[list[Any]], int | None]:
    with file.open("rb") as raw:
        head = raw.read(MAX_CSV_BYTES)
    text = head.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return [], [], 0
    body = [[_cell(v) for v in row] for row in itertools.islice(reader, rows)]
    total = None
    if file.stat().st_size < COUNT_ROWS_BELOW:
        with file.open("rb") as raw:
            total = max(sum(1 for _ in raw) - 1, 0)
    return [_cell(h) for h in header], body, total


def _parquet_preview(file: Path, rows: int) -> tuple[list[str], list[list[Any]], int | None]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        batch = next(parquet.iter_batches(batch_size=max(rows, 1)), None)
    except Exception as error:  # pyarrow raises many kinds for a broken file
        raise FileProblem(422, "unreadable", f"The Parquet file cannot be read: {error}") from None
    columns = list(parquet.schema_arrow.names)
    records = batch.to_pylist()[:rows] if batch is not None else []
    body = [[_cell(record.get(c)) for c in columns] for record in records]
    return columns, body, parquet.metadata.num_rows


def preview_file(root: Path, path: str, rows: int = 20) -> Preview:
    """The first ``rows`` rows of a table, an image's bytes, or the start of a text file."""
    file, relative = resolve_inside(root, path)
    if file.is_dir():
        raise FileProblem(400, "not-a-file", f"{str(relative)!r} is a folder; list it instead.")
    rows = max(1, min(rows, MAX_PREVIEW_ROWS))
    suffix = file.suffix.lower()
    shown = str(relative)
    if suffix in (".csv", ".tsv"):
        columns, body, total = _csv_preview(file, rows, "\t" if suffix == ".tsv" else ",")
        return Preview(shown, "table", "text/csv", columns, body, total)
    if suffix == ".parquet":
        columns, body, total = _parquet_preview(file, rows)
        return Preview(shown, "table", "application/vnd.apache.parquet", columns, body, total)
    if suffix in IMAGE_TYPES:
        size = file.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise FileProblem(
                413,
                "too-large",
                f"The image is {size} bytes; previews show images up to {MAX_IMAGE_BYTES} bytes.",
            )
        data = base64.b64encode(file.read_bytes()).decode("ascii")
        return Preview(shown, "image", IMAGE_TYPES[suffix], data_base64=data)
    if suffix in TEXT_TYPES:
        with file.open("rb") as raw:
            text = raw.read(MAX_TEXT_BYTES).decode("utf-8", errors="replace")
        return Preview(shown, "text", "text/plain", text=text)
    raise FileProblem(
        415,
        "no-preview",
        f"There is no preview for {suffix or 'extensionless'} files; open "
        "the file from the session instead.",
    )
