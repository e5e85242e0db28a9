"""Serving an ASGI app as a pod needs it (extra `serve`; the data services serve through it).

uvicorn runs the one event loop of the process; on SIGTERM it stops accepting, finishes the
requests in flight (up to 20 s, within Kubernetes' 30 s grace period) and runs the app's lifespan
shutdown, which closes the service's pools.
"""

from __future__ import annotations

from typing import Any

GRACEFUL_SHUTDOWN_SECONDS = 20


def serve(app: Any, *, host: str, port: int) -> None:
    """Serves `app` on host:port until SIGTERM (or SIGINT); returns once it has shut down."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # the process's JSON handler (telemetry.logs) stays
        access_log=False,  # the request middleware logs each request, with its request id
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run()
