"""The report's plots, drawn with matplotlib: cumulative CO2e over time with the budget line,
objective against CO2e per trial with the Pareto front, and energy by trial state.

Each plot is returned as SVG text (embedded in the HTML report, text drawn as paths so no user
string reaches the markup) and can be written as PNG and SVG files.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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


def cumulative_co2e(points: list[tuple[Any, ...]], kg_per_joule: float, budget_kg: float | None) -> Any:
    """Cumulative kgCO2e of the trials over time, with the budget's limit as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    total, xs, ys = 0.0, [], []
    for _sweep, _state, end, joules, _gpu, _objective in points:
        total += (joules or 0.0) * kg_per_joule
        xs.append(datetime.fromtimestamp(end, tz=timezone.utc))
        ys.append(total)
    thinned = _thin(list(zip(xs, ys)))
    if thinned:
        ax.step([x for x, _ in thinned], [y for _, y in thinned], where="post", color="#2b6cb0", label="spent")
    if budget_kg is not None:
        ax.axhline(budget_kg, color="#c53030", linestyle="--", label="budget")
    ax.set_ylabel("kgCO2e (cumulative)")
    ax.set_title("CO2e over time")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def objective_vs_co2e(points: list[tuple[Any, ...]], kg_per_joule: float, minimize: bool = True) -> Any:
    """Each finished trial's first objective value against its kgCO2e, with the Pareto front."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    pairs = []
    for _sweep, state, _end, joules, _gpu, objective in _thin(points):
        if state != "complete":
            continue
        values = json.loads(objective or "[]")
        if values and isinstance(values[0], (int, float)) and math.isfinite(values[0]):
            pairs.append(((joules or 0.0) * kg_per_joule, float(values[0])))
    if pairs:
        ax.scatter([c for c, _ in pairs], [v for _, v in pairs], s=10, color="#4a5568", alpha=0.6, label="trials")
        front, best = [], math.inf if minimize else -math.inf
        for cost, value in sorted(pairs):
            if (value < best) if minimize else (value > best):
                best = value
                front.append((cost, value))
        ax.step([c for c, _ in front], [v for _, v in front], where="post", color="#dd6b20", label="Pareto front")
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "no completed trial with an objective value", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("kgCO2e of the trial")
    ax.set_ylabel("objective")
    ax.set_title("Objective against CO2e per trial")
    fig.tight_layout()
    return fig


def energy_by_state(points: list[tuple[Any, ...]]) -> Any:
    """kWh spent by trials in each state."""
    plt = _pyplot()
    by_state: dict[str, float] = defaultdict(float)
    for _sweep, state, _end, joules, _gpu, _objective in points:
        by_state[state] += (joules or 0.0) / 3.6e6
    fig, ax = plt.subplots(figsize=(7, 2.6))
    states = sorted(by_state, key=by_state.get, reverse=True)  # type: ignore[arg-type]
    colors = {"complete": "#38a169", "pruned": "#d69e2e", "failed": "#e53e3e", "stopped": "#805ad5"}
    ax.barh(states, [by_state[s] for s in states], color=[colors.get(s, "#718096") for s in states])
    ax.set_xlabel("IT energy, kWh")
    ax.set_title("Energy by trial state")
    fig.tight_layout()
    return fig


def to_svg(fig: Any) -> str:
    """The figure as SVG markup (no XML prolog)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def report_figures(points: list[tuple[Any, ...]], kg_per_joule: float, budget_kg: float | None, minimize: bool) -> dict[str, Any]:
    """The three plots, by file stem."""
    return {
        "co2e-over-time": cumulative_co2e(points, kg_per_joule, budget_kg),
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
    """Release the figures' memory."""
    plt = _pyplot()
    for fig in figures.values():
        plt.close(fig)
