"""Ray Tune as users run it at scale: a Tune trial that runs a Ray Train ``TorchTrainer`` is
charged for all of its workers, on every node, GPUs included; and an experiment's own cost
outside its trials (driver, raylet, GCS, worker start-up, held GPUs) is its idle row.

Checked against what the workers say they spent (their own CPU time), the simulated GPUs'
known power, Ray's ResultGrid, and the machine's busy CPU time over the experiment (an upper
bound nothing measured may pass).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray[tune] is in the dev extra")

import psutil  # noqa: E402
from auditor.integrations.ray_tune import AuditLoggerCallback, with_audit  # noqa: E402
from ray import tune  # noqa: E402

from auditor.ledger import Ledger, TrialState  # noqa: E402
from auditor.meters.cpu import probe_cpu  # noqa: E402

HERE = Path(__file__).parent
WATTS_PER_CPU = probe_cpu().watts_per_logical_cpu
SIMULATED_WATTS = 250.0  # ray_train_two_nodes.py's simulated GPU on each node
BUSY_S = 1.5  # each worker's loop: this many CPU seconds


def machine_busy_s() -> float:
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]  # noqa: SIM115 (open while the process runs)
    return (sum(fields) - fields[3] - fields[4]) / 100


@pytest.mark.slow
def test_ray_train_workers_on_two_nodes_are_charged_to_their_trial_once(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(HERE / "ray_train_two_nodes.py"), f"sqlite:///{tmp_path / 'l.db'}",
                          str(tmp_path / "ray"), "2", "gpu"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    trials = [row for row in data["rows"] if row["state"] != "idle"]
    assert len(trials) == 2 and all(row["state"] == "complete" for row in trials)
    for row in trials:
        trial_id = row["key"]
        workers = data["workers"][trial_id]
        assert len(workers) == 2 and len({w["node"] for w in workers}) == 2  # SPREAD: one worker a node
        assert "ray-train-workers: 2" in row["flags"]
        # every worker's GPU, once: one device on each node
        assert sorted(d["node"] for d in row["devices"]) == sorted(w["node"] for w in workers)
        assert row["energy"]["gpu"] / row["gpu_seconds"] == pytest.approx(SIMULATED_WATTS, rel=0.03)
        # every worker's CPU: at least what each loop spent (the trial's own process adds a little)
        loops_j = sum(w["loop_cpu_s"] for w in workers) * WATTS_PER_CPU
        assert row["energy"]["cpu"] >= 0.95 * loops_j, (row["energy"], loops_j)
        # Ray's ResultGrid shows the ledger's figures
        shown = data["shown"][trial_id]
        assert shown["auditor/gpu_seconds"] == pytest.approx(row["gpu_seconds"])
        assert shown["auditor/cpu_energy_j"] == pytest.approx(row["energy"]["cpu"])
    [idle] = [row for row in data["rows"] if row["state"] == "idle"]
    assert idle["energy"]["cpu"] > 0 and idle["energy"]["gpu"] > 0  # the nodes' processes, the GPUs between trials
    cpu_s = sum(row["energy"].get("cpu", 0.0) for row in data["rows"]) / WATTS_PER_CPU
    assert cpu_s <= 1.03 * data["machine_busy_s"] + 1.0  # never more CPU time than the machine spent
    assert data["usage_kwh"] == pytest.approx(sum(sum(r["energy"].values()) for r in data["rows"]) / 3.6e6)


def _ray_processes_cpu_s() -> dict[tuple[int, float], float]:
    """CPU seconds of every process in this test's tree (the driver, GCS, raylet and its
    workers), by process."""
    me = psutil.Process()
    found = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            found[(process.pid, process.create_time())] = times.user + times.system
        except psutil.Error:
            continue
    return found


def train(config: dict) -> None:
    began = time.process_time()
    while time.process_time() - began < 0.3:
        pass
    tune.report({"loss": config["x"]})


def test_the_experiments_overhead_is_its_idle_row(tmp_path: Path, ray_session: None, audit, capsys) -> None:
    """What the experiment's processes drew outside trials: at least what the processes that
    lived through it spent (none of them ran a trial), and never more than the machine."""
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    before, busy = _ray_processes_cpu_s(), machine_busy_s()
    tune.Tuner(
        with_audit(train), param_space={"x": tune.grid_search([1, 2, 3, 4])},
        run_config=tune.RunConfig(name="overhead", storage_path=str(tmp_path / "ray"), verbose=0,
                                  callbacks=[AuditLoggerCallback(ledger=ledger)]),
    ).fit()
    after, busy = _ray_processes_cpu_s(), machine_busy_s() - busy
    lived_through = sum(after[key] - before[key] for key in after.keys() & before.keys())
    with Ledger.open(ledger) as store:
        rows = store.trials("overhead", include_idle=True)
        spent = store.usage("overhead")
    [idle] = [row for row in rows if row.state is TrialState.IDLE]
    trials = [row for row in rows if row.state is not TrialState.IDLE]
    assert len(trials) == 4
    idle_cpu_s = idle.energy["cpu"].joules / WATTS_PER_CPU
    assert idle_cpu_s >= 0.8 * lived_through, (idle_cpu_s, lived_through)
    all_cpu_s = sum(row.energy["cpu"].joules for row in rows) / WATTS_PER_CPU
    assert all_cpu_s <= 1.03 * busy + 1.0, (all_cpu_s, busy)
    assert idle.energy["memory"].joules > 0
    assert spent.energy_kwh == pytest.approx(sum(row.energy_kwh for row in rows))  # the budget counts it
    capsys.readouterr()  # Ray Tune's own output so far
    report = audit("report", "--ledger", ledger, "--format", "json")
    assert report.code == 0, report.err
    assert json.loads(report.out)["totals"]["idle_kwh"] == pytest.approx(idle.energy_kwh)  # and every report
