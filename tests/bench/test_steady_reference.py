"""The steady-state, drift and operating-point judgements replayed on real H100 SXM data:
``results/reference/2026-11-26-h100-sxm*/reference`` (NOTES.md there). Each core phase's trace
(NVML at 20 Hz: power, limit, temperature, SM clock, clock-event mask) and its per-batch times
(back-to-back graph replays, so batch ``i`` ends at the sum of the first ``i`` batch times;
wall/events 0.999) go through the product's own functions with the default rules."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from icb_bench.bench.load_check import WindowLoad, cap_summary, operating_point
from icb_bench.bench.power.nvml import NvmlReader
from icb_bench.bench.record import read_trace
from icb_bench.bench.runner import warm_until_steady
from icb_bench.bench.steady import Reading, SteadyRule, drift, judge_steady, readings_from

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
FINAL = REFERENCE / "2026-11-26-h100-sxm-final" / "reference"
FIRST = REFERENCE / "2026-11-26-h100-sxm" / "reference"


@dataclass
class Phase:
    """One recorded core phase: its measurement, trace rows, readings and (t_s, TFLOPS) per batch."""

    measurement: dict[str, Any]
    rows: list[dict[str, Any]]
    readings: list[Reading]
    throughput: list[tuple[float, float]]

    @property
    def window_s(self) -> float:
        return float(self.measurement["core_phase_s"])


def load_phase(run_dir: Path, dtype: str) -> Phase:
    m = json.loads((run_dir / "measurements" / f"vm-d0-{dtype}.json").read_text(encoding="utf-8"))
    rows = read_trace(run_dir, m["trace_file"]).to_dict("records")
    per_batch = m["flops_per_gemm"] * m["samples"]["iters_per_batch"]
    times_ms = m["samples"]["batch_time_ms"]
    ends_s = itertools.accumulate(ms / 1e3 for ms in times_ms)
    return Phase(m, rows, readings_from(rows), [(t, per_batch / (ms * 1e-3) / 1e12) for t, ms in zip(ends_s, times_ms)])


@pytest.fixture(scope="module")
def fp16() -> Phase:
    return load_phase(FINAL, "fp16")


def window_load(phase: Phase) -> WindowLoad:
    """What the runner hands operating_point (bench/runner.py ``_operating_point``), from the record."""
    reader = NvmlReader(0)  # decoding the recorded masks needs no NVML
    inside = [r for r in phase.rows if 0.0 <= r["t_s"] <= phase.window_s]
    masks = [int(r["throttle_reasons"]) for r in inside]
    cap_reasons, cap_share = cap_summary(reader, masks)
    slowdowns = sorted({name for mask in masks for name in reader.decode_throttle(mask)})
    return WindowLoad(power_w=phase.measurement["power_w"], power_samples_w=[r["power_w"] for r in inside],
                      limits={"limit_w": phase.measurement["telemetry"]["power_limit_w"]},
                      cap_reasons=cap_reasons, cap_share=cap_share, throttle_reasons=slowdowns,
                      sm_clock_mhz_median=phase.measurement["telemetry"]["sm_clock_mhz_median"])


def test_the_replay_is_the_recorded_phase(fp16):
    """Guards the replay itself: the batch ends span the measured window and the figures match."""
    assert fp16.throughput[-1][0] == pytest.approx(fp16.window_s, abs=0.05)
    assert len(fp16.throughput) == fp16.measurement["tflops_stats"]["n"] == 572
    assert len(fp16.readings) == 1205 and fp16.readings[0].temperature_c == 61.0


def test_fp16_core_phase_is_at_the_power_limit_fully_loaded_not_throttled(fp16):
    op = operating_point(window_load(fp16))
    assert op["at_power_limit"] is True and op["power_cap_reasons"] == ["SwPowerCap"]
    assert op["power_cap_share"] == 1.0  # SwPowerCap in every sample of the window
    assert op["fully_loaded"] is True and op["load_rel"] == pytest.approx(697.6 / 700.0, abs=1e-3)
    assert op["throttled"] is False and op["throttle_reasons"] == []


def test_fp16_core_phase_is_not_steady_by_its_temperature_drift(fp16):
    d = drift(SteadyRule(), fp16.throughput, fp16.readings, 0.0, fp16.window_s)
    assert (d["temp_c_first"], d["temp_c_last"], d["temp_c_delta"]) == (63.0, 71.0, 8.0)
    # the throughput held (medians by time: +0.17 %), the power sat at its limit, the clock did not move
    assert d["tflops_rel"] == pytest.approx(0.0017, abs=5e-4)
    assert abs(d["power_w_delta"]) < 0.01 * 700.0 and d["sm_clock_mhz_delta"] == 0.0
    assert d["steady"] is False
    assert d["reason"] == "temperature moved +8.0 °C from the first sixth to the last (steady: within 2 °C)"


def test_fp16_window_is_never_steady_within_the_trace(fp16):
    """Judged at every batch end from 30 s (one full window) to the trace's end: throughput and
    power pass throughout; the temperature slope falls from 9.51 to 3.10 °C/min, never <= 2."""
    rule = SteadyRule()
    verdicts = [(t, judge_steady(rule, fp16.readings, fp16.throughput, t)) for t, _ in fp16.throughput
                if t >= rule.window_s]
    assert verdicts and not any(v.steady for _, v in verdicts)
    for _, v in verdicts:
        assert v.checks["at_power_limit"] is True and abs(v.checks["tflops_change_rel"]) <= rule.tflops_plateau_rel
    slopes = [v.checks["temp_slope_c_per_min"] for _, v in verdicts]
    assert slopes[0] == pytest.approx(9.51, abs=0.02) and slopes[-1] == pytest.approx(3.10, abs=0.02)
    assert min(slopes) > rule.temp_slope_c_per_min


def replay_warmup(phase: Phase, rule: SteadyRule, min_s: float, max_s: float) -> dict[str, Any]:
    """``warm_until_steady`` on the recorded phase as if it were the warm-up: each chunk is the
    next five batches (0.5 s, the runner's chunk) and the clock is the last batch's end."""
    batches = iter(phase.throughput)
    now = [0.0]

    def run_chunk() -> list[tuple[float, float]]:
        chunk = list(itertools.islice(batches, 5))
        now[0] = chunk[-1][0] if chunk else max_s  # out of data: the clock has reached max_s
        return chunk

    return warm_until_steady(run_chunk, lambda since: [r for r in phase.readings if r.t_s >= since], rule,
                             min_s, max_s, clock=lambda: now[0])


def test_warmup_on_the_fp16_trace_never_declares_steady_state(fp16):
    warm = replay_warmup(fp16, SteadyRule(), 30.0, fp16.window_s)
    assert warm["steady"] is False and warm["duration_s"] == pytest.approx(fp16.window_s, abs=0.11)
    assert "temperature changing +3.08 °C/min" in warm["reason"]


def test_warmup_on_a_card_already_warm_declares_steady_state():
    """The fp32 phases ran after fp16, the card already near 71 °C: the same rule is met within
    the warm-up's 90 s maximum (at its 30 s minimum in the final run, at 57.5 s in the first)."""
    rule = SteadyRule()
    final = replay_warmup(load_phase(FINAL, "fp32"), rule, 30.0, 90.0)
    assert final["steady"] is True and final["basis"] == "power-limit"
    assert final["duration_s"] == pytest.approx(30.1, abs=0.3)
    first = replay_warmup(load_phase(FIRST, "fp32"), rule, 30.0, 90.0)
    assert first["steady"] is True and first["duration_s"] == pytest.approx(57.5, abs=0.6)
    assert first["checks"]["temp_slope_c_per_min"] <= rule.temp_slope_c_per_min
