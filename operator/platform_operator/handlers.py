"""kopf handlers: they only wire events to `reconcile` and turn its outcome into retries.

Every trigger (create, update, resume, the resync timer, a change to any child) runs the same
level-triggered reconcile, so a missed event is repaired on the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from platform_operator import builders, reconcile
from platform_operator.kube import Kube, UnavailableError
from platform_operator.model import GROUP, PLURAL, VERSION
from platform_operator.settings import OperatorSettings

log = logging.getLogger("platform_operator")
PSVC = (GROUP, VERSION, PLURAL)
MANAGED = {"app.kubernetes.io/managed-by": builders.MANAGER}
CHILDREN = (
    ("", "v1", "secrets"),
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "networkpolicies"),
)

settings = OperatorSettings()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours = OperatorSettings()
    settings.persistence.finalizer = "platform.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="platform.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="platform.dev", key="last-handled-configuration"
    )
    # Only warnings and errors from kopf's own log become Events; ours are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    memo.kube = await Kube.connect()
    memo.settings = ours


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo.kube.close()


@kopf.index(*PSVC)
def ingress_claims(
    namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]] | None:
    """Who routes which (host, path): the oldest claim wins, later ones are refused."""
    ingress = spec.get("ingress")
    if not ingress or spec.get("type") not in ("api", "bot"):
        return None
    if spec.get("type") == "bot" and (spec.get("bot") or {}).get("mode") != "webhook":
        return None
    claim = (ingress.get("host", ""), ingress.get("path", "/"))
    return {claim: (str(meta.get("creationTimestamp", "")), namespace or "", name)}


def _post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    # kopf only reads apiVersion, kind and metadata from it.
    kopf.event(dict(body), type=type_, reason=reason, message=message)  # type: ignore[arg-type]


async def _run(namespace: str | None, name: str, memo: kopf.Memo, ingress_claims: kopf.Index[Any, Any] | None) -> None:
    """The one path every trigger takes. kopf fills the index argument (it is declared above)."""
    index = ingress_claims if ingress_claims is not None else {}

    def claims(key: tuple[str, str]) -> list[tuple[str, str, str]]:
        return list(index.get(key, []))

    if namespace is None:  # PlatformService is namespaced; kopf always gives one
        return
    try:
        outcome = await reconcile.reconcile(
            namespace,
            name,
            memo.kube,
            claims=claims,
            emit=_post_event,
            otel_endpoint=memo.settings.otel_endpoint,
        )
    except UnavailableError as exc:
        raise kopf.TemporaryError(f"Kubernetes API unavailable: {exc}", delay=10) from exc
    if outcome is None:
        return
    if outcome.written or outcome.status_written:
        log.info(f"Reconciled {namespace}/{name}: wrote {', '.join(outcome.written) or 'status only'}.")
    if outcome.refused:
        # The spec cannot be applied as it is; the condition says why. Retry slowly in case the
        # obstacle (an object of the same name, an admission rule) is removed by hand.
        raise kopf.TemporaryError(f"Refused: {'; '.join(outcome.refused.values())}", delay=60)


@kopf.on.resume(*PSVC)
@kopf.on.create(*PSVC)
@kopf.on.update(*PSVC, field="spec")
async def reconcile_service(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    ingress_claims: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    await _run(namespace, name, memo, ingress_claims)


@kopf.timer(*PSVC, interval=settings.resync_seconds, initial_delay=settings.resync_seconds)
async def resync(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    ingress_claims: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    """Level-triggered safety net: repairs what no event told us about, refreshes status."""
    await _run(namespace, name, memo, ingress_claims)


@kopf.on.delete(*PSVC, optional=True)
async def forget(namespace: str | None, name: str, **_: Any) -> None:
    """Children go by garbage collection (ownerReferences); only in-memory state is dropped."""
    reconcile.forget(namespace or "", name)


def _owner(meta: kopf.Meta) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "PlatformService" and ref.get("controller"):
            return str(ref.get("name"))
    return None


def _child_handler(group: str, version: str, plural: str) -> None:
    @kopf.on.event(group, version, plural, labels=MANAGED, id=f"child-{plural}")
    async def child_changed(
        namespace: str | None,
        meta: kopf.Meta,
        type: str,
        memo: kopf.Memo,
        ingress_claims: kopf.Index[Any, Any] | None = None,
        **_: Any,
    ) -> None:
        """A child was edited, deleted or changed status: reconcile its owner now, not at the next resync."""
        owner = _owner(meta)
        if owner is None or namespace is None or type is None:  # no owner, or the initial listing
            return
        try:
            await _run(namespace, owner, memo, ingress_claims)
        except kopf.TemporaryError as exc:
            log.warning(f"Reconcile of {namespace}/{owner} after a {plural} change failed: {exc}")


for _child in CHILDREN:
    _child_handler(*_child)
