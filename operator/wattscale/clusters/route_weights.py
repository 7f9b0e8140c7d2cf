"""Traffic weights on a Gateway API HTTPRoute: which backendRefs, what integers, what patch (pure).

An InferenceDeployment may name an HTTPRoute on the hub (``spec.placement.httpRoute``). Region
``R`` of InferenceDeployment ``D`` is every backendRef named ``D-R`` in that route, in every rule
that has one, whatever its kind (a hub-side Service, a multi-cluster ``ServiceImport``, ...):
the user, or their multi-cluster networking, provides those backends. Only their ``weight`` is
ours; every other field of the route, and every backendRef with another name, is left alone.

Weights are integers on a per-mille scale (:data:`WEIGHT_SCALE`; Gateway API allows
0..1,000,000 and reads them as proportions within a rule). The traffic ratios of the decision
(``Decision.traffic_weights``, which the status shows as ``trafficWeightPercent``) are rounded
by largest remainder, so the regions' weights always sum to exactly the scale.

``backendRefs`` is an atomic list in the CRD's schema, so server-side apply would replace the
whole list. The change is therefore a JSON patch: for each backendRef whose weight differs, a
``test`` of its name at its index, then a ``replace`` (or ``add``, when the field is absent) of
its weight. If someone edits the route between our read and our write, a test fails, the API
server refuses the whole patch (422), and nothing is half-written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WEIGHT_SCALE = 1000
"""What the weights of one InferenceDeployment's backends sum to (per mille)."""

DEFAULT_WEIGHT = 1
"""Gateway API's default for a backendRef without ``weight``."""


def backend_name(deployment: str, region: str) -> str:
    """The backendRef name that stands for ``region`` of ``deployment``."""
    return f"{deployment}-{region}"


def integer_weights(
    ratios: Mapping[str, float], regions: Sequence[str], scale: int = WEIGHT_SCALE
) -> dict[str, int]:
    """Per region, an integer weight: proportional to ``ratios``, summing to ``scale``.

    Largest-remainder rounding (ties go to the region listed first). Regions without a ratio,
    and negative or non-finite ratios, get 0; when no region has a positive ratio every weight
    is 0.
    """
    clean = {r: _positive(ratios.get(r, 0.0)) for r in regions}
    total = sum(clean.values())
    if total <= 0:
        return dict.fromkeys(regions, 0)
    exact = {r: scale * v / total for r, v in clean.items()}
    out = {r: math.floor(x) for r, x in exact.items()}
    left = scale - sum(out.values())
    order = sorted(regions, key=lambda r: (-(exact[r] - out[r]), regions.index(r)))
    for r in order[:left]:
        out[r] += 1
    return out


def _positive(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


@dataclass(frozen=True)
class RouteUpdate:
    """What to change in one HTTPRoute so our backends carry ``weights``."""

    weights: dict[str, int]
    """backendRef name -> the weight it should have (one entry per region)."""
    before: dict[str, int] = field(default_factory=dict)
    """backendRef name -> the weight it has now (the first rule's, for messages)."""
    ops: list[dict[str, Any]] = field(default_factory=list)
    """The JSON patch (RFC 6902); empty when every weight is already right."""
    rules_matched: int = 0
    """How many rules have at least one of our backendRefs."""
    missing: list[str] = field(default_factory=list)
    """Our backends with a weight > 0 that a rule with our other backends lacks."""

    @property
    def matched(self) -> bool:
        return self.rules_matched > 0

    def changes(self) -> str:
        """``"llama-us-east 1000->0, llama-us-west 0->1000"``: the weights that change."""
        parts = [
            f"{n} {self.before.get(n, '-')}->{w}"
            for n, w in sorted(self.weights.items())
            if self.before.get(n) != w
        ]
        return ", ".join(parts) or "no change"


def describe(weights: Mapping[str, int]) -> str:
    """``"llama-eu-central=0, llama-us-east=0, llama-us-west=1000"``."""
    return ", ".join(f"{n}={w}" for n, w in sorted(weights.items()))


def plan_route_update(route: Mapping[str, Any], weights: Mapping[str, int]) -> RouteUpdate:
    """The JSON patch that gives every backendRef named in ``weights`` its weight.

    ``weights`` maps backendRef names (:func:`backend_name`) to integers. Rules without any of
    our backends are not touched; a rule that has some of them but lacks one with a weight > 0
    is reported in ``missing`` (its share cannot be routed there) and still gets the others set.
    """
    rules = (route.get("spec") or {}).get("rules") or []
    ops: list[dict[str, Any]] = []
    before: dict[str, int] = {}
    missing: list[str] = []
    matched = 0
    for i, rule in enumerate(rules):
        refs = (rule or {}).get("backendRefs") or []
        present: set[str] = set()
        for j, ref in enumerate(refs):
            name = (ref or {}).get("name")
            if not isinstance(name, str) or name not in weights:
                continue
            present.add(name)
            current = ref.get("weight")
            before.setdefault(name, DEFAULT_WEIGHT if current is None else int(current))
            want = weights[name]
            if current == want:
                continue
            path = f"/spec/rules/{i}/backendRefs/{j}"
            ops.append({"op": "test", "path": f"{path}/name", "value": name})
            op = "add" if current is None else "replace"
            ops.append({"op": op, "path": f"{path}/weight", "value": want})
        if present:
            matched += 1
            missing += [
                f"rule {i} has no backendRef {n} (weight {w})"
                for n, w in sorted(weights.items())
                if w > 0 and n not in present
            ]
    return RouteUpdate(dict(weights), before, ops, matched, missing)
