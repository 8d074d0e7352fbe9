"""The audit's arithmetic on synthetic measurements with power traces (the CPU here has no meter)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from icb_bench.bench import audit_figures as fig
from icb_bench.bench import record
from icb_bench.bench.plan import RunPlan
from icb_bench.bench.power.base import WindowEnergy
from icb_bench.bench.runner import build_measurement

MANIFEST = {"created_at": "2026-11-26T00:00:00.000Z", "finished_at": "2026-11-26T00:00:05.000Z",
            "plan": {"min_assessment_s": 60.0}}


def _trace(method: str, *, watts: float = 300.0, step_s: float = 0.05) -> list[dict]:
    rows = []
    for i in range(-1, 22):  # one sample before the window, 21 inside [0, 1], one after
        t = i * step_s if i < 21 else 1.0 + 0.02
        rows.append({"reader": "fake", "reader_index": 0, "t_s": t, "power_w": watts if method == "polled" else None,
                     "energy_j": 1000.0 + watts * t if method == "counter" else None, "sm_clock_mhz": None,
                     "mem_clock_mhz": None, "temperature_c": None, "power_limit_w": 700.0, "throttle_reasons": None})
    return rows


def _measurement(tmp_path: Path, method: str, energy_j: float = 300.0, rows: list[dict] | None = None) -> tuple[dict, Path]:
    run = tmp_path / "run"
    rel = record.write_trace(run, "h-d0-fp16", rows if rows is not None else _trace(method))
    timed = SimpleNamespace(batch_time_ms=[100.0] * 9 + [95.0], iters_per_batch=4, wall_s=1.01, method="events")
    window = WindowEnergy(scope="device", method=method, source="fake", window_s=1.0, energy_j=energy_j,
                          power_w=energy_j / 1.0, n_samples=21, sample_hz=21.0)
    m = build_measurement(
        plan=RunPlan.build("cuda", (0,), ("fp16",)), host="h", index=0, seq=0,
        dtype_spec={"name": "fp16", "inputs": "float16", "accumulate": "float32", "output": "float16"},
        device_info={}, shape=(1024, 1024, 1024), shape_search=[], timed=timed, window=window, telemetry={},
        correctness={"valid": True, "freivalds": {"passed": True, "time_s": 0.01}}, mode_probe={"passed": True},
        numeric_mode={}, peak=None, started_at="2026-11-26T00:00:01.000Z", ended_at="2026-11-26T00:00:02.100Z",
        trace_file=rel, core_window=(50.0, 51.0))
    return m, run


def _all(m: dict, run: Path) -> list[str]:
    raw = fig.raw_fields(m)
    assert not isinstance(raw, str), raw
    problems, found = fig.check_throughput(m, *raw)
    problems += fig.check_window(m, raw[0], MANIFEST)
    more, _ = fig.check_energy(m, run, found["flops_total"])
    return problems + more + fig.check_validity(m)


@pytest.mark.parametrize("method", ["polled", "counter"])
def test_consistent_measurement_passes(tmp_path: Path, method: str) -> None:
    m, run = _measurement(tmp_path, method)
    assert _all(m, run) == []
    _, found = fig.check_energy(m, run, m["flops_total"])
    assert found["energy_j"] == pytest.approx(300.0) and found["gflops_per_w"] == pytest.approx(m["gflops_per_w"])


@pytest.mark.parametrize("method", ["polled", "counter"])
def test_energy_edited_with_its_figures_fails_against_the_trace(tmp_path: Path, method: str) -> None:
    m, run = _measurement(tmp_path, method, energy_j=240.0)  # 20 % less than the trace holds
    problems = _all(m, run)
    assert len(problems) == 1 and "energy_j 240" in problems[0]


def test_power_above_the_device_limit_fails(tmp_path: Path) -> None:
    rows = _trace("polled")
    rows[5]["power_w"] = 900.0  # limit 700 W; 1.25 × 700 = 875 W
    m, run = _measurement(tmp_path, "polled", rows=rows)
    assert any("outside 0..875 W" in p for p in _all(m, run))


def test_trace_samples_outside_the_window_and_counts(tmp_path: Path) -> None:
    rows = _trace("polled") + [dict(_trace("polled")[-1], t_s=1.5), dict(_trace("polled")[-1], t_s=2.0)]
    m, run = _measurement(tmp_path, "polled", rows=rows)
    assert any("3 after the window" in p for p in _all(m, run))
    m, run = _measurement(tmp_path / "b", "polled", rows=_trace("polled")[:12] + _trace("polled")[-1:])
    assert any("samples inside the window, the record says 21" in p for p in _all(m, run))


def test_counter_going_backwards_fails(tmp_path: Path) -> None:
    rows = _trace("counter")
    rows[8]["energy_j"] = 0.0
    m, run = _measurement(tmp_path, "counter", rows=rows)
    assert any("goes backwards" in p for p in _all(m, run))


def test_edited_figures_each_named(tmp_path: Path) -> None:
    m, run = _measurement(tmp_path, "polled")
    m["tflops"] *= 1.1
    m["gflops_per_w"] *= 1.1
    m["grade"] = "assessment"
    m["ended_at"] = "2026-11-26T00:10:00.000Z"
    m["samples"]["batch_time_ms"].append(100.0)  # a batch more than the timing says
    problems = " | ".join(_all(m, run))
    for text in ("is not the median", "timing says 10 batches", "grade 'assessment'", "started_at..ended_at",
                 "ended_at is after the record was finished"):
        assert text in problems, text


def test_validity_follows_from_correctness(tmp_path: Path) -> None:
    m, run = _measurement(tmp_path, "polled")
    m["correctness"]["freivalds"]["passed"] = False
    assert any("valid is true" in p for p in fig.check_validity(m))
    del m["correctness"]["freivalds"]
    assert any("no Freivalds result" in p for p in fig.check_validity(m))
    assert "positive batch times" in fig.raw_fields({"samples": {"batch_time_ms": [1.0, -2.0], "iters_per_batch": 1}})
