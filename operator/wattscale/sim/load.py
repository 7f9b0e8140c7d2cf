"""The load a simulation replays: output tokens/s and requests/s for every simulated minute.

Two input shapes are accepted, told apart by their header:

- a per-request trace (`t_rel_s,context_tokens,generated_tokens`, as the Azure and Mooncake
  conversation traces): binned into whole minutes (the last, cut short, is dropped);
- a rate series (`t_start_s,rate_rps`, as the ServeGen 10-minute series): each window's rate is
  its mean, so minutes are interpolated linearly between window centres; request sizes are the
  Azure conversation means (below).

A rate series has no minute-to-minute variation of its own, so by default it is given the
burstiness of the per-request traces: each minute is multiplied by a factor taken, in turn, from
the Azure and Mooncake conversation traces' per-minute output tokens/s divided by their centred
10-minute mean (`wattscale/data/burstiness_1min.csv`, 116 factors of mean 1, spread ~0.1); a
per-request trace keeps its own.

Either shape is tiled (repeated) over the simulated period and scaled so that the busiest minute
needs `peak_replicas` replicas at the SLO-safe utilisation. `tz_offset_hours` says which local
time the trace's t=0 (a midnight for ServeGen) is in: the trace is shifted so that local
midnight lands at `start` 00:00 minus the offset.

The tiling runs back before `start` too: `Load.history_tokens_per_s` holds the
`HISTORY_MINUTES` minutes before it (same scale, same burst factors), the demand a deployment
that was already running had measured (the operator warm-starts from two days of Prometheus
history). Every policy starts the period as if it had been running through them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wattscale.sim.errors import SimInputError, csv_problems

FloatArray = npt.NDArray[np.float64]

MINUTE_S = 60
MAX_TRACE_DAYS = 400
"""A trace is tiled over the period: one longer than a year and a bit is a mistake."""
MAX_TRACE_S = MAX_TRACE_DAYS * 86_400
# Means of the Azure LLM inference trace 2023 (conversation), used for rate-only series.
AZURE_CONV_MEAN_OUTPUT_TOKENS = 211.1
AZURE_CONV_MEAN_CONTEXT_TOKENS = 1154.7
HISTORY_MINUTES = 2 * 24 * 60
"""Minutes of demand before the start a policy has measured: the operator's warm start reads
two days of demand history (``controller.memory.WARM_START_DEMAND``)."""


@dataclass(frozen=True)
class TraceShape:
    """A trace reduced to per-minute rates before tiling and scaling."""

    requests_per_s: FloatArray
    output_tokens_per_s: FloatArray
    mean_output_tokens: float
    mean_context_tokens: float
    kind: str


@dataclass(frozen=True)
class Load:
    """Per-minute demand over the simulated period (already tiled and scaled)."""

    output_tokens_per_s: FloatArray
    requests_per_s: FloatArray
    mean_output_tokens: float
    mean_context_tokens: float
    source: str
    history_tokens_per_s: FloatArray = field(default_factory=lambda: np.zeros(0))
    """The minutes before the start (oldest first): demand a running deployment had measured."""

    @property
    def minutes(self) -> int:
        return int(self.output_tokens_per_s.shape[0])


def _float(path: Path, line_no: int, name: str, raw: str | None) -> float:
    shown = repr(raw if raw is None or len(raw) <= 40 else raw[:37] + "...")
    try:
        value = float(raw or "")
    except ValueError:
        raise SimInputError(f"{path}:{line_no}: {name} {shown} is not a number") from None
    if not math.isfinite(value):
        raise SimInputError(f"{path}:{line_no}: {name} {shown} is not finite")
    return value


def read_trace(path: Path) -> TraceShape:
    """Read a per-request trace or a rate series into per-minute rates."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise SimInputError(f"{path}: trace file not found") from None
    except OSError as err:
        raise SimInputError(f"{path}: cannot read trace ({err.strerror})") from None
    with handle, csv_problems(path, "a CSV trace"):
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or [])
        if {"t_rel_s", "generated_tokens"} <= fields:
            return _per_request(path, reader)
        if {"t_start_s", "rate_rps"} <= fields:
            return _rate_series(path, reader)
    raise SimInputError(
        f"{path}: not a trace: expected columns t_rel_s,context_tokens,generated_tokens "
        "(per request) or t_start_s,rate_rps (rate series)"
    )


def _per_request(path: Path, reader: csv.DictReader[str]) -> TraceShape:
    times: list[float] = []
    outs: list[float] = []
    ctxs: list[float] = []
    previous = -math.inf
    for line_no, row in enumerate(reader, start=2):
        t = _float(path, line_no, "t_rel_s", row.get("t_rel_s"))
        if t < 0:
            raise SimInputError(f"{path}:{line_no}: negative timestamp t_rel_s={t}")
        if t > MAX_TRACE_S:
            raise SimInputError(
                f"{path}:{line_no}: t_rel_s={t:g} is past {MAX_TRACE_DAYS} days (in seconds?)"
            )
        if t < previous:
            raise SimInputError(
                f"{path}:{line_no}: timestamps are not sorted (t_rel_s={t} after {previous})"
            )
        previous = t
        out = _float(path, line_no, "generated_tokens", row.get("generated_tokens"))
        ctx = _float(path, line_no, "context_tokens", row.get("context_tokens") or "0")
        if out < 0 or ctx < 0:
            raise SimInputError(f"{path}:{line_no}: negative token count")
        times.append(t)
        outs.append(out)
        ctxs.append(ctx)
    if not times:
        raise SimInputError(f"{path}: the trace has no requests")
    t_arr = np.asarray(times)
    # Whole minutes only: a trace ends at its last request, so its last minute is cut short
    # (Azure's 59th minute holds 22 s), and tiled it would put a dip the data do not have at
    # every tile boundary. A trace shorter than a minute is one minute.
    minutes = max(1, math.floor(t_arr[-1] / MINUTE_S))
    index = (t_arr // MINUTE_S).astype(np.int64)
    whole = index < minutes
    index = index[whole]
    reqs = np.bincount(index, minlength=minutes).astype(np.float64) / MINUTE_S
    toks = np.bincount(index, weights=np.asarray(outs)[whole], minlength=minutes) / MINUTE_S
    return TraceShape(
        requests_per_s=reqs,
        output_tokens_per_s=toks,
        mean_output_tokens=float(np.mean(outs)) or 1.0,
        mean_context_tokens=float(np.mean(ctxs)),
        kind="per-request trace",
    )


def _rate_series(path: Path, reader: csv.DictReader[str]) -> TraceShape:
    starts: list[float] = []
    rates: list[float] = []
    previous = -math.inf
    for line_no, row in enumerate(reader, start=2):
        t = _float(path, line_no, "t_start_s", row.get("t_start_s"))
        rate = _float(path, line_no, "rate_rps", row.get("rate_rps"))
        if t < 0:
            raise SimInputError(f"{path}:{line_no}: negative timestamp t_start_s={t}")
        if t > MAX_TRACE_S:
            raise SimInputError(
                f"{path}:{line_no}: t_start_s={t:g} is past {MAX_TRACE_DAYS} days (in seconds?)"
            )
        if t <= previous:
            raise SimInputError(
                f"{path}:{line_no}: timestamps are not sorted (t_start_s={t} after {previous})"
            )
        if rate < 0:
            raise SimInputError(f"{path}:{line_no}: negative rate_rps={rate}")
        previous = t
        starts.append(t)
        rates.append(rate)
    if not starts:
        raise SimInputError(f"{path}: the rate series has no rows")
    step_s = float(np.median(np.diff(starts))) if len(starts) > 1 else 600.0
    if step_s > MAX_TRACE_S - starts[-1]:
        raise SimInputError(f"{path}: the rate series spans more than {MAX_TRACE_DAYS} days")
    minutes = round((starts[-1] + step_s) / MINUTE_S)
    # Each window's rate is its mean: interpolate linearly between window centres (wrapping
    # around, since the series is tiled), so the load ramps instead of jumping every window.
    centres_min = (np.asarray(starts) + step_s / 2) / MINUTE_S
    period = minutes
    xs = np.concatenate([centres_min - period, centres_min, centres_min + period])
    ys = np.tile(np.asarray(rates), 3)
    reqs = np.interp(np.arange(minutes) + 0.5, xs, ys)
    return TraceShape(
        requests_per_s=reqs,
        output_tokens_per_s=reqs * AZURE_CONV_MEAN_OUTPUT_TOKENS,
        mean_output_tokens=AZURE_CONV_MEAN_OUTPUT_TOKENS,
        mean_context_tokens=AZURE_CONV_MEAN_CONTEXT_TOKENS,
        kind="rate series",
    )


def burstiness_factors() -> FloatArray:
    """Per-minute burst factors of the shipped per-request traces (mean 1)."""
    ref = resources.files("wattscale.data").joinpath("burstiness_1min.csv")
    rows = csv.DictReader(ref.read_text(encoding="utf-8").splitlines())
    return np.asarray([float(r["factor"]) for r in rows], dtype=np.float64)


def build_load(
    shape: TraceShape,
    minutes: int,
    peak_output_tokens_per_s: float,
    tz_offset_hours: float = 0.0,
    source: str = "",
    burst: FloatArray | None = None,
    idle_below_percent: float = 0.0,
    history_minutes: int = 0,
) -> Load:
    """Tile `shape` over `minutes`, shifted by the time zone, scaled to the given peak.

    `burst`: factors multiplied onto a rate series minute by minute (cycled); per-request traces
    keep their own burstiness. `idle_below_percent`: this percent of the trace's peak rate is
    taken off every minute (clipped at zero), so the quiet hours of a diurnal trace become idle
    hours and the rest keeps its shape, morning ramps included (a tenant idle at night, for
    scale to zero). `history_minutes`: the tiling continued back before the start, scaled
    alike (`Load.history_tokens_per_s`)."""
    if peak_output_tokens_per_s <= 0:
        raise SimInputError("the peak load must be positive")
    base = shape.output_tokens_per_s
    if float(base.max()) <= 0:
        raise SimInputError(f"{source or 'the trace'}: no output tokens at all")
    # Simulated minute m is local time m + offset after local midnight = trace minute m + offset.
    shift = round(tz_offset_hours * 60) % base.shape[0]
    before = max(history_minutes, 0)
    minute = np.arange(-before, minutes)  # the history first, then the period
    index = (minute + shift) % base.shape[0]
    reqs_base = shape.requests_per_s
    if idle_below_percent > 0:
        kept = np.maximum(base - idle_below_percent / 100.0 * float(base.max()), 0.0)
        reqs_base = reqs_base * np.divide(kept, base, out=np.zeros_like(base), where=base > 0)
        base = kept
    toks = base[index]
    reqs = reqs_base[index]
    if idle_below_percent > 0 and float(toks[before:].max()) <= 0:
        raise SimInputError(f"--idle-below-percent {idle_below_percent:g} leaves no load")
    if burst is not None and burst.size and shape.kind == "rate series":
        factor = burst[minute % burst.size]
        toks, reqs = toks * factor, reqs * factor
    scale = peak_output_tokens_per_s / float(toks[before:].max())
    toks = toks * scale
    reqs = reqs * scale
    return Load(
        output_tokens_per_s=toks[before:],
        requests_per_s=reqs[before:],
        mean_output_tokens=shape.mean_output_tokens,
        mean_context_tokens=shape.mean_context_tokens,
        source=source or shape.kind,
        history_tokens_per_s=toks[:before],
    )
