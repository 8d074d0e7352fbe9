"""Steady-state detection and drift on synthetic traces; the warm-up loop on a scripted clock."""

from __future__ import annotations

import pytest

from icb_bench.bench.runner import warm_until_steady
from icb_bench.bench.steady import Reading, SteadyRule, drift, judge_steady, readings_from, slope_per_min

RULE = SteadyRule(window_s=30.0)
T = [i * 0.5 for i in range(121)]  # 60 s of readings at 2 Hz


def trace(power=lambda t: 698.0, temp=lambda t: 70.0, clock=lambda t: 1300.0, limit=700.0) -> list[Reading]:
    return [Reading(t, power(t), limit, temp(t), clock(t)) for t in T]


def tput(f=lambda t: 650.0) -> list[tuple[float, float]]:
    return [(t, f(t)) for t in T]


def test_plateau_at_the_power_limit_is_steady():
    v = judge_steady(RULE, trace(), tput(), now_s=60.0)
    assert v.steady and v.basis == "power-limit" and v.reason is None
    assert v.checks["at_power_limit"] is True and v.checks["temp_slope_c_per_min"] == pytest.approx(0.0)


def test_still_heating_is_not_steady():
    """62 → 71 °C over a minute (the H100 reference trace): power at its limit, yet not steady."""
    v = judge_steady(RULE, trace(temp=lambda t: 62.0 + 9.0 * t / 60.0), tput(), now_s=60.0)
    assert not v.steady
    assert v.checks["temp_slope_c_per_min"] == pytest.approx(9.0)
    assert "temperature changing +9.00 °C/min" in v.reason


def test_capped_card_with_falling_clock_is_steady_once_temperature_settles():
    """At the cap the clock is whatever fits under it: a drooping clock alone does not unsteady it."""
    v = judge_steady(RULE, trace(clock=lambda t: 1400.0 - 2.0 * t), tput(), now_s=60.0)
    assert v.steady and v.basis == "power-limit" and "clock_change_rel" not in v.checks


def test_off_the_limit_needs_flat_power_and_clock():
    flat = judge_steady(RULE, trace(power=lambda t: 300.0), tput(), now_s=60.0)
    assert flat.steady and flat.basis == "plateau"
    ramp = judge_steady(RULE, trace(power=lambda t: 300.0 + 3.0 * t), tput(), now_s=60.0)
    assert not ramp.steady and "power, not at its limit, moved" in ramp.reason
    clock = judge_steady(RULE, trace(power=lambda t: 300.0, clock=lambda t: 1900.0 - 5.0 * t), tput(), now_s=60.0)
    assert not clock.steady and "SM clock moved" in clock.reason


def test_throughput_plateau_when_there_is_no_telemetry():
    """The CPU backend: no temperature, no power -- the throughput plateau decides, and says so."""
    bare = [Reading(t) for t in T]
    v = judge_steady(RULE, bare, tput(lambda t: 1.0 + (0.001 if int(t) % 2 else 0.0)), now_s=60.0)
    assert v.steady and v.basis == "throughput-plateau"
    rising = judge_steady(RULE, bare, tput(lambda t: 1.0 + t / 60.0), now_s=60.0)
    assert not rising.steady and "throughput moved" in rising.reason


def test_too_few_readings_is_not_steady():
    v = judge_steady(RULE, [Reading(59.0, 698.0, 700.0)], [(59.5, 1.0)], now_s=60.0)
    assert not v.steady and "fewer than 5 readings in the last 30 s" in v.reason


def test_only_the_trailing_window_counts():
    """Heating in the first half minute, flat after: judged on the last 30 s only."""
    v = judge_steady(RULE, trace(temp=lambda t: min(70.0, 55.0 + t)), tput(), now_s=60.0)
    assert v.steady


def test_slope_and_readings_helpers():
    assert slope_per_min([(0.0, 1.0), (30.0, 2.0), (60.0, 3.0)]) == pytest.approx(2.0)
    assert slope_per_min([(1.0, 5.0), (1.0, 6.0)]) == 0.0
    rows = [{"t_s": 0.0, "power_w": 10.0, "power_limit_w": None, "temperature_c": float("nan"), "sm_clock_mhz": None}]
    (r,) = readings_from(rows)
    assert r.power_w == 10.0 and r.temperature_c is None  # NaN read back from a trace is "missing"


def test_drift_first_sixth_against_last_sixth():
    points = [(t, 100.0 if t < 10.0 else (99.0 if t <= 50.0 else 98.0)) for t in T]
    readings = trace(temp=lambda t: 62.0 + 9.0 * t / 60.0)
    d = drift(RULE, points, readings, 0.0, 60.0)
    assert d["tflops_first"] == 100.0 and d["tflops_last"] == 98.0
    assert d["tflops_rel"] == pytest.approx(-0.02)
    assert d["temp_c_delta"] == pytest.approx(7.5)  # medians at 5 s and 55 s of a 9 °C/min ramp
    assert d["power_w_delta"] == pytest.approx(0.0)
    assert not d["steady"] and "throughput drifted -2.00%" in d["reason"] and "temperature moved +7.5 °C" in d["reason"]
    calm = drift(RULE, [(t, 100.0) for t in T], trace(), 0.0, 60.0)
    assert calm["steady"] and calm["reason"] is None and calm["tflops_rel"] == 0.0


def test_drift_without_enough_batches_says_so():
    d = drift(RULE, [(30.0, 1.0)], [], 0.0, 60.0)
    assert d["tflops_rel"] is None and not d["steady"] and "too few batches" in d["reason"]


class ScriptedDevice:
    """A device whose throughput and temperature follow a scripted curve on a scripted clock:
    each chunk of batches advances the clock by ``chunk_s``."""

    def __init__(self, temp, chunk_s: float = 0.5) -> None:
        self.now, self.temp, self.chunk_s = 0.0, temp, chunk_s
        self.readings: list[Reading] = []

    def clock(self) -> float:
        return self.now

    def run_chunk(self) -> list[tuple[float, float]]:
        self.now += self.chunk_s
        self.readings.append(Reading(self.now, 690.0, 700.0, self.temp(self.now), 1300.0))
        return [(self.now, 650.0)]

    def since(self, t0: float) -> list[Reading]:
        return [r for r in self.readings if r.t_s >= t0]


def test_warmup_stops_at_steady_state_not_before_the_minimum():
    dev = ScriptedDevice(temp=lambda t: min(70.0, 50.0 + t))  # flat from 20 s on
    out = warm_until_steady(dev.run_chunk, dev.since, SteadyRule(window_s=10.0), min_s=5.0, max_s=120.0, clock=dev.clock)
    assert out["steady"] and out["basis"] == "power-limit"
    # not while the 10 s window still holds the ramp's steep part; at the latest once it is all flat
    assert 20.0 < out["duration_s"] <= 30.0
    t = out["duration_s"] - 0.5  # one chunk earlier the rule did not hold yet
    assert not judge_steady(SteadyRule(window_s=10.0), dev.since(0.0), [(x, 650.0) for x in T], t).steady
    early = ScriptedDevice(temp=lambda t: 70.0, chunk_s=0.1)
    out = warm_until_steady(early.run_chunk, early.since, SteadyRule(window_s=1.0), min_s=5.0, max_s=120.0,
                            clock=early.clock)
    assert out["steady"] and out["duration_s"] == pytest.approx(5.0, abs=0.11)  # steady at once, held to the minimum


def test_warmup_is_bounded_and_says_why_it_ended():
    dev = ScriptedDevice(temp=lambda t: 50.0 + t / 6.0)  # +10 °C/min for ever
    out = warm_until_steady(dev.run_chunk, dev.since, SteadyRule(window_s=10.0), min_s=5.0, max_s=40.0, clock=dev.clock)
    assert not out["steady"] and out["duration_s"] == pytest.approx(40.0)
    assert out["reason"].startswith("warm-up reached its maximum (40 s) before steady state: temperature changing")
