"""A Region's GPU quota split between operator replicas (shards): ceilings, no I/O.

One replica's ledger (:mod:`.ledger`) never oversubscribes a pool among the deployments it
plans; several replicas must not either. Each replica therefore *reserves* a ceiling per pool,
the most GPUs its whole shard may hold there, in one shared object on the hub that every
replica rewrites with an optimistic replace (:mod:`.leases`): a write is accepted only against
the ceilings it was computed from, so the API server serialises them and the live ceilings
never sum above the quota (:func:`next_ceiling` makes sure of that for each write).

A replica's ceiling in a pool is what its shard holds, plus what its deployments were refused
there, plus a slice of the room nobody holds or reserves (so growth within it is immediate),
never below what it holds (a ceiling never cuts: only the quota itself does), never above the
quota left by the others' ceilings (unless what it holds already is). The leader drops the
ceilings of replicas whose Lease has expired, so their room returns to the fleet; their
deployments' GPUs move with the deployments to the replicas that take them over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from wattscale.planner import PoolKey

Ceilings = dict[str, dict[PoolKey, int]]
"""Per replica, per pool: the GPUs its shard may hold."""


def next_ceiling(
    quota_gpus: int,
    others: Sequence[int],
    held_gpus: int,
    refused_gpus: int,
    live_replicas: int,
    others_held_gpus: int = 0,
) -> int:
    """This replica's ceiling in one pool (see the module docstring).

    ``others_held_gpus``: what the other shards' deployments hold there, as this replica last
    read their status. The others reserve at least that (a ceiling is never below what its
    shard holds), even when their stored ceilings say less: a replica that has just joined
    writes its ceilings before it knows what its new shard holds, and the shard handed over
    keeps its GPUs meanwhile."""
    room = quota_gpus - max(sum(others), others_held_gpus)  # what the others leave
    want = held_gpus + refused_gpus
    slack = max(0, room - want) // max(live_replicas, 1)
    return max(held_gpus, min(want + slack, room))


def next_ceilings(
    me: str,
    quota_gpus: Mapping[PoolKey, int],
    ceilings: Ceilings,
    held_gpus: Mapping[PoolKey, int],
    refused_gpus: Mapping[PoolKey, int],
    live: Sequence[str],
    others_held_gpus: Mapping[PoolKey, int] | None = None,
) -> dict[PoolKey, int]:
    """This replica's ceilings in every pool it knows the quota of."""
    foreign = others_held_gpus or {}
    return {
        key: next_ceiling(
            quota,
            [c.get(key, 0) for m, c in ceilings.items() if m != me],
            held_gpus.get(key, 0),
            refused_gpus.get(key, 0),
            len(live),
            foreign.get(key, 0),
        )
        for key, quota in quota_gpus.items()
    }


def without_expired(ceilings: Ceilings, live: Sequence[str]) -> Ceilings:
    """The ceilings of the live replicas only (what the leader keeps)."""
    return {m: c for m, c in ceilings.items() if m in live}


def encode(ceilings: Ceilings) -> str:
    """As the shared object's annotation stores them (JSON, pools as ``region/product``)."""
    return json.dumps(
        {
            m: {f"{k.region}/{k.gpu_product}": g for k, g in sorted(c.items())}
            for m, c in sorted(ceilings.items())
        },
        separators=(",", ":"),
    )


def decode(text: str | None) -> Ceilings:
    """The stored ceilings; empty when absent or unreadable (then nothing is reserved)."""
    try:
        raw = json.loads(text) if text else {}
    except ValueError:
        return {}
    out: Ceilings = {}
    if not isinstance(raw, dict):
        return out
    for member, pools in raw.items():
        if not isinstance(pools, dict):
            continue
        out[str(member)] = {
            PoolKey(*key.split("/", 1)): int(gpus)
            for key, gpus in pools.items()
            if isinstance(key, str) and "/" in key and isinstance(gpus, int)
        }
    return out
