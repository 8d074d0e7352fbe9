"""Sampler: polling rate and cost, trapezoid integration, window methods and fallbacks."""

from __future__ import annotations

import time

import pytest
from power_fakes import FakeReader

from icb_bench.bench.power import NullReader, PowerError, PowerSample, Sampler, integrate_power, measure_window


def S(t: float, p: float | None) -> PowerSample:
    return PowerSample(t_s=t, power_w=p)


# -- integration ---------------------------------------------------------------------------
def test_integrate_constant_power_over_exact_window() -> None:
    samples = [S(t, 50.0) for t in (0.0, 1.0, 2.0, 3.0)]
    e, note = integrate_power(samples, 0.25, 2.75)
    assert e == pytest.approx(50.0 * 2.5, abs=1e-12)
    assert note is None


def test_integrate_linear_power_interpolates_edges() -> None:
    # P(t) = 100 + 10 t; exact integral over [0.5, 2.5] = 200 + 5 * (6.25 - 0.25) = 230
    samples = [S(t, 100.0 + 10.0 * t) for t in (0.0, 1.0, 2.0, 3.0)]
    e, _ = integrate_power(samples, 0.5, 2.5)
    assert e == pytest.approx(230.0, abs=1e-9)


def test_integrate_keeps_every_inside_sample_and_skips_missing_power() -> None:
    samples = [S(0.0, 0.0), S(0.5, None), S(1.0, 100.0), S(2.0, 0.0)]
    e, _ = integrate_power(samples, 0.0, 2.0)
    assert e == pytest.approx(100.0)  # the peak inside the window is not dropped


def test_integrate_holds_edges_outside_trace_and_says_so() -> None:
    e, note = integrate_power([S(1.0, 10.0), S(2.0, 10.0)], 0.0, 3.0)
    assert e == pytest.approx(30.0)
    assert note and "held" in note


def test_integrate_without_power_is_none_not_zero() -> None:
    e, note = integrate_power([S(0.0, None), S(1.0, None)], 0.0, 1.0)
    assert e is None and note


# -- thread --------------------------------------------------------------------------------
def test_sampler_polls_at_least_10hz_and_stops() -> None:
    r = FakeReader()
    s = Sampler(r, hz=20.0).start()
    time.sleep(0.5)
    s.stop()
    assert not s.running
    n = len(s.samples())
    assert n >= 4, f"only {n} samples in 0.5 s"
    time.sleep(0.15)
    assert len(s.samples()) == n  # stopped means stopped
    ts = [x.t_s for x in s.samples()]
    assert ts == sorted(ts)


def test_sampler_is_cheap_no_busy_wait() -> None:
    s = Sampler(FakeReader(), hz=20.0).start()
    time.sleep(0.5)
    s.stop()
    st = s.stats()
    assert st["cpu_fraction"] is not None and st["cpu_fraction"] < 0.05, st  # a busy-wait is ~1.0
    assert st["loops"] >= 4


def test_sampler_survives_failing_reader_and_reports_errors() -> None:
    class Failing(FakeReader):
        def sample(self) -> PowerSample:
            raise PowerError("sensor gone")

    s = Sampler(Failing(), hz=50.0).start()
    win = s.begin_window()
    time.sleep(0.1)
    res = s.end_window(win)
    s.stop()
    assert s.stats()["errors"][0] >= 3
    assert res.method == "none" and res.energy_j is None
    assert "sensor gone" in (res.note or "")


# -- windows -------------------------------------------------------------------------------
def test_window_uses_counter_difference() -> None:
    r = FakeReader(lambda t: 120.0, counter=True)
    with Sampler(r) as s:
        win = s.begin_window()
        time.sleep(0.2)
        res = s.end_window(win)
    assert res.method == "counter" and res.source == "fake:counter"
    assert res.energy_j == pytest.approx(120.0 * res.window_s, abs=0.05)
    assert res.power_w == pytest.approx(120.0, rel=0.05)


def test_window_falls_back_to_polling_without_counter() -> None:
    r = FakeReader(lambda t: 80.0, counter=False)
    with Sampler(r, hz=50.0) as s:
        win = s.begin_window()
        time.sleep(0.3)
        res = s.end_window(win)
    assert res.method == "polled" and res.source == "fake:power"
    assert "no energy counter" in (res.note or "")
    assert res.energy_j == pytest.approx(80.0 * res.window_s, rel=1e-9)
    assert res.n_samples >= 3 and res.sample_hz and res.sample_hz >= 10


def test_polled_window_integrates_a_ramp_exactly() -> None:
    r = FakeReader(lambda t: 100.0 + 200.0 * t)  # linear: trapezoid with interpolated edges is exact
    with Sampler(r, hz=50.0) as s:
        time.sleep(0.05)
        win = s.begin_window()
        time.sleep(0.3)
        res = s.end_window(win)
    a, b = win.t_begin_s - r.t0, win.t_end_s - r.t0  # type: ignore[operator]
    exact = 100.0 * (b - a) + 100.0 * (b * b - a * a)
    assert res.method == "polled"
    assert res.energy_j == pytest.approx(exact, rel=1e-9)


def test_counter_that_does_not_advance_falls_back_to_polling() -> None:
    class Stuck(FakeReader):
        def energy_j(self) -> float | None:
            return 1234.0

    with Sampler(Stuck(lambda t: 60.0, counter=True)) as s:
        win = s.begin_window()
        time.sleep(0.1)
        res = s.end_window(win)
    assert res.method == "polled" and "did not advance" in (res.note or "")
    assert res.energy_j == pytest.approx(60.0 * res.window_s)


def test_counter_read_failure_falls_back_to_polling() -> None:
    class Breaks(FakeReader):
        broken = False

        def energy_j(self) -> float | None:
            if self.broken:
                raise PowerError("counter gone")
            return super().energy_j()

    r = Breaks(lambda t: 70.0, counter=True)
    with Sampler(r) as s:
        win = s.begin_window()
        time.sleep(0.1)
        r.broken = True
        res = s.end_window(win)
    assert res.method == "polled"
    assert "counter read failed" in (res.note or "") and "counter gone" in (res.note or "")


def test_throttle_inside_window_flags_it() -> None:
    with Sampler(FakeReader(throttle=0x4)) as s:
        win = s.begin_window()
        time.sleep(0.1)
        res = s.end_window(win)
    assert res.throttled and res.throttle_reasons == ["Busy"]
    with Sampler(FakeReader(throttle=0)) as s:
        win = s.begin_window()
        time.sleep(0.1)
        res = s.end_window(win)
    assert not res.throttled and res.throttle_reasons == []


def test_trace_rows_are_relative_to_window_begin_and_bracket_it() -> None:
    with Sampler(FakeReader(lambda t: 42.0), hz=50.0) as s:
        win = s.begin_window()
        time.sleep(0.2)
        res = s.end_window(win)
    rows = win.trace_rows()
    assert len(rows) == res.n_samples + 2  # one before, all inside, one after
    assert rows[0]["t_s"] <= 0.0 and rows[-1]["t_s"] >= res.window_s
    assert all(0.0 <= r["t_s"] <= res.window_s for r in rows[1:-1])
    assert set(rows[0]) >= {"t_s", "power_w", "energy_j", "sm_clock_mhz", "temperature_c", "power_limit_w", "throttle_reasons"}
    assert res.telemetry["power_w_median"] == 42.0
    assert s.trace_rows(win) == rows and s.telemetry(win) == res.telemetry


def test_null_reader_window_is_none_never_zero() -> None:
    r = NullReader("device", reason="nothing here")
    assert r.energy_j() is None and not r.has_energy_counter
    smp = r.sample()
    assert smp.power_w is None and smp.energy_j is None and smp.t_s > 0
    assert r.describe()["note"] == "not measured" and r.describe()["reason"] == "nothing here"
    with measure_window(r) as win:
        time.sleep(0.05)
    res = win.result_for(r)
    assert res.method == "none" and res.source == "none"
    assert res.energy_j is None and res.power_w is None
    assert "nothing here" in (res.note or "")


def test_measure_window_stops_its_own_sampler() -> None:
    r = FakeReader(lambda t: 10.0, counter=True)
    with measure_window(r) as win:
        time.sleep(0.1)
    assert win.sampler.running is False
    assert win.result.method == "counter"
    assert win.result.energy_j == pytest.approx(10.0 * win.result.window_s, abs=0.01)


def test_several_readers() -> None:
    a, b = FakeReader(lambda t: 10.0, counter=True), FakeReader(lambda t: 20.0)
    with Sampler([a, b]) as s:
        win = s.begin_window()
        time.sleep(0.1)
        with pytest.raises(ValueError):
            s.end_window(win)
        ra, rb = s.end_window_all(win)
    assert ra.method == "counter" and rb.method == "polled"
    assert rb.energy_j == pytest.approx(20.0 * rb.window_s)
    assert win.result_for(b) is rb
    rows = win.trace_rows()
    assert {r["reader_index"] for r in rows} == {0, 1}
    assert [r["power_w"] for r in win.trace_rows(1)] == [20.0] * len(win.trace_rows(1))
