#!/usr/bin/env python3
"""The harness's sustained GEMM figure side by side with bare loops and (on a GPU) mamf-finder,
on the same device, one after another and alternating.

Tools, each printed with its figure and wall time:
  harness      the harness's own choice (warm-up, successive-halving search on its budget) and
               its sustained run (GemmWorkload.run_timed, host-row inputs) at that shape;
  bare-chosen  a bare ``torch.matmul(out=)`` loop at the harness's chosen shape;
  grid-best    a wide brute-force grid of shapes (bare loop, briefly each), its top 5 again
               for longer, then the best of those sustained in a bare loop;
  mamf-finder  (CUDA, only with --mamf PATH) stas00/ml-engineering's mamf-finder.py with its
               usual arguments over a range of shapes (fetched at run time, never committed).

The sustained runs alternate (ABC, CBA, …) for --rounds rounds; each tool's figure is the
median over rounds of its per-round median batch throughput. Goal: harness ÷ grid-best ≥ 0.97.

    python scripts/peak_vs_peers.py --device cpu --dtype fp32 --seconds 3 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

#: the brute-force grids (every m × n × k combination that fits memory)
GRIDS: dict[str, tuple[int, ...]] = {
    "cpu": (128, 256, 384, 512, 768, 1024, 1536),
    "cuda": (2048, 4096, 6144, 8192, 12288, 16384),
}
#: mamf-finder's usual arguments (its README's "range of m" form): m over a range, n and k fixed;
#: the GPU session checks these names against the fetched script (--m_range START STOP STEP)
MAMF_RUNS: tuple[tuple[str, ...], ...] = (
    ("--m_range", "1024", "16385", "1024", "--n", "8192", "--k", "8192"),
)
MAMF_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def _median_tflops(times_ms: list[float], flops_per_batch: int) -> float:
    return statistics.median(flops_per_batch / (t * 1e-3) / 1e12 for t in times_ms)


def bare_loop(backend: Any, dtype: str, shape: Any, seconds: float, batch_ms: float) -> float:
    """Median TFLOPS of back-to-back batches of ``torch.matmul(a, b, out=c)`` for ``seconds``."""
    import torch

    from icb_bench.kernels.dtypes import get_dtype

    spec = get_dtype(dtype)
    dev = backend.device(0)
    a = torch.randn(shape.m, shape.k, device=dev).to(spec.torch_dtype("inputs"))
    b = torch.randn(shape.k, shape.n, device=dev).to(spec.torch_dtype("inputs"))
    c = torch.empty(shape.m, shape.n, device=dev, dtype=spec.torch_dtype("output"))

    def batch(iters: int) -> float:
        timer = backend.timer(0)
        timer.start()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        timer.stop()
        return timer.elapsed_ms()

    batch(1)
    iters = max(1, round(batch_ms / max(batch(1), 1e-6)))
    times: list[float] = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds or not times:
        times.append(batch(iters))
    return _median_tflops(times, shape.flops * iters)


def harness_sustained(backend: Any, dtype: str, shape: Any, seconds: float, batch_ms: float) -> float:
    """The harness's core-phase figure at ``shape``: host-row inputs, calibrated batches, run_timed."""
    from icb_bench.kernels.gemm import GemmWorkload

    with GemmWorkload(backend, 0, dtype, shape, seed=1, inputs="host-rows") as wl:
        iters = wl.calibrate(batch_ms)
        wl.run_timed(iters, n_batches=2)
        run = wl.run_timed(iters, duration_s=seconds)
        return _median_tflops(run.batch_time_ms, shape.flops * iters)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_mamf(path: str, dtype: str, out_dir: str) -> list[dict[str, Any]]:
    """mamf-finder over its usual shape ranges: best TFLOPS and wall time of each invocation."""
    results = []
    for i, args in enumerate(MAMF_RUNS):
        cmd = [sys.executable, path, *args, "--dtype", MAMF_DTYPES[dtype], "--output_file", f"{out_dir}/mamf-{i}.txt"]
        (proc, wall_s) = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=1800))
        text = proc.stdout + proc.stderr
        best = re.findall(r"best outcome was\s*([0-9.]+)\s*TFLOPS\s*@\s*(\d+)x(\d+)x(\d+)", text, flags=re.I)
        results.append({"args": " ".join(args), "rc": proc.returncode, "wall_s": wall_s,
                        "tflops": float(best[-1][0]) if best else None,
                        "shape": "x".join(best[-1][1:]) if best else None, "tail": text[-400:]})
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--seconds", type=float, default=3.0, help="sustained run per tool per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--grid-seconds", type=float, default=0.15, help="brute-force time per grid shape")
    ap.add_argument("--batch-ms", type=float, default=50.0)
    ap.add_argument("--search-budget", type=float, default=6.0, help="the harness's search budget (s)")
    ap.add_argument("--core-s", type=float, default=60.0, help="core phase the search budget is a share of")
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--mamf", default=None, help="path of a fetched mamf-finder.py (CUDA only)")
    ap.add_argument("--out", default=".", help="directory for mamf-finder's output files")
    ap.add_argument("--json", default=None, help="write every figure here")
    args = ap.parse_args(argv)

    from icb_bench.kernels.backends import get_backend
    from icb_bench.kernels.search import HalvingPolicy, halving_search
    from icb_bench.kernels.shapes import GemmShape, search_candidates, shape_bytes

    backend = get_backend(args.device)
    info = backend.device_info(0)
    free_b, _ = backend.memory_info(0)
    quick = backend.prefers_small_shapes
    report: dict[str, Any] = {"device": info.model, "backend": args.device, "dtype": args.dtype,
                              "compute_units": info.compute_units, "seconds": args.seconds, "rounds": args.rounds}
    with backend.numeric_mode(args.dtype):
        cands = search_candidates(args.dtype, free_b, info.compute_units, quick=quick, limit=16)
        # the harness's own way: heat, then successive halving on its budget
        _, warm_s = timed(lambda: bare_loop(backend, args.dtype, cands[0].shape, args.warmup_s, args.batch_ms))
        search, search_s = timed(lambda: halving_search(backend, 0, args.dtype, cands, 0,
                                                        HalvingPolicy(budget_s=args.search_budget)))
        chosen = search.best
        report["harness_search"] = {"chosen": str(chosen), "family": search.family, "tflops_search": search.tflops_search,
                                    "spent_s": search.spent_s, "wall_s": search_s, "warmup_s": warm_s,
                                    "share_of_core_phase": search.spent_s / args.core_s, "stopped": search.stopped}
        # the wide brute-force grid, bare loop
        budget = 0.40 * free_b
        grid = [GemmShape(m, n, k) for m, n, k in itertools.product(GRIDS[args.device], repeat=3)
                if shape_bytes(args.dtype, GemmShape(m, n, k)) <= budget]
        figures, grid_s = timed(lambda: {s: bare_loop(backend, args.dtype, s, args.grid_seconds, args.batch_ms / 4)
                                         for s in grid})
        # a brief figure is a noisy one: the grid's top 5 again, longer, and the best of those
        top = sorted(figures, key=lambda sh: -figures[sh])[:5]
        refined, refine_s = timed(lambda: {sh: bare_loop(backend, args.dtype, sh, args.seconds / 2, args.batch_ms)
                                           for sh in top})
        grid_s += refine_s
        grid_best = max(refined, key=refined.get)
        report["grid"] = {"shapes": len(grid), "best": str(grid_best), "tflops_brief": figures[grid_best],
                          "refined": {str(sh): v for sh, v in refined.items()},
                          "wall_s": grid_s, "top5": sorted(((str(s), v) for s, v in figures.items()),
                                                           key=lambda x: -x[1])[:5]}
        tools: dict[str, Callable[[], float]] = {
            "harness": lambda: harness_sustained(backend, args.dtype, chosen, args.seconds, args.batch_ms),
            "bare-chosen": lambda: bare_loop(backend, args.dtype, chosen, args.seconds, args.batch_ms),
            "grid-best": lambda: bare_loop(backend, args.dtype, grid_best, args.seconds, args.batch_ms),
        }
        per_round: dict[str, list[float]] = {name: [] for name in tools}
        wall: dict[str, float] = {name: 0.0 for name in tools}
        names = list(tools)
        for r in range(args.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                value, took = timed(tools[name])
                per_round[name].append(value)
                wall[name] += took
                print(f"round {r} {name:12s} {value:10.4f} TFLOPS ({took:.1f} s)", flush=True)
    medians = {name: statistics.median(v) for name, v in per_round.items()}
    report["sustained"] = {name: {"median_tflops": medians[name], "rounds": per_round[name], "wall_s": wall[name]}
                           for name in tools}
    report["ratios"] = {"harness/grid-best": medians["harness"] / medians["grid-best"],
                        "harness/bare-chosen": medians["harness"] / medians["bare-chosen"],
                        "bare-chosen/grid-best": medians["bare-chosen"] / medians["grid-best"]}
    report["harness_wall_s"] = warm_s + search_s + wall["harness"] / args.rounds
    if args.mamf and args.device == "cuda":
        mamf, mamf_s = timed(lambda: run_mamf(args.mamf, args.dtype, args.out))
        best = max((m["tflops"] for m in mamf if m["tflops"]), default=None)
        report["mamf"] = {"runs": mamf, "best_tflops": best, "wall_s": mamf_s}
        if best:
            report["ratios"]["harness/mamf-best"] = medians["harness"] / best
            report["ratios"]["harness_wall/mamf_wall"] = report["harness_wall_s"] / mamf_s
    else:
        report["mamf"] = {"skipped": "no --mamf path given" if not args.mamf else "mamf-finder needs --device cuda"}

    print(f"\n{report['device']} ({args.device}, {args.dtype}), {args.rounds} alternating rounds of {args.seconds:g} s")
    s = report["harness_search"]
    print(f"harness search: {s['chosen']} ({s['family']}) {s['tflops_search']:.4f} TFLOPS in {s['spent_s']:.2f} s "
          f"= {s['share_of_core_phase']:.1%} of a {args.core_s:g} s core phase ({s['stopped']})")
    print(f"grid: {report['grid']['shapes']} shapes in {grid_s:.1f} s, best {report['grid']['best']}")
    for name in tools:
        print(f"  {name:12s} median {medians[name]:10.4f} TFLOPS   wall {wall[name]:7.1f} s")
    for key, value in report["ratios"].items():
        print(f"  {key:24s} {value:.4f}")
    print(f"mamf-finder: {json.dumps(report['mamf'].get('best_tflops', report['mamf'].get('skipped')))}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
