"""Datasets from a notebook: ``aitestbed.datasets``.

::

    from aitestbed import datasets

    datasets.list()                      # what you can see; .usable says what you may use
    datasets.search("digits", tag="images")
    datasets.info("digits")              # license, terms, your access
    datasets.accept_terms("digits")      # shows the terms, records your acceptance
    datasets.files("digits", "images/3")
    datasets.preview("iris", "iris.csv", rows=5)
    df = pd.read_csv(datasets.path("iris") / "iris.csv")   # the read-only mount
    datasets.browser()                   # all of it as a widget

Datasets are mounted read-only when a session starts, at ``$AITESTBED_DATASETS_DIR/<slug>``
(``/datasets/<slug>`` on the cluster). A dataset you may use only after accepting its terms
is mounted in the next session you start after accepting them.
"""

from __future__ import annotations

import base64
import builtins
import csv
import html
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from aitestbed.notebook.client import PortalClient, PortalError

DATASETS_DIR_ENV = "AITESTBED_DATASETS_DIR"
DEFAULT_DATASETS_DIR = "/datasets"
PAGE_SIZE = 50
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_TEXT_CHARS = 64 * 1024


class DatasetError(PortalError):
    """A dataset request failed; the message is the portal's (or says what to do).

    ``status`` is the HTTP status where the portal answered, ``code`` its reason
    (``terms-not-accepted``, ``not-entitled``, ``storage-not-readable``, ...).
    """


@dataclass(frozen=True)
class Access:
    """Whether you may use a dataset now, and if not why (``code``: ok, not-entitled, ...)."""

    allowed: bool
    code: str
    reason: str = ""


@dataclass(frozen=True)
class Dataset:
    """One catalog entry as you see it."""

    slug: str
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    license: str = ""
    version: str = ""
    visibility: str = ""
    size_bytes: int | None = None
    file_count: int | None = None
    size_state: str = ""  # measured | measuring (the portal is counting) | unknown
    terms_version: str | None = None  # None: the dataset has no terms
    terms_accepted: bool = False
    usable: bool = False
    access: Access = Access(False, "unknown")
    path: str = ""  # where this session sees it (outside a session: /datasets/<slug>)


@dataclass(frozen=True)
class DatasetInfo(Dataset):
    """A dataset with its terms text, your acceptance, and the projects granted it."""

    terms_text: str = ""
    accepted_at: str | None = None
    projects: tuple[str, ...] = ()
    storage_kind: str = ""


@dataclass(frozen=True)
class Acceptance:
    slug: str
    terms_version: str
    accepted_at: str


@dataclass(frozen=True)
class FileEntry:
    name: str
    path: str  # relative to the dataset's root
    type: str  # file | dir
    size: int | None = None


@dataclass(frozen=True)
class Folder:
    """The entries of one folder of a dataset; ``truncated`` if the portal cut the list."""

    path: str
    entries: tuple[FileEntry, ...]
    truncated: bool = False

    def __iter__(self) -> Iterator[FileEntry]:
        return iter(self.entries)


@dataclass(frozen=True)
class Preview:
    """The start of a file: a table (columns, rows), an image (base64) or text.

    ``source`` is ``portal``, or ``mount`` where this session read the file itself because
    the portal cannot read that storage.
    """

    path: str
    kind: str  # table | image | text
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    total_rows: int | None = None
    media_type: str | None = None
    data_base64: str | None = None
    text: str | None = None
    source: str = "portal"

    def image_bytes(self) -> bytes:
        return base64.b64decode(self.data_base64 or "")

    def to_html(self) -> str:
        """The preview as HTML, every value escaped."""
        if self.kind == "table":
            return table_html(self.columns, self.rows, self.total_rows)
        if self.kind == "image":
            media = html.escape(self.media_type or "image/png", quote=True)
            return f"<img src='data:{media};base64,{html.escape(self.data_base64 or '')}'>"
        return f"<pre>{html.escape(self.text or '')}</pre>"

    def _repr_html_(self) -> str:
        return self.to_html()


@dataclass(frozen=True)
class TagCount:
    tag: str
    count: int


def table_html(columns, rows, total_rows: int | None = None) -> str:
    """An HTML table of ``rows``; every header and value is escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    shown = len(rows)
    caption = (
        f"<caption>first {shown} of {total_rows} rows</caption>"
        if total_rows is not None and total_rows > shown
        else ""
    )
    return (
        f"<table class='aitestbed-preview'>{caption}<thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _build(cls, data: dict[str, Any]):
    """A result dataclass from the portal's JSON: known fields only, lists as tuples."""
    values = {}
    for field in fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        if field.name == "access" and isinstance(value, dict):
            value = Access(
                bool(value.get("allowed")),
                str(value.get("code", "")),
                str(value.get("reason") or ""),
            )
        elif isinstance(value, builtins.list):
            value = tuple(tuple(v) if isinstance(v, builtins.list) else v for v in value)
        values[field.name] = value
    if "path" in values and "slug" in values and DATASETS_DIR_ENV in os.environ:
        # In a session, show where *this* session has it (~/datasets/<slug> in the
        # embedded default, /datasets/<slug> in a pod), not the portal's generic answer.
        values["path"] = str(datasets_dir() / values["slug"])
    return cls(**values)


def _client(client: PortalClient | None) -> PortalClient:
    try:
        return client or PortalClient()
    except PortalError as error:
        raise DatasetError(str(error)) from None


def _call(method, *args: Any, **kwargs: Any) -> Any:
    """Call the portal; its refusal becomes a DatasetError carrying its message."""
    try:
        return method(*args, **kwargs)
    except DatasetError:
        raise
    except PortalError as error:
        raise DatasetError(error.detail, error.status, code=error.code) from None


@dataclass(frozen=True)
class Page:
    """One page of a search: ``total`` matches, these ``items``, and the matches' tags."""

    total: int
    items: tuple[Dataset, ...]
    tags: tuple[TagCount, ...]


def page(
    text: str = "",
    tag: str | None = None,
    limit: int = PAGE_SIZE,
    offset: int = 0,
    *,
    client: PortalClient | None = None,
) -> Page:
    """One page of the datasets matching ``text`` and ``tag``, with the total count."""
    answer = _call(_client(client).datasets, text, tag, limit, offset)
    return Page(
        int(answer.get("total", 0)),
        tuple(_build(Dataset, item) for item in answer.get("items", [])),
        tuple(TagCount(t["tag"], int(t["count"])) for t in answer.get("tags", [])),
    )


def list(
    tag: str | None = None, *, limit: int | None = None, client: PortalClient | None = None
) -> builtins.list[Dataset]:
    """The datasets you can see (``tag``: only those with it); ``.usable`` if you may use it."""
    return search("", tag, limit=limit, client=client)


def search(
    text: str,
    tag: str | None = None,
    *,
    limit: int | None = None,
    client: PortalClient | None = None,
) -> builtins.list[Dataset]:
    """Datasets whose slug, title, description or tags match all words of ``text``
    (at most ``limit``; all of them by default)."""
    client = _client(client)
    found: builtins.list[Dataset] = []
    while limit is None or len(found) < limit:
        size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(found))
        current = page(text, tag, size, len(found), client=client)
        found.extend(current.items)
        if not current.items or len(found) >= current.total:
            break
    return found


def tags(*, client: PortalClient | None = None) -> builtins.list[TagCount]:
    """The catalog's tags with how many datasets you can see carry each."""
    return [*page(limit=1, client=client).tags]


def info(slug: str, *, client: PortalClient | None = None) -> DatasetInfo:
    """One dataset in full: license, terms text, whether you accepted them, your access."""
    return _build(DatasetInfo, _call(_client(client).dataset, slug))


def datasets_dir() -> pathlib.Path:
    """Where this session sees its datasets: ``$AITESTBED_DATASETS_DIR`` or ``/datasets``."""
    return pathlib.Path(os.environ.get(DATASETS_DIR_ENV, DEFAULT_DATASETS_DIR))


def why_not_mounted(slug: str, where: pathlib.Path, details: DatasetInfo) -> str:
    """Why a dataset the portal knows is not at ``where``, and what to do about it."""
    code = details.access.code
    reason = f" ({details.access.reason})" if details.access.reason else ""
    if code == "terms-not-accepted":
        return (
            f"{slug} is not mounted at {where}: you have not accepted its terms (version "
            f"{details.terms_version}). Accept them with aitestbed.datasets.accept_terms("
            f"{slug!r}), then restart your session: datasets are mounted when it starts."
        )
    if code == "not-entitled":
        return (
            f"{slug} is not mounted at {where}: you are not entitled to use it{reason}. "
            "Ask an operator to grant it to your project."
        )
    if details.usable:
        return (
            f"{slug} is not mounted at {where}, though you may use it: this session started "
            "before you could. Restart your session to have it mounted."
        )
    return f"{slug} is not mounted at {where}: you may not use it{reason}."


def path(slug: str, *, client: PortalClient | None = None) -> pathlib.Path:
    """The read-only folder of ``slug`` in this session; says why if it is not there."""
    where = datasets_dir() / slug
    if "/" in slug or slug in ("", ".", "..") or not where.is_dir():
        try:
            details = info(slug, client=client)
        except DatasetError as error:
            if error.status == 404:
                raise DatasetError(
                    f"{slug} is not mounted at {where}: there is no dataset {slug!r} you can "
                    "see. aitestbed.datasets.list() shows those you can.",
                    404,
                    code="unknown",
                ) from None
            raise DatasetError(
                f"{slug} is not mounted at {where}, and the portal cannot say why: {error}",
                error.status,
                code=error.code,
            ) from None
        raise DatasetError(why_not_mounted(slug, where, details), code=details.access.code)
    return where


def accept_terms(
    slug: str,
    version: str | None = None,
    *,
    quiet: bool = False,
    client: PortalClient | None = None,
) -> Acceptance:
    """Accept the terms of ``slug``: ``version`` as shown to you, or the current one.

    Without ``version`` the current terms are printed before they are accepted. The dataset
    is mounted in the next session you start.
    """
    client = _client(client)
    if version is None:
        details = info(slug, client=client)
        if details.terms_version is None:
            raise DatasetError(f"{slug} has no terms to accept: you may use it as it is.", 400)
        version = details.terms_version
        if not quiet:
            print(f"Terms of {details.title} ({slug}), version {version}:\n")
            print(details.terms_text + "\n")
    answer = _call(client.accept_dataset_terms, slug, version)
    accepted = Acceptance(answer["slug"], answer["terms_version"], answer["accepted_at"])
    if not quiet:
        print(
            f"Accepted version {accepted.terms_version} at {accepted.accepted_at}. Restart "
            f"your session to have {slug} mounted at {datasets_dir() / slug}."
        )
    return accepted


def _mounted_root(slug: str) -> pathlib.Path | None:
    root = datasets_dir() / slug
    return root if "/" not in slug and slug not in ("", ".", "..") and root.is_dir() else None


def _inside(root: pathlib.Path, relative: str) -> pathlib.Path:
    """``relative`` under ``root``, refusing anything that leads outside it."""
    target = (root / relative.lstrip("/")).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise DatasetError(f"{relative!r} is outside the dataset.", 400, code="bad-path")
    return target


def local_files(root: pathlib.Path, relative: str = "") -> Folder:
    """A folder of a mounted dataset, read by this session itself."""
    folder = _inside(root, relative)
    if not folder.is_dir():
        raise DatasetError(f"{relative!r} is not a folder of the dataset.", 400, code="bad-path")
    base = root.resolve()
    entries = []
    for item in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
        real = item.resolve()
        if real != base and base not in real.parents:
            continue  # a link that leads out of the dataset, as the portal leaves it out
        kind = "dir" if item.is_dir() else "file"
        size = item.stat().st_size if kind == "file" else None
        entries.append(FileEntry(item.name, str(item.relative_to(base)), kind, size))
    return Folder("" if folder == base else str(folder.relative_to(base)), tuple(entries))


def local_preview(root: pathlib.Path, relative: str, rows: int = 20) -> Preview:
    """The start of a file of a mounted dataset, read by this session itself."""
    target = _inside(root, relative)
    if not target.is_file():
        raise DatasetError(f"{relative!r} is not a file of the dataset.", 400, code="bad-path")
    suffix = target.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with target.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            header = next(reader, [])
            body = [tuple(row) for _, row in zip(range(rows), reader, strict=False)]
        return Preview(relative, "table", tuple(header), tuple(body), source="mount")
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DatasetError(
                "Previewing Parquet here needs pyarrow: pip install pyarrow.", code="no-pyarrow"
            ) from None
        parquet = pq.ParquetFile(target)
        batch = next(parquet.iter_batches(batch_size=max(rows, 1)), None)
        table = batch.to_pylist()[:rows] if batch is not None else []
        columns = tuple(parquet.schema_arrow.names)
        body = tuple(tuple(record[c] for c in columns) for record in table)
        return Preview(relative, "table", columns, body, parquet.metadata.num_rows, source="mount")
    if suffix in IMAGE_TYPES:
        if target.stat().st_size > MAX_IMAGE_BYTES:
            raise DatasetError(f"{relative!r} is too large to preview.", 400, code="too-large")
        data = base64.b64encode(target.read_bytes()).decode()
        return Preview(
            relative, "image", media_type=IMAGE_TYPES[suffix], data_base64=data, source="mount"
        )
    with target.open(encoding="utf-8", errors="replace") as handle:
        text = handle.read(MAX_TEXT_CHARS)
    return Preview(relative, "text", text=text, source="mount")


def files(slug: str, path: str = "", *, client: PortalClient | None = None) -> Folder:
    """The files and folders at ``path`` of ``slug`` (its root by default)."""
    try:
        answer = _call(_client(client).dataset_files, slug, path)
    except DatasetError as error:
        root = _mounted_root(slug) if error.code == "storage-not-readable" else None
        if root is None:
            raise
        return local_files(root, path)
    entries = tuple(_build(FileEntry, entry) for entry in answer.get("entries", []))
    return Folder(answer.get("path", path), entries, bool(answer.get("truncated")))


def preview(slug: str, path: str, rows: int = 20, *, client: PortalClient | None = None) -> Preview:
    """The first ``rows`` of a CSV or Parquet file, an image, or the start of a text file.

    Where the portal cannot read the dataset's storage but this session has it mounted, the
    session reads the file itself.
    """
    try:
        answer = _call(_client(client).dataset_preview, slug, path, rows)
    except DatasetError as error:
        root = _mounted_root(slug) if error.code == "storage-not-readable" else None
        if root is None:
            raise
        return local_preview(root, path, rows)
    return _build(Preview, answer)


def browser(client: PortalClient | None = None):
    """The dataset browser widget: search, details, terms, previews, code to load."""
    from aitestbed.notebook.dataset_browser import DatasetBrowser

    return DatasetBrowser(client)
