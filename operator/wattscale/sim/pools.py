"""Pools of a replay with variants: each column of a run is one variant in one region.

A replay without variants has one column per region and one `ReplicaModel`. With variants
(`wattscale simulate --variants`, `sim.variants`), each region holds one column per variant, and
each variant has its own replica model (capacity, power, latency) and GPU price. The functions
here apply the right model to each column, so the engine and the accounting stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattscale.sim.model import FloatArray, MinuteService, ReplicaModel, serve_minute


@dataclass(frozen=True)
class PoolModels:
    """Per variant: name, GPU product, replica model and GPU cost; per column: the variant and
    the region (index into `region_names`)."""

    names: tuple[str, ...]
    products: tuple[str, ...]
    models: tuple[ReplicaModel, ...]
    gpu_hour_cost: tuple[float, ...]  # USD per replica-hour (all its GPUs)
    region_names: tuple[str, ...]
    variant_of: tuple[int, ...]  # per column
    region_of: tuple[int, ...]  # per column

    def columns(self, variant: int) -> np.ndarray:
        """Indices of the columns of one variant (one per region, in region order)."""
        return np.flatnonzero(np.asarray(self.variant_of) == variant)

    def per_column(self, values: tuple[float, ...]) -> FloatArray:
        """A per-variant value spread over the columns."""
        return np.asarray([values[v] for v in self.variant_of], dtype=np.float64)


def safe_tokens_per_s(pools: PoolModels | None, model: ReplicaModel) -> float | FloatArray:
    """Tokens/s one Ready replica is given before the router spills, per column."""
    if pools is None:
        return model.safe_tokens_per_s
    return pools.per_column(tuple(m.safe_tokens_per_s for m in pools.models))


def serve(
    pools: PoolModels | None,
    model: ReplicaModel,
    ready: FloatArray,
    routed: FloatArray,
    backlog: FloatArray,
    mean_output_tokens: float,
    mean_context_tokens: float,
) -> MinuteService:
    """`model.serve_minute` with each column served by its variant's model (last axis)."""
    if pools is None:
        return serve_minute(model, ready, routed, backlog, mean_output_tokens, mean_context_tokens)
    parts = {
        v: serve_minute(
            m,
            ready[..., pools.columns(v)],
            routed[..., pools.columns(v)],
            backlog[..., pools.columns(v)],
            mean_output_tokens,
            mean_context_tokens,
        )
        for v, m in enumerate(pools.models)
    }
    fields = {}
    for name in MinuteService.__dataclass_fields__:
        out = np.zeros(np.broadcast(ready, routed).shape, dtype=np.float64)
        for v, part in parts.items():
            out[..., pools.columns(v)] = getattr(part, name)
        fields[name] = out
    return MinuteService(**fields)


def board_watts(
    pools: PoolModels | None,
    model: ReplicaModel,
    allocated: FloatArray,
    ready: FloatArray,
    tokens_per_s: FloatArray,
) -> FloatArray:
    """`model.board_watts` with each column's variant model (last axis)."""
    if pools is None:
        return model.board_watts(allocated, ready, tokens_per_s)
    out = np.zeros(np.shape(allocated), dtype=np.float64)
    for v, m in enumerate(pools.models):
        cols = pools.columns(v)
        out[..., cols] = m.board_watts(
            allocated[..., cols], ready[..., cols], tokens_per_s[..., cols]
        )
    return out


def replica_watts(
    pools: PoolModels | None, model: ReplicaModel, tokens_per_s: FloatArray
) -> FloatArray:
    """`model.replica_watts` per column."""
    if pools is None:
        return model.replica_watts(tokens_per_s)
    out = np.zeros(np.shape(tokens_per_s), dtype=np.float64)
    for v, m in enumerate(pools.models):
        cols = pools.columns(v)
        out[..., cols] = m.replica_watts(tokens_per_s[..., cols])
    return out
