"""Print, as one YAML stream, the children the operator's pure builders make for PlatformService files.

    uv run python hack/render_children.py samples/*.yaml | kube-score score -

No cluster and no outside system: the credentials Secret gets the settings a service without
RabbitMQ, Redis or PostgreSQL gets. Besides the Secret and the Deployment (whose builders take more
than the service), every `build_*` of platform_operator.builders that takes the service alone is
called, so a builder added there (a PodDisruptionBudget, a NetworkPolicy per type) is rendered and
scored without touching this script. Other documents in the files (the samples' Secrets) are skipped.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from platform_operator import builders
from platform_operator.model import KIND, PlatformService

NAMESPACE = "samples"
UID = "00000000-0000-0000-0000-000000000000"


def service_builders() -> list[Callable[[PlatformService], dict[str, Any] | None]]:
    """Every build_* of builders that needs only the service (its other parameters have defaults),
    in source order; the Secret and the Deployment are built apart (they need the settings)."""
    found = []
    for name, fn in inspect.getmembers(builders, inspect.isfunction):
        if not name.startswith("build_") or fn.__module__ != builders.__name__:
            continue
        if name in ("build_secret", "build_deployment"):
            continue
        rest = list(inspect.signature(fn).parameters.values())[1:]
        if all(p.default is not inspect.Parameter.empty for p in rest):
            found.append(fn)
    return sorted(found, key=lambda fn: fn.__code__.co_firstlineno)


def children(body: dict[str, Any], namespace: str = NAMESPACE) -> Iterator[dict[str, Any]]:
    meta = {**body["metadata"], "namespace": body["metadata"].get("namespace") or namespace, "uid": UID}
    svc = PlatformService.from_body({**body, "metadata": meta})
    settings = builders.secret_settings(svc)
    yield builders.build_secret(svc, settings)
    yield builders.build_deployment(svc, builders.config_hash(settings))
    for build in service_builders():
        child = build(svc)
        if child is not None:
            yield child


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="YAML files holding PlatformServices (e.g. samples/*.yaml)")
    parser.add_argument("--namespace", default=NAMESPACE, help="for services whose metadata names none")
    args = parser.parse_args(argv)
    docs = []
    for path in args.files:
        for body in yaml.safe_load_all(path.read_text()):
            if body and body.get("kind") == KIND:
                docs.extend(children(body, args.namespace))
    if not docs:
        print(f"no {KIND} in {', '.join(map(str, args.files))}", file=sys.stderr)
        return 1
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
