"""CSV exports for operators (usage, dataset audit log), safe to open in a spreadsheet.

Exports stream: rows come from the database in batches (a server-side cursor on PostgreSQL)
and leave as chunks of text, so an export of a million rows holds one batch in memory, never
the whole file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import StreamingResponse
from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

# Rows fetched per database round trip while streaming, and the text size of one chunk sent.
FETCH_BATCH = 2000
CHUNK_CHARS = 64 * 1024


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as CSV with a header of ``columns`` (other keys are left out).

    A text starting with =, +, - or @ would be a formula in a spreadsheet, so it gets a
    leading apostrophe: user-supplied text (a reason, a path) can never run there.
    """
    records = ([row.get(column) for column in columns] for row in rows)
    return "".join(csv_chunks(records, columns))


def csv_chunks(records: Iterable[Sequence[Any]], columns: Sequence[str]) -> Iterator[str]:
    """CSV text of ``records`` (values in the order of ``columns``, under a header of them),
    in chunks of about :data:`CHUNK_CHARS`; every value made inert as in :func:`csv_text`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for record in records:
        writer.writerow([_inert(value) for value in record])
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def streamed_rows(sessions: sessionmaker[Session], query: Select) -> Iterator[Sequence[Any]]:
    """The rows of ``query`` in batches of :data:`FETCH_BATCH`, from a session of its own
    (the request's session is closed before a streamed body is sent)."""
    with sessions() as session:
        result = session.execute(query.execution_options(yield_per=FETCH_BATCH))
        yield from result


def csv_response(chunks: Iterator[str], filename: str) -> StreamingResponse:
    """A CSV download that sends ``chunks`` as they are made."""
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def formatted(
    records: Iterable[Sequence[Any]], *formatters: Callable[[Any], Any] | None
) -> Iterator[list[Any]]:
    """``records`` with value i passed through ``formatters[i]`` (None: as it is)."""
    for record in records:
        yield [
            value if formatter is None else formatter(value)
            for value, formatter in zip(record, formatters, strict=True)
        ]


def iso_utc(moment: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC with a Z, as the JSON API writes it."""
    if moment is None:
        return None
    # SQLite hands back naive datetimes; every stored time is UTC (usage.as_utc, which
    # imports this module).
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.isoformat().replace("+00:00", "Z")


def _inert(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return f"'{value}"
    return value
