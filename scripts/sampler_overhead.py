#!/usr/bin/env python3
"""Cost of power sampling: GEMM throughput with the 20 Hz power sampler running vs stopped.

Same process, device, shape and tensors; alternating rounds (off, on, off, on, …) so drift hits
both; prints the paired median ratio on/off (goal: cost < 1 %, i.e. ratio > 0.99).

    python scripts/sampler_overhead.py --device cpu --seconds 10
    python scripts/sampler_overhead.py --device cuda --seconds 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from icb_bench.bench.power import reader_for
from icb_bench.bench.power.sampler import Sampler
from icb_bench.kernels.backends import get_backend
from icb_bench.kernels.gemm import GemmShape, GemmWorkload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default fp16 on cuda, fp32 on cpu")
    ap.add_argument("--size", type=int, default=None, help="m = n = k (default 8192 cuda, 1024 cpu)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hz", type=float, default=20.0)
    ap.add_argument("--batches", type=int, default=5, help="batches per round")
    a = ap.parse_args(argv)
    dtype = a.dtype or ("fp16" if a.device == "cuda" else "fp32")
    size = a.size or (8192 if a.device == "cuda" else 1024)
    backend = get_backend(a.device)
    reader = reader_for(a.device, 0, backend.device_info(0))
    print(f"reader: {reader.describe()}")
    off: list[float] = []
    on: list[float] = []
    with backend.numeric_mode(dtype), GemmWorkload(backend, 0, dtype, GemmShape(size, size, size), seed=0) as wl:
        wl.warmup_for(1000)
        iters = wl.calibrate(100.0)
        deadline = time.monotonic() + a.seconds
        n_samples = 0
        while time.monotonic() < deadline or len(on) < 3:
            off.append(wl.run_timed(iters, n_batches=a.batches).tflops_median)
            s = Sampler(reader, hz=a.hz)
            s.start()
            win = s.begin_window()
            on.append(wl.run_timed(iters, n_batches=a.batches).tflops_median)
            s.end_window(win)
            n_samples += len(win.trace_rows())
            s.stop()
    reader.close()
    ratio = statistics.median(x / y for x, y in zip(on, off))
    print(f"{a.device} {dtype} {size}³: rounds={len(on)} samples taken while on={n_samples}\n"
          f"  sampler off median {statistics.median(off):.4f} TFLOPS\n"
          f"  sampler on  median {statistics.median(on):.4f} TFLOPS\n"
          f"  ratio on/off = {ratio:.4f} (paired median; goal > 0.99, i.e. sampling costs < 1 %)")
    return 0 if ratio > 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
