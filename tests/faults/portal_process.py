"""Run the real portal application as its own process for the fault suite.

``python -m tests.faults.portal_process SETTINGS PORT INTERNAL_TOKEN USER...``

Everything is the portal's own start-up (``prepare_database``, ``make_gateway``,
``create_app``, uvicorn), except who a token belongs to: instead of asking a hub, tokens
``t-<user>`` resolve to the users named on the command line (the suite starts no hub). The
job poller runs every second, as a site would configure it.
"""

from __future__ import annotations

import sys

import uvicorn
from aitestbed.portal.app import create_app
from aitestbed.portal.service import make_gateway, prepare_database
from aitestbed.settings import load_settings

from tests.jobs_support import PREFIX, TableIdentity


def main(argv: list[str]) -> None:
    settings_path, port, token, *users = argv
    settings = load_settings(settings_path)
    engine = prepare_database(settings)
    app = create_app(
        engine=engine,
        identity=TableIdentity(users),
        prefix=PREFIX,
        jobs=make_gateway(settings, engine),
        poll_interval=1.0,
        internal_token=token,
        state_dir=settings.site.state_dir,
    )
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
