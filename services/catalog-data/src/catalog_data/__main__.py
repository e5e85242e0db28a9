"""`python -m catalog_data` serves the API on HTTP_PORT (8000); `python -m catalog_data migrate`
creates the collections' indexes and exits (e.g. from a Job or an init container, with
MIGRATE_ON_STARTUP=false on the Deployment)."""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn
from pydantic import ValidationError

from catalog_data.adapters import database
from catalog_data.bootstrap import build_app
from catalog_data.config import ConfigurationError, Settings
from platform_contract.telemetry import setup_tracing
from platform_contract.telemetry.logs import configure_logging

log = logging.getLogger("catalog_data")


def serve(settings: Settings) -> None:
    setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    app = build_app(settings)
    # uvicorn runs the one event loop of this process; on SIGTERM it stops accepting, finishes the
    # requests in flight (up to 20 s, within Kubernetes' 30 s grace period) and runs the lifespan's
    # shutdown, which closes the client and its pool.
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,  # the middleware logs each request, with its request id
        timeout_graceful_shutdown=20,
    )
    uvicorn.Server(config).run()


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

    try:
        settings = Settings()
        settings.mongo_url()
    except (ValidationError, ConfigurationError) as error:
        configure_logging("catalog-data")
        log.error("invalid settings: %s", error)
        return 2
    configure_logging(settings.service_name, settings.log_level)
    if args.command == "migrate":
        try:
            asyncio.run(migrate(settings))
        except Exception as error:
            log.error("creating the indexes failed: %s", database.describe(error))
            return 1
    else:
        serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
