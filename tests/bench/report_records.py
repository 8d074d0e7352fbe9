"""Records for the report, compare and export tests, written through icb_bench.bench.record."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from icb_bench.bench.record import RecordWriter, write_measurement, write_trace

REPO = Path(__file__).resolve().parents[2]
GOLDEN_CPU = Path(__file__).parent / "golden" / "cpu-quick"  # `bench run --backend cpu --quick --dtypes fp16,fp32`
H100_REF = REPO / "results" / "reference" / "2026-11-26-h100-sxm-final" / "reference"  # a real 60 s H100 run
DECLARATION = REPO / "verify" / "data" / "declaration.example.yaml"
H100 = "NVIDIA H100 80GB HBM3"


def measurement(host: str, device: int, tflops: float, *, model: str = H100, dtype: str = "fp16",
                gflops_per_w: float | None = 1000.0, power_scope: str = "device", shape: int = 8192,
                grade: str = "assessment", peak: float | None = 989.0, **extra: Any) -> dict[str, Any]:
    """A well-formed measurement (fields as results/README.md documents)."""
    power = None if gflops_per_w is None else tflops * 1000 / gflops_per_w
    m = {
        "id": f"{host}-d{device}-{dtype}", "seq": 0, "host": host, "device": device, "backend": "cuda",
        "device_info": {"model": model, "vendor": "NVIDIA", "domestic": False, "uuid": f"GPU-{host}-{device}"},
        "dtype": dtype, "dtype_spec": {"inputs": "float16", "accumulate": "float32", "output": "float16"},
        "m": shape, "n": shape, "k": shape, "grade": grade, "core_phase_s": 60.0, "valid": True, "status": "ok",
        "tflops": tflops, "tflops_stats": {"n": 60, "median": tflops, "q1": tflops - 2, "q3": tflops + 2, "iqr": 4.0},
        "power_w": power, "energy_j": None if power is None else power * 60, "gflops_per_w": gflops_per_w,
        "power_scope": power_scope, "power_method": "counter" if power else "none",
        "power": {"window_s": 60.0, "power_w": power},
        "telemetry": {"power_limit_w": 700.0},
        "peak": None if peak is None else {"tflops": peak, "source": "test datasheet", "kind": "datasheet"},
        "fraction_of_peak": None if peak is None else tflops / peak,
    }
    m.update(extra)
    return m


def write_run(path: Path, measurements: list[dict[str, Any]], aggregates: list[dict[str, Any]] | None = None,
              traces: bool = False) -> Path:
    host = measurements[0]["host"] if measurements else "node01"
    w = RecordWriter(path, {"run_id": path.name, "host": {"hostname": host, "cpu_count": 64},
                            "aggregates": aggregates or []})
    w.start()
    for m in measurements:
        if traces:
            rows = [{"t_s": t / 10 - 0.05, "power_w": 650 + 20 * math.sin(t / 7), "sm_clock_mhz": 1700.0,
                     "temperature_c": 50 + t / 60} for t in range(0, 602)]
            m = {**m, "trace_file": write_trace(path, m["id"], rows)}
        write_measurement(path, m)
    w.finish("complete")
    return path


def rack_aggregate(rack: str, gflops_per_w: float, nodes: list[str], devices: int) -> dict[str, Any]:
    return {"scope": "rack", "rack_id": rack, "dtype": "fp16", "nodes": nodes, "devices": devices,
            "devices_expected": devices, "devices_valid": devices, "window_s": 60.1, "tflops": gflops_per_w * 20,
            "power_w": 20000.0, "energy_j": 20000.0 * 60.1, "gflops_per_w": gflops_per_w,
            "gflops_per_w_low": gflops_per_w * 0.99, "gflops_per_w_high": gflops_per_w * 1.01, "uncertainty_rel": 0.01,
            "assurance": "rack-meter", "power_scope": "rack", "power_method": "polled", "power_sources": [f"pdu:{rack}/0"],
            "readings_inside": 61, "status": "ok", "reason": None, "grade": "assessment", "valid": True}


def fleet_record(tmp_path: Path, racks: dict[str, float], devices_per_node: int = 2) -> Path:
    """A fleet record (kind: fleet): one node per rack under nodes/, a rack aggregate per rack."""
    run = tmp_path / "fleet"
    nodes = [{"name": f"n-{r}", "shard": f"nodes/n-{r}", "rack": r} for r in racks]
    aggs = [rack_aggregate(r, eff, [f"n-{r}"], devices_per_node) for r, eff in racks.items()]
    w = RecordWriter(run, {"run_id": "fleet", "kind": "fleet", "nodes": nodes, "aggregates": aggs})
    w.start()
    for r in racks:
        write_run(run / "nodes" / f"n-{r}", [measurement(f"n-{r}", i, 700.0 + i) for i in range(devices_per_node)],
                  traces=True)
    w.finish("complete")
    return run


def copy_record(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
