"""The one door to the Kubernetes API: read, server-side apply, delete, and patch status.

Every write goes through server-side apply under one field manager, so a user's own fields on a
child survive and the operator's come back when edited. Errors are sorted in one place: a missing
object is None, a refused object is `RefusedError` (the spec cannot be applied as it is; retrying
will not help), anything else is `UnavailableError` (retry with backoff).

The client is aiohttp, which kopf runs on too, with the credentials kopf's own login finds (the
service account in a pod, else the kubeconfig). Not kubernetes-asyncio: kopf imports that client's
generated models whenever it is installed, about 50 MB of the operator's resident memory for
classes the operator never uses.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from platform_operator import observability
from platform_operator.builders import MANAGER
from platform_operator.model import API_VERSION, PLURAL

log = logging.getLogger(__name__)

FIELD_MANAGER = "platform-operator"
USER_AGENT = "platform-operator"
# Connections to the API server at most (the operator's); more requests wait for one. Each TLS connection holds
# buffers of its own (over 100 KB), and at a thousand services hundreds would open at once.
MAX_CONNECTIONS = 16
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"  # on every child; the watch of children selects on it

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


class _HTTPError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


def _message(exc: _HTTPError) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc)
    except (ValueError, TypeError, AttributeError):
        return str(exc)


def login() -> kopf.ConnectionInfo:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise UnavailableError(
            "No Kubernetes credentials: not in a pod (no service account token) and no kubeconfig; set KUBECONFIG."
        )
    return info


class Kube:
    """Reads, writes and deletes, plus `read`: a child as the operator's watch last reported it.

    The children's watch (kopf's event handlers) hands every version it sees to `observe`, and
    `observe_gone` every deletion; `read` answers from them, like an informer's cache: a reconcile
    triggered by a child's change reads that very version, and a resync costs the API server no
    request. What the watch has not reported (not created yet, not labelled as ours) is asked of
    the API server. A version one step behind costs at most a write that changes nothing (whose
    answer updates the cache). Each entry is trusted for `max_age` seconds since the watch last
    reported it, then read again: a deletion the watch missed (its stream restarts after a 410)
    is found by the next reconcile after that.
    """

    def __init__(
        self, info: kopf.ConnectionInfo | None, *, max_age: float = 0.0, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self._server = info.server.rstrip("/") if info is not None else ""
        self._auth = info.as_http_headers() if info is not None else {}
        self._session = (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_connections, ssl=info.as_ssl_context()),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=60),
            )
            if info is not None
            else None
        )
        self.max_age = max_age
        # (kind, namespace, name) -> (when, the object as JSON without managedFields, or None when
        # known to be absent). One string per child is a small fraction of the memory the same
        # object takes as nested dicts.
        self._seen: dict[tuple[str, str, str], tuple[float, bytes | None]] = {}
        self._next_sweep = time.monotonic() + max_age

    @classmethod
    async def connect(cls, *, max_age: float = 0.0, max_connections: int = MAX_CONNECTIONS) -> Kube:
        return cls(login(), max_age=max_age, max_connections=max_connections)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

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
                status, text = await self._request(method, path, body, query, content_type)
                if status == 401:  # a service account token the kubelet has since renewed
                    self._auth = login().as_http_headers()
                    status, text = await self._request(method, path, body, query, content_type)
                if status >= 400:
                    raise _HTTPError(status, text)
        except _HTTPError as exc:
            if exc.status == 404:
                return None
            if exc.status == 403 and "NamespaceTerminating" in exc.body:
                raise NamespaceTerminatingError(f"{method} {path}: {_message(exc)}") from exc
            if exc.status in (400, 403, 409, 422):
                raise RefusedError(f"{method} {path}: {_message(exc)}") from exc
            raise UnavailableError(f"{method} {path}: HTTP {exc.status} {_message(exc)}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UnavailableError(f"{method} {path}: {exc!r}") from exc
        try:
            result = json.loads(text) if text else None
        except ValueError as exc:
            raise UnavailableError(f"{method} {path}: the API server answered with no JSON") from exc
        return result if isinstance(result, dict) else None

    async def _request(
        self, method: str, path: str, body: Any, query: list[tuple[str, str]] | None, content_type: str
    ) -> tuple[int, str]:
        if self._session is None:
            raise UnavailableError(f"{method} {path}: this client was made without credentials")
        async with self._session.request(
            method,
            self._server + path,
            params=query or None,
            data=None if body is None else json.dumps(body),
            headers={**self._auth, "Content-Type": content_type},
        ) as resp:
            return resp.status, await resp.text()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", _path(api_version, kind, namespace, name))

    def observe(self, obj: Mapping[str, Any]) -> None:
        """Keeps this version of a child (from its watch, or the answer to our apply)."""
        if self.max_age <= 0:
            return
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        trimmed = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        self._seen[key] = (time.monotonic(), json.dumps(trimmed, separators=(",", ":")).encode())

    def observe_gone(self, kind: str, namespace: str, name: str) -> None:
        if self.max_age <= 0:
            return
        now = time.monotonic()
        self._seen[(kind, namespace, name)] = (now, None)
        if now >= self._next_sweep:  # the children of deleted services leave only these behind
            self._seen = {k: v for k, v in self._seen.items() if v[1] is not None or now - v[0] < self.max_age}
            self._next_sweep = now + self.max_age

    @property
    def observed(self) -> int:
        return sum(1 for _, body in self._seen.values() if body is not None)

    async def read(
        self, api_version: str, kind: str, namespace: str, name: str, *, trust_absence: bool = False
    ) -> dict[str, Any] | None:
        """The child as last observed, else as the API server has it (None: it does not exist).

        A child known to be absent is read from the API server anyway unless trust_absence: one
        made by hand since, without our label, must be found before anything is applied over it.
        Only a caller that acts on our own children alone (deleting one the spec no longer asks
        for) may trust it."""
        key = (kind, namespace, name)
        seen = self._seen.get(key)
        if seen is not None and time.monotonic() - seen[0] < self.max_age:
            if seen[1] is not None:
                observability.CACHE_READS.labels(kind).inc()
                result: dict[str, Any] = json.loads(seen[1])
                return result
            if trust_absence:
                observability.CACHE_READS.labels(kind).inc()
                return None
        live = await self.get(api_version, kind, namespace, name)
        if live is None:
            self.observe_gone(kind, namespace, name)
        elif (live.get("metadata") or {}).get("labels", {}).get(MANAGED_BY_LABEL) == MANAGER:
            self.observe(live)  # the watch reports ours only: an object of someone else's stays unknown
        return live

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
        if (obj["apiVersion"], obj["kind"]) != (API_VERSION, "PlatformService"):
            self.observe(result)
        return result

    async def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> bool:
        """Deletes the object only if it is still the one we saw (uid precondition)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            result = await self._call("DELETE", _path(api_version, kind, namespace, name), body=body)
        except RefusedError:  # 409: replaced by another object in the meantime
            return False
        self.observe_gone(kind, namespace, name)
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
