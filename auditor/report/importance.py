"""Which hyperparameters cost the energy: each parameter's share of the variation in the trials'
energy, from the ledger's params alone (any sweep, any framework, no study needed).

The method, plainly: for each parameter, a one-way analysis of variance of the trials'
log-energy grouped by the parameter's value. A numeric parameter with more than :data:`BINS`
distinct values is cut into :data:`BINS` equal-count bins (quantiles); a categorical one, or a
numeric one with few values, groups by value; trials without the parameter (conditional search
spaces) form their own group. The share is epsilon squared,
``(SS_between - (k - 1) MS_within) / SS_total``, clipped to 0..1: the fraction of the
log-energy's variance the parameter explains alone, corrected for the part any grouping into
``k`` groups explains by chance (plain eta squared credits a parameter of no effect with about
``(k - 1) / (n - 1)``). Log-energy, because costs multiply (twice the width, twice the
energy) and one very long trial should not decide the ranking. Each share is the parameter
on its own: parameters that the sampler moved together share credit, and the shares need not
add up to 100 %. Trials of every state count (a pruned trial's cost is part of what a
parameter costs), but not those without energy. Needs :data:`MIN_TRIALS` trials.

Optuna's own fANOVA (``optuna.importance.FanovaImportanceEvaluator`` with the trials'
``auditor_energy_kwh`` user attribute as the target) answers a similar question for a study at
hand, but it needs scikit-learn and the study's storage; this needs only the ledger.

Example:
    >>> trials = [({"width": w, "seed": s}, 0.001 * w) for w in (1, 2, 4, 8) for s in range(6)]
    >>> [(name, round(share, 2)) for name, share in energy_drivers(trials)]
    [('width', 1.0), ('seed', 0.0)]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

MIN_TRIALS = 20  # fewer trials give shares too noisy to rank parameters by
BINS = 5
METHOD = ("epsilon squared of log-energy by one-way ANOVA over each parameter's values "
          f"(numeric ones in {BINS} quantile bins), each parameter alone")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _groups(values: list[Any]) -> list[str]:
    """Each trial's group for one parameter: a quantile bin, the value, or ``absent``."""
    present = [v for v in values if v is not None]
    numbers = [float(v) for v in present if _is_number(v)]
    if len(numbers) == len(present) and len(set(numbers)) > BINS:
        ordered = sorted(numbers)
        cuts = [ordered[(len(ordered) * i) // BINS] for i in range(1, BINS)]

        def bin_of(v: float) -> str:
            return f"bin{sum(v >= c for c in cuts)}"

        return ["absent" if v is None else bin_of(float(v)) for v in values]
    return ["absent" if v is None else repr(v) for v in values]


def epsilon_squared(groups: list[str], y: list[float]) -> float | None:
    """The share of ``y``'s variance its grouping explains, corrected for chance (0..1), or
    None when ``y`` does not vary.

    Example:
        >>> round(epsilon_squared(["a", "a", "b", "b"], [1.0, 1.1, 3.0, 3.1]), 3)
        0.996
    """
    n = len(y)
    mean = sum(y) / n
    total = sum((v - mean) ** 2 for v in y)
    if total <= 1e-24:
        return None
    by: dict[str, list[float]] = defaultdict(list)
    for g, v in zip(groups, y, strict=True):
        by[g].append(v)
    k = len(by)
    if k < 2 or n <= k:
        return 0.0
    between = sum(len(vs) * (sum(vs) / len(vs) - mean) ** 2 for vs in by.values())
    within = total - between
    share = (between - (k - 1) * within / (n - k)) / total
    return round(min(max(share, 0.0), 1.0), 12)


def energy_drivers(trials: Sequence[tuple[dict[str, Any], float]]) -> list[tuple[str, float]]:
    """The parameters ranked by their share of the variation in the trials' energy, largest
    first, from ``(params, energy)`` pairs (any energy unit); empty with fewer than
    :data:`MIN_TRIALS` trials with energy, or when the energy does not vary.
    """
    usable = [(params, energy) for params, energy in trials if energy > 0 and math.isfinite(energy)]
    if len(usable) < MIN_TRIALS:
        return []
    y = [math.log(energy) for _, energy in usable]
    names = sorted({name for params, _ in usable for name in params})
    ranked = []
    for name in names:
        share = epsilon_squared(_groups([params.get(name) for params, _ in usable]), y)
        if share is None:
            return []
        ranked.append((name, share))
    return sorted(ranked, key=lambda item: (-item[1], item[0]))
