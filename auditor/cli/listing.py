"""`audit sweeps` and `audit trials SWEEP`: list what the ledger holds, sorted and filtered."""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Any

import typer

from auditor.cli.common import (
    LEDGER_HELP,
    TableOrJson,
    console,
    fit_headers,
    make_table,
    open_ledger,
    print_json,
    settings_with,
    working,
)
from auditor.cli.report import overrides_from
from auditor.config import carbon_model
from auditor.errors import InvalidInputError
from auditor.ledger import TrialState
from auditor.model.text import natural_key, shown_name
from auditor.model.units import (
    DURATION_UNITS,
    JOULES_PER_KWH,
    Metric,
    Unit,
    column_unit,
    format_column,
)
from auditor.report.build import build_report
from auditor.report.formats import NAME_WIDTH, amount_columns, budget_cell


class SweepOrder(str, Enum):
    started = "started"
    name = "name"
    trials = "trials"
    co2e = "co2e"
    energy = "energy"
    gpu_hours = "gpu-hours"


def sweeps_command(
    sort: SweepOrder = typer.Option(SweepOrder.started, "--sort", case_sensitive=False,
                                    help="started (newest first), name, trials, co2e, energy or gpu-hours (largest first)."),
    framework: str | None = typer.Option(None, "--framework", help="Only sweeps of this framework (optuna, ray, run)."),
    region: str | None = typer.Option(None, "--region", help="Grid for the CO2e column (default: each sweep's own)."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """List the ledger's sweeps with their trials, GPU-hours, energy and CO2e."""
    settings = settings_with(ledger=ledger, region=region)
    with open_ledger(settings) as (store, _missing), working("Reading the ledger"):
        rows = build_report(store, carbon_model(settings), overrides=overrides_from(region, None))["sweeps"]
    if framework:
        rows = [r for r in rows if r["framework"] == framework]
    keys = {"started": ("started", True), "name": ("name", False), "trials": ("trials", True), "co2e": ("co2e_kg", True),
            "energy": ("energy_kwh", True), "gpu-hours": ("gpu_hours", True)}
    key, descending = keys[sort.value]
    rows.sort(key=lambda r: r[key], reverse=descending)
    if output is TableOrJson.json:
        print_json([{k: v for k, v in r.items() if k != "budget_events"} for r in rows])
        return
    columns = amount_columns(rows, priced=False)
    table = make_table("sweep", "framework", "started", "trials", *(header for header, _ in columns), "budget")
    for column in table.columns[3:-1]:
        column.justify = "right"
    for i, r in enumerate(rows):
        table.add_row(shown_name(r["name"], NAME_WIDTH), r["framework"], datetime.fromtimestamp(r["started"]).strftime("%Y-%m-%d %H:%M"),
                      f"{r['trials']:,}", *(cells[i] for _, cells in columns), budget_cell(r))
    out = console()
    out.print(fit_headers(table, out))


class TrialOrder(str, Enum):
    number = "number"
    energy = "energy"
    duration = "duration"
    start = "start"


def _state(text: str) -> str:
    """A trial state as the ledger writes it, from any case (Optuna's ``PRUNED`` too)."""
    choices = [s.value for s in TrialState if s is not TrialState.IDLE]
    value = text.strip().lower()
    if value not in choices:
        raise InvalidInputError(f"unknown trial state {text!r}: use one of {', '.join(choices)}")
    return value


def trials_command(
    sweep: str = typer.Argument(..., help="The sweep's name (see `audit sweeps`)."),
    state: list[str] | None = typer.Option(None, "--state", help="Only trials in this state (repeatable)."),
    sort: TrialOrder = typer.Option(TrialOrder.number, "--sort", help="number, energy, duration or start.", case_sensitive=False),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Show at most this many."),
    ledger: str | None = typer.Option(None, "--ledger", help=LEDGER_HELP),
    output: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json.", case_sensitive=False),
) -> None:
    """List the trials of a sweep with their state, duration, GPU-hours and energy."""
    settings = settings_with(ledger=ledger)
    states = [_state(text) for text in state or []]
    with open_ledger(settings) as (store, _missing):
        [sweep] = store.named_sweeps([sweep])
        trials = store.trials(sweep)
        runs = store.runs(sweep)
    run_number = {run: i + 1 for i, run in enumerate(runs)}  # the sweep's runs, first started first
    if states:
        trials = [t for t in trials if TrialState(t.state).value in states]
    order = {
        "number": lambda t: ((run_number.get(t.run, 0), 0, t.number, ()) if t.number is not None
                             else (run_number.get(t.run, 0), 1, 0, natural_key(t.name or t.trial_key))),
        "energy": lambda t: -t.energy_joules,
        "duration": lambda t: -((t.end_time or t.start_time) - t.start_time),
        "start": lambda t: t.start_time,
    }
    trials.sort(key=order[sort.value])
    trials = trials[:limit] if limit else trials
    if output is TableOrJson.json:
        print_json([
            {"key": t.trial_key, "number": t.number, "run": t.run, "run_number": run_number.get(t.run), "name": t.name,
             "state": TrialState(t.state).value, "start_time": t.start_time,
             "end_time": t.end_time, "gpu_seconds": t.gpu_seconds,
             "energy": {d: {"joules": r.joules, "method": r.method} for d, r in t.energy.items()},
             "params": t.params, "objective": t.objective, "flags": t.flags, "stopped_by_budget": t.stopped_by_budget}
            for t in trials
        ])
        return
    print_trials(trials, run_number if len(runs) > 1 else None)


def print_trials(trials: list[Any], run_number: dict[str | None, int] | None = None) -> None:
    """The trials as a table: duration, GPU time and energy each in one unit for the column;
    with ``run_number`` (a sweep of several runs), each trial's ``#`` reads ``run/number``."""
    durations = [(t.end_time or t.start_time) - t.start_time for t in trials]
    duration_unit = DURATION_UNITS[_largest_index(DURATION_UNITS, max(durations, default=0.0))]
    gpu = column_unit(Metric.GPU_HOURS, [t.gpu_seconds / 3600 for t in trials])
    energy = column_unit(Metric.ENERGY_KWH, [t.energy_joules / JOULES_PER_KWH for t in trials])
    table = make_table("#", "state", f"duration {duration_unit.symbol}", gpu.symbol, f"energy {energy.symbol}", "method", "params")
    for column in table.columns[2:5]:
        column.justify = "right"
    columns = zip(format_column(durations, duration_unit), format_column([t.gpu_seconds / 3600 for t in trials], gpu),
                  format_column([t.energy_joules / JOULES_PER_KWH for t in trials], energy), strict=True)
    for t, (duration, gpu_time, kwh) in zip(trials, columns, strict=True):
        methods = "/".join(sorted({r.method for r in t.energy.values()})) or "-"
        label = str(t.number) if t.number is not None else (t.name or t.trial_key)
        if run_number and t.number is not None:
            label = f"{run_number.get(t.run, '?')}/{t.number}"
        table.add_row(label, t.state.value + (" (budget)" if t.stopped_by_budget else ""), duration, gpu_time, kwh, methods,
                      json.dumps(t.params, default=str, ensure_ascii=False)[:80])
    out = console()
    out.print(fit_headers(table, out))


def _largest_index(units: tuple[Unit, ...], value: float) -> int:
    """The largest of ``units`` that ``value`` is at least 1 of."""
    return max([i for i, unit in enumerate(units) if value >= unit.factor] or [0])
