"""Bring searches that ran before the auditor into the ledger, and hand the ledger to CodeCarbon.

- Optuna: every finished trial of a study in any Optuna storage; energy estimated from the
  trial's duration x the GPU's TDP x the GPU count (method ``estimate-tdp``, flagged
  ``imported``).
- Ray Tune: every trial directory of an experiment (``params.json``, ``result.json``); the
  energy the ``auditor/`` metrics report where ``with_audit`` ran, else estimated from the
  trial's time x TDP when a GPU model is given.
- CodeCarbon: the rows of an ``emissions.csv``, one trial each, energy per domain as it
  measured them.

Trials already in the ledger are left as they are: an import never replaces a measured record
with an estimate. ``export_codecarbon`` writes the ledger's trials in CodeCarbon's columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from auditor.errors import InvalidInputError, LedgerError
from auditor.ledger import EnergyReading, Ledger, TrialRecord
from auditor.model.carbon import CarbonModel
from auditor.model.hardware import HardwareSpec

Progress = Callable[[int, int], None]
CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "on_cloud", "pue",
]


def _store_new(ledger: Ledger, sweep: str, framework: str, records: list[TrialRecord], progress: Progress | None) -> int:
    """Write the records not already in the ledger; returns how many were written."""
    ledger.ensure_sweep(sweep, framework=framework, attrs={"imported": True})
    known = {t.trial_key for t in ledger.trials(sweep, include_idle=True)}
    new = [r for r in records if r.trial_key not in known]
    for start in range(0, len(new), 500):
        ledger.record_trials(new[start : start + 500])
        if progress:
            progress(min(start + 500, len(new)), len(new))
    return len(new)


def _estimated(gpu: HardwareSpec | None, count: int, seconds: float) -> tuple[dict[str, EnergyReading], float, list[dict[str, Any]]]:
    if gpu is None:
        return {}, 0.0, []
    devices = [{"index": i, "model": gpu.name} for i in range(count)]
    return {"gpu": EnergyReading(gpu.tdp_watts * count * seconds, "estimate-tdp")}, count * seconds, devices


def import_optuna(ledger: Ledger, storage: str, study: str, gpu: HardwareSpec, count: int = 1,
                  sweep: str | None = None, progress: Progress | None = None) -> int:
    """Import a study's finished trials; returns how many were new."""
    import optuna

    states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        raise InvalidInputError(f"no study called {study!r} in storage {storage}") from None
    except Exception as exc:  # noqa: BLE001 - a storage that does not answer, a bad URL
        raise LedgerError(f"cannot read Optuna storage {storage}: {str(exc).splitlines()[0]}") from None
    records = []
    for trial in loaded.get_trials(deepcopy=False):
        if trial.state.name not in states or trial.datetime_start is None or trial.datetime_complete is None:
            continue
        start, end = trial.datetime_start.timestamp(), trial.datetime_complete.timestamp()
        energy, gpu_seconds, devices = _estimated(gpu, count, end - start)
        records.append(TrialRecord(
            sweep=sweep or study, trial_key=f"{study}/{trial.number}", number=trial.number,
            state=states[trial.state.name], start_time=start, end_time=end, params=dict(trial.params),
            objective=list(trial.values) if trial.values else None, devices=devices, gpu_seconds=gpu_seconds,
            energy=energy, flags=["imported"], host="imported",
        ))
    return _store_new(ledger, sweep or study, "optuna", records, progress)


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


def import_ray(ledger: Ledger, experiment: Path, gpu: HardwareSpec | None = None, count: int = 1,
               sweep: str | None = None, progress: Progress | None = None) -> int:
    """Import a Ray Tune experiment directory; returns how many trials were new."""
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
        elif status == "TERMINATED" or last.get("done"):
            state = "complete"
        else:
            state = "stopped"
        joules = {d: float(last[f"auditor/{d}_energy_j"]) for d in ("gpu", "cpu", "memory") if f"auditor/{d}_energy_j" in last}
        if joules:
            energy = {d: EnergyReading(j, str(last.get(f"auditor/{d}_energy_method", "estimate"))) for d, j in joules.items()}
            gpu_seconds, devices = float(last.get("auditor/gpu_seconds", 0.0)), []
        else:
            energy, gpu_seconds, devices = _estimated(gpu, count, seconds)
        records.append(TrialRecord(
            sweep=sweep or experiment.name, trial_key=str(last.get("trial_id", directory.name)), number=number,
            state=state, start_time=end - seconds, end_time=end, params=params, devices=devices,
            gpu_seconds=gpu_seconds, energy=energy, flags=["imported"], host=str(last.get("hostname", "imported")),
        ))
    return _store_new(ledger, sweep or experiment.name, "ray", records, progress)


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


def import_codecarbon(ledger: Ledger, path: Path, sweep: str | None = None, progress: Progress | None = None) -> int:
    """Import the rows of a CodeCarbon ``emissions.csv``; returns how many were new."""
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
    for line, row in enumerate(reader, start=2):
        try:
            end = datetime.fromisoformat(row["timestamp"]).timestamp()
        except (TypeError, ValueError):
            raise InvalidInputError(f"{path}, line {line}: timestamp {row.get('timestamp')!r} is not a date") from None
        seconds = _number(row, "duration", line, path)
        gpus = int(_number(row, "gpu_count", line, path)) if row.get("gpu_count") else 0
        name = sweep or (row.get("project_name") or "codecarbon").strip() or "codecarbon"
        by_sweep.setdefault(name, []).append(TrialRecord(
            sweep=name, trial_key=(row.get("run_id") or f"line-{line}").strip() + f"@{row['timestamp']}", state="complete",
            start_time=end - seconds, end_time=end, gpu_seconds=gpus * seconds,
            devices=[{"index": i, "model": row.get("gpu_model") or "unknown GPU"} for i in range(gpus)],
            energy={
                "gpu": EnergyReading(_number(row, "gpu_energy", line, path) * 3.6e6, "sampled-power"),
                "cpu": EnergyReading(_number(row, "cpu_energy", line, path) * 3.6e6, "estimate"),
                "memory": EnergyReading(_number(row, "ram_energy", line, path) * 3.6e6, "estimate"),
            },
            flags=["imported", "codecarbon"], host="imported",
        ))
    return sum(_store_new(ledger, name, "codecarbon", records, progress) for name, records in by_sweep.items())


def export_codecarbon(ledger: Ledger, model: CarbonModel, sweeps: Iterable[str] | None = None) -> str:
    """The ledger's trials as CodeCarbon's emissions.csv (one row per trial)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CODECARBON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    region = model.region
    for name in sweeps or [s.name for s in ledger.sweeps()]:
        for trial in ledger.trials(name):
            seconds = max((trial.end_time or trial.start_time) - trial.start_time, 0.0)
            fp = model.footprint(trial.energy_kwh, trial.gpu_hours)
            kwh = {d: trial.energy.get(d, EnergyReading()).joules / 3.6e6 for d in ("cpu", "gpu", "memory")}
            writer.writerow({
                "timestamp": datetime.fromtimestamp(trial.end_time or trial.start_time, tz=timezone.utc).isoformat(),
                "project_name": trial.sweep, "run_id": trial.trial_key, "experiment_id": trial.sweep,
                "duration": seconds, "emissions": fp.co2e_kg, "emissions_rate": fp.co2e_kg / seconds if seconds else 0.0,
                "cpu_power": kwh["cpu"] * 3.6e6 / seconds if seconds else 0.0,
                "gpu_power": kwh["gpu"] * 3.6e6 / seconds if seconds else 0.0,
                "ram_power": kwh["memory"] * 3.6e6 / seconds if seconds else 0.0,
                "cpu_energy": kwh["cpu"] * model.effective_pue, "gpu_energy": kwh["gpu"] * model.effective_pue,
                "ram_energy": kwh["memory"] * model.effective_pue, "energy_consumed": fp.facility_kwh,
                "country_name": region.name, "country_iso_code": region.code, "region": "", "cloud_provider": "",
                "cloud_region": "", "os": "", "python_version": "", "codecarbon_version": "", "cpu_count": "",
                "cpu_model": "", "gpu_count": len(trial.devices),
                "gpu_model": ",".join(sorted({str(d.get("model", "")) for d in trial.devices})),
                "longitude": "", "latitude": "", "ram_total_size": "", "tracking_mode": "process",
                "on_cloud": "N", "pue": model.effective_pue,
            })
    return out.getvalue()
