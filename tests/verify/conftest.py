"""Shared builders for verify tests: declarations as dicts and well-formed `bench run` records."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from icb_bench.bench.record import RecordWriter, write_measurement

EXAMPLE = Path("/work/shared/spec/declaration.example.yaml")
_HERE = Path(__file__).parent

# A copy of the shared example lives beside the tests so that they do not depend on /work/shared.
EXAMPLE_COPY = _HERE / "data" / "declaration.example.yaml"


def example_dict() -> dict[str, Any]:
    """The example declaration as parsed YAML (a fresh deep copy each call)."""
    return copy.deepcopy(_EXAMPLE_DATA)


_EXAMPLE_DATA = yaml.safe_load(EXAMPLE_COPY.read_text(encoding="utf-8"))


def measurement(
    host: str = "node01",
    device: int = 0,
    model: str = "NVIDIA H100 80GB HBM3",
    tflops: float = 700.0,
    *,
    dtype: str = "fp16",
    grade: str = "assessment",
    valid: bool = True,
    peak: float | None = 989.0,
    domestic: bool = False,
    vendor: str = "NVIDIA",
    spread: float = 5.0,
    power_w: float | None = 650.0,
    power_scope: str = "device",
    uuid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A fake but well-formed measurement dict (fields as results/README.md documents)."""
    stats = {
        "n": 60,
        "median": tflops,
        "q1": tflops - spread,
        "q3": tflops + spread,
        "iqr": 2 * spread,
        "mean": tflops,
        "stdev": spread,
        "cv": spread / tflops if tflops else 0,
        "min": tflops - 3 * spread,
        "max": tflops + 3 * spread,
    }
    m = {
        "id": f"{host}-d{device}-{dtype}",
        "seq": 0,
        "host": host,
        "device": device,
        "backend": "cuda",
        "device_info": {
            "model": model,
            "vendor": vendor,
            "domestic": domestic,
            "uuid": uuid or f"GPU-{host}-{device}",
            "serial": None,
        },
        "dtype": dtype,
        "dtype_spec": {"inputs": dtype, "accumulate": "fp32", "output": dtype},
        "m": 8192,
        "n": 8192,
        "k": 8192,
        "flops_per_gemm": 2 * 8192**3,
        "grade": grade,
        "core_phase_s": 120.0 if grade == "assessment" else 5.0,
        "valid": valid,
        "status": "ok" if valid else "invalid",
        "tflops": tflops,
        "tflops_stats": stats,
        "power_w": power_w,
        "energy_j": power_w * 120 if power_w else None,
        "gflops_per_w": tflops * 1000 / power_w if power_w else None,
        "power_scope": power_scope,
        "power_method": "counter",
        "peak": None if peak is None else {"tflops": peak, "source": "test datasheet", "kind": "datasheet"},
        "fraction_of_peak": tflops / peak if peak else None,
    }
    m.update(extra)
    return m


def write_run(
    path: Path,
    measurements: list[dict[str, Any]],
    aggregates: list[dict[str, Any]] | None = None,
    run_id: str | None = None,
) -> Path:
    """A complete record directory written through the record module."""
    w = RecordWriter(path, {"run_id": run_id or path.name, "host": {"hostname": "node01"}, "aggregates": aggregates or []})
    w.start()
    for m in measurements:
        write_measurement(path, m)
    w.finish("complete")
    return path


def rack_aggregate(rack_id: str, gflops_per_w: float | None, *, grade: str = "assessment", devices: int = 32, dtype: str = "fp16",
                   scope: str = "rack", power_scope: str | None = None, assurance: str | None = "rack-meter",
                   uncertainty_rel: float | None = 0.01, status: str = "ok", reason: str | None = None,
                   nodes: list[str] | None = None) -> dict[str, Any]:
    """A rack aggregate in the fleet contract's format (``uncertainty_rel=None``: no bounds stated)."""
    power = 40000.0
    agg: dict[str, Any] = {
        "scope": scope,
        "rack_id": rack_id,
        "dtype": dtype,
        "nodes": nodes or [],
        "devices": devices,
        "devices_expected": devices,
        "devices_valid": devices,
        "window_s": 120.0,
        "tflops": None if gflops_per_w is None else gflops_per_w * power / 1000,
        "power_w": power,
        "energy_j": power * 120,
        "gflops_per_w": gflops_per_w,
        "power_scope": power_scope or scope,
        "power_method": "polled",
        "status": status,
        "reason": reason,
        "grade": grade,
        "valid": status == "ok",
    }
    if assurance is not None:
        agg["assurance"] = assurance
    if uncertainty_rel is not None and gflops_per_w is not None:
        agg.update(uncertainty_rel=uncertainty_rel, gflops_per_w_low=gflops_per_w * (1 - uncertainty_rel),
                   gflops_per_w_high=gflops_per_w * (1 + uncertainty_rel))
    return agg


H100 = "NVIDIA H100 80GB HBM3"  # what the driver reports for the SXM part
ASCEND = "Ascend910B3"
#: devices the example declaration's inventory needs measured at level 1 (⌈300/10⌉, ⌈2600/10⌉)
N_H100, N_ASCEND = 30, 260


def site_measurements(h100: float = 700.0, ascend: float = 260.0, n_h100: int = N_H100, n_ascend: int = N_ASCEND,
                      **extra: Any) -> list[dict[str, Any]]:
    """Enough devices of both example models for the level-1 rule; throughput varies by 0–2 TFLOPS."""
    ms = [measurement("g", i, H100, h100 + (i % 3), **extra) for i in range(n_h100)]
    ms += [measurement("a", i, ASCEND, ascend + (i % 3), peak=313.0, domestic=True, vendor="Huawei", **extra)
           for i in range(n_ascend)]
    return ms


@pytest.fixture
def example() -> dict[str, Any]:
    return example_dict()


def write_decl(tmp_path: Path, data: dict[str, Any], name: str = "decl.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p
