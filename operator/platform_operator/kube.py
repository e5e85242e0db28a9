"""The one door to the Kubernetes API: read, server-side apply, delete, and patch status.

Every write goes through server-side apply under one field manager, so a user's own fields on a
child survive and the operator's come back when edited. Two writes need a precondition that apply
alone cannot give: `create` (only if absent: a POST, its fields then handed to the same manager's
apply entry) and `apply(..., if_version=)` (only onto the version read); either answers a lost race
with `ConflictError` or None, and the caller reads again. Errors are sorted in one place: a missing
object is None, a refused object is `RefusedError` (the spec cannot be applied as it is; retrying
will not help), anything else is `UnavailableError` (retry with backoff).

The client is kubernetes-asyncio's `ApiClient`, spoken to in plain JSON (its generated models
would only cost time and memory), with the credentials kubectl would use, loaded by the library
as kopf's own login loads them (`login` below): the service account in a pod (its token file
read again every minute, so the kubelet's rotation is followed), else the kubeconfig's current
context, exec plugins and OIDC included. A 401 loads the credentials again once (a token that
was rotated or revoked, an exec plugin's that expired) and repeats the request. An exec plugin
that states its token's expiry is run again before it expires. Proxies come from the
kubeconfig's `proxy-url`, or from HTTPS_PROXY/NO_PROXY as they were when the client was made
(`environment_proxy`): a session that trusts the environment looks them, and ~/.netrc, up again
in a worker thread on every request, a fifth of the operator's CPU at a thousand services.

An API server that is overloaded (429) or failing (5xx) is asked again after the wait it names
in Retry-After, else after a doubling back-off, within `Retry`'s bounds; past them the caller
gets `UnavailableError` and kopf's own back-off takes over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import logging
import os
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import ApiClient, Configuration

from platform_operator import observability
from platform_operator.builders import MANAGER
from platform_operator.model import API_VERSION, PLURAL

log = logging.getLogger(__name__)

FIELD_MANAGER = "platform-operator"
USER_AGENT = "platform-operator"
# Connections to the API server at most (the operator's); more requests wait for one. Each TLS connection holds
# buffers of its own (over 100 KB), and at a thousand services hundreds would open at once.
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT = 60  # seconds for one request, answer included
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"  # on every child; the watch of children selects on it
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# Kinds no watch of the operator reports (handlers.CHILDREN): never cached, read from the API server.
UNCACHED = frozenset({"ServiceMonitor", "PodMonitor"})

# apiVersion, kind -> (path prefix, plural). Only what the operator manages.
_RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("networking.k8s.io/v1", "Ingress"): ("/apis/networking.k8s.io/v1", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("/apis/monitoring.coreos.com/v1", "servicemonitors"),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("/apis/monitoring.coreos.com/v1", "podmonitors"),
    (API_VERSION, "PlatformService"): (f"/apis/{API_VERSION}", PLURAL),
}


class KubeError(Exception):
    """Base of the errors this module raises."""


class RefusedError(KubeError):
    """The API server refused the object (validation, admission): fix the spec, do not retry."""


class ConflictError(RefusedError):
    """409: the object to create exists already, or changed since the version a write was made against."""


class NamespaceTerminatingError(KubeError):
    """The namespace is being deleted: nothing may be created in it any more; stop quietly."""


class UnavailableError(KubeError):
    """The API server could not be reached or failed; retry later."""


class NotServedError(UnavailableError):
    """An apply answered 404: the API server does not serve the kind (its CRD was deleted)."""


@dataclasses.dataclass(frozen=True)
class Retry:
    """How long one call waits out an API server that answers 429 or 5xx.

    Retry-After is honoured as asked, never shortened: a wait longer than `max_wait`, or one
    that would end past `deadline` seconds after the first attempt, ends the call instead."""

    tries: int = 5  # attempts in all
    first_wait: float = 0.5  # seconds, doubling, when the answer names no Retry-After
    max_wait: float = 10.0
    deadline: float = 30.0

    def wait(self, attempt: int, retry_after: str | None) -> float:
        asked = _seconds(retry_after)
        if asked is not None:
            return asked
        # Jitter (50-100%) spreads the retries of many reconciles that failed together.
        return float(self.first_wait * 2 ** (attempt - 1) * (500 + secrets.randbelow(501)) / 1000)


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110)."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _version(resource_version: Any) -> int:
    """A resourceVersion as a number, to tell which of two versions of one object is newer (the API
    server's are etcd's revisions; one that is not a number counts as newest)."""
    try:
        return int(resource_version)
    except (TypeError, ValueError):
        return 2**63


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


async def load_configuration() -> Configuration:
    """The credentials kubectl would use, loaded by kubernetes-asyncio as kopf's login loads them.

    In a pod, the service account: the library reads its token file again every minute (a
    projected token is rotated by the kubelet). Elsewhere, the current context of the kubeconfig
    (KUBECONFIG, else ~/.kube/config) with whatever its user names: a token, a client
    certificate, an exec plugin, OIDC."""
    configuration = Configuration()
    try:
        # The library's one unannotated loader.
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return configuration
    except k8s_config.ConfigException:
        pass
    try:
        # KUBECONFIG as it is now: the library's default is the value it had when it was imported.
        loader = await k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    except Exception as exc:  # the library raises what its parsing or the plugin raised
        raise UnavailableError(
            f"No Kubernetes credentials: not in a pod (no service account) and no usable kubeconfig: {exc}"
        ) from exc
    if getattr(loader, "exec_plugin_expiry", None) is not None:
        configuration.refresh_api_key_hook = _exec_refresher(loader)
    return configuration


def _exec_refresher(loader: Any) -> Callable[[Configuration], Awaitable[None]]:
    """Runs the exec plugin again when the token it gave expires (the library's loader knows when,
    and answers at once until then); one run at a time, however many requests ask."""
    lock = asyncio.Lock()

    async def refresh(configuration: Configuration) -> None:
        async with lock:
            await loader.load_from_exec_plugin()
            configuration.api_key["BearerToken"] = loader.token

    return refresh


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own connection (its watches, events, peering): the same credentials, through the same library.

    kopf logs in again by itself when the API server answers 401. Like the operator's own
    client, it takes HTTPS_PROXY/NO_PROXY from the environment, once (`environment_proxy`)."""
    info = await kopf.login_via_async_client(**kwargs)
    if info is None:
        return None
    return dataclasses.replace(info, proxy_url=info.proxy_url or environment_proxy(info.server), trust_env=False)


def environment_proxy(server: str) -> str | None:
    """The proxy HTTPS_PROXY (HTTP_PROXY for an http:// server) names for the API server, unless
    NO_PROXY exempts its host; None when there is none. Read once, when a client is made."""
    parts = urllib.parse.urlsplit(server)
    host = parts.hostname or ""
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(parts.scheme or "https")


def _tls(configuration: Configuration) -> tuple[Any, ...]:
    """What a client's connections are bound to: a change needs a new client, anything else does not."""
    return (
        configuration.host,
        configuration.ssl_ca_cert,
        configuration.cert_file,
        configuration.key_file,
        configuration.verify_ssl,
        configuration.tls_server_name,
        configuration.proxy,
    )


def as_applied(created: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that turns the fields our create set (an Update entry of our field manager)
    into an Apply entry of the same manager, against the created version (None: nothing to turn)."""
    meta = created.get("metadata") or {}
    entries = list(meta.get("managedFields") or [])
    ours = [e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Update"]
    if not ours or not meta.get("resourceVersion"):
        return None
    applied = [e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"]
    if applied:  # never two Apply entries of one manager: the server would refuse the patch
        return None
    handed = {
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": ours[0].get("apiVersion"),
        "fieldsType": ours[0].get("fieldsType", "FieldsV1"),
        "fieldsV1": ours[0].get("fieldsV1") or {},
    }
    others = [e for e in entries if e is not ours[0]]
    return {"metadata": {"resourceVersion": meta["resourceVersion"], "managedFields": [*others, handed]}}


class Kube:
    """Reads, writes and deletes, plus `read`: a child, or a PlatformService, as the operator's
    watch last reported it.

    The watches (kopf's event handlers) hand every version they see to `observe`, and
    `observe_gone` every deletion; `read` answers from them, like an informer's cache: a reconcile
    triggered by a child's change reads that very version, and a resync costs the API server no
    request. A version older than the one held (a watch event that arrives after the answer to
    our own write) is not kept. What the watch has not reported (not created yet, not labelled as
    ours) is asked of the API server. A version one step behind costs at most a write that changes nothing (whose
    answer updates the cache). Each entry is trusted for `max_age` seconds since the watch last
    reported it, then read again: a deletion the watch missed (its stream restarts after a 410)
    is found by the next reconcile after that.
    """

    def __init__(
        self,
        configuration: Configuration | None,
        *,
        max_age: float = 0.0,
        max_connections: int = MAX_CONNECTIONS,
        retry: Retry | None = None,
        reload: Callable[[], Awaitable[Configuration]] = load_configuration,
    ) -> None:
        self._max_connections = max_connections
        self._api = self._client(configuration) if configuration is not None else None
        self._retired: list[ApiClient] = []  # replaced by a login with other TLS settings; closed with this one
        self._retry = retry or Retry()
        self._reload = reload
        self._logins = 0  # how many times the credentials were loaded again
        self._login_lock = asyncio.Lock()
        self.max_age = max_age
        # (kind, namespace, name) -> (when, the object as JSON without managedFields, or None when
        # known to be absent, its resourceVersion). One string per object is a small fraction of
        # the memory the same object takes as nested dicts.
        self._seen: dict[tuple[str, str, str], tuple[float, bytes | None, int]] = {}
        self._next_sweep = time.monotonic() + max_age

    def _client(self, configuration: Configuration) -> ApiClient:
        configuration.connection_pool_maxsize = self._max_connections
        api = ApiClient(configuration)
        api.user_agent = USER_AGENT
        # The library's session trusts the environment, which costs two lookups in a worker thread
        # per request (the proxy, ~/.netrc): the same connections in a session that does not, with
        # the environment's proxy looked up here, once.
        rest = api.rest_client
        connector = rest.pool_manager.connector
        rest.pool_manager.detach()  # closed without closing its connector
        rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)
        rest.proxy = configuration.proxy or environment_proxy(configuration.host or "") or ""
        return api

    @classmethod
    async def connect(
        cls, *, max_age: float = 0.0, max_connections: int = MAX_CONNECTIONS, retry: Retry | None = None
    ) -> Kube:
        return cls(await load_configuration(), max_age=max_age, max_connections=max_connections, retry=retry)

    async def close(self) -> None:
        for api in [*self._retired, *([self._api] if self._api is not None else [])]:
            await api.close()
        self._retired.clear()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        started = time.monotonic()
        attempt = 0
        try:
            while True:
                attempt += 1
                with observability.outside_call("apiserver", method):
                    status, retry_after, text = await self._authenticated(method, path, body, query, content_type)
                if status in RETRIED_STATUSES and attempt < self._retry.tries:
                    wait = self._retry.wait(attempt, retry_after)
                    if wait <= self._retry.max_wait and time.monotonic() - started + wait <= self._retry.deadline:
                        log.info("%s %s: HTTP %s, asking again in %.1f s", method, path, status, wait)
                        await asyncio.sleep(wait)
                        continue
                if status >= 400:
                    raise _HTTPError(status, text)
                break
        except _HTTPError as exc:
            if exc.status == 404:
                return None
            if exc.status == 403 and "NamespaceTerminating" in exc.body:
                raise NamespaceTerminatingError(f"{method} {path}: {_message(exc)}") from exc
            if exc.status == 409:
                raise ConflictError(f"{method} {path}: {_message(exc)}") from exc
            if exc.status in (400, 403, 422):
                raise RefusedError(f"{method} {path}: {_message(exc)}") from exc
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            raise UnavailableError(f"{method} {path}: HTTP {exc.status} {_message(exc)}{tries}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UnavailableError(f"{method} {path}: {exc!r}") from exc
        try:
            result = json.loads(text) if text else None
        except ValueError as exc:
            raise UnavailableError(f"{method} {path}: the API server answered with no JSON") from exc
        return result if isinstance(result, dict) else None

    async def _authenticated(
        self, method: str, path: str, body: Any, query: list[tuple[str, str]] | None, content_type: str
    ) -> tuple[int, str | None, str]:
        """One request; on a 401 the credentials are loaded again and the request is made once more."""
        logins = self._logins
        answer = await self._request(method, path, body, query, content_type)
        if answer[0] != 401:
            return answer
        await self._login_again(logins)
        return await self._request(method, path, body, query, content_type)

    async def _login_again(self, logins_seen: int) -> None:
        async with self._login_lock:
            if self._logins != logins_seen:  # another request has done it meanwhile
                return
            try:
                configuration = await self._reload()
            except UnavailableError:
                raise
            except Exception as exc:  # an exec plugin that fails, a kubeconfig that no longer parses
                raise UnavailableError(f"logging in again after a 401: {exc}") from exc
            current = self._api
            if current is not None and _tls(current.configuration) == _tls(configuration):
                current.configuration.api_key = configuration.api_key
                current.configuration.refresh_api_key_hook = configuration.refresh_api_key_hook
            else:
                if current is not None:
                    self._retired.append(current)  # requests in flight on it finish there
                self._api = self._client(configuration)
            self._logins += 1
            log.info("Logged in to the API server again after a 401.")

    async def _request(
        self, method: str, path: str, body: Any, query: list[tuple[str, str]] | None, content_type: str
    ) -> tuple[int, str | None, str]:
        api = self._api
        if api is None:
            raise UnavailableError(f"{method} {path}: this client was made without credentials")
        # Raw JSON in and out: no generated models (_preload_content=False returns aiohttp's response).
        resp = await api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        try:
            return resp.status, resp.headers.get("Retry-After"), await resp.text()
        finally:
            resp.release()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", _path(api_version, kind, namespace, name))

    async def served_kinds(self, api_version: str) -> set[str]:
        """The kinds the API server serves under a group/version (API discovery; every authenticated
        user may read it). Empty when the group/version is not served at all."""
        found = await self._call("GET", f"/apis/{api_version}")
        return {str(r.get("kind")) for r in (found or {}).get("resources") or [] if "/" not in str(r.get("name"))}

    def observe(self, obj: Mapping[str, Any]) -> None:
        """Keeps this version of a child (from its watch, or the answer to our apply)."""
        if self.max_age <= 0 or obj.get("kind") in UNCACHED:
            return
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        version = _version(meta.get("resourceVersion"))
        held = self._seen.get(key)
        if held is not None and held[1] is not None and version < held[2]:
            return
        trimmed = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        self._seen[key] = (time.monotonic(), json.dumps(trimmed, separators=(",", ":")).encode(), version)

    def observe_gone(self, kind: str, namespace: str, name: str) -> None:
        if self.max_age <= 0 or kind in UNCACHED:
            return
        now = time.monotonic()
        self._seen[(kind, namespace, name)] = (now, None, 0)
        if now >= self._next_sweep:  # the children of deleted services leave only these behind
            self._seen = {k: v for k, v in self._seen.items() if v[1] is not None or now - v[0] < self.max_age}
            self._next_sweep = now + self.max_age

    @property
    def observed(self) -> int:
        return sum(1 for entry in self._seen.values() if entry[1] is not None)

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
        elif (
            kind == "PlatformService" or (live.get("metadata") or {}).get("labels", {}).get(MANAGED_BY_LABEL) == MANAGER
        ):  # the children's watch reports ours only: someone else's object stays unknown
            self.observe(live)
        return live

    async def apply(
        self, obj: Mapping[str, Any], *, if_version: str | None = None, field_manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply; with if_version, only onto that resourceVersion (else `ConflictError`)."""
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        body = dict(obj)
        if if_version is not None:
            body["metadata"] = {**meta, "resourceVersion": if_version}
        result = await self._call(
            "PATCH",
            path,
            body=body,
            query=[("fieldManager", field_manager), ("force", "true"), ("fieldValidation", "Strict")],
            content_type="application/apply-patch+yaml",
        )
        if result is None:  # a missing object is created by an apply: 404 is the kind itself
            raise NotServedError(f"apply {path}: not found (is the resource served?)")
        if (obj["apiVersion"], obj["kind"]) != (API_VERSION, "PlatformService"):
            self.observe(result)
        return result

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Creates the object only if none of its name exists (None: one does; read it).

        Server-side apply cannot say "only if absent", so this is a POST; what it wrote is then
        handed over to the field manager's apply entry, as if applied, so that a later apply
        that leaves a field out removes it (a POST's own entry would keep every field it set)."""
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta["namespace"])
        try:
            created = await self._call(
                "POST", path, body=dict(obj), query=[("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict")]
            )
        except ConflictError:
            return None
        if created is None:
            raise UnavailableError(f"create {path}/{meta['name']}: the API server returned nothing")
        result = created
        handover = as_applied(created)
        if handover is not None:
            try:
                patched = await self.merge_patch(
                    obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"], handover
                )
            except ConflictError:  # changed meanwhile: whoever changed it owns its own fields; ours stay as created
                patched = None
                log.info("create %s/%s: changed before its fields were handed over", path, meta["name"])
            result = patched or created
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
        """Merge-patches the status; the answer is kept (`observe`), so the next reconcile reads it
        even before the watch reports it."""
        path = _path(API_VERSION, "PlatformService", namespace, name) + "/status"
        result = await self._call(
            "PATCH", path, body={"status": dict(status)}, content_type="application/merge-patch+json"
        )
        if result is not None:
            self.observe(result)
