"""Per-rack GFLOPS/W: hand-computed examples, every source rule, fallbacks and properties."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icb_bench.bench.rack import (
    RULES,
    DeviceLoad,
    MeterSeries,
    MeterSpec,
    RackInput,
    RackInputError,
    Reading,
    device_load,
    flops_in_window,
    rack_figure,
    site_figures,
    source_energy,
)

GOLDEN = Path(__file__).parent / "golden" / "measurement.json"
FLOPS_PER_BATCH = 1e12


def load(node: str, t0: float, t1: float, *, device: int = 0, batch_ms: float = 100.0, valid: bool = True,
         energy_j: float | None = None, grade: str = "assessment", dtype: str = "fp16") -> DeviceLoad:
    n = round((t1 - t0) * 1000 / batch_ms)
    return DeviceLoad(rack="R01", node=node, device=device, dtype=dtype, t_begin_s=t0, t_end_s=t1,
                      batch_time_ms=[batch_ms] * n, flops_per_batch=FLOPS_PER_BATCH, valid=valid, grade=grade,
                      energy_j=energy_j)


def alternating(k: int) -> float:
    """1000 W on odd readings, 1100 W on even ones."""
    return 1000.0 + 100.0 * (k % 2 == 0)


def meter(source: str, power: Callable[[int], float], *, ks: Sequence[int] = range(-3, 66), offset: float = 0.25,
          interval_s: float = 0.0, scope: str = "rack", accuracy: float = 0.01, resolution_w: float = 1.0,
          method: str = "polled", period_s: float | None = 1.0) -> MeterSeries:
    """Readings at t = k + offset (instantaneous), or covering [k + offset, k + offset + interval]."""
    spec = MeterSpec(source, scope, method, accuracy, resolution_w, interval_s, period_s)  # type: ignore[arg-type]
    return MeterSeries(spec, [Reading(k + offset, k + offset + interval_s, power_w=power(k)) for k in ks])


def rack(loads: list[DeviceLoad], *, nodes: Sequence[str] = ("n1", "n2"), expected: int | None = None,
         **kw: object) -> RackInput:
    return RackInput(rack="R01", nodes=list(nodes), devices_expected=len(loads) if expected is None else expected,
                     loads=loads, **kw)  # type: ignore[arg-type]


def two_devices(**kw: object) -> list[DeviceLoad]:
    """Device phases [0, 61] and [0.5, 61.5]: window [0.5, 61] (60.5 s), 605 batches each inside."""
    return [load("n1", 0.0, 61.0, **kw), load("n2", 0.5, 61.5, **kw)]  # type: ignore[arg-type]


# -- hand-computed examples ---------------------------------------------------------------------
def test_hand_computed_rack_meter_figure() -> None:
    inp = rack(two_devices(), rack_meters=[meter("pdu:R01/0", alternating)],
               idle=[meter("pdu:R01/0", lambda k: 200.0 + k % 3, ks=range(-100, -80))])
    r = rack_figure(inp, "fp16")
    assert (r["t_begin_s"], r["t_end_s"]) == (0.5, 61.0)
    assert r["window_s"] == pytest.approx(60.5)
    assert r["flops"] == pytest.approx(1210 * FLOPS_PER_BATCH, rel=1e-12)
    assert r["tflops"] == pytest.approx(20.0, rel=1e-12)
    # readings at 1.25 .. 60.25 are inside: 60 of them, half 1000 W and half 1100 W
    assert r["readings_inside"] == 60 and r["readings_dropped_at_edges"] == 0
    assert r["power_w"] == pytest.approx(1050.0)
    assert r["energy_j"] == pytest.approx(1050.0 * 60.5)
    assert r["gflops_per_w"] == pytest.approx(400 / 21, rel=1e-12)
    # u = 1 % ⊕ stdev/√n/mean ⊕ 1 W/√12/mean
    sd = statistics.stdev([1000.0] * 30 + [1100.0] * 30)
    u = math.sqrt(0.01**2 + (sd / math.sqrt(60) / 1050) ** 2 + (1 / math.sqrt(12) / 1050) ** 2)
    assert r["uncertainty_rel"] == pytest.approx(u, rel=1e-12)
    assert r["gflops_per_w_low"] == pytest.approx(400 / 21 * (1 - 2 * u))
    assert r["gflops_per_w_high"] == pytest.approx(400 / 21 * (1 + 2 * u))
    assert r["idle_power_w"] == pytest.approx(201.0)  # 200 + k % 3 for k = -100..-81: 2,0,1 six times, then 2,0
    assert (r["status"], r["valid"], r["reason"], r["grade"]) == ("ok", True, None, "assessment")
    assert (r["assurance"], r["power_scope"], r["power_method"], r["power_sources"]) == \
        ("rack-meter", "rack", "polled", ["pdu:R01/0"])
    assert r["phases_aligned"] is True and r["phase_spread_s"] == pytest.approx(0.5)
    assert r["devices"] == r["devices_expected"] == r["devices_valid"] == 2
    assert r["alternatives"] == []


def test_partial_batches_at_the_edges_are_pro_rated() -> None:
    a, b = load("n1", 0.0, 61.0), load("n2", 0.55, 61.55)
    # window [0.55, 61]: a has 604 whole batches + half of [0.5, 0.6]; b 604 + half of [60.95, 61.05]
    assert flops_in_window(a, 0.55, 61.0) == pytest.approx(604.5 * FLOPS_PER_BATCH, rel=1e-12)
    assert flops_in_window(b, 0.55, 61.0) == pytest.approx(604.5 * FLOPS_PER_BATCH, rel=1e-12)
    r = rack_figure(rack([a, b], rack_meters=[meter("pdu", alternating)]), "fp16")
    assert r["flops"] == pytest.approx(1209 * FLOPS_PER_BATCH, rel=1e-12)


def test_batch_times_are_stretched_over_the_core_phase() -> None:
    # 570 × 100 ms of device time in a 60 s phase (host gaps): the phase holds every FLOP, half of it half
    ld = DeviceLoad("R01", "n1", 0, "fp16", 10.0, 70.0, [100.0] * 570, FLOPS_PER_BATCH, True, "assessment")
    assert flops_in_window(ld, 10.0, 70.0) == pytest.approx(ld.flops_total, rel=1e-12)
    assert flops_in_window(ld, 10.0, 40.0) == pytest.approx(ld.flops_total / 2, rel=1e-12)
    assert flops_in_window(ld, 0.0, 10.0) == 0.0


@settings(max_examples=80, deadline=None)
@given(bt=st.lists(st.floats(1.0, 500.0), min_size=1, max_size=50), stretch=st.floats(0.9, 1.2),
       a=st.floats(-5.0, 30.0), length=st.floats(0.0, 30.0))
def test_flops_in_window_is_the_overlap_of_every_batch(bt: list[float], stretch: float, a: float, length: float) -> None:
    phase_s = sum(bt) / 1e3 * stretch
    ld = DeviceLoad("R01", "n1", 0, "fp16", 1.0, 1.0 + phase_s, bt, 3.0, True, "smoke")
    # reference: each batch's share of its (stretched) interval that lies inside the window
    ends = [1.0 + sum(bt[: j + 1]) / 1e3 * stretch for j in range(len(bt))]
    begins = [1.0, *ends[:-1]]
    want = sum(3.0 * max(0.0, min(e, a + length) - max(b, a)) / (e - b) for b, e in zip(begins, ends))
    assert flops_in_window(ld, a, a + length) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_device_load_from_a_measurement_record() -> None:
    m = json.loads(GOLDEN.read_text())
    ld = device_load(m, rack="R01", node="node01", t_begin_s=100.0, t_end_s=100.0 + m["core_phase_s"])
    assert ld.flops_total == m["flops_total"]
    assert ld.flops_per_batch == m["flops_per_gemm"] * m["samples"]["iters_per_batch"]
    assert (ld.energy_j, ld.valid, ld.grade, ld.dtype, ld.device) == (42700.0, True, "assessment", "fp16", 0)
    m["flops_total"] += 1e6
    with pytest.raises(RackInputError, match="flops_total"):
        device_load(m, rack="R01", node="node01", t_begin_s=100.0, t_end_s=161.0)
    del m["samples"]
    with pytest.raises(RackInputError, match="samples.batch_time_ms"):
        device_load(m, rack="R01", node="node01", t_begin_s=100.0, t_end_s=161.0)


# -- source rules ------------------------------------------------------------------------------
def test_readings_straddling_an_edge_are_dropped() -> None:
    # 1 s averages over [k + 0.25, k + 1.25]: k = 0 and k = 60 straddle the window [0.5, 61]
    spikes = lambda k: 5000.0 if k in (0, 60) else alternating(k)  # noqa: E731
    se = source_energy(meter("pdu", spikes, interval_s=1.0), 0.5, 61.0)
    assert (se.status, se.readings_inside, se.readings_dropped_at_edges) == ("ok", 59, 2)
    inside = [alternating(k) for k in range(1, 60)]
    assert se.energy_j == pytest.approx(statistics.fmean(inside) * 60.5)


def test_an_interval_touching_an_edge_is_outside_not_dropped() -> None:
    se = source_energy(meter("pdu", alternating, offset=0.0, interval_s=1.0), 1.0, 61.0)
    assert (se.readings_inside, se.readings_dropped_at_edges) == (60, 0)


@pytest.mark.parametrize(
    ("window", "kw", "why"),
    [
        ((0.5, 8.0), {}, "7 readings inside the 7.5 s window (at least 10 required"),
        ((0.5, 61.0), {"ks": range(-3, 66, 7), "period_s": None}, "one reading every 7 s"),
        ((0.5, 61.0), {"interval_s": 10.0, "offset": 0.0, "ks": range(-10, 70, 10), "period_s": 10.0}, "averages 10 s"),
    ],
)
def test_too_few_or_too_coarse_readings_are_insufficient(window: tuple[float, float], kw: dict, why: str) -> None:
    se = source_energy(meter("pdu", lambda k: 1000.0 + k, **kw), *window)
    assert se.status == "insufficient" and why in (se.reason or "")
    assert se.energy_j is None


def test_short_window_rack_is_insufficient_with_no_figure() -> None:
    inp = rack([load("n1", 0.0, 8.0, grade="smoke")], nodes=["n1"], rack_meters=[meter("pdu", alternating)])
    r = rack_figure(inp, "fp16")
    assert (r["status"], r["valid"], r["gflops_per_w"], r["energy_j"], r["grade"]) == ("insufficient", False, None, None, "smoke")
    assert "rack-meter" in r["reason"] and r["tflops"] == pytest.approx(10.0)  # 1e12 FLOPs per 100 ms


def test_dead_source_mid_window_is_missing() -> None:
    dead = meter("pdu", alternating, ks=range(-3, 30))
    failed = [Reading(t + 0.25, t + 0.25, ok=False, error="TimeoutError: no answer") for t in range(30, 66)]
    with_errors = MeterSeries(dead.spec, [*dead.readings, *failed])
    se = source_energy(with_errors, 0.5, 61.0)
    assert se.status == "missing" and "stopped answering" in se.reason and "TimeoutError" in se.reason
    # the same death with no failed reads recorded: the gap gives it away
    se = source_energy(dead, 0.5, 61.0)
    assert se.status == "missing" and "gap without a new reading" in se.reason


def test_a_gap_of_more_than_three_periods_is_missing_and_three_is_not() -> None:
    gap4 = meter("pdu", alternating, ks=[k for k in range(-3, 66) if k not in (20, 21, 22)])
    assert source_energy(gap4, 0.5, 61.0).status == "missing"
    gap3 = meter("pdu", alternating, ks=[k for k in range(-3, 66) if k not in (20, 21)])
    assert source_energy(gap3, 0.5, 61.0).status == "ok"


def test_frozen_value_is_stale() -> None:
    se = source_energy(meter("pdu", lambda k: 1234.0), 0.5, 61.0)
    assert se.status == "missing" and "stale" in se.reason and "1234" in se.reason


def test_a_reading_time_that_stays_put_is_stale() -> None:
    # a BMC that serves one cached reading (same ReadingTime) however often it is polled
    cached = meter("bmc", lambda k: 1234.0)
    stamped = MeterSeries(cached.spec, [Reading(r.t_begin_s, r.t_end_s, power_w=r.power_w, source_time="2026-12-01T09:00:00Z")
                                        for r in cached.readings])
    se = source_energy(stamped, 0.5, 61.0)
    assert se.status == "missing" and "reading time stayed" in se.reason


def test_counter_source_interpolates_both_edges() -> None:
    spec = MeterSpec("pdu:kwh", "rack", "counter", 0.01, period_s=1.0, resolution_j=36.0)
    reads = [Reading(t, t, energy_j=5e6 + 1000.0 * t) for t in range(-2, 64)]
    se = source_energy(MeterSeries(spec, reads), 0.5, 61.0)
    assert se.status == "ok" and se.energy_j == pytest.approx(60500.0, rel=1e-12)
    # constant power: no edge term; accuracy ⊕ two quantised reads
    assert se.u_energy_j == pytest.approx(math.hypot(0.01 * 60500, 36 / math.sqrt(6)), rel=1e-9)
    # no read after the end: the end is not bracketed
    se = source_energy(MeterSeries(spec, [r for r in reads if r.t_begin_s <= 60]), 0.5, 61.0)
    assert se.status == "missing" and "end" in se.reason
    # the first read after the begin 4.5 s late (> 3 periods): interpolating across it is not measuring
    sparse = [r for r in reads if not 0 < r.t_begin_s < 5]
    se = source_energy(MeterSeries(spec, sparse), 0.5, 61.0)
    assert se.status == "missing" and "within 3 s on both sides of the window's begin" in se.reason
    frozen = [Reading(t, t, energy_j=5e6) for t in range(-2, 64)]
    assert "stale" in source_energy(MeterSeries(spec, frozen), 0.5, 61.0).reason
    backwards = [Reading(t, t, energy_j=5e6 + 1000.0 * t - (1e5 if t >= 30 else 0)) for t in range(-2, 64)]
    assert "backwards" in source_energy(MeterSeries(spec, backwards), 0.5, 61.0).reason


# -- several sources and fallbacks -------------------------------------------------------------
def test_two_pdus_are_summed_with_uncertainties_in_quadrature() -> None:
    a = meter("pdu:R01/A", lambda k: 600.0 + 20 * (k % 2))
    b = meter("pdu:R01/B", lambda k: 450.0 + 10 * (k % 2), accuracy=0.02)
    r = rack_figure(rack(two_devices(), rack_meters=[a, b]), "fp16")
    ea, eb = (source_energy(s, 0.5, 61.0) for s in (a, b))
    assert r["energy_j"] == pytest.approx(ea.energy_j + eb.energy_j)
    assert r["power_w"] == pytest.approx(610.0 + 455.0)
    assert r["uncertainty_rel"] == pytest.approx(math.hypot(ea.u_energy_j, eb.u_energy_j) / r["energy_j"])
    assert r["power_sources"] == ["pdu:R01/A", "pdu:R01/B"] and r["readings_inside"] == 120
    # one feed dead: the rack meter (both feeds) fails as a whole, never one feed passed off as the rack
    dead_b = meter("pdu:R01/B", lambda k: 450.0 + 10 * (k % 2), ks=range(-3, 20))
    r = rack_figure(rack(two_devices(), rack_meters=[a, dead_b]), "fp16")
    assert (r["status"], r["gflops_per_w"]) == ("missing", None) and "pdu:R01/B" in r["reason"]


def _node_meters(**per_node: Callable[[int], float]) -> dict[str, list[MeterSeries]]:
    return {n: [meter(f"bmc:{n}", p, scope="node", accuracy=0.02)] for n, p in per_node.items()}


def test_node_meters_replace_a_dead_pdu() -> None:
    dead = meter("pdu", alternating, ks=range(-3, 30))
    nodes = _node_meters(n1=lambda k: 500.0 + k % 2, n2=lambda k: 520.0 + k % 2)
    r = rack_figure(rack(two_devices(energy_j=30500.0), rack_meters=[dead], node_meters=nodes), "fp16")
    assert (r["status"], r["assurance"], r["power_scope"], r["valid"]) == ("ok", "node-meters", "node", True)
    assert r["power_w"] == pytest.approx(500.5 + 520.5)
    assert r["power_sources"] == ["bmc:n1", "bmc:n2"]
    alt = {a["assurance"]: a for a in r["alternatives"]}
    assert alt["rack-meter"]["status"] == "missing" and alt["rack-meter"]["gflops_per_w"] is None
    assert alt["device-counters"]["status"] == "ok" and alt["device-counters"]["gflops_per_w"] is not None
    assert any("fell back to node-meters" in n for n in r["notes"])


def test_device_counters_when_a_node_has_no_meter() -> None:
    # device energy 36,600 J over a 61 s phase = 600 W: 600 × 60.5 in the window for each
    nodes = _node_meters(n1=lambda k: 500.0 + k % 2)
    r = rack_figure(rack(two_devices(energy_j=36600.0), node_meters=nodes), "fp16")
    assert (r["status"], r["assurance"], r["power_scope"], r["power_method"]) == ("ok", "device-counters", "device", "counter")
    assert r["energy_j"] == pytest.approx(2 * 600.0 * 60.5)
    assert r["gflops_per_w"] == pytest.approx(1210e12 / (1200 * 60.5) / 1e9)
    assert r["uncertainty_rel"] == pytest.approx(0.05 / math.sqrt(2))
    assert r["power_sources"] == ["device:n1/0", "device:n2/0"]
    assert [a["assurance"] for a in r["alternatives"]] == ["node-meters"]
    assert "node n2 has no node meter" in r["alternatives"][0]["reason"]


def test_no_power_source_at_all_is_missing() -> None:
    r = rack_figure(rack(two_devices()), "fp16")
    assert r["status"] == "missing" and "no power source" in r["reason"] and r["tflops"] == pytest.approx(20.0)


def test_pdu_below_the_devices_own_power_is_implausible() -> None:
    # a rack meter reading 50 W while the devices draw 600 W each
    low = meter("pdu", lambda k: 50.0 + k % 2)
    r = rack_figure(rack(two_devices(energy_j=36600.0), rack_meters=[low]), "fp16")
    assert r["assurance"] == "device-counters"
    rm = r["alternatives"][0]
    assert rm["status"] == "missing" and rm["reason"].startswith("implausible:")
    assert r["best_device_gflops_per_w"] == pytest.approx(605e12 / (600 * 60.5) / 1e9)


def test_zero_energy_is_implausible() -> None:
    r = rack_figure(rack(two_devices(energy_j=0.0)), "fp16")
    assert r["status"] == "missing" and "implausible" in r["reason"]


# -- devices -------------------------------------------------------------------------------------
def test_misaligned_phases_are_flagged() -> None:
    loads = [load("n1", 0.0, 61.0), load("n2", 1.5, 62.5)]
    r = rack_figure(rack(loads, rack_meters=[meter("pdu", alternating)]), "fp16")
    assert r["phases_aligned"] is False and r["phase_spread_s"] == pytest.approx(1.5)
    assert any("not aligned" in n for n in r["notes"])
    assert (r["t_begin_s"], r["t_end_s"]) == (1.5, 61.0)


def test_non_overlapping_phases_give_no_figure() -> None:
    loads = [load("n1", 0.0, 30.0), load("n2", 31.0, 61.0)]
    r = rack_figure(rack(loads, rack_meters=[meter("pdu", alternating)]), "fp16")
    assert r["status"] == "missing" and "do not overlap" in r["reason"] and r["flops"] is None


def test_missing_device_makes_the_figure_invalid() -> None:
    r = rack_figure(rack(two_devices(), expected=3, rack_meters=[meter("pdu", alternating)]), "fp16")
    assert (r["status"], r["valid"], r["devices"], r["devices_expected"]) == ("ok", False, 2, 3)
    assert "1 device(s) missing" in r["reason"]


def test_invalid_device_counts_zero_flops_and_invalidates() -> None:
    loads = [load("n1", 0.0, 61.0), load("n2", 0.5, 61.5, valid=False)]
    r = rack_figure(rack(loads, rack_meters=[meter("pdu", alternating)]), "fp16")
    assert r["flops"] == pytest.approx(605 * FLOPS_PER_BATCH, rel=1e-12)
    assert (r["status"], r["valid"], r["devices_valid"]) == ("ok", False, 1)
    assert "invalid device(s), counted as 0 FLOPs: n2/0" in r["reason"]


def test_dtypes_are_separate_and_an_unmeasured_dtype_is_missing() -> None:
    loads = [*two_devices(), load("n1", 100.0, 161.0, dtype="fp32", batch_ms=1000.0)]
    inp = rack(loads, expected=2, rack_meters=[meter("pdu", alternating, ks=range(-3, 170))])
    fp32 = rack_figure(inp, "fp32")
    assert fp32["devices"] == 1 and fp32["t_begin_s"] == 100.0 and not fp32["valid"]
    assert "no device" in rack_figure(inp, "int8")["reason"]


def test_site_figures_sum_racks() -> None:
    ok = rack_figure(rack(two_devices(), rack_meters=[meter("pdu", alternating)]), "fp16")
    short = rack_figure(rack([load("n1", 0.0, 8.0)], nodes=["n1"], rack_meters=[meter("pdu", alternating)]), "fp16")
    none = rack_figure(rack(two_devices(), expected=4), "fp16")
    s = site_figures([ok, short, none])["dtypes"]["fp16"]
    assert (s["racks"], s["ok"], s["insufficient"], s["missing"], s["valid"]) == (3, 1, 1, 1, 1)
    assert s["tflops"] == pytest.approx(20.0 + 10.0 + 20.0) and s["tflops_valid"] == pytest.approx(20.0)
    assert (s["devices"], s["devices_expected"]) == (5, 2 + 1 + 4)


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: load("n1", 10.0, 5.0), r"t_end_s: got 5\.0; expected a time after"),
        (lambda: DeviceLoad("R01", "n1", 0, "fp16", 0, 1, [], 1.0, True, "smoke"), "batch_time_ms"),
        (lambda: DeviceLoad("R01", "n1", 0, "fp16", 0, 1, [1.0, -2.0], 1.0, True, "smoke"), "batch_time_ms"),
        (lambda: Reading(2.0, 1.0), r"reading\.t_end_s"),
        (lambda: Reading(0.0, 0.0, power_w=float("nan")), r"reading\.power_w"),
        (lambda: MeterSpec("x", "row", "polled", 0.01), r"scope: got 'row'"),
        (lambda: MeterSpec("x", "rack", "polled", -0.01), "accuracy_rel"),
        (lambda: rack([load("n9", 0.0, 61.0)]), r"node: got 'n9'; expected one of the rack's nodes"),
        (lambda: rack([load("n1", 0.0, 61.0), load("n1", 0.0, 61.0)]), "one load per node"),
        (lambda: rack([], expected=-1), "devices_expected"),
    ],
)
def test_bad_input_is_one_clear_error(make: Callable[[], object], match: str) -> None:
    with pytest.raises(RackInputError, match=match):
        make()


# -- properties ------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(power_w=st.floats(10.0, 1e5), t0=st.floats(0.0, 50.0), length_s=st.floats(15.0, 300.0),
       period_s=st.floats(0.1, 1.0), phase=st.floats(0.0, 1.0), resolution_w=st.floats(0.5, 10.0),
       interval=st.booleans())
def test_constant_power_energy_is_power_times_window(power_w: float, t0: float, length_s: float, period_s: float,
                                                     phase: float, resolution_w: float, interval: bool) -> None:
    # a steady load read as P ± half a resolution step (a meter's last digit flickers)
    n = int((length_s + 10) / period_s) + 2
    iv = period_s if interval else 0.0
    spec = MeterSpec("pdu", "rack", "polled", 0.01, resolution_w, iv, period_s)
    times = [t0 - 3 + (i + phase) * period_s for i in range(n)]
    reads = [Reading(t, t + iv, power_w=power_w + (resolution_w / 2) * (-1) ** i) for i, t in enumerate(times)]
    se = source_energy(MeterSeries(spec, reads), t0, t0 + length_s)
    assert se.status == "ok"
    assert abs(se.energy_j - power_w * length_s) <= resolution_w / 2 * length_s * (1 + 1e-9)


@settings(max_examples=60, deadline=None)
@given(energies=st.lists(st.floats(1e3, 1e5), min_size=1, max_size=6), pdu_w=st.floats(1.0, 5e4),
       shifts=st.lists(st.floats(0.0, 0.7), min_size=6, max_size=6))
def test_figure_never_exceeds_the_best_device(energies: list[float], pdu_w: float, shifts: list[float]) -> None:
    loads = [load(f"n{i}", s, s + 61.0, energy_j=e) for i, (e, s) in enumerate(zip(energies, shifts))]
    inp = RackInput("R01", [ld.node for ld in loads], len(loads), loads,
                    rack_meters=[meter("pdu", lambda k: pdu_w + k % 2)])
    r = rack_figure(inp, "fp16")
    assert r["status"] == "ok"  # a PDU below the devices falls back to their counters
    assert r["gflops_per_w"] <= r["best_device_gflops_per_w"] * (1 + RULES.plausibility_rel_tol)


@settings(max_examples=60, deadline=None)
@given(powers=st.lists(st.floats(100.0, 2000.0), min_size=70, max_size=70),
       drop=st.sets(st.integers(0, 69), max_size=20), fail=st.sets(st.integers(0, 69), max_size=5))
def test_dropping_readings_never_creates_energy(powers: list[float], drop: set[int], fail: set[int]) -> None:
    spec = MeterSpec("pdu", "rack", "polled", 0.01, 0.0, 0.0, 1.0)
    full = [Reading(k - 3.5, k - 3.5, power_w=p) for k, p in enumerate(powers)]
    t0, t1 = 0.0, 60.0
    base = source_energy(MeterSeries(spec, full), t0, t1)
    # readings that never arrived: whatever remains is bounded by the powers read inside
    kept = [r for k, r in enumerate(full) if k not in drop]
    thinned = source_energy(MeterSeries(spec, kept), t0, t1)
    if thinned.status == "ok":
        inside = [r.power_w for r in kept if t0 <= r.t_begin_s <= t1]
        assert min(inside) * (t1 - t0) * (1 - 1e-12) <= thinned.energy_j <= max(inside) * (t1 - t0) * (1 + 1e-12)
    # reads that failed: never turn a refused source into a figure, never change an accepted one
    failed = [Reading(r.t_begin_s, r.t_end_s, ok=False, error="x") if k in fail else r for k, r in enumerate(full)]
    broken = source_energy(MeterSeries(spec, failed), t0, t1)
    if broken.status == "ok":
        assert base.status == "ok" and broken.energy_j == base.energy_j
    if base.status != "ok":
        assert broken.status != "ok"
