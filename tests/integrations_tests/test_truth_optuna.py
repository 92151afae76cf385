"""The truth harness for the Optuna plugin: features drawn together, figures checked against a
power profile of known integral and against Optuna's own records.

Each example draws a search the way users combine the features: a budget (each unit, each
mode) or none, a cost constraint, ``usage()`` in the objective, ``n_jobs`` 1-3, pruned trials,
caught and uncaught failures, the study given to the callback or not, a resumed study, a rerun
of the same name (a new in-memory study, or one deleted and created anew in its storage), the
in-memory, SQLite (its figures in one transaction) or Journal storage, the study's name (odd
ones: empty, a trailing space, a line break, 300 characters), the figures as user attributes or
not (``attributes=False``), and trial lengths of 0.02-0.6 s. The hardware is the only
thing simulated: a GPU whose counter plays a stepped power profile and a CPU package whose RAPL
counter plays a constant draw, both of known integral. Optuna, its storages and the ledger are
the real ones.

Invariants, for every example:

1. every trial of every run is in the ledger exactly once, keyed by its run, with Optuna's state;
2. each trial's energy is the profile's integral over its interval, shared with the trials
   open beside it (within the counter's resolution on the GPU, exactly on the CPU counter);
3. trials + the idle rows + the idle no search owned = the counters' rise over the meter's life;
4. each trial's numeric user attributes and constraint equal its ledger record, and the
   report's JSON and CSV totals equal the ledger's;
5. ``usage()`` at the objective's end is at most the record, and short of it by at most the
   sensor's lag;
6. a budget that stopped the search left its stop in the ledger, what it counted as spent is
   what the trials before it drew and no more than the report's total, and no trial began
   after it except as one refused by the budget.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from auditor.integrations.optuna import AuditCallback
from auditor.integrations.optuna_runs import run_of
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from auditor.ledger import Ledger, TrialRecord, TrialState
from auditor.ledger.records import fit_name
from auditor.meters.cpu import DEFAULT_WATTS_PER_LOGICAL_CPU, CpuInfo, CpuTimeSource
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource, SimulatedRaplSource

optuna.logging.set_verbosity(optuna.logging.ERROR)
pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
NAMES = ("truth", "", "LR ", "a\nb", "x" * 300)  # study names users give, odd ones included
OPTUNA_STATES = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAILED}
INTENSITY_G = 545.0  # the region, given as an explicit intensity
PRICE_PER_KWH = 0.30


@dataclass(frozen=True)
class Search:
    """One drawn combination of features."""

    storage: str
    n_jobs: int
    lengths: tuple[float, ...]
    pruned: frozenset[int]
    caught: frozenset[int]
    uncaught: int | None
    budget_metric: str | None
    budget_mode: str
    budget_fraction: float
    constraint: bool
    usage: bool
    give_study: bool
    resume: bool
    rerun: bool
    gpu_steps: tuple[tuple[float, float], ...]
    gpu_period: float
    cpu_watts: float
    busy: bool  # the CPU is the process's CPU-time estimate, and every other trial burns CPU in its thread
    name: str = "truth"  # the study's name: any Optuna accepts is recorded and found by it (issue 33)
    attributes: bool = True  # AuditCallback(attributes=...): the figures as user attributes, or none (issue 29)

    def key(self, run_id: str | None, number: int) -> str:
        """A trial's key in the ledger, as the plugin makes it."""
        return fit_name(f"{self.name}/{run_id}/{number}")


@st.composite
def searches(draw: Callable[..., Any]) -> Search:
    n = draw(st.integers(2, 5))
    lengths = tuple(draw(st.lists(st.sampled_from([0.02, 0.05, 0.1, 0.25, 0.6]), min_size=n, max_size=n)))
    numbers = st.integers(0, n - 1)
    steps = draw(st.lists(st.tuples(st.floats(0.1, 3.0), st.floats(50.0, 700.0)), min_size=0, max_size=4))
    return Search(
        storage=draw(st.sampled_from(["memory", "sqlite", "journal"])),
        n_jobs=draw(st.integers(1, 3)),
        lengths=lengths,
        pruned=frozenset(draw(st.lists(numbers, max_size=2))),
        caught=frozenset(draw(st.lists(numbers, max_size=1))),
        uncaught=draw(st.none() | numbers),
        budget_metric=draw(st.none() | st.sampled_from(["kWh", "kg", "GPUh", "USD"])),
        budget_mode=draw(st.sampled_from(["warn", "stop-new", "hard"])),
        budget_fraction=draw(st.floats(0.2, 1.5)),
        constraint=draw(st.booleans()),
        usage=draw(st.booleans()),
        give_study=draw(st.booleans()),
        resume=draw(st.booleans()),
        rerun=draw(st.booleans()),
        gpu_steps=((0.0, draw(st.floats(50.0, 700.0))), *steps),
        gpu_period=draw(st.sampled_from([0.0, 0.1])),
        cpu_watts=draw(st.floats(5.0, 150.0)),
        busy=draw(st.booleans()),
        name=draw(st.sampled_from(NAMES)),
        attributes=draw(st.booleans()),
    )


def _storage(search: Search, folder: Path) -> Any:
    if search.storage == "sqlite":
        return f"sqlite:///{folder / 'optuna.db'}"
    if search.storage == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    return None


def _budget(search: Search, expected_kwh: float, expected_gpuh: float) -> str | None:
    """A budget in the drawn unit, set at a fraction of what the whole search should cost."""
    if search.budget_metric is None:
        return None
    f = search.budget_fraction
    return {
        "kWh": f"{expected_kwh * f * 1000:.9f} Wh",
        "kg": f"{expected_kwh * INTENSITY_G * f:.9f} g",
        "GPUh": f"{expected_gpuh * f:.9f} GPUh",
        "USD": f"${expected_kwh * PRICE_PER_KWH * f:.9f}",
    }[search.budget_metric]


class Run:
    """What the test saw of one drawn search: the studies, usage() readings, the callbacks."""

    def __init__(self) -> None:
        self.studies: list[optuna.Study] = []
        self.trials: list[tuple[str | None, optuna.trial.FrozenTrial]] = []  # each run's, as Optuna kept them
        self.unseen: set[tuple[int, int]] = set()
        self.maybe_unseen: set[str] = set()  # keys of trials a callback not given the study may miss (documented)
        self.thread_cpu: dict[tuple[str, int], float] = {}  # CPU seconds of the thread that ran each trial
        self.usage_kwh: dict[tuple[str, int], tuple[float, float]] = {}  # usage() and when it was read
        self.callbacks: list[AuditCallback] = []


def _objective(search: Search, run: Run, audit_of: Callable[[], AuditCallback], study_of: Callable[[], optuna.Study]) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        number = trial.number % len(search.lengths)
        deadline = time.monotonic() + search.lengths[number]
        burn = search.busy and trial.number % 2 == 0  # beside sleeping ones, with n_jobs
        thread_start = time.thread_time()
        try:
            step = 0
            while time.monotonic() < deadline:
                if burn:
                    sum(range(20_000))
                else:
                    time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
                trial.report(x, step=step)
                step += 1
                if trial.should_prune():
                    raise optuna.TrialPruned()
        finally:
            run.thread_cpu[(run_of(study_of()) or "", trial.number)] = time.thread_time() - thread_start
        if search.usage:
            asked_at = time.time()  # before the call: what is drawn while it reads counts as "after"
            run.usage_kwh[(run_of(study_of()) or "", trial.number)] = (audit_of().usage(trial).energy_kwh, asked_at)
        if number in search.pruned:
            raise optuna.TrialPruned()
        if number in search.caught:
            raise ValueError("caught")
        if number == search.uncaught and trial.number < len(search.lengths):
            raise RuntimeError("uncaught")
        return x

    return objective


def _play(search: Search, folder: Path, meter: Meter, gpu_watts_mean: float) -> Run:
    run = Run()
    n = len(search.lengths)
    expected_kwh = sum(search.lengths) * (gpu_watts_mean + search.cpu_watts) / 3.6e6 * (2 if search.resume else 1)
    expected_gpuh = sum(search.lengths) / 3600 * (2 if search.resume else 1)
    options: dict[str, Any] = dict(
        ledger=str(folder / "ledger.db"), devices="all", meter=meter, region=f"{INTENSITY_G} g/kWh", pue=1.0,
        price_per_kwh=PRICE_PER_KWH, budget=_budget(search, expected_kwh, expected_gpuh), mode=search.budget_mode,
        constraint=f"{expected_kwh / n * 1000:.9f} Wh" if search.constraint else None, attributes=search.attributes,
    )
    storage = _storage(search, folder)

    def one_run(resume: bool) -> None:
        study = optuna.create_study(study_name=search.name, storage=storage, load_if_exists=True)
        run.studies.append(study)
        audit = AuditCallback(study, **options) if search.give_study else AuditCallback(**options)
        run.callbacks.append(audit)
        objective = _objective(search, run, lambda: audit, lambda: study)
        for _ in range(2 if resume else 1):
            try:
                study.optimize(objective, n_trials=n, n_jobs=search.n_jobs, callbacks=[audit], catch=(ValueError,))
            except RuntimeError as exc:
                assert "uncaught" in str(exc)
            if not search.give_study:  # then a trial failing uncaught before the callback attached is never seen
                run.unseen |= {(study._study_id, t.number) for t in study.get_trials(deepcopy=False)
                               if t.state.name == "FAIL" and t.number % n == search.uncaught}
        _until_done(study)
        audit.close()
        run.trials += [(run_of(study), trial) for trial in study.get_trials()]  # before a rerun deletes it
        run.maybe_unseen |= {search.key(run_of(study), number) for study_id, number in run.unseen if study_id == study._study_id}
        run.unseen.clear()

    one_run(search.resume)
    if search.rerun:  # the same name again: a new in-memory study, or one created anew in its storage
        if storage is not None:
            optuna.delete_study(study_name=search.name, storage=storage)
        one_run(False)
    return run


def _until_done(study: optuna.Study, timeout_s: float = 10.0) -> None:
    """Wait for trials still running in ``n_jobs`` threads: Optuna's ``optimize`` returns on an
    uncaught failure without waiting for the other threads' trials."""
    deadline = time.monotonic() + timeout_s
    while any(t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False)) and time.monotonic() < deadline:
        time.sleep(0.02)


def _shared_integral(intervals: dict[str, tuple[float, float]], energy_of: Callable[[float, float], float]) -> dict[str, float]:
    """Each interval's share of a device's energy: over every piece of time, the energy divided
    equally among the intervals open then (what the attribution promises)."""
    cuts = sorted({t for span in intervals.values() for t in span})
    shares = dict.fromkeys(intervals, 0.0)
    for a, b in itertools.pairwise(cuts):
        open_ = [key for key, (s, e) in intervals.items() if s <= a and e >= b]
        for key in open_:
            shares[key] += energy_of(a, b) / len(open_)
    return shares


@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(search=searches())
def test_every_feature_composes(search: Search, audit: Callable[..., Any]) -> None:
    folder = Path(tempfile.mkdtemp())
    gpu_profile = PowerProfile.of(search.gpu_steps)
    cpu_profile = PowerProfile.constant(search.cpu_watts)
    gpu = SimulatedGpuSource([gpu_profile], update_period_s=search.gpu_period)
    cpu = SimulatedRaplSource(cpu_profile)
    gpu_mean = sum(w for _, w in search.gpu_steps) / len(search.gpu_steps)
    cpu_time = CpuTimeSource(cpu=CpuInfo("test CPU", 1, None))  # 4 W a CPU second (the default)
    with Meter([gpu, cpu_time if search.busy else cpu]) as meter:
        run = _play(search, folder, meter, gpu_mean)
    with Ledger.open(folder / "ledger.db") as ledger:
        known = ledger.get_sweep(search.name) is not None  # by the study's own name, however odd
        records = ledger.trials(search.name) if known else []
        rows = ledger.trials(search.name, include_idle=True) if known else []
        events = ledger.budget_events(search.name) if known else []
    if not records:
        assert {search.key(r, t.number) for r, t in run.trials} <= run.maybe_unseen, "trials Optuna ran are not in the ledger"
        return
    by_key = {r.trial_key: r for r in records}
    mono = time.time() - time.monotonic()  # wall = monotonic + this (the ledger's times are wall times)

    # 1. every trial of every run, once, with Optuna's state
    expected: dict[str, TrialState] = {}
    optuna_trials: dict[str, optuna.trial.FrozenTrial] = {}
    for run_id, trial in run.trials:
        key = search.key(run_id, trial.number)
        expected[key] = OPTUNA_STATES[trial.state.name]
        optuna_trials[key] = trial
    assert len(records) == len(by_key), "a trial is in the ledger twice"
    missed = set(expected) - set(by_key)
    assert missed <= run.maybe_unseen, f"trials Optuna ran are not in the ledger: {sorted(missed)}"
    assert {k: r.state for k, r in by_key.items()} == {k: s for k, s in expected.items() if k not in missed}
    # every run with a trial the ledger could see (a rerun whose only trial failed uncaught before the
    # callback attached, without the study, left nothing to record)
    assert {r.run for r in records} == {run_id for run_id, t in run.trials if search.key(run_id, t.number) not in missed}

    # 2. each trial's energy: the profile over its interval, shared with the trials open beside it
    # (a trial seen only after the fact was no interval while it ran: the live trials beside it
    # had the devices to themselves, and it gets what was left, the idle energy of its span)
    spans = {r.trial_key: (r.start_time - mono, r.end_time - mono) for r in records if "after-the-fact" not in r.flags}
    want_cpu = _shared_integral(spans, lambda a, b: cpu_profile.energy(a - cpu.t0, b - cpu.t0))
    want_gpu = _shared_integral(spans, lambda a, b: gpu_profile.energy(a - gpu.t0, b - gpu.t0))
    lag = search.gpu_period + gpu.poll_interval_s  # how far a GPU reading may be behind the truth
    max_gpu = max(w for _, w in search.gpu_steps)
    for key, record in by_key.items():
        if "after-the-fact" in record.flags:
            span = (record.start_time - mono - cpu.t0, record.end_time - mono - cpu.t0)
            assert search.busy or record.energy["cpu"].joules <= cpu_profile.energy(*span) * 1.01 + search.cpu_watts * 0.004
            continue
        cpu_j = record.energy["cpu"].joules
        if search.busy:  # at least its own thread's CPU time: a neighbour's sleep takes none of it
            # (the upper side, a share of the process's other threads, is test_threads.py's, on long trials:
            # here Optuna's own work in the trial's thread, outside the objective, is the trial's too)
            own_s = run.thread_cpu.get((record.run or "", record.number or 0), 0.0)
            charged_s = cpu_j / DEFAULT_WATTS_PER_LOGICAL_CPU
            # (under load a span's process delta can fall short of its threads' clocks, read a moment
            # later; the shortfall is owed to the next span, after a trial's end too; 10 ms of a 25 ms
            # trial were lost before; the margin is the sensor's: the thread is read after the counter)
            assert charged_s >= own_s * 0.9 - 0.005, (key, own_s, charged_s)
        else:
            assert cpu_j == pytest.approx(want_cpu[key], rel=0.01, abs=search.cpu_watts * 0.004), (key, search, [
            (k, r.start_time - mono, r.end_time - mono, r.flags) for k, r in by_key.items()])
        gpu_j = record.energy["gpu"].joules
        assert gpu_j > 0, f"{key}: 0 J on a GPU drawing power"
        assert abs(gpu_j - want_gpu[key]) <= 2 * max_gpu * lag + 0.02 * want_gpu[key], (key, gpu_j, want_gpu[key])

    # 3. trials + idle + unowned idle = the counters' rise
    counted = sum(r.energy_joules for r in rows) + sum(meter.unowned_idle().values())
    assert counted == pytest.approx(sum(meter.counter_deltas().values()), rel=1e-9, abs=1e-6)

    # 4. attributes and constraints = the ledger; the report's totals = the ledger's
    for key, record in by_key.items():
        trial = optuna_trials[key]
        if "after-the-fact" in record.flags:
            continue
        if search.attributes:
            assert trial.user_attrs["auditor_energy_kwh"] == record.energy_kwh, key
            assert trial.user_attrs["auditor_gpu_hours"] == record.gpu_hours, key
        else:
            assert not any(k.startswith("auditor") for k in trial.user_attrs), key
        if search.constraint:
            limit_kwh = float(run.callbacks[0].constraint.limit.value)
            assert trial.constraints["auditor"] == pytest.approx(record.energy_kwh - limit_kwh, rel=1e-9, abs=1e-15), key
    total_kwh = sum(r.energy_joules for r in rows) / 3.6e6
    result = audit("report", "--ledger", str(folder / "ledger.db"), "--format", "json")
    assert result.code == 0, result.err
    [sweep] = json.loads(result.out)["sweeps"]
    assert sweep["energy_kwh"] == pytest.approx(total_kwh, rel=1e-12)
    assert sweep["trials"] == len(records)
    result = audit("report", "--ledger", str(folder / "ledger.db"), "--format", "csv")
    row = next(r for r in csv.DictReader(io.StringIO(result.out)) if r["sweep"] == fit_name(search.name))
    assert float(row["energy_kwh"]) == pytest.approx(total_kwh, rel=1e-9)

    # 5. usage() is current: never above the record, short of it by the sensor's lag at most
    for (run_id, number), (seen, at) in run.usage_kwh.items():
        record = by_key.get(search.key(run_id, number))
        if record is None or "after-the-fact" in record.flags:
            continue
        assert seen <= record.energy_kwh * (1 + 1e-9) + 1e-15
        cpu_max = DEFAULT_WATTS_PER_LOGICAL_CPU * 2 if search.busy else search.cpu_watts  # (2 cores at most here)
        after = (max_gpu + cpu_max) * max(0.0, record.end_time - at)  # drawn after usage() was read, at most
        assert seen * 3.6e6 >= record.energy_joules - after - max_gpu * lag * 1.5 - cpu_max * 0.002

    # 6. budgets: the stop is kept, spent is what was drawn, nothing began after it
    stopped = any(cb.stopped_by_budget for cb in run.callbacks)
    stops = [e for e in events if e.action in ("stop-new", "stop-all")]
    if search.budget_metric is None or search.budget_mode == "warn":
        assert not stops and not any(r.stopped_by_budget for r in records)
        return
    assert stopped == bool(stops), "a budget stop without its event (or an event without a stop)"
    for event in stops:
        before = [r for r in records if r.end_time is not None and r.end_time <= event.at - 0.05]  # (at: stamped after the tally)
        drawn = sum(_amount(search.budget_metric, r) for r in before)
        assert event.spent >= drawn * (1 - 1e-6) - 1e-12, (event.spent, drawn)
        total = sum(_amount(search.budget_metric, r) for r in rows)
        assert event.spent <= total * (1 + 1e-6) + 1e-12
    first_stop = min(e.at for e in stops) if stops else math.inf
    for record in records:
        if record.start_time > first_stop + 0.05 and "after-the-fact" not in record.flags:  # (seen late: never refused)
            assert record.stopped_by_budget, f"{record.trial_key} began after the budget stopped the search"


def _amount(metric: str, record: TrialRecord) -> float:
    kwh = record.energy_kwh
    return {"kWh": kwh, "kg": kwh * INTENSITY_G / 1000, "GPUh": record.gpu_hours, "USD": kwh * PRICE_PER_KWH}[metric]
