"""`bench run` end to end on a real CUDA device (skipped without one)."""

import json

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

from icb_bench.bench import record  # noqa: E402
from icb_bench.bench.cli import app  # noqa: E402


def test_cuda_quick_run(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--backend", "cuda", "--devices", "0", "--quick", "--duration", "2",
                                   "--dtypes", "fp32,fp16", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    for s in payload["measurements"]:
        assert s["valid"] and s["grade"] == "smoke" and s["timing_consistent"], s
    full = {m["dtype"]: m for m in record.load_run(out).measurements}
    assert full["fp32"]["timing"]["method"] == "graph-replay+events"
    assert "graph" in full["fp32"]["correctness"]["mode_probe"]["detail"]  # probe ran through the graph too
    assert full["fp32"]["numeric_mode"]["cuda.matmul.allow_tf32"] is False
    if full["fp16"]["power_method"] != "none":  # NVML present: the counter, at device scope
        assert full["fp16"]["power_method"] == "counter" and full["fp16"]["power_scope"] == "device"
        assert full["fp16"]["energy_j"] > 0 and full["fp16"]["gflops_per_w"] > 0
    assert full["fp16"]["peak"] is None or full["fp16"]["fraction_of_peak"] > 0.3
