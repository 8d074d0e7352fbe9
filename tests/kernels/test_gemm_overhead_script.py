"""scripts/gemm_overhead.py runs on the CPU and reports a sane harness/bare ratio."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gemm_overhead.py"


def test_overhead_script_cpu(capsys, monkeypatch) -> None:
    monkeypatch.delenv("ICB_BENCH_CPU_DEVICES", raising=False)
    spec = importlib.util.spec_from_file_location("gemm_overhead", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ratio = module.measure("cpu", "fp32", 256, seconds=0.3, batch_ms=5, n_batches=3)
    out = capsys.readouterr().out
    assert "ratio harness/bare" in out and "method=wall" in out
    # a shared 2-core box is noisy; this only catches a harness that is grossly slower
    assert ratio == pytest.approx(1.0, abs=0.5)
