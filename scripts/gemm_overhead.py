#!/usr/bin/env python3
"""Harness overhead: a bare ``torch.mm(a, b, out=c)`` loop vs ``GemmWorkload.run_timed``.

Both run in this process, on the same device, shape and tensors (the bare loop uses the
workload's own A, B, C), timed the same way (CUDA: graph replay + events; CPU: perf_counter),
in alternating rounds so clock/thermal drift hits both. Prints harness/bare throughput (goal
>= 0.97).

    python scripts/gemm_overhead.py --device cpu --size 1024 --seconds 10
    python scripts/gemm_overhead.py --device cuda --size 8192 --seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch

from icb_bench.kernels.backends import get_backend
from icb_bench.kernels.gemm import GemmShape, GemmWorkload


def bare_batches_cpu(wl: GemmWorkload, iters: int, n_batches: int) -> list[float]:
    """Per-batch ms of a plain torch.mm loop, host clock."""
    a, b, c = wl.a, wl.b, wl.c
    times = []
    for _ in range(n_batches):
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.mm(a, b, out=c)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def bare_batches_cuda(wl: GemmWorkload, iters: int, n_batches: int, graph: Callable[[], None] | None) -> list[float]:
    """Per-batch ms of a plain loop (graph replay when captured) between two CUDA events."""
    a, b, c = wl.a, wl.b, wl.c
    times = []
    for _ in range(n_batches):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        if graph is not None:
            graph()
        else:
            for _ in range(iters):
                torch.mm(a, b, out=c)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return times


def capture_bare_graph(wl: GemmWorkload, iters: int) -> Callable[[], None] | None:
    a, b, c = wl.a, wl.b, wl.c
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(iters):
            torch.mm(a, b, out=c)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(iters):
                torch.mm(a, b, out=c)
    except RuntimeError as exc:
        print(f"  bare graph capture failed ({exc}); bare loop runs eager")
        return None
    return graph.replay


def measure(device: str, dtype: str, size: int, seconds: float, batch_ms: float, n_batches: int) -> float:
    backend = get_backend(device)
    shape = GemmShape(size, size, size)
    with GemmWorkload(backend, 0, dtype, shape, seed=0) as wl, backend.numeric_mode(dtype):
        wl.warmup(iters=3, min_time_s=min(2.0, seconds / 5))
        iters = wl.calibrate(batch_ms)
        graph = capture_bare_graph(wl, iters) if device == "cuda" else None
        flops_batch = shape.flops * iters
        bare_rounds: list[float] = []
        harness_rounds: list[float] = []
        eager_rounds: list[float] = []  # CUDA only: a plain eager torch.mm loop between events
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(bare_rounds) < 3:
            if device == "cuda":
                bare = bare_batches_cuda(wl, iters, n_batches, graph)
                eager = bare_batches_cuda(wl, iters, n_batches, None)
                eager_rounds.append(flops_batch / statistics.median(eager) / 1e9)  # ms → TFLOPS
            else:
                bare = bare_batches_cpu(wl, iters, n_batches)
            bare_rounds.append(flops_batch / statistics.median(bare) / 1e9)
            run = wl.run_timed(iters, n_batches=n_batches)
            harness_rounds.append(run.tflops_median)
        assert wl.check().valid
    bare_tf, harness_tf = statistics.median(bare_rounds), statistics.median(harness_rounds)
    # paired: each harness round against the bare round just before it (drift cancels)
    ratio = statistics.median(h / b for h, b in zip(harness_rounds, bare_rounds))
    print(
        f"{device} {dtype} {shape}: iters/batch={iters} method={run.method} rounds={len(bare_rounds)}\n"
        f"  bare    median {bare_tf:10.4f} TFLOPS  (rounds: {', '.join(f'{x:.4f}' for x in bare_rounds)})\n"
        f"  harness median {harness_tf:10.4f} TFLOPS  (rounds: {', '.join(f'{x:.4f}' for x in harness_rounds)})\n"
        f"  ratio harness/bare = {ratio:.4f} paired median, {harness_tf / bare_tf:.4f} of medians "
        f"(goal >= 0.97); harness event/wall {run.event_wall_ratio:.4f}"
        + (f"\n  bare eager loop median {statistics.median(eager_rounds):10.4f} TFLOPS; harness/eager = "
           f"{harness_tf / statistics.median(eager_rounds):.4f}" if eager_rounds else "")
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=None, help="m = n = k (default 1024 cpu, 8192 cuda)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per dtype, both loops together")
    parser.add_argument("--batch-ms", type=float, default=None, help="target batch length (default 100 cuda, 200 cpu)")
    parser.add_argument("--batches", type=int, default=5, help="batches per round")
    parser.add_argument("--dtypes", default=None, help="comma list (default fp32 on cpu, fp32,fp16 on cuda)")
    args = parser.parse_args(argv)
    size = args.size or (8192 if args.device == "cuda" else 1024)
    batch_ms = args.batch_ms or (100.0 if args.device == "cuda" else 200.0)
    dtypes = (args.dtypes or ("fp32,fp16" if args.device == "cuda" else "fp32")).split(",")
    ratios = [measure(args.device, d.strip(), size, args.seconds, batch_ms, args.batches) for d in dtypes]
    return 0 if min(ratios) >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
