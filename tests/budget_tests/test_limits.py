from __future__ import annotations

import pytest

from auditor.budget.limits import Action, Budget, Mode, Scope
from auditor.errors import InvalidInputError
from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import Metric


def usage(kwh: float = 0.0, kg: float = 0.0, gpu_h: float = 0.0, usd: float | None = None) -> Footprint:
    return Footprint(gpu_hours=gpu_h, energy_kwh=kwh, facility_kwh=kwh * 1.58, co2e_kg=kg, cost_usd=usd)


def test_parse_with_scope_and_mode() -> None:
    budget = Budget.parse("1.2 t", scope="project", mode="HARD")
    assert budget.limit.metric is Metric.CO2E_KG and budget.limit.value == 1200
    assert budget.scope is Scope.PROJECT and budget.mode is Mode.HARD
    assert budget.describe() == "1.2 t CO2e per project (hard)"  # in the unit that fits it
    assert Budget.parse(budget) is budget


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "0 kWh"}, "more than zero"),
        ({"text": "5 parsecs"}, "unknown unit"),
        ({"text": "5 kg", "scope": "galaxy"}, "unknown budget scope 'galaxy': use one of sweep, project"),
        ({"text": "5 kg", "mode": "panic"}, "unknown budget mode 'panic': use one of warn, stop-new, hard"),
    ],
)
def test_parse_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Budget.parse(**kwargs)


def test_go_below_half() -> None:
    decision = Budget.parse("10 kWh").check(usage(kwh=4.9))
    assert decision.action is Action.GO
    assert decision.threshold is None
    assert decision.fraction == pytest.approx(0.49)


@pytest.mark.parametrize(("spent", "threshold"), [(5, 0.5), (8, 0.8), (9.99, 0.8)])
def test_warning_levels(spent: float, threshold: float) -> None:
    decision = Budget.parse("10 kWh").check(usage(kwh=spent))
    assert decision.action is Action.WARN
    assert decision.threshold == threshold


def test_stop_new_when_spent_reaches_limit() -> None:
    decision = Budget.parse("10 kWh").check(usage(kwh=10))
    assert decision.action is Action.STOP_NEW
    assert decision.action.stops
    assert decision.reason.startswith("budget reached: spent 10 kWh of the 10 kWh budget")
    assert decision.overshoot == 0


def test_stop_new_on_forecast() -> None:
    decision = Budget.parse("10 kWh").check(usage(kwh=9), forecast=usage(kwh=1.5))
    assert decision.action is Action.STOP_NEW
    assert "next trial forecast 1.5 kWh" in decision.reason
    assert decision.forecast == 1.5


def test_forecast_within_budget_goes_on() -> None:
    assert Budget.parse("10 kWh").check(usage(kwh=1), forecast=usage(kwh=1)).action is Action.GO


def test_hard_stops_running_trials_only_once_spent() -> None:
    budget = Budget.parse("2 kg", mode="hard")
    assert budget.check(usage(kg=1.9), forecast=usage(kg=0.5)).action is Action.STOP_NEW
    over = budget.check(usage(kg=2.3))
    assert over.action is Action.STOP_ALL
    assert over.overshoot == pytest.approx(0.3)


def test_warn_mode_never_stops() -> None:
    budget = Budget.parse("$100", mode="warn")
    assert budget.check(usage(usd=10)).action is Action.GO
    decision = budget.check(usage(usd=250), forecast=usage(usd=50))
    assert decision.action is Action.WARN
    assert decision.threshold == 1.0
    assert "stops nothing" in decision.reason


def test_each_metric_reads_its_own_figure() -> None:
    spent = usage(kwh=1, kg=2, gpu_h=3, usd=4)
    assert Budget.parse("1 kWh").check(spent).action is Action.STOP_NEW
    assert Budget.parse("3 kg").check(spent).action is Action.WARN
    assert Budget.parse("3 GPUh").check(spent).action is Action.STOP_NEW
    assert Budget.parse("$5").check(spent).action is Action.WARN


def test_usd_budget_without_price_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="needs a price"):
        Budget.parse("$5").check(usage(kwh=1))


def test_an_energy_budget_says_it_counts_it_energy() -> None:
    """The report shows facility kWh too: a kWh budget must say which one it counts."""
    budget = Budget.parse("2 kWh")
    assert budget.describe() == "2 kWh IT per sweep (stop-new)"
    assert budget.counts == "IT energy at the devices (before PUE)"
    assert Budget.parse("2 kg").describe() == "2 kg CO2e per sweep (stop-new)"
    spent = CarbonModel(pue=1.5).footprint(energy_kwh=2.0, gpu_hours=0.0)
    assert budget.check(spent).reason == "budget reached: spent 2 kWh of the 2 kWh budget (IT energy, before PUE)"
