"""`python -m catalog_data` serves the API on HTTP_PORT (8000); `python -m catalog_data migrate`
creates the collections' indexes and exits (e.g. from a Job or an init container, with
MIGRATE_ON_STARTUP=false on the Deployment)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from catalog_data.adapters import database
from catalog_data.bootstrap import build_app
from catalog_data.config import Settings
from platform_contract.data_service import load_settings, serve

log = logging.getLogger("catalog_data")


async def migrate(settings: Settings) -> None:
    client = database.create_client(settings)
    try:
        await database.ensure_indexes(database.database(client, settings))
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catalog_data", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP API (the default)")
    commands.add_parser("migrate", help="create the collections' indexes and exit")
    args = parser.parse_args(argv)

    settings = load_settings(Settings, service="catalog-data", log=log)
    if settings is None:
        return 2
    if args.command == "migrate":
        try:
            asyncio.run(migrate(settings))
        except Exception as error:
            log.error("creating the indexes failed: %s", database.describe(error))
            return 1
    else:
        serve(settings, build_app)  # until SIGTERM; the lifespan's shutdown closes the client and its pool
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
