"""Golden file for the measurement object, and the node aggregates built from measurements."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from icb_bench.bench.orchestrate import node_aggregates
from icb_bench.bench.plan import MIN_ASSESSMENT_S, RunPlan
from icb_bench.bench.power.base import WindowEnergy
from icb_bench.bench.runner import build_measurement, summarize

GOLDEN = Path(__file__).parent / "golden" / "measurement.json"


def _measurement(core_s: float = 61.0, energy_j: float | None = 42700.0, valid: bool = True) -> dict:
    plan = RunPlan.build("cuda", (0,), ("fp16",), seed=7)
    timed = SimpleNamespace(batch_time_ms=[100.0, 110.0, 90.0, 100.0], iters_per_batch=40, wall_s=0.401,
                            method="graph-replay+events")
    window = WindowEnergy(scope="device", method="counter", source="nvml:nvmlDeviceGetTotalEnergyConsumption",
                          window_s=core_s, energy_j=energy_j, power_w=(energy_j / core_s) if energy_j else None,
                          n_samples=1220, sample_hz=20.0)
    return build_measurement(
        plan=plan, host="node01", index=0, seq=0,
        dtype_spec={"name": "fp16", "inputs": "float16", "accumulate": "float32", "output": "float16"},
        device_info={"model": "NVIDIA H100 80GB HBM3", "vendor": "nvidia", "domestic": False},
        shape=(8192, 8192, 8192), shape_search=[{"m": 8192, "n": 8192, "k": 8192, "tflops": 700.0}],
        timed=timed, window=window, telemetry={"sm_clock_mhz_median": 1755.0},
        correctness={"valid": valid, "n_checked": 256, "max_rel_err": 1e-4, "tolerance": 2e-3, "reason": None if valid else "NaN in output"},
        mode_probe={"passed": True}, numeric_mode={"allow_tf32": False},
        peak={"tflops": 989.0, "source": "NVIDIA datasheet", "kind": "datasheet"},
        started_at="2026-11-26T00:00:00.000Z", ended_at="2026-11-26T00:01:01.000Z", trace_file="traces/x.parquet",
    )


def test_measurement_matches_golden():
    m = _measurement()
    if os.environ.get("ICB_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    assert json.loads(json.dumps(m)) == json.loads(GOLDEN.read_text())


def test_throughput_is_median_of_batches_and_dense_flops():
    m = _measurement()
    per_batch = 2 * 8192**3 * 40
    assert m["flops_per_gemm"] == 2 * 8192**3
    assert m["tflops"] == pytest.approx(per_batch / 0.100 / 1e12)  # median batch time 100 ms
    assert m["tflops_stats"]["max"] > m["tflops"]
    assert m["gflops_per_w"] == pytest.approx(per_batch * 4 / 42700.0 / 1e9)


def test_wall_clock_cross_check():
    m = _measurement()
    # 4 batches of 40 GEMMs in 0.401 s wall vs a 100 ms median batch: consistent within 5 %
    assert m["wall_vs_events"] == pytest.approx(0.400 / 0.401, rel=1e-3)
    assert m["timing_consistent"] is True
    # same batches, but the host saw 0.6 s: idle gaps the device timer did not count
    timed = SimpleNamespace(batch_time_ms=[100.0] * 4, iters_per_batch=40, wall_s=0.6, method="events")
    rebuilt = build_measurement(
        plan=RunPlan.build("cuda", (0,), ("fp16",)), host="h", index=0, seq=0,
        dtype_spec={"name": "fp16", "inputs": "float16", "accumulate": "float32", "output": "float16"},
        device_info={}, shape=(256, 256, 256), shape_search=[], timed=timed, window=None, telemetry={},
        correctness={"valid": True}, mode_probe={"passed": True}, numeric_mode={}, peak=None,
        started_at="", ended_at="", trace_file=None)
    assert rebuilt["wall_vs_events"] == pytest.approx(0.4 / 0.6)
    assert rebuilt["timing_consistent"] is False


def test_grade_depends_on_measured_core_phase():
    assert _measurement(core_s=MIN_ASSESSMENT_S)["grade"] == "assessment"
    assert _measurement(core_s=59.9)["grade"] == "smoke"


def test_invalid_measurement_keeps_reason():
    m = _measurement(valid=False)
    assert m["valid"] is False and m["status"] == "invalid" and "NaN" in m["error"]


def test_no_energy_gives_null_not_zero():
    m = _measurement(energy_j=None)
    assert m["gflops_per_w"] is None and m["energy_j"] is None and m["power_w"] is None


def test_json_contract_fields():
    s = summarize(_measurement())
    for key in ("device", "dtype", "m", "n", "k", "tflops", "valid", "grade", "power_w", "energy_j",
                "gflops_per_w", "power_scope", "power_method"):
        assert key in s


def _agg_input(device, tflops, valid=True, energy=100.0):
    return {"device": device, "host": "h", "dtype": "fp16", "tflops": tflops, "valid": valid, "energy_j": energy,
            "power_w": energy / 10 if energy else None, "flops_total": tflops * 1e12 * 10, "core_phase_s": 10.0,
            "power_scope": "device", "power_method": "counter", "grade": "smoke"}


def test_node_aggregates_sum_and_outliers():
    ms = [_agg_input(0, 700), _agg_input(1, 710), _agg_input(2, 600), _agg_input(3, 1.0, valid=False)]
    (agg,) = node_aggregates(ms, 0.10)
    assert agg["devices"] == 3 and agg["tflops"] == pytest.approx(2010)
    assert agg["outliers"] == [2]  # 600 < 0.9 × 700
    assert agg["energy_j"] == pytest.approx(300.0)
    assert agg["gflops_per_w"] == pytest.approx(2010e12 * 10 / 300 / 1e9)
    assert agg["power_scope"] == "device"  # summed device power is never relabelled node power


def test_node_aggregates_missing_energy_is_none():
    (agg,) = node_aggregates([_agg_input(0, 700), _agg_input(1, 700, energy=None)], 0.1)
    assert agg["energy_j"] is None and agg["gflops_per_w"] is None
