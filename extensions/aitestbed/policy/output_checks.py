"""Automatic output checks for the airlock (pure: values in, findings out).

Statistical disclosure control of research outputs, after the rules the SACRO project's
``acro`` package applies (https://github.com/AI-SDC/ACRO): a table cell counting fewer
than a threshold of people, or a total dominated by one or two contributors, can reveal
an individual. ``acro`` itself does not install beside this project's pinned libraries
(it requires pandas<=2.3.3), so the two basic checks are implemented here from their
published definitions; a steward still reviews every file, and the findings only guide
that review.

The checks work on what an exported table shows, so they guess which column holds what:
a column of whole numbers is taken as counts (each cell checked against the threshold), a
column with fractions or a name like ``income``, ``amount`` or ``total`` as magnitudes
(the column checked for dominance of its total by its largest values).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_CELL_COUNT = 10  # the threshold acro uses by default
DOMINANCE_N = 2  # the N largest contributions...
DOMINANCE_K = 0.9  # ...may not make up more than K of the total (the N-K rule)
MAX_ROWS = 100_000
MAGNITUDE_WORDS = ("income", "amount", "total", "sum", "value", "revenue", "cost", "mean")


@dataclass(frozen=True)
class Finding:
    check: str  # threshold | dominance | unreadable | not-checked
    message: str


def small_cells(values: Iterable[float], threshold: int = MIN_CELL_COUNT) -> list[float]:
    """Counts above zero and below ``threshold`` (a zero is no person, so no risk)."""
    return [v for v in values if 0 < v < threshold]


def dominated(contributions: Sequence[float], n: int = DOMINANCE_N, k: float = DOMINANCE_K) -> bool:
    """Do the ``n`` largest of the (non-negative) contributions make up more than ``k``
    of their total? A total of fewer than ``n + 1`` contributions always is."""
    positive = sorted((c for c in contributions if c > 0), reverse=True)
    total = sum(positive)
    if total <= 0:
        return False
    return sum(positive[:n]) > k * total


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "")) if text.strip() else None
    except ValueError:
        return None


def check_csv(text: str) -> list[Finding]:
    """Findings for one CSV table (the first row is taken as the header)."""
    try:
        rows = list(csv.reader(io.StringIO(text)))[: MAX_ROWS + 1]
    except csv.Error as error:
        return [Finding("unreadable", f"Not a readable CSV table ({error}); review it by hand.")]
    if len(rows) < 2:
        return []
    header, body = rows[0], rows[1:]
    findings = []
    for column, name in enumerate(header):
        values = [_number(row[column]) for row in body if column < len(row)]
        numbers = [v for v in values if v is not None]
        if not numbers or len(numbers) < len(values) / 2:
            continue  # a label column
        magnitude = any(word in name.lower() for word in MAGNITUDE_WORDS) or not all(
            float(v).is_integer() for v in numbers
        )
        small = [] if magnitude else small_cells(numbers)
        if small:
            findings.append(
                Finding(
                    "threshold",
                    f"Column {name!r}: {len(small)} cell(s) count fewer than "
                    f"{MIN_CELL_COUNT} (e.g. {small[0]:g}); suppress or merge them.",
                )
            )
        if magnitude and len(numbers) > 1 and dominated(numbers):
            findings.append(
                Finding(
                    "dominance",
                    f"Column {name!r}: the {DOMINANCE_N} largest values make up more than "
                    f"{DOMINANCE_K:.0%} of its total; a total may reveal who contributed it.",
                )
            )
    return findings


def check_output(name: str, data: bytes) -> list[Finding]:
    """Findings for one exported file; kinds the checks cannot read are said so."""
    if name.lower().endswith((".csv", ".tsv")):
        text = data.decode("utf-8", "replace")
        if name.lower().endswith(".tsv"):
            text = text.replace("\t", ",")
        return check_csv(text)
    return [Finding("not-checked", "No automatic check reads this kind of file; review it.")]
