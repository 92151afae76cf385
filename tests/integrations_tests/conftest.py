"""What the plugin tests share: a meter on one simulated 300 W GPU (the hardware boundary) and
this process's CPU time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditor.meters.cpu import CpuTimeSource
from auditor.meters.sampler import Meter
from auditor.meters.simulated import PowerProfile, SimulatedGpuSource

GPU_WATTS = 300.0


@pytest.fixture
def gpu_meter() -> Iterator[Meter]:
    with Meter([SimulatedGpuSource([PowerProfile.constant(GPU_WATTS)]), CpuTimeSource()]) as meter:
        yield meter
