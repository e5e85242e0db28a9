"""`python -m users_data` serves the API on HTTP_PORT (8000); `python -m users_data migrate`
upgrades the schema and exits (e.g. from a Job or an init container, with MIGRATE_ON_STARTUP=false
on the Deployment)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from platform_contract.data_service import load_settings, serve
from users_data.adapters import database
from users_data.bootstrap import build_app
from users_data.config import Settings

log = logging.getLogger("users_data")


async def migrate(settings: Settings, revision: str) -> None:
    engine = database.create_engine(settings)
    try:
        await database.migrate(engine, revision)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m users_data", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP API (the default)")
    upgrade = commands.add_parser("migrate", help="upgrade the database schema and exit")
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)

    settings = load_settings(Settings, service="users-data", log=log)
    if settings is None:
        return 2
    if args.command == "migrate":
        asyncio.run(migrate(settings, args.revision))
    else:
        serve(settings, build_app)  # until SIGTERM; the lifespan's shutdown closes the database pool
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
