"""Runs the operator: `python -m platform_operator` (or the `platform-operator` script)."""

from __future__ import annotations

from platform_operator import client_imports

# First, before kopf: the Kubernetes client's thousand generated modules are imported as used.
client_imports.defer()

import asyncio  # noqa: E402
import logging  # noqa: E402

import kopf  # noqa: E402

from platform_operator import handlers, observability  # noqa: E402, F401  (handlers registers them)
from platform_operator.settings import OperatorSettings  # noqa: E402


def main() -> None:
    settings = OperatorSettings()
    observability.setup_logging(logging.getLevelNamesMapping()[settings.log_level])
    observability.setup(settings.metrics_port)
    namespaces = settings.namespace_list
    # kopf reads an empty namespace list as "no namespace at all": pass it only when scoped.
    options: dict[str, object] = {"namespaces": namespaces} if namespaces else {"clusterwide": True}
    # A peering name, even with standalone, makes kopf wait (silently) for the KopfPeering CRD.
    options.update({"standalone": True} if settings.standalone else {"peering_name": settings.peering_name})
    asyncio.run(
        kopf.operator(
            liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
            **options,  # type: ignore[arg-type]
        )
    )


if __name__ == "__main__":
    main()
