"""auditor.track records blocks of code as trials, on a simulated GPU and the CPU estimate."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import auditor
from auditor.ledger import Ledger, TrialState
from auditor.meters.cpu import CpuTimeSource
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource


@pytest.fixture
def meter():
    with Meter([SimulatedGpuSource([PowerProfile.constant(400.0)]), CpuTimeSource()]) as running:
        yield running


def test_block_is_recorded_with_its_energy(meter: Meter, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.db")
    with auditor.track("final-train", sweep="final", final=True, devices="all", ledger=ledger, meter=meter,
                       params={"lr": 0.1}) as run:
        time.sleep(0.3)
    with Ledger.open(ledger) as store:
        [record] = store.trials("final")
        assert store.get_sweep("final").framework == "run"
    assert record.name == "final-train" and record.is_final and record.state is TrialState.COMPLETE
    assert record.params == {"lr": 0.1}
    assert record.energy["gpu"].method == "counter"
    assert record.energy["gpu"].joules == pytest.approx(400 * run.measurement.duration_s, rel=0.1)
    assert record.energy["cpu"].method == "estimate-tdp"
    assert record.gpu_seconds == pytest.approx(run.measurement.duration_s)
    assert record.devices == [{"key": "gpu:SIM-0", "index": 0, "model": "Simulated GPU"}]


def test_decorator_records_each_call(meter: Meter, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.db")

    @auditor.track("evaluate", sweep="eval", ledger=ledger, meter=meter)
    def evaluate(x: int) -> int:
        return x * 2

    assert evaluate(2) == 4 and evaluate(3) == 6
    with Ledger.open(ledger) as store:
        assert [t.name for t in store.trials("eval")] == ["evaluate", "evaluate"]


def test_exception_is_recorded_as_failed_and_raised_on(meter: Meter, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.db")
    with pytest.raises(ZeroDivisionError), auditor.track("broken", ledger=ledger, meter=meter):
        1 / 0  # noqa: B018
    with Ledger.open(ledger) as store:
        [record] = store.trials("runs")
    assert record.state is TrialState.FAILED and "error: ZeroDivisionError" in record.flags


def test_unwritable_ledger_warns_and_never_breaks_the_block(meter: Meter) -> None:
    with (pytest.warns(RuntimeWarning, match="held back, ledger .* not written: ledger URL uses 'oracle'"),
          auditor.track("x", ledger="oracle://u@h/db", meter=meter) as run):
        value = 42
    assert value == 42 and run.record is not None


def test_default_meter_and_ledger_on_this_machine(clean_environment: Path) -> None:
    with auditor.track("quick") as run:
        sum(range(1_000_000))
    assert run.measurement is not None and run.measurement.energy["cpu"].joules > 0
    with Ledger.open(clean_environment / ".auditor" / "ledger.db") as store:
        assert store.count_trials("runs") == 1
