"""Unit-test helpers: PlatformService objects from plain dicts, the way the API server hands them over.

Nothing here touches a cluster; every helper is a fixture so that test modules never import each
other or a conftest by name (tests/e2e and tests/integration have conftests of their own).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from platform_operator.model import API_VERSION, KIND, PlatformService

NAME = "orders"
NAMESPACE = "shop"
UID = "6f1c2b9e-0d4a-4c55-9a0e-1f2d3c4b5a69"
IMAGE = "registry.example/orders:1.4.2"

# The smallest spec the API server accepts for each kind of service, keyed by the id tests use.
KIND_SPECS: dict[str, dict[str, Any]] = {
    "data": {"type": "data", "database": {"engine": "postgres", "secretRef": {"name": "orders-db"}}},
    "api": {"type": "api"},
    "bot-polling": {"type": "bot", "bot": {"mode": "polling", "tokenSecretRef": {"name": "tg-token"}}},
    "bot-webhook": {
        "type": "bot",
        "bot": {"mode": "webhook", "tokenSecretRef": {"name": "tg-token"}},
        "ingress": {"host": "bot.example.com", "path": "/telegram"},
    },
    "worker": {"type": "worker"},
}

MakeSvc = Callable[..., PlatformService]


def body(
    *, name: str = NAME, namespace: str = NAMESPACE, uid: str = UID, generation: int = 1, **spec: Any
) -> dict[str, Any]:
    """A PlatformService object body; the spec keys are the CRD's (camelCase)."""
    spec.setdefault("image", IMAGE)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": generation},
        "spec": spec,
    }


@pytest.fixture
def make_svc() -> MakeSvc:
    """make_svc(type="api", replicas=2, ...) -> PlatformService; metadata via name=, namespace=, uid=, generation=."""

    def _make(**kwargs: Any) -> PlatformService:
        return PlatformService.from_body(body(**kwargs))

    return _make


@pytest.fixture
def make_kind() -> MakeSvc:
    """make_kind("bot-webhook", replicas=2) -> the minimal valid spec of that kind, with overrides."""

    def _make(kind: str, **overrides: Any) -> PlatformService:
        spec = copy.deepcopy(KIND_SPECS[kind])
        spec.update(overrides)
        return PlatformService.from_body(body(**spec))

    return _make
