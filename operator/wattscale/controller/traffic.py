"""Publish an InferenceDeployment's traffic weights on the HTTPRoute it names.

``spec.placement.httpRoute`` names a Gateway API HTTPRoute on the hub. Every pass, after the
plan is made and before replicas are acted on, the decision's traffic ratios become integer
weights on that route's backendRefs named ``<deployment>-<region>``
(:mod:`wattscale.clusters.route_weights` says which and how; nothing else in the route changes).
Weighting before acting means a region whose share drops to 0 loses its traffic before its
replicas are scaled down, and a region only gets traffic for replicas that are already Ready
(the planner weighs Ready replicas): make-before-break holds for traffic as well.

What the user sees: the ``TrafficRouted`` condition (True ``WeightsSet``, or False with
``GatewayAPIMissing``, ``CrossNamespaceRoute``, ``RouteNotFound``, ``NoMatchingBackend``,
``BackendMissing``, ``Forbidden``, ``PatchRejected``, ``RouteError``, ``NoReplicas``, ``DryRun``,
``Paused``), a Normal ``TrafficRouted`` Event when weights change, and one Warning Event (and
one log line) per new problem, not one per pass. Only ``Active`` writes; ``DryRun`` and
``Paused`` read the route and say what they would set.

Only a route in the InferenceDeployment's own namespace is managed: the operator may patch
HTTPRoutes everywhere, and whoever may write an InferenceDeployment must not be able to borrow
that to steer another namespace's traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wattscale.api.common import NamespacedName
from wattscale.clusters.route_weights import (
    backend_name,
    describe,
    integer_weights,
    plan_route_update,
)
from wattscale.clusters.routes import RouteError, RouteStore

log = logging.getLogger(__name__)

CONDITION = "TrafficRouted"
WRITE_FAILURES = frozenset({"Forbidden", "PatchRejected", "RouteError"})
"""Reasons that leave the route's traffic where it was: replicas it still sends traffic to stay."""


@dataclass(frozen=True)
class RouteReport:
    """The ``TrafficRouted`` condition for this pass, and Events as (type, reason, message)."""

    status: bool | None
    reason: str
    message: str
    events: tuple[tuple[str, str, str], ...] = ()
    confirmed: Mapping[str, int] | None = None
    """Per region, the weight the route holds after this pass, as last read or written; None
    when the route could not be read. Only these weights are known to steer traffic."""

    @property
    def write_failed(self) -> bool:
        """The route should carry new weights and the API server did not take them."""
        return self.reason in WRITE_FAILURES


class TrafficRouter:
    """Keeps each InferenceDeployment's HTTPRoute weights in step with its traffic weights."""

    def __init__(self, routes: RouteStore | None) -> None:
        self._routes = routes
        self._last_problem: dict[tuple[str, str], str] = {}

    def forget(self, namespace: str, name: str) -> None:
        self._last_problem.pop((namespace, name), None)

    def publish(
        self,
        *,
        name: str,
        namespace: str,
        ref: NamespacedName | None,
        regions: Sequence[str],
        ratios: Mapping[str, float],
        mode: str,
    ) -> RouteReport | None:
        """One pass: read the route, set the weights (Active only); None when no route is named."""
        key = (namespace, name)
        if ref is None:
            self._last_problem.pop(key, None)
            return None
        route_ns = ref.namespace or namespace
        target = f"HTTPRoute {route_ns}/{ref.name}"
        if route_ns != namespace:
            return self._problem(
                key,
                "CrossNamespaceRoute",
                f"{target} is not in the InferenceDeployment's namespace {namespace}: only routes "
                "in the same namespace are managed",
            )
        routes = self._routes
        try:
            if routes is None or not routes.served():
                return self._problem(
                    key,
                    "GatewayAPIMissing",
                    "the hub serves no gateway.networking.k8s.io/v1 HTTPRoute (are the Gateway "
                    f"API CRDs installed?): {target} is not managed",
                )
        except RouteError as err:
            return self._failed(key, target, err)
        by_region = integer_weights(ratios, list(regions))
        weights = {backend_name(name, r): w for r, w in by_region.items()}
        if sum(weights.values()) == 0:
            return RouteReport(
                False,
                "NoReplicas",
                f"no replica to send traffic to: the weights of {target} are left as they are",
            )
        changed = ""
        confirmed: dict[str, int] | None = None
        for attempt in (1, 2):
            confirmed = None
            try:
                route = routes.get(route_ns, ref.name)
                if route is None:
                    return self._problem(key, "RouteNotFound", f"{target} does not exist")
                update = plan_route_update(route, weights)
                confirmed = {r: update.before.get(backend_name(name, r), 0) for r in by_region}
                if not update.matched:
                    return self._problem(
                        key,
                        "NoMatchingBackend",
                        f"{target} has no backendRef named {', '.join(sorted(weights))} "
                        "(one per region: <deployment>-<region>)",
                    )
                if update.ops and mode != "Active":
                    return RouteReport(
                        False, mode, f"{mode}: would set on {target}: {update.changes()}"
                    )
                if update.ops:
                    routes.patch(route_ns, ref.name, update.ops)
                    changed = update.changes()
                break
            except RouteError as err:
                if err.status == 422 and attempt == 1:
                    continue  # the route changed under us (a test op failed): read it again
                failed = self._failed(key, target, err)
                return RouteReport(
                    failed.status, failed.reason, failed.message, failed.events, confirmed
                )
        events: list[tuple[str, str, str]] = []
        if changed:
            events.append(("Normal", CONDITION, f"{target}: {changed}"))
        if update.missing:
            report = self._problem(
                key,
                "BackendMissing",
                f"{target}: {'; '.join(update.missing)}; set {describe(weights)}",
            )
            return RouteReport(
                False, report.reason, report.message, (*events, *report.events), by_region
            )
        self._last_problem.pop(key, None)
        return RouteReport(
            True, "WeightsSet", f"{target}: {describe(weights)}", tuple(events), by_region
        )

    def _failed(self, key: tuple[str, str], target: str, err: RouteError) -> RouteReport:
        if err.status == 403:
            return self._problem(
                key,
                "Forbidden",
                f"{err}; the operator needs get and patch on httproutes.gateway.networking.k8s.io "
                "(Helm: rbac.httpRoutes=true)",
            )
        if err.status == 422:
            return self._problem(key, "PatchRejected", f"{target}: {err}")
        return self._problem(key, "RouteError", str(err))

    def _problem(self, key: tuple[str, str], reason: str, message: str) -> RouteReport:
        """False, with a Warning Event and a log line only when the problem is new."""
        events: tuple[tuple[str, str, str], ...] = ()
        if self._last_problem.get(key) != reason:
            self._last_problem[key] = reason
            events = (("Warning", reason, message),)
            log.warning("%s/%s: traffic not routed: %s: %s", key[0], key[1], reason, message)
        return RouteReport(False, reason, message, events)
