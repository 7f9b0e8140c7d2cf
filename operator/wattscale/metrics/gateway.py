"""The gateway's waiting requests: what wakes an InferenceDeployment that scaled to zero.

While no replica runs, vLLM reports nothing, so demand is read where requests arrive: a PromQL
expression on the gateway's pending or failed requests (``spec.scaleToZero.wakeQuery``; the
default reads the Gateway API inference extension's endpoint picker). The expression is run on
the Prometheus of every Region the deployment may run in and the results are summed: the
gateway is scraped by one of them, and an empty answer from the others adds nothing.

A query that fails makes the whole reading unknown (``waiting_requests`` None): the planner
then keeps or wakes a replica, never sleeps on a reading it does not have. No series at all
counts as 0 (a gateway that has not seen a request for the pool yet exports none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wattscale.metrics.queries import escape_label_value
from wattscale.metrics.reader import MetricsReader, QueryFailedError

__all__ = ["GatewayReading", "read_waiting", "wake_query"]


@dataclass(frozen=True, slots=True)
class GatewayReading:
    """Requests waiting for (or failed by) one deployment at the gateway, summed over regions."""

    waiting_requests: float | None
    """None: some Prometheus did not answer (unknown, not zero)."""
    problems: tuple[str, ...] = ()


def wake_query(template: str, *, name: str, namespace: str, model: str) -> str:
    """``template`` with ``$namespace``, ``$name`` and ``$model`` replaced (escaped for use in
    a double-quoted label matcher)."""
    out = template.replace("$namespace", escape_label_value(namespace))
    out = out.replace("$name", escape_label_value(name))
    return out.replace("$model", escape_label_value(model))


def read_waiting(readers: Sequence[tuple[str, MetricsReader]], query: str) -> GatewayReading:
    """Run ``query`` on each region's Prometheus and sum every sample it returns."""
    if not readers:
        return GatewayReading(None, ("no Region in placement.regions has a Prometheus",))
    total = 0.0
    problems: list[str] = []
    for region, reader in readers:
        try:
            samples = reader.query(query)
        except QueryFailedError as err:
            problems.append(f"{region}: wake query failed: {err.reason}")
            continue
        total += sum(s.value for s in samples if math.isfinite(s.value))
    if problems:
        return GatewayReading(None, tuple(problems))
    return GatewayReading(max(total, 0.0))
