"""``aitestbed-portal``: run the portal service, or only prepare its database."""

from __future__ import annotations

import argparse
import logging
import sys

from aitestbed.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aitestbed-portal", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "init-db"],
        help="serve (default, as a hub-managed service) or init-db (migrate and seed, then exit)",
    )
    parser.add_argument("--settings", help="site settings file (default: $AITESTBED_SETTINGS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    try:
        settings = load_settings(args.settings)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    from aitestbed.portal.service import prepare_database, serve

    if args.command == "init-db":
        prepare_database(settings).dispose()
        print(f"Portal database ready: {settings.site.database_url.split('@')[-1]}")
        return 0
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
