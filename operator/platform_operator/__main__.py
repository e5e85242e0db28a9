"""Runs the operator: `python -m platform_operator` (or the `platform-operator` script)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from platform_operator import handlers  # noqa: F401  (registers the handlers)
from platform_operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # kopf reports every handler and timer run at INFO; keep its warnings and errors, and ours.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
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
