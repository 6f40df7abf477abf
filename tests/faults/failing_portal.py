"""The portal application with one extra route that always fails, served as the hub serves
the portal (``aitestbed.portal.service``: its socket, its uvicorn settings).

``python -m tests.faults.failing_portal <database-url> <port>``; used by the error tests,
which put the real proxy in front of it.
"""

from __future__ import annotations

import sys
import time

from aitestbed.portal.app import create_app
from aitestbed.portal.db import make_engine, migrate
from aitestbed.portal.service import listen, run

from tests.jobs_support import PREFIX, TableIdentity

FAILING_ROUTE = f"{PREFIX}api/test-failure"
DESCRIBE_SECONDS = 0.3


class PlantedFailure(RuntimeError):
    """An error that takes a while to describe, as logging does on a loaded machine."""

    def __str__(self) -> str:
        time.sleep(DESCRIBE_SECONDS)
        return "a planted failure"


def main(database_url: str, port: int) -> None:
    sock = listen("127.0.0.1", port)
    engine = make_engine(database_url)
    migrate(engine)
    app = create_app(engine=engine, identity=TableIdentity(["alice"]), prefix=PREFIX)

    @app.get(FAILING_ROUTE)
    def fail() -> dict:
        raise PlantedFailure

    run(app, sock)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
