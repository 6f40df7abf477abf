"""Paging of the API's lists: a limit with a default and a maximum, and a cursor.

Lists are ordered by a unique key (newest first by id, or by slug), and the next page starts
after the last key the client saw (``before=<id>`` or ``after=<slug>``), so rows added while a
client pages never make it see a row twice or miss one, as an offset would. The next page's
URL is in a ``Link: <...>; rel="next"`` header (RFC 8288) when the page is full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request, Response

Item = TypeVar("Item")

# The page size a list gets when the client names none, and the most it may ask for.
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def link_next_page(
    request: Request,
    response: Response,
    items: Sequence[Item],
    limit: int,
    **cursor: Callable[[Item], Any],
) -> None:
    """Set the ``Link`` header to the page after ``items`` when it is full; ``cursor`` names
    the query parameter and how to read its value from the last item (``before=lambda j:
    j.id``). Other parameters, the filters, stay as the client sent them."""
    if len(items) < limit or not items:
        return
    ((name, key),) = cursor.items()
    params = {k: v for k, v in request.query_params.items() if k not in (name, "offset")}
    params[name] = str(key(items[-1]))
    url = request.url.replace_query_params(**params)
    response.headers["Link"] = f'<{url}>; rel="next"'
