"""`python -m orders_api`: one process, one event loop (uvicorn's), port 8000.

uvicorn turns SIGTERM into a graceful shutdown: it stops accepting, finishes the requests in
flight, then runs the app's lifespan exit, which closes the RabbitMQ, Redis and HTTP clients.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from orders_api.bootstrap import build_app
from orders_api.config import ConfigurationError, Settings
from platform_contract.telemetry.logs import configure_logging


def main() -> int:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level, sys.stdout)
    # The request middleware logs each request once, with its id; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    try:
        app = build_app(settings)
    except ConfigurationError as exc:
        logging.getLogger("orders_api").error("cannot start: %s", exc)
        return 2
    uvicorn.run(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        log_config=None,  # keep our JSON handler
        proxy_headers=True,  # behind ingress-nginx
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=20,  # inside the pod's default 30s termination grace period
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
