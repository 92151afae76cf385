"""What a whole search will cost, projected from its first trials: one computation for every view.

The Optuna plugin's log line, ``audit report`` (its sentence and its JSON) and ``audit plan``
all call :func:`project`, so they print the same numbers from the same trials.

The method, plainly: the trials finished so far are taken as a sample of the search's trials
(complete, pruned, failed and stopped alike: a search that prunes keeps pruning at about the
same rate), but for the first: it carries the search's one-time warm-up (imports, CUDA context,
allocator, autotuning), so it is counted once as it came and left out of the mean. A trial
costs the others' mean IT energy and GPU time; the energy between trials (the idle overhead)
is added as the share of the trials' energy it has been so far. ``N`` trials then cost
``(first + (N - 1) x mean) x (1 + idle share)``. The range is a 90 % prediction interval of
that total from the trials' spread: the remaining ``r`` trials' sum has variance
``r s^2 + r^2 s^2 / m`` (their own spread, and the uncertainty of the mean of the ``m`` trials
after the first), scaled by Student's t with ``m - 1`` degrees of freedom. It assumes the next trials cost what
the finished ones did on average (a stationary search); a sampler that moves toward costlier or
cheaper configurations makes the projection drift, which is why it is redone as trials finish.
No projection is made from fewer than :data:`MIN_TRIALS` finished trials.

Example:
    >>> from auditor.model.carbon import CarbonModel
    >>> costs = [(0.010, 0.05), (0.012, 0.05), (0.008, 0.05), (0.011, 0.05), (0.009, 0.05)]
    >>> p = project(costs, CarbonModel(), planned=200)
    >>> round(p.total.energy_kwh, 3), p.trials_seen
    (2.0, 5)
    >>> describe(p)
    'at this rate 200 trials cost 1.50 kg CO2e (1.18 kg to 1.82 kg, 90 % range), 2 kWh IT energy, 10 GPU-h'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditor.model.carbon import CarbonModel, Footprint
from auditor.model.units import Metric, format_quantity

MIN_TRIALS = 5  # finished trials before any projection: fewer give too wide a range to be of use
RANGE_LEVEL = 0.90
# Student's t, one-sided 0.95 quantile (a two-sided 90 % interval), by degrees of freedom.
_T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
        12: 1.782, 15: 1.753, 20: 1.725, 30: 1.697, 60: 1.671, 120: 1.658}


def t_quantile(df: int) -> float:
    """Student's t 0.95 quantile for ``df`` degrees of freedom (the nearest tabled one at or
    below it; 1.645 beyond 120).

    Example:
        >>> t_quantile(4), t_quantile(11), t_quantile(1000)
        (2.132, 1.812, 1.645)
    """
    if df > 120:
        return 1.645
    return _T95[max(k for k in _T95 if k <= max(df, 1))]


@dataclass(frozen=True)
class BudgetView:
    """A budget as a projection needs it: its metric, limit and what it has counted so far."""

    metric: Metric
    limit: float
    spent: float
    text: str = ""  # as the user wrote it ("5 kg"); empty: the limit is printed


@dataclass(frozen=True)
class Projection:
    """The projected cost of a search from its finished trials.

    Attributes:
        trials_seen: finished trials the projection is made from.
        trials_done: trials of the search so far (the count the budget's "trial N" continues).
        planned: the search's planned number of trials, if known.
        per_trial: a trial's mean footprint, idle share included.
        idle_share: idle energy as a share of the trials' energy so far.
        total, low, high: the planned trials' projected footprint and its 90 % range (None
            without a planned size).
        budget: the budget, if any; ``lasts_to``: the trial at which it runs out at this rate
            (None without a budget, or a cost budget without a price).
        metric: the headline metric (the budget's, else CO2e).
    """

    trials_seen: int
    trials_done: int
    planned: int | None
    per_trial: Footprint
    idle_share: float
    total: Footprint | None
    low: Footprint | None
    high: Footprint | None
    budget: BudgetView | None
    lasts_to: int | None
    metric: Metric

    def to_dict(self) -> dict[str, Any]:
        """The projection as JSON-ready data (the report's ``forecast`` key): canonical units."""
        def fp(value: Footprint | None) -> dict[str, Any] | None:
            return None if value is None else {
                "energy_kwh": value.energy_kwh, "facility_kwh": value.facility_kwh, "co2e_kg": value.co2e_kg,
                "gpu_hours": value.gpu_hours, "cost_usd": value.cost_usd}

        return {
            "method": "mean per finished trial x planned trials x (1 + idle share); 90 % range from the trials' spread",
            "trials_seen": self.trials_seen, "trials_done": self.trials_done, "planned_trials": self.planned,
            "per_trial": fp(self.per_trial), "idle_share": self.idle_share,
            "total": fp(self.total), "low": fp(self.low), "high": fp(self.high),
            "budget": None if self.budget is None else {
                "metric": self.budget.metric.value, "limit": self.budget.limit, "spent": self.budget.spent, "text": self.budget.text},
            "budget_lasts_to_trial": self.lasts_to, "metric": self.metric.value, "text": describe(self),
        }


def _scaled(model: CarbonModel, energy_kwh: float, gpu_hours: float) -> Footprint:
    return model.footprint(max(energy_kwh, 0.0), max(gpu_hours, 0.0))


def project(
    costs: Sequence[tuple[float, float]],
    model: CarbonModel,
    *,
    planned: int | None = None,
    done: int | None = None,
    idle_kwh: float = 0.0,
    budget: BudgetView | None = None,
) -> Projection | None:
    """Project a search's cost from its finished trials' ``(IT kWh, GPU-hours)``, or None
    before :data:`MIN_TRIALS` of them.

    Args:
        costs: each finished trial's IT energy (kWh) and GPU-hours.
        model: grid, PUE and price that turn them into CO2e and money.
        planned: the search's planned number of trials (the study's ``n_trials``, the
            experiment's ``num_samples``), if known.
        done: trials of the search so far (default: ``len(costs)``), from which a budget's
            "lasts to trial N" counts; 0 for a search not started yet, projected from another's
            trials (``audit plan``).
        idle_kwh: energy between trials so far, added to each trial as its share.
        budget: the budget with what it has counted so far, for when it runs out.

    Example:
        >>> from auditor.model.carbon import CarbonModel
        >>> p = project([(0.001, 0.0)] * 5, CarbonModel(), budget=BudgetView(Metric.ENERGY_KWH, 0.0105, 0.005))
        >>> p.lasts_to, p.total is None
        (10, True)
    """
    n = len(costs)
    if n < MIN_TRIALS:
        return None
    # The first trial is counted once as it came, and left out of the mean: it carries the
    # search's one-time warm-up (imports, CUDA context, allocator, autotuning), 800 times a
    # steady trial in a torch search measured here. The others are the sample.
    first_e, first_g = max(costs[0][0], 0.0), max(costs[0][1], 0.0)
    energies = [max(e, 0.0) for e, _ in costs[1:]]
    gpu_hours = [max(g, 0.0) for _, g in costs[1:]]
    m = len(energies)
    mean_e, mean_g = sum(energies) / m, sum(gpu_hours) / m
    trial_kwh = first_e + sum(energies)
    idle_share = max(idle_kwh, 0.0) / trial_kwh if trial_kwh > 0 else 0.0
    scale = 1.0 + idle_share
    per_trial = _scaled(model, mean_e * scale, mean_g)
    done = n if done is None else max(done, 0)  # 0: a search not started yet (a plan)

    def first_and(k: int, e: float, g: float) -> tuple[float, float]:  # the first trial and k more
        return (first_e + k * e) * scale, first_g + k * g

    total = low = high = None
    if planned is not None and planned > 0:
        sd_e = math.sqrt(sum((e - mean_e) ** 2 for e in energies) / (m - 1))
        sd_g = math.sqrt(sum((g - mean_g) ** 2 for g in gpu_hours) / (m - 1))
        remaining = max(planned - max(done, 1), 0)  # the trials still to run, besides the first
        spread = t_quantile(m - 1) * math.sqrt(remaining + remaining**2 / m)
        total = _scaled(model, *first_and(planned - 1, mean_e, mean_g))
        floor_e, floor_g = first_and(min(planned, done) - 1, mean_e, mean_g) if done > 0 else (0.0, 0.0)  # spent stays spent
        low = _scaled(model, max(total.energy_kwh - spread * sd_e * scale, floor_e), max(total.gpu_hours - spread * sd_g, floor_g))
        high = _scaled(model, total.energy_kwh + spread * sd_e * scale, total.gpu_hours + spread * sd_g)
    lasts_to = None
    if budget is not None:
        try:
            each = per_trial.amount(budget.metric)
            first = _scaled(model, *first_and(0, mean_e, mean_g)).amount(budget.metric)
        except Exception:  # noqa: BLE001 - a cost budget without a price: no answer, not an error
            each = first = 0.0
        if each > 0 and done > 0:
            lasts_to = done + max(int((budget.limit - budget.spent) / each), 0)
        elif each > 0:  # a plan: the new search pays its own first trial too
            lasts_to = 0 if budget.limit < first else 1 + int((budget.limit - first) / each)
    metric = budget.metric if budget is not None else Metric.CO2E_KG
    if metric is Metric.COST_USD and per_trial.cost_usd is None:
        metric = Metric.CO2E_KG
    return Projection(n, done, planned, per_trial, idle_share, total, low, high, budget, lasts_to, metric)


def _bare(metric: Metric, value: float) -> str:
    """``value`` in the unit that fits it, without ``CO2e``, said once after the range
    (``1.28 kg to 1.72 kg``)."""
    text = format_quantity(metric, value)
    return text.replace(" CO2e", "") if metric is Metric.CO2E_KG else text


def describe(p: Projection) -> str:
    """The projection in one sentence, as the log line and the report print it.

    Example:
        >>> from auditor.model.carbon import CarbonModel
        >>> costs = [(0.02, 0.1), (0.03, 0.1), (0.01, 0.1), (0.02, 0.1), (0.025, 0.1), (0.015, 0.1)]
        >>> p = project(costs, CarbonModel(), planned=200, budget=BudgetView(Metric.CO2E_KG, 5.0, 0.1, "5 kg"))
        >>> describe(p)
        'at this rate 200 trials cost 3.00 kg CO2e (1.89 kg to 4.11 kg, 90 % range), 4 kWh IT energy, 20 GPU-h; the 5 kg CO2e budget covers them (it lasts to about trial 332)'
    """
    metric = p.metric
    parts: list[str] = []
    if p.total is not None and p.low is not None and p.high is not None and p.planned is not None:
        main = _amount(p.total, metric)
        text = f"at this rate {p.planned:,} trials cost {format_quantity(metric, main)}"
        low, high = _amount(p.low, metric), _amount(p.high, metric)
        text += f" ({_bare(metric, low) if low > 0 else '0'} to {_bare(metric, high)}, 90 % range)"  # no unit on a zero
        extras = []
        if metric is not Metric.CO2E_KG:
            extras.append(format_quantity(Metric.CO2E_KG, p.total.co2e_kg))
        if metric is not Metric.ENERGY_KWH:
            extras.append(f"{format_quantity(Metric.ENERGY_KWH, p.total.energy_kwh)} IT energy")
        if metric is not Metric.GPU_HOURS and p.total.gpu_hours > 0:
            extras.append(format_quantity(Metric.GPU_HOURS, p.total.gpu_hours))
        parts.append(", ".join([text, *extras]))
    else:
        parts.append(f"at this rate a trial costs {format_quantity(metric, _amount(p.per_trial, metric))}")
    if p.budget is not None:
        limit = format_quantity(p.budget.metric, p.budget.limit)
        if p.lasts_to is None:
            parts.append(f"when the {limit} budget runs out is unknown (no cost per trial)")
        elif p.planned is not None and p.lasts_to >= p.planned:
            parts.append(f"the {limit} budget covers them (it lasts to about trial {p.lasts_to:,})")
        else:
            parts.append(f"the {limit} budget lasts to about trial {p.lasts_to:,}")
    return "; ".join(parts)


def _amount(fp: Footprint, metric: Metric) -> float:
    return fp.co2e_kg if metric is Metric.COST_USD and fp.cost_usd is None else fp.amount(metric)
