"""A node's GFLOPS/W from its own devices: Σ FLOPs ÷ Σ energy, only when every device counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from icb_bench.bench.record import RunRecord
from icb_bench.verify.collect import collect
from icb_bench.verify.rules import load_peaks

H100 = "NVIDIA H100 80GB HBM3"


def _m(device: int, flops: float, energy: float, change: dict | None = None) -> dict:
    m = {"id": f"n-d{device}-fp16", "host": "n", "device": device, "dtype": "fp16", "grade": "assessment",
         "valid": True, "status": "ok", "tflops": 700.0, "power_w": 600.0, "gflops_per_w": 1000.0,
         "device_info": {"model": H100, "uuid": f"u{device}"}, "flops_total": flops, "energy_j": energy}
    m.update(change or {})
    return m


def _node_figures(ms: list[dict], devices: int = 2) -> list[float]:
    rec = RunRecord(path=Path("mem/n"), manifest={"run_id": "n", "status": "complete", "inventory": [
        {"index": i, "model": H100} for i in range(devices)]}, measurements=ms)
    return collect([rec], load_peaks()).lower.get("node", [])


def test_every_device_counted_gives_the_nodes_figure():
    assert _node_figures([_m(0, 3e15, 1000.0), _m(1, 1e15, 3000.0)]) == [4e15 / 4000.0 / 1e9]


@pytest.mark.parametrize("change", [
    {"energy_j": 0.0}, {"energy_j": None}, {"energy_j": "1000"}, {"flops_total": None}, {"flops_total": True},
    {"valid": False}, {"status": "error"}, {"grade": "smoke"}, {"timing_consistent": False},
])
def test_one_device_that_does_not_count_leaves_no_node_figure(change):
    assert _node_figures([_m(0, 3e15, 1000.0), _m(1, 1e15, 3000.0, change)]) == []
    assert _node_figures([_m(0, 3e15, 1000.0, change), _m(1, 1e15, 3000.0)]) == []


def test_a_node_not_wholly_measured_has_no_figure():
    assert _node_figures([_m(0, 3e15, 1000.0)]) == []
    assert _node_figures([_m(0, 3e15, 1000.0), _m(0, 1e15, 3000.0)]) == []  # one device twice
