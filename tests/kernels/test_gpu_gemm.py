"""On a real CUDA GPU: valid GEMMs, graph replay, the TF32 probe, events vs wall clock.

Skipped without CUDA. Kept short (a few seconds of device time) so the lead can run it in one go:
``pytest tests/kernels -m gpu -q``.
"""

from __future__ import annotations

import contextlib
import statistics

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from icb_bench.kernels.backends import detect_backend, get_backend  # noqa: E402
from icb_bench.kernels.dtypes import probe_dtypes  # noqa: E402
from icb_bench.kernels.gemm import GemmShape, GemmWorkload, candidate_shapes  # noqa: E402
from icb_bench.kernels.peaks import lookup  # noqa: E402

pytestmark = pytest.mark.gpu

SHAPE = GemmShape(4096, 4096, 4096)


@pytest.fixture(scope="module")
def cuda():  # noqa: ANN201
    return get_backend("cuda")


def test_detects_cuda(cuda) -> None:
    assert detect_backend() == "cuda"
    info = cuda.device_info(0)
    assert info.memory_total_bytes and info.compute_units
    print(f"\ndevice: {info}")
    if "H100" in info.model and "NVL" not in info.model:
        assert lookup(info.model, "fp16") is not None, info.model


@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_gemm_valid_with_graph_replay(cuda, dtype: str) -> None:
    with GemmWorkload(cuda, 0, dtype, SHAPE, seed=1) as wl:
        assert wl.input_source == "device-generator"
        assert wl.mode_probe().passed
        wl.warmup(iters=3)
        iters = wl.calibrate(target_batch_ms=50)
        run = wl.run_timed(iters, n_batches=5)
        assert run.method == "graph-replay+events", run.graph_error
        result = wl.check()
        assert result.valid, result.reason
        probe = wl.mode_probe()  # now through the captured graph too
        assert probe.passed, probe.detail
        if dtype == "fp32":  # fp16 has no multiply-precision probe; fp32's runs through the graph
            assert "graph" in probe.detail, probe.detail
        print(f"\n{dtype} {SHAPE}: {run.tflops_median:.1f} TFLOPS median, iters={iters}, "
              f"event/wall={run.event_wall_ratio:.3f}, max_rel_err={result.max_rel_err:.3g}")


def test_fp32_probe_catches_tf32_forced_on(cuda, monkeypatch) -> None:
    """The switch is 'broken': fp32 asked for, TF32 left on. The probe must fail."""
    info = cuda.device_info(0)
    if cuda.is_hip() or int(info.extra["capability"].split(".")[0]) < 8:
        pytest.skip("needs TF32 hardware (NVIDIA Ampere or newer)")

    @contextlib.contextmanager
    def broken_mode(dtype: str):  # noqa: ANN202
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield {"float32_matmul_precision": "highest (claimed)"}
        finally:
            torch.set_float32_matmul_precision(before)

    with GemmWorkload(cuda, 0, "fp32", SHAPE, seed=2) as wl:
        assert wl.mode_probe().passed
        monkeypatch.setattr(cuda, "numeric_mode", broken_mode)
        probe = wl.mode_probe()
        assert not probe.passed, probe.detail
        assert "TF32" in probe.detail


def test_tf32_mode_is_tf32(cuda) -> None:
    reasons = probe_dtypes(cuda, 0, ("tf32",))
    if reasons["tf32"] is not None:
        pytest.skip(f"tf32 unsupported here: {reasons['tf32']}")
    with GemmWorkload(cuda, 0, "tf32", SHAPE, seed=3) as wl:
        assert wl.mode_probe().passed
        run = wl.run_timed(2, n_batches=2)
        assert wl.check().valid
        assert run.flags["cuda.matmul.allow_tf32"] is True


def test_events_agree_with_wall_clock(cuda) -> None:
    with GemmWorkload(cuda, 0, "fp16", GemmShape(8192, 8192, 8192), seed=4) as wl:
        wl.warmup(iters=5)
        iters = wl.calibrate(target_batch_ms=100)
        run = wl.run_timed(iters, duration_s=2.0)
        assert run.wall_s >= 2.0
        assert 0.90 <= run.event_wall_ratio <= 1.02, run.event_wall_ratio
        assert abs(run.tflops_wall / run.tflops_median - 1) < 0.10
        spread = statistics.pstdev(run.batch_time_ms) / statistics.mean(run.batch_time_ms)
        print(f"\nfp16 8192^3: {run.tflops_median:.1f} TFLOPS, wall {run.tflops_wall:.1f}, "
              f"event/wall {run.event_wall_ratio:.3f}, cv {spread:.3f}, batches {len(run.batch_time_ms)}")
        assert wl.check().valid


def test_supported_dtypes_and_extras(cuda) -> None:
    reasons = probe_dtypes(cuda, 0)
    print(f"\nprobe: {reasons}")
    assert reasons["fp16"] is None and reasons["fp32"] is None
    major, minor = cuda.capability(0)
    if not cuda.is_hip() and (major, minor) >= (8, 9):
        assert reasons["fp8"] is None, reasons["fp8"]
    for dtype in ("fp8", "int8", "bf16"):
        if reasons[dtype] is not None:
            continue
        with GemmWorkload(cuda, 0, dtype, SHAPE, seed=5) as wl:
            run = wl.run_timed(wl.calibrate(20), n_batches=2)
            result = wl.check()
            assert result.valid, f"{dtype}: {result.reason}"
            print(f"{dtype}: {run.method} {run.tflops_median:.1f} TFLOPS")


def test_candidate_shapes_on_device(cuda) -> None:
    free, total = cuda.memory_info(0)
    assert 0 < free <= total
    shapes = candidate_shapes("fp16", free)
    assert shapes and all(s.m >= 4096 for s in shapes)
