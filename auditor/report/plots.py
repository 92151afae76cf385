"""The report's plots, drawn with matplotlib: cumulative CO2e over time with the budget line,
objective against CO2e per trial with the Pareto front, and energy by trial state.

Each plot is returned as SVG text (embedded in the HTML report, text drawn as paths so no user
string reaches the markup) and can be written as PNG and SVG files.

Amounts are plotted in the unit that fits them (:func:`auditor.model.units.column_unit`: mg CO2e
for a laptop's search, t CO2e for a cluster's), never as ``1e-5`` axis offsets; time axes read
as dates and times of day. The budget line sits on the CO2e plot whenever the ledger knows a
budget for what is plotted, in the budget's own unit: a CO2e budget on the CO2e axis, any other
on a second axis at the right in its unit (IT energy, GPU time), with its own cumulative line
where it is not proportional to CO2e.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor.ledger import stored_json
from auditor.model.text import printable
from auditor.model.units import JOULES_PER_KWH, Metric, Unit, column_unit, format_quantity

MAX_POINTS = 20_000  # plotted trials at most; more are thinned evenly


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "figure.dpi": 100, "font.size": 9})
    return plt


def _thin(points: list[Any]) -> list[Any]:
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    return [points[int(i * step)] for i in range(MAX_POINTS)]


def _plain_axis(axis: Any) -> None:
    """Tick labels as plain numbers: no ``1e-5`` offset or scientific exponent."""
    from matplotlib.ticker import ScalarFormatter

    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    axis.set_major_formatter(formatter)


def _time_axis(ax: Any) -> None:
    """Dates and times of day that read as such (``Nov 29 11:05``, ``11:05:30``), not
    ``28:06.800000``."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    formatter = mdates.ConciseDateFormatter(locator, show_offset=True)
    formatter.formats = ["%Y", "%b", "%b %d", "%H:%M", "%H:%M:%S", "%H:%M:%S"]
    formatter.zero_formats = ["", "%Y", "%b", "%b %d", "%H:%M", "%H:%M:%S"]
    formatter.offset_formats = ["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)


def kg_per_joule_of(kg_per_joule: float | dict[str, float], sweep: str) -> float:
    """The CO2e of a joule of ``sweep``: one figure for all, or each sweep's own (its CO2e over
    its energy in the report, so the plots end on the report's figures whatever its grid).

    Example:
        >>> kg_per_joule_of({"a": 2e-7}, "a"), kg_per_joule_of(1e-7, "b"), kg_per_joule_of({"a": 2e-7}, "b")
        (2e-07, 1e-07, 0.0)
    """
    return kg_per_joule.get(sweep, 0.0) if isinstance(kg_per_joule, dict) else kg_per_joule


def cumulative_co2e(points: list[tuple[Any, ...]], kg_per_joule: float | dict[str, float],
                    budget: tuple[Metric, float] | None = None) -> Any:
    """Cumulative CO2e of the trials over time, in the unit that fits it, with the budget's
    limit as a line in the budget's own unit (``budget`` is its metric and limit)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    total, joules_in_all, gpu_h, xs, ys, gpus = 0.0, 0.0, 0.0, [], [], []
    for sweep, _state, end, joules, gpu_seconds, _objective in points:
        total += (joules or 0.0) * kg_per_joule_of(kg_per_joule, sweep)
        joules_in_all += joules or 0.0
        gpu_h += (gpu_seconds or 0.0) / 3600
        xs.append(datetime.fromtimestamp(end, tz=UTC))
        ys.append(total)
        gpus.append(gpu_h)
    metric, limit = budget if budget is not None else (None, None)
    unit = column_unit(Metric.CO2E_KG, [total, limit if metric is Metric.CO2E_KG else None])
    thinned = _thin(list(zip(xs, ys, gpus, strict=True)))
    if thinned:
        ax.step([x for x, _, _ in thinned], [y / unit.factor for _, y, _ in thinned], where="post", color="#2b6cb0",
                label="CO2e spent")
    if metric is Metric.CO2E_KG and limit is not None:
        ax.axhline(limit / unit.factor, color="#c53030", linestyle="--", label=f"budget {format_quantity(metric, limit)}")
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"{unit.symbol} (cumulative)")
    _plain_axis(ax.yaxis)
    if metric is not None and metric is not Metric.CO2E_KG and limit is not None:
        blended = total / joules_in_all if joules_in_all else 0.0  # the right axis reads the same line in IT energy
        _budget_axis(ax, unit, metric, limit, blended, [(x, g) for x, _, g in thinned])
    ax.set_title("CO2e over time (UTC)")
    handles = [h for a in fig.axes for h in a.get_legend_handles_labels()[0]]
    labels = [label for a in fig.axes for label in a.get_legend_handles_labels()[1]]
    ax.legend(handles, labels, loc="upper left")
    _time_axis(ax)
    fig.tight_layout()
    return fig


def _budget_axis(ax: Any, co2e_unit: Unit, metric: Metric, limit: float, kg_per_joule: float,
                 gpu_points: list[tuple[Any, float]]) -> None:
    """A second y axis at the right in the budget's unit, with the budget's line on it."""
    right = ax.twinx()
    unit = column_unit(metric, [limit])
    if metric is Metric.ENERGY_KWH and kg_per_joule > 0:
        # IT energy is proportional to the CO2e line: the right axis reads that same line in kWh
        kg_per_kwh = kg_per_joule * JOULES_PER_KWH
        bottom, top = ax.get_ylim()
        top = max(top, limit * kg_per_kwh / co2e_unit.factor * 1.05)
        ax.set_ylim(bottom, top)
        right.set_ylim(bottom * co2e_unit.factor / kg_per_kwh / unit.factor, top * co2e_unit.factor / kg_per_kwh / unit.factor)
        right.set_ylabel(f"IT {unit.symbol} (cumulative)")
    elif metric is Metric.GPU_HOURS:
        right.step([x for x, _ in gpu_points], [g / unit.factor for _, g in gpu_points], where="post", color="#805ad5",
                   linestyle=":", label="GPU time spent")
        right.set_ylim(bottom=0, top=max([limit / unit.factor * 1.05] + [g / unit.factor * 1.05 for _, g in gpu_points]))
        right.set_ylabel(f"{unit.symbol} (cumulative)")
    else:  # a cost: not drawn from energy alone; the limit is said in the legend
        right.set_yticks([])
        ax.plot([], [], color="#c53030", linestyle="--", label=f"budget {format_quantity(metric, limit)} (cost not plotted)")
        return
    right.axhline(limit / unit.factor, color="#c53030", linestyle="--", label=f"budget {format_quantity(metric, limit)}")
    _plain_axis(right.yaxis)


def objective_vs_co2e(points: list[tuple[Any, ...]], kg_per_joule: float | dict[str, float],
                      minimize: bool | dict[str, bool] = True) -> Any:
    """Each finished trial's first objective value against its CO2e, with the Pareto front of
    each sweep (``minimize``: per sweep, or for all). Sweeps optimise different objectives, so
    each gets its own colour and front, named in the legend; one sweep is drawn as before."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    by_sweep: dict[str, list[tuple[float, float]]] = {}
    for sweep, state, _end, joules, _gpu, objective in _thin(points):
        if state != "complete":
            continue
        values = stored_json(objective, list, f"a trial of sweep {sweep!r:.80}")
        if values and isinstance(values[0], (int, float)) and math.isfinite(values[0]):
            by_sweep.setdefault(sweep, []).append(((joules or 0.0) * kg_per_joule_of(kg_per_joule, sweep), float(values[0])))
    unit = column_unit(Metric.CO2E_KG, [c for pairs in by_sweep.values() for c, _ in pairs])
    colours = ["#4a5568", "#2b6cb0", "#805ad5", "#38a169", "#d69e2e", "#e53e3e"]
    for i, (sweep, pairs) in enumerate(sorted(by_sweep.items())):
        pairs = [(c / unit.factor, v) for c, v in pairs]
        lower = minimize.get(sweep, True) if isinstance(minimize, dict) else minimize
        alone = len(by_sweep) == 1
        colour = colours[0] if alone else colours[(i + 1) % len(colours)]
        name = printable(sweep)  # escapes and bidi overrides shown, never obeyed
        ax.scatter([c for c, _ in pairs], [v for _, v in pairs], s=10, color=colour, alpha=0.6,
                   label="trials" if alone else name)
        front, best = [], math.inf if lower else -math.inf
        for cost, value in sorted(pairs):
            if (value < best) if lower else (value > best):
                best = value
                front.append((cost, value))
        ax.step([c for c, _ in front], [v for _, v in front], where="post", color="#dd6b20" if alone else colour,
                marker="o", markersize=4, label="Pareto front" if alone else f"{name}: Pareto front")  # seen when one point
    if by_sweep:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no completed trial with an objective value", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{unit.symbol} of the trial")
    ax.set_ylabel("objective" if len(by_sweep) <= 1 else "objective (each sweep its own)")
    _plain_axis(ax.xaxis)
    ax.set_title("Objective against CO2e per trial")
    fig.tight_layout()
    return fig


def energy_by_state(points: list[tuple[Any, ...]]) -> Any:
    """kWh spent by trials in each state."""
    plt = _pyplot()
    by_state: dict[str, float] = defaultdict(float)
    for _sweep, state, _end, joules, _gpu, _objective in points:
        by_state[state] += (joules or 0.0) / JOULES_PER_KWH
    fig, ax = plt.subplots(figsize=(7, 2.6))
    states = sorted(by_state, key=by_state.get, reverse=True)  # type: ignore[arg-type]
    colors = {"complete": "#38a169", "pruned": "#d69e2e", "failed": "#e53e3e", "stopped": "#805ad5"}
    unit = column_unit(Metric.ENERGY_KWH, list(by_state.values()))
    ax.barh(states, [by_state[s] / unit.factor for s in states], color=[colors.get(s, "#718096") for s in states])
    ax.set_xlabel(f"IT energy, {unit.symbol}")
    _plain_axis(ax.xaxis)
    ax.set_title("Energy by trial state")
    fig.tight_layout()
    return fig


def to_svg(fig: Any) -> str:
    """The figure as SVG markup (no XML prolog)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def report_figures(points: list[tuple[Any, ...]], kg_per_joule: float | dict[str, float], budget: tuple[Metric, float] | None,
                   minimize: bool | dict[str, bool]) -> dict[str, Any]:
    """The three plots, by file stem; ``budget`` is the metric and limit of the budget that
    applies to what is plotted, if any."""
    return {
        "co2e-over-time": cumulative_co2e(points, kg_per_joule, budget),
        "objective-vs-co2e": objective_vs_co2e(points, kg_per_joule, minimize),
        "energy-by-state": energy_by_state(points),
    }


def save_figures(figures: dict[str, Any], directory: Path) -> list[Path]:
    """Write each plot as PNG and SVG into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures.items():
        for suffix in ("png", "svg"):
            path = directory / f"{stem}.{suffix}"
            fig.savefig(path, format=suffix)
            written.append(path)
    return written


def close_figures(figures: dict[str, Any]) -> None:
    """Release the figures' memory (none drawn: matplotlib is not even imported)."""
    if not figures:
        return
    plt = _pyplot()
    for fig in figures.values():
        plt.close(fig)
