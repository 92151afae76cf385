"""How often to read each source so that reading stays cheap: under 1 % of one core in all.

A source is read on its own cadence (50 ms for the NVML counter). Where a read costs more than
that cadence can afford (an NVML counter call took 3.4-4.4 ms on an H100 VM: 8 GPUs read every
50 ms would take over half a core), the costliest sources are read less often, so that the
reads' CPU time stays within the share. Cheap sources keep their cadence; what they leave of
the share is split evenly among the costly ones (water-filling).

Example:
    >>> [round(t, 3) for t in cadences(costs=[0.032, 0.0001], bases=[0.05, 0.1], share=0.01)]
    [3.556, 0.1]
"""

from __future__ import annotations

CPU_SHARE = 0.01  # of one core, for every read of every source together


def cadences(costs: list[float], bases: list[float], share: float = CPU_SHARE) -> list[float]:
    """Poll intervals (seconds) for sources whose reads cost ``costs`` CPU seconds each and that
    want to be read every ``bases`` seconds: each at its base where the share allows, and
    ``sum(cost / interval) <= share`` otherwise."""
    intervals = list(bases)
    remaining = share
    order = sorted(range(len(costs)), key=lambda i: costs[i] / bases[i])
    for position, i in enumerate(order):
        fair = remaining / (len(order) - position)
        load = costs[i] / bases[i]
        if load <= fair:
            remaining -= load
        else:
            intervals[i] = costs[i] / fair
            remaining -= fair
    return intervals
