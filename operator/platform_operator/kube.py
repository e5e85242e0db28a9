"""The one door to the Kubernetes API: read, server-side apply, delete, and patch status.

Every write goes through server-side apply under one field manager, so a user's own fields on a
child survive and the operator's come back when edited. Errors are sorted in one place: a missing
object is None, a refused object is `RefusedError` (the spec cannot be applied as it is; retrying
will not help), anything else is `UnavailableError` (retry with backoff).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from platform_operator import observability
from platform_operator.model import API_VERSION, PLURAL

log = logging.getLogger(__name__)

FIELD_MANAGER = "platform-operator"

# apiVersion, kind -> (path prefix, plural). Only what the operator manages.
_RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("networking.k8s.io/v1", "Ingress"): ("/apis/networking.k8s.io/v1", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies"),
    (API_VERSION, "PlatformService"): (f"/apis/{API_VERSION}", PLURAL),
}


class KubeError(Exception):
    """Base of the errors this module raises."""


class RefusedError(KubeError):
    """The API server refused the object (validation, admission): fix the spec, do not retry."""


class NamespaceTerminatingError(KubeError):
    """The namespace is being deleted: nothing may be created in it any more; stop quietly."""


class UnavailableError(KubeError):
    """The API server could not be reached or failed; retry later."""


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = _RESOURCES[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, TypeError):
        return str(exc.reason)


async def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    @classmethod
    async def connect(cls) -> Kube:
        await load_config()
        return cls(client.ApiClient())

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        try:
            with observability.outside_call("apiserver", method):
                result = await self._api.call_api(
                    path,
                    method,
                    {},
                    query or [],
                    {"Accept": "application/json", "Content-Type": content_type},
                    body=body,
                    response_types_map={200: "object", 201: "object"},
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 403 and "NamespaceTerminating" in (exc.body or ""):
                raise NamespaceTerminatingError(f"{method} {path}: {_message(exc)}") from exc
            if exc.status in (400, 403, 409, 422):
                raise RefusedError(f"{method} {path}: {_message(exc)}") from exc
            raise UnavailableError(f"{method} {path}: HTTP {exc.status} {_message(exc)}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UnavailableError(f"{method} {path}: {exc}") from exc
        return result if isinstance(result, dict) else None

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", _path(api_version, kind, namespace, name))

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        result = await self._call(
            "PATCH",
            path,
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict")],
            content_type="application/apply-patch+yaml",
        )
        if result is None:
            raise UnavailableError(f"apply {path}: the API server returned nothing")
        return result

    async def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> bool:
        """Deletes the object only if it is still the one we saw (uid precondition)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            result = await self._call("DELETE", _path(api_version, kind, namespace, name), body=body)
        except RefusedError:  # 409: replaced by another object in the meantime
            return False
        return result is not None

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        return await self._call(
            "PATCH",
            _path(api_version, kind, namespace, name),
            body=dict(body),
            content_type="application/merge-patch+json",
        )

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        path = _path(API_VERSION, "PlatformService", namespace, name) + "/status"
        await self._call("PATCH", path, body={"status": dict(status)}, content_type="application/merge-patch+json")
