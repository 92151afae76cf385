"""The objective plot of a report over several sweeps: each sweep its own front, in its own
direction (one maximises accuracy, another minimises a loss: one front across both is meaningless)."""

from __future__ import annotations

import json

import pytest

from auditor.report.plots import close_figures, objective_vs_co2e


def points(sweep: str, pairs: list[tuple[float, float]]) -> list[tuple[object, ...]]:
    return [(sweep, "complete", float(i), joules, 0.0, json.dumps([value])) for i, (joules, value) in enumerate(pairs)]


def test_each_sweep_gets_its_front_in_its_own_direction() -> None:
    accuracy = points("acc", [(1.0, 0.5), (2.0, 0.9), (3.0, 0.7)])  # maximise: front 0.5 then 0.9
    loss = points("loss", [(1.0, 0.8), (2.0, 0.3), (3.0, 0.5)])  # minimise: front 0.8 then 0.3
    fig = objective_vs_co2e(accuracy + loss, kg_per_joule=1.0, minimize={"acc": False, "loss": True})
    try:
        ax = fig.axes[0]
        labels = ax.get_legend_handles_labels()[1]
        assert labels == ["acc", "acc: Pareto front", "loss", "loss: Pareto front"]
        fronts = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
        assert fronts["acc: Pareto front"] == [0.5, 0.9]
        assert fronts["loss: Pareto front"] == [0.8, 0.3]
    finally:
        close_figures({"f": fig})


def test_one_sweep_is_drawn_as_before() -> None:
    fig = objective_vs_co2e(points("s", [(1.0, 0.8), (2.0, 0.3)]), kg_per_joule=1.0, minimize={"s": True})
    try:
        assert fig.axes[0].get_legend_handles_labels()[1] == ["trials", "Pareto front"]
    finally:
        close_figures({"f": fig})


def test_the_cumulative_line_ends_on_each_sweeps_own_co2e() -> None:
    """Two sweeps on different grids (2e-7 and 5e-8 kg per joule, as their report rows say):
    the line ends on the sum of their own CO2e, not on one grid's figure for both."""
    from auditor.report.plots import cumulative_co2e

    pts = points("de", [(1000.0, 0.5), (2000.0, 0.4)]) + points("fr", [(4000.0, 0.3)])
    fig = cumulative_co2e(pts, {"de": 2e-7, "fr": 5e-8})
    try:
        line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "CO2e spent")
        ys = list(line.get_ydata())
        unit = fig.axes[0].get_ylabel().split()[0]  # the unit the line is drawn in
        assert ys[-1] * {"mg": 1e-6, "g": 1e-3, "kg": 1.0}[unit] == pytest.approx(3000 * 2e-7 + 4000 * 5e-8)
    finally:
        close_figures({"f": fig})
