"""`--report DIR`: one self-contained HTML page with inline SVG plots (no JavaScript, no files).

Sections: what was simulated; the results table; cost per policy (GPU and energy stacked); SLO
attainment per policy; and, per region, the replicas wattscale and the oracle held over time
against that region's electricity price; then the demand. Written for a reader who never saw
the tool: every plot has a sentence saying what it shows.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wattscale.sim.run import CURRENCY, SimulationResult
from wattscale.sim.scenario import Scenario

FloatArray = npt.NDArray[np.float64]

COLOURS = {
    "wattscale": "#1b9e77",
    "static": "#7570b3",
    "reactive": "#d95f02",
    "carbon-capped": "#66a61e",
    "greedy": "#e7298a",
    "oracle": "#444444",
}
PRICE_COLOUR = "#c9a227"
WIDTH, HEIGHT = 900, 220
PAD_L, PAD_R, PAD_T, PAD_B = 60, 60, 20, 30


def _esc(text: object) -> str:
    return html.escape(str(text))


def _hourly(values: FloatArray) -> FloatArray:
    hours = values.shape[0] // 60
    if hours == 0:
        return values
    return np.asarray(values[: hours * 60].reshape(hours, 60).mean(axis=1), dtype=np.float64)


def _polyline(ys: FloatArray, lo: float, hi: float, colour: str, step: bool, dash: str = "") -> str:
    n = ys.shape[0]
    if n == 0:
        return ""
    span = hi - lo if hi > lo else 1.0
    x_scale = (WIDTH - PAD_L - PAD_R) / max(n, 1)
    points: list[str] = []
    for k, y in enumerate(ys):
        py = PAD_T + (HEIGHT - PAD_T - PAD_B) * (1.0 - (float(y) - lo) / span)
        x0 = PAD_L + k * x_scale
        if step:
            points.append(f"{x0:.1f},{py:.1f} {x0 + x_scale:.1f},{py:.1f}")
        else:
            points.append(f"{x0 + x_scale / 2:.1f},{py:.1f}")
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"{extra} '
        f'points="{" ".join(points)}"/>'
    )


def _axes(
    lo: float, hi: float, label: str, hours: int, right: tuple[float, float, str] | None
) -> str:
    parts = [
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{WIDTH - PAD_L - PAD_R}" '
        f'height="{HEIGHT - PAD_T - PAD_B}" fill="none" stroke="#bbb"/>',
        f'<text x="8" y="{PAD_T + 10}" font-size="11">{_esc(label)}</text>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = PAD_T + (HEIGHT - PAD_T - PAD_B) * (1 - frac)
        parts.append(
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{lo + (hi - lo) * frac:.3g}</text>"
        )
        if right is not None:
            r_lo, r_hi, _ = right
            parts.append(
                f'<text x="{WIDTH - PAD_R + 4}" y="{y + 4:.1f}" font-size="10" '
                f'fill="{PRICE_COLOUR}">{r_lo + (r_hi - r_lo) * frac:.3g}</text>'
            )
    if right is not None:
        parts.append(
            f'<text x="{WIDTH - 4}" y="{PAD_T + 10}" font-size="11" text-anchor="end" '
            f'fill="{PRICE_COLOUR}">{_esc(right[2])}</text>'
        )
    days = max(1, hours // 24)
    for d in range(days + 1):
        x = PAD_L + (WIDTH - PAD_L - PAD_R) * d * 24 / max(hours, 1)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{HEIGHT - PAD_B}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 12}" font-size="10" text-anchor="middle">'
            f"day {d}</text>"
        )
    return "".join(parts)


def _svg(body: str, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">{body}</svg>'
    )


def _bars(
    names: Sequence[str],
    stacks: Sequence[Sequence[float]],
    labels: Sequence[str],
    fmt: str,
    lo: float = 0.0,
) -> str:
    """Horizontal bars, one per name, each a stack of segments (the first in the policy colour)."""
    row_h = 26
    height = PAD_T + row_h * len(names) + 20
    top = max((sum(s) for s in stacks), default=1.0) or 1.0
    span = top - lo if top > lo else 1.0
    usable = WIDTH - 200 - 120
    parts: list[str] = []
    for k, (name, stack, label) in enumerate(zip(names, stacks, labels, strict=True)):
        y = PAD_T + k * row_h
        x = 160.0
        parts.append(
            f'<text x="150" y="{y + 16}" font-size="12" text-anchor="end">{_esc(name)}</text>'
        )
        for j, value in enumerate(stack):
            base = lo if j == 0 else 0.0
            w = max(0.0, (value - base) / span * usable)
            colour = COLOURS.get(name, "#888") if j == 0 else "#f2c14e"
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{colour}"/>'
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}" font-size="11">{_esc(label)}</text>')
    return _svg("".join(parts), height)


def _table(result: SimulationResult) -> str:
    head = (
        "<tr><th>policy</th><th>total</th><th>GPU</th><th>energy</th><th>energy kWh</th>"
        "<th>carbon kg</th><th>SLO met</th><th>replica-h</th><th>migrations</th>"
        "<th>cold starts</th><th>CO2 price used</th></tr>"
    )
    rows = []
    for name, r in result.results.items():
        rows.append(
            f"<tr><td>{_esc(name)}</td><td>{r.total_cost:,.2f}</td><td>{r.gpu_cost:,.2f}</td>"
            f"<td>{r.energy_cost:,.2f}</td><td>{r.energy_kwh:,.0f}</td><td>{r.carbon_kg:,.0f}</td>"
            f"<td>{100 * r.slo_attainment:.2f} %</td><td>{r.replica_hours:,.0f}</td>"
            f"<td>{r.migrations}</td><td>{r.cold_starts}</td>"
            f"<td>{_esc(r.carbon_price_label())}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def render(result: SimulationResult) -> str:
    """The HTML page as a string."""
    sections = [
        _intro(result),
        *_warnings(result.scenario),
        f"<h2>Results ({CURRENCY})</h2>{_table(result)}",
        *_cost_and_slo(result),
        *_regions(result),
        _demand(result.scenario),
    ]
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child{text-align:left}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>wattscale simulate</title><style>{style}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )


def _intro(result: SimulationResult) -> str:
    """The scenario in words, the headline figures, and what the oracle is."""
    sc = result.scenario
    headline = ", ".join(f"{k} = {v:.3f}" for k, v in result.headline().items())
    oracle_note = ""
    if result.oracle is not None:
        oracle_note = (
            f"<p>The oracle knows the whole future (load and prices) and is solved as "
            f"<b>{_esc(result.oracle.label)}</b>: no policy that keeps every minute within the "
            "safe utilisation can cost less. It is the yardstick, not something one can run.</p>"
        )
    return (
        f"<h1>wattscale simulate</h1><p>{_esc(', '.join(sc.regions))} (home region "
        f"{_esc(sc.home_region)}), from {sc.start:%Y-%m-%d} for {sc.minutes / 1440:g} days. Load "
        f"<code>{_esc(sc.load.source)}</code> scaled so its busiest minute needs "
        f"{sc.peak_replicas} replicas; one replica serves "
        f"{sc.model.capacity_tokens_per_s:,.0f} output tokens/s within the SLO (p95 TTFT "
        f"{sc.model.ttft_slo_ms:g} ms, p95 TPOT {sc.model.tpot_slo_ms:g} ms) and needs "
        f"{sc.model.cold_start_s} s to start. GPU cost {sc.gpu_hour_cost:g} {CURRENCY} per "
        f"GPU-hour; electricity at real hourly wholesale prices in {CURRENCY}/MWh (fixed FX), "
        f"PUE {sc.model.pue:g}.</p>"
        f"<p><b>{_esc(headline)}</b></p>{oracle_note}"
    )


def _warnings(sc: Scenario) -> list[str]:
    if not sc.warnings:
        return []
    items = "".join(f"<li>{_esc(w)}</li>" for w in sc.warnings)
    return [f"<h2>Warnings</h2><ul>{items}</ul>"]


def _cost_and_slo(result: SimulationResult) -> list[str]:
    """Bars: each policy's total cost (GPU-hours and electricity), and its SLO attainment."""
    res = result.results
    names = list(res)
    cost = (
        "<h2>Total cost per policy</h2><p>Coloured: GPU-hours; yellow: electricity. Shorter is "
        "cheaper.</p>"
        + _bars(
            names,
            [[res[n].gpu_cost, res[n].energy_cost] for n in names],
            [f"{res[n].total_cost:,.2f} {CURRENCY}" for n in names],
            ".2f",
        )
    )
    lowest = min((res[n].slo_attainment for n in names), default=1.0)
    lo = max(0.0, min(0.99, lowest - 0.005))
    slo = (
        "<h2>SLO attainment per policy</h2><p>Share of requests whose time to first token and "
        f"time per output token met the SLO (axis starts at {100 * lo:.1f} %).</p>"
        + _bars(
            names,
            [[res[n].slo_attainment] for n in names],
            [f"{100 * res[n].slo_attainment:.3f} %" for n in names],
            ".3f",
            lo=lo,
        )
    )
    return [cost, slo]


def _regions(result: SimulationResult) -> list[str]:
    """Per region: the replicas wattscale, the oracle and greedy held, over its price."""
    sc = result.scenario
    res = result.results
    hours = sc.minutes // 60
    price = sc.price_usd_mwh[:hours]
    shown = [n for n in ("wattscale", "oracle", "greedy") if n in res]
    top = max(
        (
            float(np.max(_hourly(res[n].trajectory.allocated[:, i])))
            for n in shown
            for i in range(len(sc.regions))
        ),
        default=1.0,
    )
    out = []
    for i, region in enumerate(sc.regions):
        p = price[:, i]
        p_lo, p_hi = float(np.min(p)), float(np.max(p))
        body = _axes(0.0, max(top, 1.0), "replicas", hours, (p_lo, p_hi, f"{CURRENCY}/MWh"))
        body += _polyline(p, p_lo, p_hi, PRICE_COLOUR, step=True, dash="3,2")
        for n in shown:
            body += _polyline(
                _hourly(res[n].trajectory.allocated[:, i]),
                0.0,
                max(top, 1.0),
                COLOURS[n],
                step=False,
            )
        legend = ", ".join(f'<span style="color:{COLOURS[n]}">{_esc(n)}</span>' for n in shown)
        out.append(
            f"<h3>{_esc(region)}</h3><p>Replicas held (hourly mean): {legend}; dashed "
            f'<span style="color:{PRICE_COLOUR}">electricity price</span> (right axis).</p>'
            + _svg(body)
        )
    return out


def _demand(sc: Scenario) -> str:
    demand = _hourly(sc.load.output_tokens_per_s)
    d_hi = float(np.max(demand)) if demand.size else 1.0
    body = _axes(0.0, d_hi, "tokens/s", sc.minutes // 60, None) + _polyline(
        demand, 0.0, d_hi, "#333", step=False
    )
    return "<h2>Demand</h2><p>Output tokens per second (hourly mean).</p>" + _svg(body)


def write_report(result: SimulationResult, directory: Path) -> Path:
    """Write `index.html` into `directory` (created if needed) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    path.write_text(render(result), encoding="utf-8")
    return path
