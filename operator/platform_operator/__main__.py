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
    namespaces = settings.namespace_list
    asyncio.run(
        kopf.operator(
            standalone=settings.standalone,
            peering_name=settings.peering_name,
            namespaces=namespaces,
            clusterwide=not namespaces,
            liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()
