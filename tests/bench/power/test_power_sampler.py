"""Sampler: polling rate and cost, trapezoid integration, window methods and fallbacks."""

from __future__ import annotations

import time

import pytest
from power_fakes import FakeReader

from icb_bench.bench.power import NullReader, PowerError, PowerSample, Sampler, integrate_power, measure_window
from icb_bench.bench.power.coverage import CoverageRule, ReadError, judge


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


# -- coverage: only readings inside the window count ---------------------------------------------
def P(t: float, p: float, stamp: str | None = None) -> PowerSample:
    return PowerSample(t_s=t, power_w=p, source_time=stamp)


def test_coverage_default_rule_on_a_60s_window_at_1hz() -> None:
    live = [P(t, 500.0 + (t % 7)) for t in range(-1, 62)]  # one reading a second, moving
    cov = judge(live, 0.0, 60.0, interval_s=1.0)
    assert cov.ok and cov.reason is None and cov.readings_inside == 61 and cov.readings_required == 29
    assert cov.gap_limit_s == 4.0  # 4 intervals of 1 s


def test_coverage_held_value_across_an_empty_window_gives_no_figure() -> None:
    # the BMC's last answer came before the window; nothing inside it (the bug: this gave a figure)
    held = [P(-5.0, 500.0), P(-4.0, 510.0)]
    errors = [ReadError(t, "PowerError: connection refused") for t in (0.5, 10.0, 30.0)]
    cov = judge(held, 0.0, 60.0, interval_s=1.0, errors=errors)
    assert not cov.ok and cov.readings_inside == 0
    assert "source stopped answering at t=+0.5 s" in cov.reason and "connection refused" in cov.reason
    assert "0 readings inside the 60.0 s window (at least 29 required" in cov.reason
    assert "60.0 s gap without a new reading before the first reading" in cov.reason
    # without errors (the thread was not polling) the empty window still gives nothing
    assert not judge(held, 0.0, 60.0, interval_s=1.0).ok


def test_coverage_errors_inside_a_well_covered_window_give_no_figure() -> None:
    live = [P(t / 2, 400.0 + t) for t in range(0, 121)]
    cov = judge(live, 0.0, 60.0, interval_s=0.5, errors=[ReadError(30.2, "PowerError: HTTP 503")])
    assert not cov.ok and "1 read error(s) inside the window, the first at t=+30.2 s (PowerError: HTTP 503)" in cov.reason


def test_coverage_gap_and_too_few_readings() -> None:
    gappy = [P(t, 400.0 + t) for t in list(range(0, 20)) + list(range(30, 61))]
    cov = judge(gappy, 0.0, 60.0, interval_s=1.0)
    assert not cov.ok and "a 11.0 s gap without a new reading after the reading at t=+19.0 s (limit 4 s)" in cov.reason
    sparse = [P(t, 400.0 + t) for t in range(0, 61, 4)]  # one reading in 4 s where 1 Hz was promised
    cov = judge(sparse, 0.0, 60.0, interval_s=1.0)
    assert not cov.ok and "16 readings inside the 60.0 s window (at least 29 required at one per 1 s)" in cov.reason
    assert judge(sparse, 0.0, 60.0, interval_s=1.0, rule=CoverageRule(min_samples=10, max_gap_intervals=5)).ok


def test_coverage_stale_value_and_stale_timestamp() -> None:
    frozen = [P(t, 512.0) for t in range(0, 61)]
    cov = judge(frozen, 0.0, 60.0, interval_s=1.0)
    assert not cov.ok and cov.stale and "stale source: every one of the 61 readings" in cov.reason
    assert judge(frozen[:6], 0.0, 5.0, interval_s=1.0).ok  # 5 s < stale_after_s: a short steady window is not judged
    # the source's own timestamp: it moves -> live even at a constant value; it stays -> stale
    ticking = [P(t, 512.0, f"T{t}") for t in range(0, 61)]
    assert judge(ticking, 0.0, 60.0, interval_s=1.0).ok
    stuck = [P(t, 512.0, "T0") for t in range(0, 61)]
    cov = judge(stuck, 0.0, 60.0, interval_s=1.0)
    assert not cov.ok and "its reading time stayed 'T0'" in cov.reason and cov.readings_inside == 1
    # polled 4x per source update: each timestamp counts once
    quad = [P(t / 4, 512.0, f"T{t // 4}") for t in range(0, 241)]
    cov = judge(quad, 0.0, 60.0, interval_s=1.0)
    assert cov.ok and cov.polls_inside == 241 and cov.readings_inside == 61


def test_coverage_rule_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="min_fraction"):
        CoverageRule(min_fraction=0.0)
    with pytest.raises(ValueError, match="positive"):
        CoverageRule(max_gap_floor_s=0.0)


class Dying(FakeReader):
    """Answers until ``dead`` is set, then raises like a BMC that went away."""

    dead = False

    def sample(self) -> PowerSample:
        if self.dead:
            raise PowerError("Redfish: GET /redfish/v1/Chassis/1/Power at http://127.0.0.1:1 failed (connection refused)")
        return super().sample()


def test_source_dead_before_an_after_the_fact_window_gives_no_figure() -> None:
    r = Dying(lambda t: 300.0 + 100.0 * t)
    with Sampler(r, hz=50.0) as s:
        t0 = time.monotonic()
        time.sleep(0.6)
        first = s.window_between(t0, time.monotonic())
        r.dead = True
        t1 = time.monotonic()
        time.sleep(0.6)
        second = s.window_between(t1, time.monotonic())
    assert first.result.method == "polled" and first.result.energy_j is not None
    res = second.result
    assert res.method == "none" and res.energy_j is None and res.power_w is None
    assert "source stopped answering" in res.note and "connection refused" in res.note
    assert res.telemetry["coverage"]["readings_inside"] == 0


def test_after_the_fact_counter_needs_readings_near_both_edges() -> None:
    class CounterDies(Dying):
        def sample(self) -> PowerSample:
            smp = super().sample()
            return PowerSample(t_s=smp.t_s, power_w=smp.power_w, energy_j=self.energy_j())

    r = CounterDies(lambda t: 200.0, counter=True)
    with Sampler(r, hz=50.0) as s:
        t0 = time.monotonic()
        time.sleep(0.4)
        t_end = time.monotonic()
        time.sleep(0.2)  # as the ScopeMonitor does: let readings after the end arrive
        ok = s.window_between(t0, t_end).result
        r.dead = True
        time.sleep(1.5)  # longer than the 1 s gap limit: the last counter reading is too old for the next edge
        t1 = time.monotonic()
        time.sleep(0.3)
        dead = s.window_between(t1, time.monotonic()).result
    assert ok.method == "counter" and ok.energy_j == pytest.approx(200.0 * ok.window_s, rel=0.02)
    assert dead.method == "none" and dead.energy_j is None
    assert "no counter readings within 1 s on both sides of an edge" in dead.note
