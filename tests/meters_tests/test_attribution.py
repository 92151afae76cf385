"""Attribution of a device's energy to intervals: overlaps shared, idle kept, nothing doubled."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.meters.attribution import Accountant, Interval

GPU = "gpu:0"


def interval(start: float, weight: float = 1.0) -> Interval:
    return Interval(start=start, devices={GPU: start}, weight=weight)


def feed_constant(accountant: Accountant, watts: float, times: list[float]) -> list[Interval]:
    done = []
    for t in times:
        done += accountant.feed(GPU, t, watts * (t - times[0]), "counter")
    return done


def test_one_interval_gets_its_span_and_the_rest_is_idle() -> None:
    acc = Accountant()
    acc.feed(GPU, 0.0, 0.0, "counter")
    iv = acc.open(interval(1.0))
    acc.close(iv, 3.0)
    done = feed_constant(acc, 100.0, [0.0, 2.0, 4.0])
    assert done == [iv] and iv.done.is_set()
    assert iv.energy[GPU] == pytest.approx(200.0)
    assert acc.idle(GPU) == pytest.approx(200.0)
    assert iv.methods[GPU] == {"counter"}


def test_overlapping_intervals_share_by_weight() -> None:
    acc = Accountant()
    acc.feed(GPU, 0.0, 0.0, "counter")
    a, b = acc.open(interval(0.0)), acc.open(interval(0.0, weight=3.0))
    acc.close(a, 1.0)
    acc.close(b, 1.0)
    acc.feed(GPU, 1.0, 400.0, "counter")
    assert a.energy[GPU] == pytest.approx(100.0)
    assert b.energy[GPU] == pytest.approx(300.0)
    assert acc.idle(GPU) == 0


def test_nested_interval() -> None:
    acc = Accountant()
    acc.feed(GPU, 0.0, 0.0, "counter")
    outer = acc.open(interval(0.0))
    inner = acc.open(interval(1.0))
    acc.close(inner, 2.0)
    acc.close(outer, 4.0)
    feed_constant(acc, 10.0, [0.0, 0.5, 1.5, 3.0, 4.5])
    assert inner.energy[GPU] == pytest.approx(5.0)  # half of 1 s x 10 W
    assert outer.energy[GPU] == pytest.approx(40.0 - 5.0)
    assert acc.idle(GPU) == pytest.approx(5.0)


def test_interval_shorter_than_the_counter_step_gets_a_proportional_share() -> None:
    acc = Accountant()
    acc.feed(GPU, 0.0, 0.0, "counter")
    burst = acc.open(interval(0.02))
    acc.close(burst, 0.05)
    acc.feed(GPU, 0.1, 70.0, "counter")  # 700 W over the 100 ms step
    assert burst.energy[GPU] == pytest.approx(21.0)


def test_device_found_part_way_counts_from_then() -> None:
    acc = Accountant()
    acc.feed(GPU, 0.0, 0.0, "counter")
    iv = Interval(start=0.0, devices={}, auto_gpus=True)
    acc.open(iv)
    acc.add_device(iv, GPU, since=2.0)
    acc.close(iv, 4.0)
    feed_constant(acc, 10.0, [0.0, 4.0])
    assert iv.energy[GPU] == pytest.approx(20.0)
    assert acc.idle(GPU) == pytest.approx(20.0)


def test_counter_reset_gives_no_negative_energy() -> None:
    acc = Accountant()
    acc.feed(GPU, 0.0, 1000.0, "counter")
    iv = acc.open(interval(0.0))
    acc.feed(GPU, 1.0, 5.0, "counter")  # the driver reloaded
    acc.feed(GPU, 2.0, 15.0, "counter")
    acc.close(iv, 2.0)
    assert iv.energy[GPU] == pytest.approx(10.0)
    assert acc.counter_delta(GPU) == pytest.approx(10.0)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[tuple[float, float, float]], list[tuple[float, float]]]:
    """Random intervals (start, end, weight) and increasing samples (time, cumulative joules)."""
    times = sorted(set(draw(st.lists(st.floats(0, 100, allow_nan=False), min_size=2, max_size=40))))
    if len(times) < 2:
        times = [0.0, 1.0]
    joules, cumulative = [], 0.0
    for _ in times:
        cumulative += draw(st.floats(0, 1e5, allow_nan=False))
        joules.append(cumulative)
    spans = []
    for _ in range(draw(st.integers(0, 12))):
        a, b = sorted(draw(st.tuples(st.floats(0, 100), st.floats(0, 100))))
        spans.append((a, b, draw(st.sampled_from([0.25, 1.0, 2.0]))))
    return spans, list(zip(times, joules, strict=True))


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_intervals_plus_idle_equal_the_counter_delta_to_the_millijoule(schedule) -> None:
    spans, samples = schedule
    acc = Accountant()
    opened: list[tuple[Interval, float]] = []
    events = sorted(
        [(s, "open", i) for i, (s, _, _) in enumerate(spans)]
        + [(e, "close", i) for i, (_, e, _) in enumerate(spans)]
        + [(t, "sample", j) for j, (t, _) in enumerate(samples)],
        key=lambda item: (item[0], {"open": 0, "close": 1, "sample": 2}[item[1]]),
    )
    made: dict[int, Interval] = {}
    for t, kind, index in events:
        if kind == "open":
            made[index] = acc.open(Interval(start=t, devices={GPU: t}, weight=spans[index][2]))
        elif kind == "close":
            acc.close(made[index], t)
            opened.append((made[index], t))
        else:
            acc.feed(GPU, t, samples[index][1], "counter")
    attributed = math.fsum(iv.energy.get(GPU, 0.0) for iv in made.values())
    assert attributed + acc.idle(GPU) == pytest.approx(acc.counter_delta(GPU), abs=1e-3)
    assert acc.counter_delta(GPU) == pytest.approx(samples[-1][1] - samples[0][1], abs=1e-3)
    for iv in made.values():
        assert iv.energy.get(GPU, 0.0) >= 0


def test_a_threads_joules_owed_at_its_intervals_end_are_paid_by_the_next_span() -> None:
    """The CPU-time estimate with n_jobs: a thread's clock is read a moment after the process
    counter, so a trial's last span can hold less than its thread's own work, which the counter
    shows in the next span. Before: that remainder was lost (a 25 ms trial charged 15.7 ms)."""
    cpu = "cpu:process"
    acc = Accountant()
    acc.feed(cpu, 0.0, 0.0, "estimate-tdp")
    iv = acc.open(Interval(start=0.0, devices={cpu: 0.0}))
    acc.close(iv, 1.0)
    assert acc.feed(cpu, 1.0, 3.0, "estimate-tdp", own={iv.id: 4.0}) == []  # 4 J its own, 3 J counted so far
    assert iv.energy[cpu] == pytest.approx(3.0) and not iv.done.is_set()
    assert acc.feed(cpu, 2.0, 5.0, "estimate-tdp", own={}) == [iv]  # the next span shows the last joule
    assert iv.energy[cpu] == pytest.approx(4.0) and acc.idle(cpu) == pytest.approx(1.0)  # the rest is idle, none lost
