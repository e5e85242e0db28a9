"""The Kubernetes children of a PlatformService: the credentials Secret settled first, then each
wanted child applied where it drifted, and the optional ones the spec no longer asks for deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from platform_operator import builders, credentials, observability
from platform_operator.backends import Backends
from platform_operator.drift import drifted_paths, holds
from platform_operator.kube import FIELD_MANAGER, ConflictError, Kube, NotServedError, RefusedError, UnavailableError
from platform_operator.model import PlatformService
from platform_operator.state import ReconcileState
from platform_operator.status import Outcome, child_inputs

log = logging.getLogger("platform_operator")


APPLIED_HASH_ANNOTATION = "platform.dev/applied-hash"


# Children that exist for some specs and not for others: when the spec stops asking for one
# (an ingress removed, a bot switched to polling), the one we made is deleted. (Every service has
# a NetworkPolicy.) The HorizontalPodAutoscaler comes with spec.autoscaling,
# the PodDisruptionBudget with more than one replica.
OPTIONAL_KINDS = (
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
)


# Takes spec.replicas of a Deployment over from the operator when autoscaling is switched on (see
# owns_replicas): the HorizontalPodAutoscaler's own updates take it from there.
HANDOVER_MANAGER = "platform-operator-handover"


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """Adds a digest of the object we apply; a digest that differs on the live one means our spec
    changed (even where a field was only removed, which a field-by-field comparison cannot see)."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"].setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = digest
    return obj


def owned_by(live: Mapping[str, Any], svc: PlatformService) -> bool:
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == svc.uid for r in refs)


def owns_replicas(live: Mapping[str, Any], manager: str = FIELD_MANAGER) -> bool:
    """Whether `manager`'s server-side apply owns spec.replicas of this object (its managedFields).

    An apply that leaves out a field its manager alone owned removes it, and the Deployment falls
    back to 1 replica: before the operator stops applying replicas, another manager must share it."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


SETTLE_ATTEMPTS = 3  # lost races in a row before the reconcile gives up and retries later


@dataclass
class SettledSecret:
    """The passwords this reconcile uses: those the credentials Secret holds."""

    creds: credentials.Credentials
    before: dict[str, Any] | None  # the Secret as last read before any write of ours (None: absent)
    written: dict[str, Any] | None = None  # the Secret our precondition write left (new passwords)
    refused: str = ""  # why the API server refused that write


async def settle_credentials(
    svc: PlatformService,
    annotations: Mapping[str, str],
    live: dict[str, Any] | None,
    kube: Kube,
    settings_for: Callable[[credentials.Credentials], dict[str, str]],
    *,
    database: bool = False,
) -> SettledSecret:
    """The passwords the Secret holds; new ones (no Secret yet, a rotation asked) are written to it
    before anything else, only if it is still as read: absent (create), or the same version. Another
    replica that wrote first wins, and its passwords are read back and used: RabbitMQ and Redis are
    only ever given what the Secret holds."""
    for _ in range(SETTLE_ATTEMPTS):
        creds = credentials.resolve(annotations, live, database=database)
        if live is not None and not owned_by(live, svc):
            return SettledSecret(creds, live)  # not ours: refused by the caller, nothing written
        wanted = stamp(builders.build_secret(svc, settings_for(creds), creds.rotation))
        if not credentials.unsettled(wanted, live):
            return SettledSecret(creds, live)
        try:
            if live is None:
                written = await kube.create(wanted)
            else:
                written = await kube.apply(wanted, if_version=live["metadata"]["resourceVersion"])
        except ConflictError:
            written = None
        except RefusedError as exc:
            return SettledSecret(creds, live, refused=str(exc))
        if written is not None:
            return SettledSecret(creds, live, written)
        log.info(f"Secret {svc.namespace}/{svc.secret_name} was written by another replica first: using its passwords.")
        live = await kube.get("v1", "Secret", svc.namespace, svc.secret_name)  # not the cache: it is behind
    raise UnavailableError(
        f"Secret {svc.namespace}/{svc.secret_name} changed under each of {SETTLE_ATTEMPTS} writes of new passwords"
    )


async def apply_children(
    svc: PlatformService,
    wanted: list[dict[str, Any]],
    settled: SettledSecret,
    kube: Kube,
    backends: Backends,
    state: ReconcileState,
    outcome: Outcome,
    say: Callable[[str, str, str], None],
) -> dict[str, dict[str, Any] | None]:
    """Applies each wanted child that is missing or no longer holds what we apply (never one that is
    not ours), and tells what it did; returns each kind as it now is (None: not there, or not ours)."""
    creds = settled.creds
    live_by_kind: dict[str, dict[str, Any] | None] = {}
    made: list[str] = []  # one Event for all of them: at scale, each Event is a request
    for obj in wanted:
        stamp(obj)
        kind, name = obj["kind"], obj["metadata"]["name"]
        live = settled.before if kind == "Secret" else await kube.read(obj["apiVersion"], kind, svc.namespace, name)
        if live is not None and not owned_by(live, svc):
            # Not ours (made by hand, or by an earlier object of the same name): never take it over.
            outcome.refused[kind] = (
                f"{kind} {name} already exists and is not owned by this PlatformService; rename or delete it"
            )
            live_by_kind[kind] = None
            continue
        if kind == "Secret" and settled.refused:
            outcome.refused[kind] = settled.refused
            live_by_kind[kind] = live
            continue
        handed_over = False
        if kind == "Deployment" and live is not None and svc.spec.autoscaling is not None and not holds(obj, live):
            handed_over = await hand_over_replicas(kube, obj, outcome)
        if kind == "Secret" and settled.written is not None:
            applied = live_by_kind[kind] = settled.written  # new passwords, written first (settle_credentials)
        elif live is not None and not handed_over and holds(obj, live):
            live_by_kind[kind] = live
            continue
        else:
            try:
                applied = live_by_kind[kind] = await kube.apply(obj)
            except RefusedError as exc:
                outcome.refused[kind] = str(exc)
                live_by_kind[kind] = live
                continue
            except NotServedError as exc:
                if obj["apiVersion"] != builders.MONITORING_API:
                    raise
                # Its CRD went while the watch was not looking (another replica acted): the pods
                # carry the annotations instead, from the next reconcile on (soon: a retry).
                backends.monitoring.set(kind, False)
                outcome.retry.append(f"{kind} is no longer served: {exc}")
                live_by_kind[kind] = None
                continue
        state.remember_write(applied)
        state.inputs_changed(str(applied.get("kind")), applied.get("metadata") or {}, child_inputs(applied))
        outcome.written.append(f"{kind}/{name}")
        if live is None:
            made.append(f"{kind} {name}")
        elif kind == "Secret" and creds.rotation != (
            (live.get("metadata", {}).get("annotations") or {}).get(credentials.ROTATED_FOR_ANNOTATION, "")
        ):
            say("Normal", "CredentialsRotated", f"New passwords in Secret {name}; pods roll.")
        else:
            paths = [p for p in drifted_paths(obj, live) if APPLIED_HASH_ANNOTATION not in p]
            if paths:
                observability.DRIFT_REPAIRS.labels(kind).inc()
                say("Normal", "Repaired", f"Restored {kind} {name}: {', '.join(sorted(paths)[:5])}.")
            else:
                say("Normal", "Updated", f"Updated {kind} {name} to the new spec.")

    if made:
        say("Normal", "Created", f"Created {', '.join(made)}.")
    return live_by_kind


async def delete_unwanted(
    svc: PlatformService,
    wanted: list[dict[str, Any]],
    kube: Kube,
    backends: Backends,
    outcome: Outcome,
    say: Callable[[str, str, str], None],
) -> None:
    """Deletes the optional children of ours the spec no longer asks for."""
    wanted_kinds = {(o["apiVersion"], o["kind"]) for o in wanted}
    for api_version, kind in (*OPTIONAL_KINDS, *backends.monitoring.kinds):
        if (api_version, kind) in wanted_kinds:
            continue
        live = await kube.read(api_version, kind, svc.namespace, svc.name, trust_absence=True)
        if (
            live is not None
            and owned_by(live, svc)
            and await kube.delete(api_version, kind, svc.namespace, svc.name, live["metadata"]["uid"])
        ):
            outcome.written.append(f"delete {kind}/{svc.name}")
            say("Normal", "Deleted", f"Deleted {kind} {svc.name}: the spec no longer asks for it.")


async def hand_over_replicas(kube: Kube, obj: Mapping[str, Any], outcome: Outcome) -> bool:
    """Before the first apply without spec.replicas (autoscaling switched on): if the operator's
    apply owns the field, another manager takes a share of it at its current value, so that
    leaving it out keeps the count instead of resetting it to 1. True when it did (the Deployment
    must then be applied, to give up the operator's share)."""
    meta = obj["metadata"]
    fresh = await kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])  # with managedFields
    if fresh is None or not owns_replicas(fresh):
        return False
    replicas = (fresh.get("spec") or {}).get("replicas")
    share = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }
    await kube.apply(share, field_manager=HANDOVER_MANAGER)
    outcome.written.append(f"Deployment/{meta['name']} replicas handed to the HorizontalPodAutoscaler")
    return True
