"""Bring searches that ran before the auditor into the ledger, and hand the ledger to CodeCarbon.

- Optuna: every finished trial of a study in any Optuna storage, with the study's directions;
  energy estimated from the trial's duration x a :class:`Draw` (a GPU model's TDP, or watts
  given), method ``estimate-tdp``, flagged ``imported``.
- Ray Tune: every trial directory of an experiment (``params.json``, ``result.json``); the
  energy the ``auditor/`` metrics report where ``with_audit`` ran, else estimated from the
  trial's time x the draw, if one is given.
- CodeCarbon: the rows of an ``emissions.csv``, one trial each, energy per domain as it
  measured them (CodeCarbon's energies include its PUE: they are divided by the row's ``pue``),
  the intensity and PUE its emissions were computed with kept with the sweep.

A trial no draw estimates is imported without energy, flagged ``energy-missing`` (reports count
it). Trials already in the ledger are left as they are, but for imported ones without energy:
an import never replaces a measured record with an estimate, and a later import with a draw
fills the ones an earlier one could not. ``export_codecarbon`` writes the ledger's trials in
CodeCarbon's columns, each meaning what it means in CodeCarbon, plus ``auditor_state``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor.errors import InvalidInputError, LedgerError
from auditor.ledger import EnergyReading, Ledger, TrialRecord, TrialState
from auditor.ledger.checks import MOST_DEVICES
from auditor.model.carbon import CarbonModel, Overrides, model_for_sweep
from auditor.model.hardware import HardwareSpec
from auditor.model.regions import Region, alpha3
from auditor.model.text import csv_cell
from auditor.model.units import JOULES_PER_KWH

Progress = Callable[[int, int], None]
CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "on_cloud", "pue",
    "auditor_state",  # not CodeCarbon's: how the trial ended, so that an import gives it back
]
_MISSING = "energy-missing"


@dataclass(frozen=True)
class Draw:
    """What ran each imported trial, to estimate its energy from its duration: ``count`` GPUs
    of model ``gpu`` (its TDP) or of ``watts`` each; with ``count`` 0, a CPU machine drawing
    ``watts``. ``Draw()`` estimates nothing.

    Example:
        >>> Draw(watts=65.0, count=0).estimate(3600.0)[0]["cpu"].joules
        234000.0
    """

    gpu: HardwareSpec | None = None
    watts: float | None = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.gpu is not None and self.watts is not None:
            raise InvalidInputError("give the GPU model (--gpu) or the draw (--watts), not both")
        if not 0 <= self.count <= MOST_DEVICES:
            raise InvalidInputError(f"--count {self.count} is not a number of GPUs from 0 to {MOST_DEVICES:,}")
        if self.count == 0 and self.gpu is not None:
            raise InvalidInputError("--count 0 means no GPU: give the machine's draw with --watts, not --gpu")

    @property
    def is_set(self) -> bool:
        return self.gpu is not None or self.watts is not None

    def estimate(self, seconds: float) -> tuple[dict[str, EnergyReading], float, list[dict[str, Any]]]:
        """Energy per domain, GPU-seconds and devices of a trial of ``seconds``."""
        if not self.is_set:
            return {}, 0.0, []
        if self.count == 0:
            return {"cpu": EnergyReading(float(self.watts or 0) * seconds, "estimate-tdp")}, 0.0, []
        watts = self.gpu.tdp_watts if self.gpu is not None else float(self.watts or 0)
        model = self.gpu.name if self.gpu is not None else f"GPU of {watts:g} W"
        devices = [{"index": i, "model": model} for i in range(self.count)]
        return {"gpu": EnergyReading(watts * self.count * seconds, "estimate-tdp")}, self.count * seconds, devices


@dataclass(frozen=True)
class Imported:
    """What an import wrote: ``new`` trials, and ``updated`` ones an earlier import left without
    energy (estimated now) or in a state known only now (``--max-t``).

    Example:
        >>> Imported(3, 0) + Imported(0, 2)
        Imported(new=3, updated=2)
    """

    new: int = 0
    updated: int = 0

    def __add__(self, other: Imported) -> Imported:
        return Imported(self.new + other.new, self.updated + other.updated)

    def describe(self, noun: str = "trial") -> str:
        """``3 new trials imported, 2 updated`` in words, or that nothing was new."""
        if not self.new and not self.updated:
            return f"nothing new: every {noun} is in the ledger already"
        said = f"{self.new:,} new {noun}{'' if self.new == 1 else 's'} imported"
        return said + (f", {self.updated:,} updated (energy estimated now, or how it ended)" if self.updated else "")


def _store_new(ledger: Ledger, sweep: str, framework: str, records: list[TrialRecord], progress: Progress | None,
               attrs: dict[str, Any] | None = None) -> Imported:
    """Write the records not already in the ledger (or there without energy, from an earlier
    import); returns how many were new and how many updated."""
    ledger.ensure_sweep(sweep, framework=framework, attrs={"imported": True, **(attrs or {})})
    known = {t.trial_key: t for t in ledger.trials(sweep, include_idle=True)}

    def fills(record: TrialRecord) -> bool:
        old = known.get(record.trial_key)
        if old is None:
            return True
        filled = _MISSING in old.flags and _MISSING not in record.flags  # estimated now
        return "imported" in old.flags and (filled or old.state != record.state)  # or its state known now (--max-t)

    written = [r for r in records if fills(r)]
    for start in range(0, len(written), 500):
        ledger.record_trials(written[start : start + 500])
        if progress:
            progress(min(start + 500, len(written)), len(written))
    updated = sum(1 for r in written if r.trial_key in known)
    return Imported(len(written) - updated, updated)


def machine_shares(spans: list[tuple[float, float]]) -> list[float]:
    """Each span's share of the machine, in seconds: over every piece of time, the time divided
    equally among the spans running then. Trials that overlapped on one machine (Optuna's
    ``n_jobs``) are each charged their share of its draw, so the machine is never counted twice.

    Example:
        >>> machine_shares([(0.0, 10.0), (5.0, 15.0), (20.0, 21.0)])
        [7.5, 7.5, 1.0]
    """
    cuts = sorted({t for span in spans for t in span})
    shares = [0.0] * len(spans)
    for a, b in itertools.pairwise(cuts):
        running = [i for i, (start, end) in enumerate(spans) if start <= a and end >= b]
        for i in running:
            shares[i] += (b - a) / len(running)
    return shares


def _flags(energy: dict[str, Any]) -> list[str]:
    return ["imported"] if energy else ["imported", _MISSING]


def import_optuna(ledger: Ledger, storage: str, study: str, draw: Draw, sweep: str | None = None,
                  progress: Progress | None = None) -> Imported:
    """Import a study's finished trials, with its directions; returns how many were new."""
    import optuna

    _existing_sqlite(storage)
    states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        raise InvalidInputError(f"no study called {study!r} in storage {storage}") from None
    except Exception as exc:  # noqa: BLE001 - a storage that does not answer, a bad URL
        raise LedgerError(f"cannot read Optuna storage {storage}: {str(exc).splitlines()[0]}") from None
    records = []
    finished = [t for t in loaded.get_trials(deepcopy=False)
                if t.state.name in states and t.datetime_start is not None and t.datetime_complete is not None]
    spans = [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in finished]  # type: ignore[union-attr]
    for trial, (start, end), share in zip(finished, spans, machine_shares(spans), strict=True):
        energy, gpu_seconds, devices = draw.estimate(share)  # overlapping trials (n_jobs) share the machine
        overlapped = ["machine-shared"] if share < (end - start) * (1 - 1e-9) else []
        records.append(TrialRecord(
            sweep=sweep or study, trial_key=f"{study}/{trial.number}", number=trial.number,
            state=states[trial.state.name], start_time=start, end_time=end, params=dict(trial.params),
            objective=list(trial.values) if trial.values else None, devices=devices, gpu_seconds=gpu_seconds,
            energy=energy, flags=_flags(energy) + overlapped, host="imported",
        ))
    directions = [d.name.lower() for d in loaded.directions]  # the best trial of a maximize study is its highest
    return _store_new(ledger, sweep or study, "optuna", records, progress, {"study": study, "directions": directions})


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    results = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                results.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
    return results


def _ray_statuses(experiment: Path) -> dict[str, str]:
    """Trial directory -> Ray's final status (TERMINATED, ERROR...), from the newest
    ``experiment_state-*.json`` (read as JSON only: its pickled parts are never loaded)."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
        trials = [json.loads(item[0]) for item in data.get("trial_data", [])]
        return {str(t.get("relative_logdir")): str(t.get("status")) for t in trials}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return {}


def import_ray(ledger: Ledger, experiment: Path, draw: Draw | None = None, sweep: str | None = None,
               progress: Progress | None = None, max_t: int | None = None) -> Imported:
    """Import a Ray Tune experiment directory; returns how many trials were new.

    Ray records a trial its scheduler stopped (ASHA, HyperBand) as TERMINATED, like one that ran
    to the end, and keeps the scheduler only pickled (never loaded here): with ``max_t``, the
    scheduler's, a TERMINATED trial that ended before ``max_t`` iterations is recorded
    ``stopped``; without it, ``complete`` (:func:`ended_early` says how many may have been)."""
    if not experiment.is_dir():
        raise InvalidInputError(f"{experiment} is not a directory: give a Ray Tune experiment directory (e.g. ~/ray_results/NAME)")
    trial_dirs = sorted(p.parent for p in experiment.glob("*/params.json"))
    if not trial_dirs:
        raise InvalidInputError(f"{experiment} holds no Ray Tune trial (no */params.json)")
    statuses = _ray_statuses(experiment)
    records = []
    for number, directory in enumerate(trial_dirs):
        params = json.loads((directory / "params.json").read_text() or "{}")
        results = _read_json_lines(directory / "result.json")
        last = results[-1] if results else {}
        seconds = float(last.get("time_total_s", 0.0))
        end = float(last.get("timestamp", directory.stat().st_mtime))
        failed = (directory / "error.txt").exists() or (directory / "error.pkl").exists()
        status = statuses.get(directory.name)
        if failed or status == "ERROR":
            state = "failed"
        elif max_t is not None and int(last.get("training_iteration", 0) or 0) < max_t:
            state = "stopped"  # cut short by the scheduler
        elif status == "TERMINATED" or last.get("done"):
            state = "complete"
        else:
            state = "stopped"
        # with_audit adds its figures to a result at most every 0.1 s: the latest that has them
        figures: dict[str, Any] = next((r for r in reversed(results) if "auditor/energy_kwh" in r), {})
        joules = {d: float(figures[f"auditor/{d}_energy_j"]) for d in ("gpu", "cpu", "memory") if f"auditor/{d}_energy_j" in figures}
        if joules:
            energy = {d: EnergyReading(j, str(figures.get(f"auditor/{d}_energy_method", "estimate"))) for d, j in joules.items()}
            gpu_seconds, devices = float(figures.get("auditor/gpu_seconds", 0.0)), list[dict[str, Any]]()
        else:
            energy, gpu_seconds, devices = (draw or Draw()).estimate(seconds)
        records.append(TrialRecord(
            sweep=sweep or experiment.name, trial_key=str(last.get("trial_id", directory.name)), number=number,
            state=state, start_time=end - seconds, end_time=end, params=params, devices=devices,
            gpu_seconds=gpu_seconds, energy=energy, flags=_flags(energy), host=str(last.get("hostname", "imported")),
        ))
    return _store_new(ledger, sweep or experiment.name, "ray", records, progress)


def ended_early(experiment: Path) -> tuple[int, int]:
    """How many trials of a Ray Tune experiment that did not fail ran fewer iterations than the
    most any ran, and that most: a scheduler may have stopped them (``import_ray``'s ``max_t``).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name, iterations in (("a", 8), ("b", 1), ("c", 8)):
        ...     (root / name).mkdir()
        ...     _ = (root / name / "result.json").write_text(json.dumps({"training_iteration": iterations}))
        >>> ended_early(root)
        (1, 8)
    """
    reached = []
    for path in experiment.glob("*/result.json"):
        if (path.parent / "error.txt").exists() or (path.parent / "error.pkl").exists():
            continue
        results = _read_json_lines(path)
        reached.append(int(results[-1].get("training_iteration", 0) or 0) if results else 0)
    most = max(reached, default=0)
    return sum(1 for r in reached if r < most), most


def _number(row: dict[str, str], column: str, line: int, path: Path) -> float:
    text = (row.get(column) or "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"{path}, line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{path}, line {line}: {column} {text!r} must be a finite number >= 0")
    return value


def import_codecarbon(ledger: Ledger, path: Path, sweep: str | None = None,
                      progress: Progress | None = None) -> tuple[Imported, list[str]]:
    """Import the rows of a CodeCarbon ``emissions.csv``; returns how many were new or updated,
    and the sweeps they went to (a row's ``project_name``, unless ``sweep`` is given). A row whose
    energy cells are empty is imported without energy, flagged ``energy-missing``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"no file {path}: give the path of CodeCarbon's emissions.csv") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    required = {"timestamp", "duration", "cpu_energy", "gpu_energy", "ram_energy"}
    missing = required - set(reader.fieldnames or [])
    if missing:
        raise InvalidInputError(f"{path} is not a CodeCarbon emissions.csv: no column {', '.join(sorted(missing))}")
    by_sweep: dict[str, list[TrialRecord]] = {}
    emitted: dict[str, list[float]] = {}  # per sweep: kgCO2e, facility kWh, IT kWh (for the grid it used)
    states = {s.value for s in TrialState if s not in (TrialState.RUNNING, TrialState.IDLE)}
    for line, row in enumerate(reader, start=2):
        try:
            end = datetime.fromisoformat(row["timestamp"]).timestamp()
        except (TypeError, ValueError):
            raise InvalidInputError(f"{path}, line {line}: timestamp {row.get('timestamp')!r} is not a date") from None
        seconds = _number(row, "duration", line, path)
        gpus = int(_number(row, "gpu_count", line, path)) if row.get("gpu_count") else 0
        if gpus > MOST_DEVICES:  # checked before the device list is built: 3e7 GPUs made 2.8 GB of it
            raise InvalidInputError(f"{path}, line {line}: gpu_count {row.get('gpu_count')!r} is more than the "
                                    f"{MOST_DEVICES:,} GPUs one trial may have")
        name = sweep or (row.get("project_name") or "codecarbon").strip() or "codecarbon"
        pue = _number(row, "pue", line, path) if (row.get("pue") or "").strip() else 1.0  # CodeCarbon's energies include it
        if pue < 1.0:
            raise InvalidInputError(f"{path}, line {line}: pue {row.get('pue')!r} is below 1")
        columns = {"gpu": "gpu_energy", "cpu": "cpu_energy", "memory": "ram_energy"}
        given = {d: c for d, c in columns.items() if (row.get(c) or "").strip()}  # an empty cell is no figure, not 0
        kwh = {d: _number(row, c, line, path) / pue for d, c in given.items()}
        methods = {"gpu": "sampled-power", "cpu": "estimate", "memory": "estimate"}
        state = (row.get("auditor_state") or "").strip().lower()
        by_sweep.setdefault(name, []).append(TrialRecord(
            sweep=name, trial_key=(row.get("run_id") or f"line-{line}").strip() + f"@{row['timestamp']}",
            state=state if state in states else "complete", start_time=end - seconds, end_time=end, gpu_seconds=gpus * seconds,
            devices=[{"index": i, "model": row.get("gpu_model") or "unknown GPU"} for i in range(gpus)],
            energy={d: EnergyReading(value * JOULES_PER_KWH, methods[d]) for d, value in kwh.items()},
            flags=[*_flags(kwh), "codecarbon"], host="imported",
        ))
        sums = emitted.setdefault(name, [0.0, 0.0, 0.0])
        if kwh and (row.get("emissions") or "").strip():  # the grid is emissions over energy: rows with both only
            sums[0] += _number(row, "emissions", line, path)
            sums[1] += sum(kwh.values()) * pue
            sums[2] += sum(kwh.values())
    imported = Imported()
    for name, records in by_sweep.items():
        imported += _store_new(ledger, name, "codecarbon", records, progress, _codecarbon_settings(emitted[name][0], emitted[name][1], emitted[name][2], path))
    return imported, list(by_sweep)


def _codecarbon_settings(co2e_kg: float, facility_kwh: float, it_kwh: float, path: Path) -> dict[str, Any]:
    """The grid and PUE CodeCarbon's emissions were computed with, kept with the sweep so that
    its report gives back CodeCarbon's CO2e."""
    if facility_kwh <= 0 or it_kwh <= 0 or co2e_kg <= 0:
        return {}
    g_per_kwh = 1000 * co2e_kg / facility_kwh
    region = Region(code="codecarbon", name=f"CodeCarbon's grid ({g_per_kwh:.4g} g/kWh)", g_co2e_per_kwh=g_per_kwh,
                    source=f"CodeCarbon's figure, read from {path.name}")
    return {"settings": CarbonModel(region, pue=facility_kwh / it_kwh).to_record()}


def _existing_sqlite(storage: str) -> None:
    """A SQLite storage URL must name a file that exists: Optuna would create an empty one at a
    mistyped path, and the import would read no study from it."""
    if not storage.startswith("sqlite:///") or storage.startswith("sqlite:///:memory:"):
        return
    path = Path(storage.removeprefix("sqlite:///").split("?", 1)[0])
    if not path.is_file():
        raise InvalidInputError(f"no Optuna storage at {path} (no such file): check the path of --storage")


def export_codecarbon(ledger: Ledger, model: CarbonModel, sweeps: Iterable[str] | None = None,
                      overrides: Overrides | None = None) -> str:
    """The ledger's trials as CodeCarbon's emissions.csv (one row per trial), each with its
    sweep's grid and PUE (``model`` for sweeps recorded without them; ``overrides`` over all).
    As in CodeCarbon, the energies include the PUE and ``pue`` says which."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CODECARBON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    attrs = {s.name: s.attrs for s in ledger.sweeps()}
    for name in sweeps or list(attrs):
        sweep_model, _ = model_for_sweep(attrs.get(name), model, overrides)
        for trial in ledger.trials(name):
            writer.writerow({key: csv_cell(value) for key, value in _codecarbon_row(trial, sweep_model).items()})
    return out.getvalue()


def _codecarbon_row(trial: TrialRecord, model: CarbonModel) -> dict[str, Any]:
    seconds = max((trial.end_time or trial.start_time) - trial.start_time, 0.0)
    fp, pue, region = model.footprint(trial.energy_kwh, trial.gpu_hours), model.effective_pue, model.region
    kwh = {d: trial.energy.get(d, EnergyReading()).joules / JOULES_PER_KWH for d in ("cpu", "gpu", "memory")}
    iso3 = alpha3(region.code) or ""
    cloud_provider, _, cloud_region = region.code.partition(":") if ":" in region.code else ("", "", "")
    return {
        "timestamp": datetime.fromtimestamp(trial.end_time or trial.start_time, tz=UTC).isoformat(),
        "project_name": trial.sweep, "run_id": trial.trial_key, "experiment_id": trial.sweep,
        "duration": seconds, "emissions": fp.co2e_kg, "emissions_rate": fp.co2e_kg / seconds if seconds else 0.0,
        "cpu_power": kwh["cpu"] * JOULES_PER_KWH / seconds if seconds else 0.0,
        "gpu_power": kwh["gpu"] * JOULES_PER_KWH / seconds if seconds else 0.0,
        "ram_power": kwh["memory"] * JOULES_PER_KWH / seconds if seconds else 0.0,
        "cpu_energy": kwh["cpu"] * pue, "gpu_energy": kwh["gpu"] * pue, "ram_energy": kwh["memory"] * pue,
        "energy_consumed": fp.facility_kwh, "country_name": region.name if iso3 else "", "country_iso_code": iso3,
        "region": "", "cloud_provider": cloud_provider, "cloud_region": cloud_region, "os": "", "python_version": "",
        "codecarbon_version": "", "cpu_count": "", "cpu_model": "", "gpu_count": len(trial.devices),
        "gpu_model": ",".join(sorted({str(d.get("model", "")) for d in trial.devices})),
        "longitude": "", "latitude": "", "ram_total_size": "", "tracking_mode": "process",
        "on_cloud": "Y" if cloud_provider else "N", "pue": pue, "auditor_state": TrialState(trial.state).value,
    }
