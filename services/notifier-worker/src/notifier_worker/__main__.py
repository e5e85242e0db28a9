"""`python -m notifier_worker`: one process, one event loop (the seed's rule for workers)."""

from __future__ import annotations

import asyncio
import logging
import signal

from pydantic import ValidationError

from notifier_worker.bootstrap import Worker
from notifier_worker.config import Settings
from platform_contract.telemetry import setup_tracing
from platform_contract.telemetry.logs import configure_logging


def _setup_logging(level: str, service: str) -> None:
    configure_logging(service, level)
    # aiormq logs every reconnect attempt at length; its summary in our own lines is enough.
    logging.getLogger("aiormq").setLevel(logging.WARNING)


async def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        _setup_logging("INFO", "notifier-worker")
        logging.getLogger("notifier_worker").critical("invalid settings: %s", exc)
        raise SystemExit(2) from None
    _setup_logging(settings.log_level, settings.service_name)
    provider = setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    try:
        worker = Worker(settings, tracer=provider.get_tracer("notifier_worker"))
    except RuntimeError as exc:  # a setting the operator should have given is missing
        logging.getLogger("notifier_worker").critical("cannot start: %s", exc)
        raise SystemExit(2) from None
    loop = asyncio.get_running_loop()
    # Kubernetes sends SIGTERM, then SIGKILL after the grace period: stop consuming at once and
    # let the messages in hand finish (bounded by SHUTDOWN_GRACE_SECONDS).
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    try:
        await worker.run()
    finally:
        provider.shutdown()  # flushes the spans still batched


if __name__ == "__main__":
    asyncio.run(main())
