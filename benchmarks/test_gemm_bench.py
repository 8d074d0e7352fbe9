"""pytest-benchmark over the GEMM workloads: TFLOPS and GFLOPS/W in ``extra_info``.

Not collected by the default ``python -m pytest`` run (testpaths is tests/); see benchmarks/README.md::

    pytest benchmarks/ --benchmark-enable -m gpu --benchmark-json=gemm.json --benchmark-autosave
    pytest benchmarks/ --benchmark-enable -m gpu --benchmark-compare --benchmark-compare-fail=mean:5%

Each round times a few back-to-back batches with the harness's own ``GemmWorkload.run_timed``
(device events where the backend has them); pytest-benchmark's time is the round's wall time,
so ``--benchmark-compare-fail=mean:5%`` fails when a round got 5 % slower. ``extra_info`` holds
the throughput (median batch) and, where the device has an energy counter, GFLOPS/W over all
rounds — the figures `bench compare` gates on, in pytest-benchmark's JSON.
"""

from __future__ import annotations

import statistics

import pytest

#: (dtype, square size) benchmarked on an accelerator; the CPU case is small enough for any runner
GPU_WORKLOADS = [("fp16", 8192), ("bf16", 8192), ("fp32", 8192), ("tf32", 8192), ("fp8", 8192), ("int8", 8192)]
CPU_WORKLOAD = ("fp32", 256)
BATCH_MS, BATCHES_PER_ROUND, ROUNDS = 50.0, 3, 5


def _cuda_ready() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _bench(benchmark, backend_name: str, dtype: str, size: int, batch_ms: float) -> None:
    from icb_bench.bench.power import reader_for
    from icb_bench.kernels.backends import get_backend
    from icb_bench.kernels.gemm import GemmShape, GemmWorkload

    be = get_backend(backend_name)
    why = be.dtype_unsupported_reason(0, dtype)
    if why:
        pytest.skip(f"{dtype} on {backend_name}:0: {why}")
    reader = reader_for(backend_name, 0, be.device_info(0))
    runs = []
    try:
        with GemmWorkload(be, 0, dtype, GemmShape(size, size, size), seed=0) as wl, be.numeric_mode(dtype):
            wl.warmup_for(500.0)
            iters = wl.calibrate(batch_ms)
            e0 = reader.energy_j() if reader.has_energy_counter else None
            benchmark.pedantic(lambda: runs.append(wl.run_timed(iters, n_batches=BATCHES_PER_ROUND)),
                               rounds=ROUNDS, iterations=1, warmup_rounds=1)
            e1 = reader.energy_j() if reader.has_energy_counter else None
            flops = wl.flops_per_gemm * iters * BATCHES_PER_ROUND * len(runs)
    finally:
        reader.close()
    tflops = statistics.median(r.tflops_median for r in runs)
    energy_j = None if e0 is None or e1 is None else e1 - e0
    benchmark.extra_info.update({
        "backend": backend_name, "device": be.device_info(0).model, "dtype": dtype, "shape": f"{size}x{size}x{size}",
        "iters_per_batch": iters, "tflops": tflops,
        # runs holds the warm-up round too, as does the energy window: FLOPs and joules cover the same rounds
        "gflops_per_w": None if not energy_j else flops / energy_j / 1e9,
        "power_source": reader.describe().get("name"),
    })


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_ready(), reason="no CUDA device")
@pytest.mark.parametrize("dtype, size", GPU_WORKLOADS, ids=[d for d, _ in GPU_WORKLOADS])
def test_gemm_cuda(benchmark, dtype, size):
    _bench(benchmark, "cuda", dtype, size, BATCH_MS)


def test_gemm_cpu_small(benchmark):
    """Runs anywhere (CI without a GPU): proves the suite and its extra_info work."""
    dtype, size = CPU_WORKLOAD
    _bench(benchmark, "cpu", dtype, size, 20.0)
    assert benchmark.extra_info["tflops"] > 0
