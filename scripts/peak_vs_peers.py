#!/usr/bin/env python3
"""The harness's sustained GEMM figure side by side with bare loops and (on a GPU) mamf-finder,
on the same device, in strictly alternating paired rounds under the same conditions.

Tools, each printed with its figure and wall time:
  harness      the harness's own choice (warm-up, successive-halving search on its budget) and
               its sustained run (GemmWorkload.run_timed, host-row inputs) at that shape;
  bare-chosen  a bare ``torch.matmul(out=)`` loop at the harness's chosen shape;
  grid-best    a wide brute-force grid of shapes (bare loop, briefly each), its top 5 again in
               two alternating passes, then the best of those sustained in a bare loop;
  mamf-finder  (CUDA, only with --mamf PATH) stas00/ml-engineering's mamf-finder.py (fetched at
               run time, never committed) in its README's quick and exhaustive forms (and,
               version >= 3, its auto search first: MSMF, its sustained headline, is compared),
               each stopped at --mamf-timeout by SIGINT (its Ctrl-C: it prints its best so far), run
               unchanged under the harness's numeric mode for the dtype. It runs after every
               other figure is printed and written; exit status 3 when it gave no figure.

Conditions: the process is pinned to --cpus (default: the CPUs it may run on) with --threads
torch threads (default: one per pinned CPU) *before* anything runs, so the search, the grid and
every round run under the same conditions. On a shared host a 2-thread GEMM on 2 busy cores
stalls on its slowest thread; ``--threads 1 --cpus N`` measures one core, far less disturbed.

Rounds: the three loops are prepared once (inputs drawn, batch sizes calibrated), then each of
--rounds rounds runs them back to back for --seconds each, in the order ABC, CBA, ABC, … Every
ratio is the median of the per-round paired ratios with a bootstrap interval of that median
(and the IQR of the ratios); a goal is ``met`` when the whole interval clears it, ``not met``
when the whole interval is below, else ``inconclusive`` (the interval is wider than the
question needs: run more rounds or on a quieter host). Goal: harness ÷ grid-best ≥ 0.97;
harness ÷ bare-chosen isolates the harness's loop overhead, bare-chosen ÷ grid-best the shape
choice.

    python scripts/peak_vs_peers.py --device cpu --dtype fp32 --threads 1 --cpus 1 --seconds 1 --rounds 15
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

#: the brute-force grids (every m × n × k combination that fits memory)
GRIDS: dict[str, tuple[int, ...]] = {
    "cpu": (128, 256, 384, 512, 768, 1024, 1536),
    "cuda": (2048, 4096, 6144, 8192, 12288, 16384),
}
#: how many of the grid's brief leaders are measured again, longer
GRID_REFINE_TOP = 5
#: the goals the paired ratios answer: ratio -> least value that meets it (issue 10)
GOALS: dict[str, float] = {"harness/grid-best": 0.97, "harness/mamf-best": 1.0}
#: goals on a ratio that must stay AT OR BELOW its bound: the harness's wall time within 1/10 of mamf-finder's
WALL_GOALS: dict[str, float] = {"harness_wall/mamf_wall": 0.10}
#: the ratios reported, as (name, numerator tool, denominator tool)
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("harness/grid-best", "harness", "grid-best"),
    ("harness/bare-chosen", "harness", "bare-chosen"),
    ("bare-chosen/grid-best", "bare-chosen", "grid-best"),
)
#: fewer paired rounds than this answer no goal (a bootstrap of a handful of points is no interval)
MIN_ROUNDS = 5
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 4999
#: how mamf-finder is run (stas00/ml-engineering compute/accelerator/benchmarks/mamf-finder.py,
#: fitted to benchmark version 2, checked against its snapshot of 2026-08-22; versions 3-4 are read
#: too, MAMF_AUTO_*). Its README's forms: the quick
#: run ("under 1min", "around 80-90% of the maximum") and the exhaustive 1024-step search
#: ("15-30min ... you can Ctrl-C it when it run long enough and get the best result so far"); its
#: H100 suggestion (all three dims 0..20480 step 256, 512,000 shapes) takes days, so it is not run.
#: Every invocation warms the device 30 s first (its own fixed warm-up) and is stopped with
#: SIGINT -- its own Ctrl-C, which prints the best so far -- at --mamf-timeout.
MAMF_RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("quick", ("--m_range", "0", "20480", "256", "--n", "4096", "--k", "4096")),
    ("exhaustive-1024", ("--m_range", "0", "16384", "1024", "--n_range", "0", "16384", "1024",
                         "--k_range", "0", "16384", "1024")),
)
#: harness dtype -> mamf-finder --dtype (a torch dtype name); it runs under the harness's numeric
#: mode for that dtype (MAMF_SHIM), so "tf32" is float32 with TF32 on. Absent: no equivalent
#: (int8: mamf-finder has no integer GEMM).
MAMF_DTYPES: dict[str, str] = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "tf32": "float32",
                               "fp8": "float8_e4m3fn"}
#: where mamf-finder's GEMM differs from the harness's beyond the numeric mode
MAMF_DTYPE_NOTES: dict[str, str] = {"fp8": "mamf-finder's fp8 GEMM writes an fp8 output (the harness: bf16)"}
#: mamf-finder's closing summary ("Tried N shapes => the best outcomes were:" and one line per
#: statistic, "median: 691.0 TFLOPS @ 4096x8192x8192 (MxNxK)"): statistic -> pattern
MAMF_PATTERNS: dict[str, str] = {
    stat: rf"^{stat}:[ \t]*([0-9.]+)[ \t]*TFLOPS[ \t]*@[ \t]*(\d+)x(\d+)x(\d+)" for stat in ("mean", "median", "max")
}
MAMF_SHAPES_PATTERN = r"^Tried[ \t]+(\d+)[ \t]+shapes => the best outcomes were:"
#: its header line "- benchmark version: N"
MAMF_VERSION_PATTERN = r"^- benchmark version:[ \t]*(\d+)"
#: the headline of a grid summary: its comparison table reports the best shape's mean of 100
#: iterations as MAMF
MAMF_HEADLINE = "mean"
#: version >= 3, ``--search auto`` (its default without shape arguments): two headlines instead
#: of mean/median/max, "MAMF (max achievable,  boost burst): 712 TFLOPS @ 4096x4096x8192 (MxNxK)  698W
#: 1320MHz 71C" (or "n/a"): headline -> pattern of its line (the rest is the figure)
MAMF_AUTO_PATTERNS: dict[str, str] = {
    "mamf": r"^MAMF \(max achievable,[^)]*\):[ \t]*(.*)$",
    "msmf": r"^MSMF \(max sustainable,[^)]*\):[ \t]*(.*)$",
}
MAMF_AUTO_FIGURE = r"^([0-9.]+)[ \t]*TFLOPS[ \t]*@[ \t]*(\d+)x(\d+)x(\d+)"
#: an auto run's headline compared with the harness's SUSTAINED figure: MSMF, the sustained one
#: (MAMF, a boost burst, is kept beside it)
MAMF_AUTO_HEADLINE = "msmf"
#: the auto form, run when the fetched file has ``--search`` (version >= 3): no shape argument
MAMF_AUTO_RUN: tuple[str, tuple[str, ...]] = ("auto", ())
MAMF_AUTO_MIN_VERSION = 3
#: why a figure is only a lower bound of mamf-finder's best, by cause
MAMF_LOWER_BOUND: dict[str, str] = {
    "stopped": "lower bound: stopped at {timeout_s:g} s",
    "quick": "quick form: its README says ~80-90 % of the max",
}
#: seconds mamf-finder gets to print its summary after SIGINT before it is killed
MAMF_GRACE_S = 20.0
#: mamf-finder run unchanged, under the harness's numeric mode (FP32 accumulation, no reduced-
#: precision reductions, TF32 only for tf32), so both sides compute the same GEMM.
#: argv: backend, harness dtype, mamf-finder's path, its arguments
MAMF_SHIM = """
import json, runpy, sys
from icb_bench.kernels.backends import get_backend
backend, dtype, path = sys.argv[1:4]
sys.argv = [path, *sys.argv[4:]]
with get_backend(backend).numeric_mode(dtype) as flags:
    print("icb-bench numeric mode:", json.dumps(flags), flush=True)
    runpy.run_path(path, run_name="__main__")
"""

class Loop(Protocol):
    """A prepared GEMM loop: ``run(seconds)`` -> median batch TFLOPS; ``close()`` frees it."""

    def run(self, seconds: float) -> float: ...

    def close(self) -> None: ...


def _median_tflops(times_ms: list[float], flops_per_batch: int) -> float:
    return statistics.median(flops_per_batch / (t * 1e-3) / 1e12 for t in times_ms if t > 0)


def pin_conditions(threads: int | None, cpus: list[int] | None) -> dict[str, Any]:
    """Pin this process to ``cpus`` and torch to ``threads`` threads (default: one per CPU) --
    before any GEMM, so the thread pool is created on those CPUs. Returns what is in force."""
    import torch

    if cpus:
        os.sched_setaffinity(0, cpus)
    allowed = sorted(os.sched_getaffinity(0))
    torch.set_num_threads(threads or len(allowed))
    return {"cpus": allowed, "torch_threads": torch.get_num_threads()}


class BareLoop:
    """Back-to-back batches of a bare ``torch.matmul(a, b, out=c)`` at one shape; the batch
    size is calibrated once (the harness's own calibration rule, on this loop's clock)."""

    def __init__(self, backend: Any, dtype: str, shape: Any, batch_ms: float, *, quick: bool = False) -> None:
        import torch

        from icb_bench.kernels.dtypes import get_dtype
        from icb_bench.kernels.gemm import CalibrationPolicy, calibrate_iters

        spec = get_dtype(dtype)
        dev = backend.device(0)
        self.backend, self.shape = backend, shape
        self.a = torch.randn(shape.m, shape.k, device=dev).to(spec.torch_dtype("inputs"))
        self.b = torch.randn(shape.k, shape.n, device=dev).to(spec.torch_dtype("inputs"))
        self.c = torch.empty(shape.m, shape.n, device=dev, dtype=spec.torch_dtype("output"))
        self.batch_ms(1)  # lazy initialisation out of the calibration
        policy = CalibrationPolicy(samples=1, max_rounds=2) if quick else None
        self.iters = calibrate_iters(self.batch_ms, batch_ms, policy).iters

    def batch_ms(self, iters: int) -> float:
        import torch

        a, b, c = self.a, self.b, self.c
        timer = self.backend.timer(0)
        timer.start()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        timer.stop()
        return timer.elapsed_ms()

    def run(self, seconds: float) -> float:
        times: list[float] = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds or not times:
            times.append(self.batch_ms(self.iters))
        return _median_tflops(times, self.shape.flops * self.iters)

    def close(self) -> None:
        del self.a, self.b, self.c
        self.backend.empty_cache(0)


class HarnessLoop:
    """The harness's core-phase loop at one shape: host-row inputs, calibrated batches, run_timed."""

    def __init__(self, backend: Any, dtype: str, shape: Any, batch_ms: float) -> None:
        from icb_bench.kernels.gemm import GemmWorkload

        self.shape = shape
        self.wl = GemmWorkload(backend, 0, dtype, shape, seed=1, inputs="host-rows")
        self.iters = self.wl.calibrate(batch_ms)
        self.wl.run_timed(self.iters, n_batches=2)  # as the runner does: a graph captured and replayed once

    def run(self, seconds: float) -> float:
        run = self.wl.run_timed(self.iters, duration_s=seconds)
        return _median_tflops(run.batch_time_ms, self.shape.flops * self.iters)

    def close(self) -> None:
        self.wl.close()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@dataclass
class Rounds:
    """Each tool's figure per round, its wall time, and the 1-min load average after each round."""

    tflops: dict[str, list[float]]
    wall_s: dict[str, float]
    load_avg_1m: list[float]


def paired_rounds(loops: dict[str, Loop], rounds: int, seconds: float,
                  on_result: Callable[[int, str, float, float], None] | None = None) -> Rounds:
    """``rounds`` rounds of every loop for ``seconds``, back to back, the order reversed every
    other round (ABC, CBA, …) so a drifting host weighs on every tool alike."""
    names = list(loops)
    out = Rounds({n: [] for n in names}, {n: 0.0 for n in names}, [])
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            value, took = timed(lambda: loops[name].run(seconds))
            out.tflops[name].append(value)
            out.wall_s[name] += took
            if on_result is not None:
                on_result(r, name, value, took)
        out.load_avg_1m.append(os.getloadavg()[0])
    return out


def median_interval(values: list[float], confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (the values' range with fewer
    than 3, a point when they are all equal)."""
    import numpy as np
    from scipy import stats

    if len(values) < 3 or max(values) == min(values):
        return min(values), max(values)
    res = stats.bootstrap((np.asarray(values, dtype=float),), np.median, confidence_level=confidence,
                          n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def goal_verdict(low: float, high: float, goal: float, n: int) -> tuple[str, str]:
    """(``met`` | ``not met`` | ``inconclusive``, why) for an interval [low, high] against ``goal``."""
    if n < MIN_ROUNDS:
        return "inconclusive", f"{n} paired rounds (at least {MIN_ROUNDS} needed)"
    if low >= goal:
        return "met", f"the whole interval [{low:.4f}, {high:.4f}] is >= {goal:g}"
    if high < goal:
        return "not met", f"the whole interval [{low:.4f}, {high:.4f}] is < {goal:g}"
    return "inconclusive", f"the interval [{low:.4f}, {high:.4f}] straddles {goal:g}: more rounds or a quieter host"


def paired_ratio(num: list[float], den: list[float], goal: float | None = None,
                 confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The median of per-round ratios num[i] / den[i], its bootstrap interval, the ratios' IQR
    and, given a ``goal``, the verdict."""
    if len(num) != len(den) or not num:
        raise ValueError(f"paired ratio needs equally many rounds on both sides, got {len(num)} and {len(den)}")
    return ratio_summary([a / b for a, b in zip(num, den)], goal, confidence)


def cluster_median_interval(groups: list[list[float]], confidence: float = CONFIDENCE,
                            seed: int = 0) -> tuple[float, float]:
    """Two-stage (cluster) percentile-bootstrap interval of the median of every group's values
    together: resample the groups with replacement, then the values within each chosen group,
    median of the concatenation. Values of one group share a cause (one run's search choice),
    so they are not resampled as independent."""
    import numpy as np

    arrays = [np.asarray(g, dtype=float) for g in groups]
    rng = np.random.default_rng(seed)
    medians = np.empty(BOOTSTRAP_RESAMPLES)
    for i in range(BOOTSTRAP_RESAMPLES):
        chosen = rng.integers(len(arrays), size=len(arrays))
        medians[i] = np.median(np.concatenate([rng.choice(arrays[j], size=arrays[j].size) for j in chosen]))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(medians, [alpha, 1 - alpha])
    return float(low), float(high)


#: how --pool's interval is drawn (recorded in its output)
POOL_INTERVAL_METHOD = ("two-stage (cluster) percentile bootstrap of the median: reports resampled with "
                        "replacement, then the rounds within each chosen report; "
                        f"{BOOTSTRAP_RESAMPLES} resamples, seed 0")


def ratio_summary(ratios: list[float], goal: float | None = None, confidence: float = CONFIDENCE,
                  interval: tuple[float, float] | None = None) -> dict[str, Any]:
    """Median, interval (default: the bootstrap of :func:`median_interval`) and IQR of paired
    per-round ``ratios`` and, given a ``goal``, the verdict."""
    low, high = interval if interval is not None else median_interval(ratios, confidence)
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    out: dict[str, Any] = {"median": statistics.median(ratios), "ci_low": low, "ci_high": high,
                           "confidence": confidence, "iqr": [q[0], q[2]], "rounds": len(ratios), "ratios": ratios}
    if goal is not None:
        out["goal"] = goal
        out["verdict"], out["why"] = goal_verdict(low, high, goal, len(ratios))
    return out


class PoolError(ValueError):
    """Reports that cannot be pooled (one line: which file, which field, what was expected)."""


#: what pooled reports must share (dotted paths): a ratio pooled across devices, dtypes, thread
#: counts or round lengths answers no one question
POOL_SAME: tuple[str, ...] = ("device", "backend", "dtype", "conditions.torch_threads", "seconds")


def _field(report: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        report = report.get(key) if isinstance(report, dict) else None
    return report


def _is_ratio(v: Any) -> bool:
    # bool is an int in Python: a JSON true is no ratio
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def pool_reports(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every paired round of several reports (``--json`` files of separate runs, each with its
    own search and grid) as one sample per ratio: the figure then covers the search's run-to-run
    choice too, its interval a two-stage bootstrap (:func:`cluster_median_interval`, rounds
    grouped by report). The reports must share :data:`POOL_SAME`."""
    if not reports:
        raise PoolError("--pool: no report given")
    first_name, first = next(iter(reports.items()))
    groups: dict[str, list[list[float]]] = {name: [] for name, _, _ in RATIOS}
    for path, rep in reports.items():
        for key in POOL_SAME:
            if _field(rep, key) != _field(first, key):
                raise PoolError(f"{path}: {key} {_field(rep, key)!r}, expected {_field(first, key)!r} as in {first_name}")
        for name in groups:
            values = ((rep.get("ratios") or {}).get(name) or {}).get("ratios")
            if not isinstance(values, list) or not values or not all(_is_ratio(v) for v in values):
                raise PoolError(f"{path}: ratios.{name}.ratios: expected a list of positive per-round ratios")
            groups[name].append([float(v) for v in values])
    return {"pooled": list(reports), **{k: _field(first, k) for k in POOL_SAME}, "interval": POOL_INTERVAL_METHOD,
            "ratios": {name: ratio_summary([v for g in gs for v in g], GOALS.get(name),
                                           interval=cluster_median_interval(gs))
                       for name, gs in groups.items()}}


def load_reports(paths: list[str]) -> dict[str, dict[str, Any]]:
    """The ``--json`` reports at ``paths`` (PoolError naming the file that cannot be read)."""
    out = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                out[path] = json.load(fh)
        except (OSError, ValueError) as exc:
            raise PoolError(f"{path}: cannot read a report ({exc})") from None
        if not isinstance(out[path], dict):
            raise PoolError(f"{path}: expected a report object")
    return out


def print_ratios(ratios: dict[str, dict[str, Any]]) -> None:
    """One line per ratio: median, interval, IQR and verdict where it has them."""
    for name, r in ratios.items():
        line = f"  {name:24s} {r['median']:.4f}"
        if "ci_low" in r:
            line += (f"  {r['confidence']:.0%} CI [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
                     f"  IQR [{r['iqr'][0]:.4f}, {r['iqr'][1]:.4f}]")
        if "verdict" in r:
            line += f"  {r['verdict']} vs {r['goal']:g}: {r['why']}"
        print(line)


@dataclass(frozen=True)
class MamfCall:
    """How to invoke mamf-finder: its fetched file, the harness backend and dtype, where its
    output files go, and the seconds each invocation may take before it is stopped."""

    path: str
    backend: str
    dtype: str
    out_dir: str
    timeout_s: float
    grace_s: float = MAMF_GRACE_S
    #: the forms to run, by name (None: every form the file supports, :func:`mamf_forms`)
    forms: tuple[str, ...] | None = None

    def runs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(form, arguments) of each invocation, in order."""
        available = mamf_forms(self.path)
        return tuple(run for run in available if self.forms is None or run[0] in self.forms)


def _run_stoppable(cmd: list[str], cwd: str, timeout_s: float, grace_s: float) -> tuple[str, int | None, str]:
    """(stdout + stderr, exit status, how it ended: ``finished``, ``stopped`` by SIGINT at
    ``timeout_s``, or ``killed`` when it outlived ``grace_s`` after that)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # what it printed before a kill is not lost in a buffer
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ended = "finished"
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        ended = "stopped"
        try:
            out, _ = proc.communicate(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            ended = "killed"
            out, _ = proc.communicate()
    return out or "", proc.returncode, ended


def run_mamf(call: MamfCall) -> list[dict[str, Any]]:
    """mamf-finder in each of its forms (:meth:`MamfCall.runs`): per invocation its summary
    figures, how it ended (``status``), whether its figure is a lower bound of its best
    (``lower_bound``: why, or None) and its wall time; a failure is a ``status``, never raised."""
    out_dir = os.path.abspath(call.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    results = []
    for form, args in call.runs():
        cmd = [sys.executable, "-c", MAMF_SHIM, call.backend, call.dtype, os.path.abspath(call.path), *args,
               "--dtype", MAMF_DTYPES[call.dtype], "--output_file", os.path.join(out_dir, f"mamf-{form}.txt")]
        (text, rc, ended), wall_s = timed(lambda: _run_stoppable(cmd, out_dir, call.timeout_s, call.grace_s))
        figures = parse_mamf(text)
        mode = re.search(r"^icb-bench numeric mode: (\{.*\})$", text, flags=re.M)
        results.append({"form": form, "args": " ".join(args), "rc": rc, "wall_s": wall_s, "ended": ended,
                        "numeric_mode": json.loads(mode.group(1)) if mode else None, **figures,
                        "lower_bound": lower_bound_reason(form, ended, call.timeout_s) if figures["tflops"] else None,
                        "status": mamf_status(figures, text, rc, ended, call),
                        "tail": _console_text(text)[-800:]})
    return results


def _console_text(text: str) -> str:
    """Its console output as lines (progress lines end in \\r, cleared with ESC[K)."""
    return re.sub(r"\r|\033\[K", "\n", text)


def mamf_status(figures: dict[str, Any], text: str, rc: int | None, ended: str, call: MamfCall) -> str:
    """One line saying how an invocation ended and whether its figure counts."""
    if ended == "killed":
        return f"killed: still running {call.grace_s:g} s after SIGINT at {call.timeout_s:g} s; no figure"
    if figures["tflops"] is None:
        last = next((ln.strip() for ln in reversed(_console_text(text).splitlines()) if ln.strip()), "no output")
        when = f"stopped at {call.timeout_s:g} s before a shape finished" if ended == "stopped" else f"exit {rc}"
        return f"failed ({when}): {last[:200]}"
    if ended == "stopped":
        return f"stopped at its {call.timeout_s:g} s limit (SIGINT): best of {figures['shapes']} shapes so far"
    return "finished" if rc == 0 else f"finished with exit {rc}"


def parse_mamf(text: str) -> dict[str, Any]:
    """mamf-finder's closing summary, either format: a grid's mean/median/max (headline
    :data:`MAMF_HEADLINE`) or an auto run's MAMF/MSMF (headline :data:`MAMF_AUTO_HEADLINE`; ``n/a``
    is no figure); every statistic's best, the shapes tried, its benchmark version; None where absent."""
    out: dict[str, Any] = {"tflops": None, "shape": None, "headline": None, "shapes": None, "best": {},
                           "search": None, "benchmark_version": None}
    version = re.findall(MAMF_VERSION_PATTERN, text, flags=re.M)
    out["benchmark_version"] = int(version[-1]) if version else None
    shapes = re.findall(MAMF_SHAPES_PATTERN, text, flags=re.M)
    out["shapes"] = int(shapes[-1]) if shapes else None
    auto = {name: re.findall(pattern, text, flags=re.M) for name, pattern in MAMF_AUTO_PATTERNS.items()}
    if any(auto.values()):
        out["search"], headline = "auto", MAMF_AUTO_HEADLINE
        for name, found in auto.items():
            figure = re.match(MAMF_AUTO_FIGURE, found[-1].strip()) if found else None
            if figure:  # "n/a" (or anything else) is no figure
                out["best"][name] = {"tflops": float(figure.group(1)), "shape": "x".join(figure.groups()[1:])}
    else:
        headline = MAMF_HEADLINE
        for stat, pattern in MAMF_PATTERNS.items():
            found = re.findall(pattern, text, flags=re.M)
            if found:  # the last summary counts (it prints one; a second after SIGINT would be newer)
                out["best"][stat] = {"tflops": float(found[-1][0]), "shape": "x".join(found[-1][1:])}
        out["search"] = "grid" if out["best"] else None
    if headline in out["best"]:
        out.update(out["best"][headline], headline=headline)
    return out


def mamf_forms(path: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The forms to run with the file at ``path``: :data:`MAMF_RUNS`, and first the auto form
    where it has ``--search`` (benchmark version >= 3)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            source = fh.read()
    except OSError:
        return MAMF_RUNS  # its failure to start is then each run's one-line status
    version = re.search(r"^benchmark_version\s*=\s*(\d+)", source, flags=re.M)
    if '"--search"' in source or (version and int(version.group(1)) >= MAMF_AUTO_MIN_VERSION):
        return (MAMF_AUTO_RUN, *MAMF_RUNS)
    return MAMF_RUNS


def lower_bound_reason(form: str, ended: str, timeout_s: float) -> str | None:
    """Why a run's figure is only a lower bound of mamf-finder's best (None: it is its best)."""
    if ended == "stopped":
        return MAMF_LOWER_BOUND["stopped"].format(timeout_s=timeout_s)
    return MAMF_LOWER_BOUND.get(form)


def _cpus(text: str) -> list[int]:
    try:
        cpus = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cpus {text!r}: expected CPU numbers separated by commas, e.g. 0 or 0,1")
    allowed = os.sched_getaffinity(0)
    if not cpus or not set(cpus) <= allowed:
        raise argparse.ArgumentTypeError(f"--cpus {text!r}: expected CPUs among those allowed {sorted(allowed)}")
    return cpus


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--grid-sizes {text!r}: expected positive integers separated by commas")
    return sizes


def _forms(text: str) -> tuple[str, ...]:
    known = [f for f, _ in (MAMF_AUTO_RUN, *MAMF_RUNS)]
    forms = tuple(x.strip() for x in text.split(",") if x.strip())
    if not forms or not set(forms) <= set(known):
        raise argparse.ArgumentTypeError(f"--mamf-forms {text!r}: expected names among {', '.join(known)}")
    return forms


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", help="a harness dtype (kernels/dtypes.py)")
    ap.add_argument("--seconds", type=float, default=1.0, help="each tool's run per round")
    ap.add_argument("--rounds", type=int, default=15, help=f"paired rounds (at least {MIN_ROUNDS} to answer a goal)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: one per pinned CPU)")
    ap.add_argument("--cpus", type=_cpus, default=None, help="pin to these CPUs, e.g. 1 or 0,1")
    ap.add_argument("--grid-sizes", type=_sizes, default=None, help="sizes of the grid's m, n and k (default: GRIDS)")
    ap.add_argument("--grid-seconds", type=float, default=0.15, help="brute-force time per grid shape")
    ap.add_argument("--batch-ms", type=float, default=50.0)
    ap.add_argument("--search-budget", type=float, default=6.0, help="the harness's search budget (s)")
    ap.add_argument("--core-s", type=float, default=60.0, help="core phase the search budget is a share of")
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--mamf", default=None, help="path of a fetched mamf-finder.py (CUDA only)")
    ap.add_argument("--mamf-timeout", type=float, default=120.0,
                    help="seconds each mamf-finder invocation may take (then SIGINT: it prints its best so far)")
    ap.add_argument("--mamf-grace", type=float, default=MAMF_GRACE_S,
                    help="seconds mamf-finder gets after SIGINT to print its best before it is killed")
    ap.add_argument("--mamf-forms", type=_forms, default=None,
                    help=f"mamf-finder forms to run, e.g. auto,quick (default: all it supports of "
                         f"{', '.join(f for f, _ in (MAMF_AUTO_RUN, *MAMF_RUNS))})")
    ap.add_argument("--out", default=".", help="directory for mamf-finder's output files")
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--pool", nargs="+", metavar="REPORT", default=None,
                    help="measure nothing: pool the paired rounds of these --json reports (same device and dtype)")
    args = ap.parse_args(argv)
    from icb_bench.kernels.dtypes import DTYPES

    if args.dtype not in DTYPES:
        ap.error(f"--dtype {args.dtype!r}: expected one of {', '.join(DTYPES)}")
    if args.mamf is not None and not os.path.isfile(args.mamf):
        ap.error(f"--mamf {args.mamf!r}: no such file (fetch mamf-finder.py first, see scripts/gpu-check.sh)")
    for name in ("seconds", "grid_seconds", "batch_ms", "search_budget", "core_s", "mamf_timeout", "mamf_grace"):
        if not getattr(args, name) > 0:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)!r}: expected a positive number")
    if args.rounds < 1 or (args.threads is not None and args.threads < 1):
        ap.error(f"--rounds {args.rounds!r} / --threads {args.threads!r}: expected positive integers")
    return args


def harness_choice(backend: Any, args: argparse.Namespace, free_b: int, compute_units: int | None) -> dict[str, Any]:
    """The harness's way: heat the device on its first candidate, then successive halving."""
    from icb_bench.kernels.search import HalvingPolicy, halving_search
    from icb_bench.kernels.shapes import search_candidates

    cands = search_candidates(args.dtype, free_b, compute_units, quick=backend.prefers_small_shapes, limit=16)
    heater = BareLoop(backend, args.dtype, cands[0].shape, args.batch_ms)
    _, warm_s = timed(lambda: heater.run(args.warmup_s))
    heater.close()
    search, search_s = timed(lambda: halving_search(backend, 0, args.dtype, cands, 0,
                                                    HalvingPolicy(budget_s=args.search_budget)))
    return {"outcome": search, "candidates": [str(c.shape) for c in cands], "warmup_s": warm_s, "wall_s": search_s}


def brute_force_grid(backend: Any, args: argparse.Namespace, free_b: int) -> dict[str, Any]:
    """Every grid shape briefly, the top ones again in two alternating passes; the best of those."""
    from icb_bench.kernels.shapes import MEMORY_FRACTION, GemmShape, shape_bytes

    grid = [GemmShape(m, n, k) for m, n, k in itertools.product(args.grid_sizes or GRIDS[args.device], repeat=3)
            if shape_bytes(args.dtype, GemmShape(m, n, k)) <= MEMORY_FRACTION * free_b]
    t0 = time.perf_counter()
    brief: dict[Any, float] = {}
    for shape in grid:
        loop = BareLoop(backend, args.dtype, shape, args.batch_ms / 4, quick=True)
        brief[shape] = loop.run(args.grid_seconds)
        loop.close()
    top = sorted(brief, key=lambda sh: -brief[sh])[:GRID_REFINE_TOP]
    passes: dict[Any, list[float]] = {sh: [] for sh in top}
    for order in (top, top[::-1]):  # a brief figure is a noisy one; two passes, the second reversed
        for shape in order:
            loop = BareLoop(backend, args.dtype, shape, args.batch_ms)
            passes[shape].append(loop.run(args.seconds))
            loop.close()
    refined = {sh: statistics.mean(v) for sh, v in passes.items()}
    best = max(refined, key=refined.get)
    return {"shapes": len(grid), "best": best, "tflops_brief": brief[best], "brief": brief,
            "refined": {str(sh): v for sh, v in refined.items()}, "wall_s": time.perf_counter() - t0,
            "top5": [(str(s), brief[s]) for s in top],
            "brief_ranked": sorted(((str(s), v) for s, v in brief.items()), key=lambda x: -x[1])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pool:
        return pool_main(args.pool, args.json)
    conditions = pin_conditions(args.threads, args.cpus)  # first: every GEMM below runs under them

    from icb_bench.kernels.backends import get_backend

    backend = get_backend(args.device)
    info = backend.device_info(0)
    free_b, _ = backend.memory_info(0)
    load_start = os.getloadavg()
    report: dict[str, Any] = {"device": info.model, "backend": args.device, "dtype": args.dtype,
                              "compute_units": info.compute_units, "conditions": conditions,
                              "seconds": args.seconds, "rounds": args.rounds, "load_avg_start": load_start,
                              "argv": sys.argv[1:] if argv is None else argv}
    with backend.numeric_mode(args.dtype):
        choice = harness_choice(backend, args, free_b, info.compute_units)
        search = choice["outcome"]
        chosen = search.best
        grid = brute_force_grid(backend, args, free_b)
        report["harness_search"] = {
            "chosen": str(chosen), "family": search.family, "tflops_search": search.tflops_search,
            "spent_s": search.spent_s, "wall_s": choice["wall_s"], "warmup_s": choice["warmup_s"],
            "share_of_core_phase": search.spent_s / args.core_s, "stopped": search.stopped,
            "candidates": choice["candidates"], "rounds": search.rounds}
        report["grid"] = {**{k: v for k, v in grid.items() if k != "brief"}, "best": str(grid["best"]),
                          "grid_best_among_candidates": str(grid["best"]) in choice["candidates"],
                          "chosen_brief_tflops": grid["brief"].get(chosen),
                          "chosen_brief_rank": (sorted(grid["brief"], key=lambda s: -grid["brief"][s]).index(chosen) + 1
                                                if chosen in grid["brief"] else None)}
        loops: dict[str, Loop] = {
            "harness": HarnessLoop(backend, args.dtype, chosen, args.batch_ms),
            "bare-chosen": BareLoop(backend, args.dtype, chosen, args.batch_ms),
            "grid-best": BareLoop(backend, args.dtype, grid["best"], args.batch_ms),
        }
        try:
            rounds = paired_rounds(loops, args.rounds, args.seconds, lambda r, name, value, took: print(
                f"round {r:2d} {name:12s} {value:10.4f} TFLOPS ({took:.1f} s)", flush=True))
        finally:
            for loop in loops.values():
                loop.close()
    medians = {name: statistics.median(v) for name, v in rounds.tflops.items()}
    report["sustained"] = {name: {"median_tflops": medians[name], "rounds": rounds.tflops[name],
                                  "wall_s": rounds.wall_s[name]} for name in loops}
    report["ratios"] = {name: paired_ratio(rounds.tflops[a], rounds.tflops[b], GOALS.get(name)) for name, a, b in RATIOS}
    report["load_avg_1m_per_round"] = rounds.load_avg_1m
    report["load_avg_end"] = os.getloadavg()
    report["harness_wall_s"] = choice["warmup_s"] + choice["wall_s"] + rounds.wall_s["harness"] / args.rounds
    skipped = mamf_skip_reason(args)
    report["mamf"] = {"skipped": skipped} if skipped else {"pending": "mamf-finder runs after these figures"}
    # every figure so far is printed and written before mamf-finder runs: its failure or a
    # timeout of this whole step cannot lose them
    print_report(report, args)
    write_json(report, args.json)
    if skipped:
        print(f"mamf-finder skipped: {skipped}")
        return 0
    call = MamfCall(args.mamf, args.device, args.dtype, args.out, args.mamf_timeout, args.mamf_grace, args.mamf_forms)
    forms = [f for f, _ in call.runs()]
    print(f"mamf-finder: {len(forms)} runs ({', '.join(forms)}) of at most {call.timeout_s:g} s each "
          f"(+ {call.grace_s:g} s to stop), --dtype {MAMF_DTYPES[args.dtype]} under the harness's {args.dtype} numeric mode", flush=True)
    runs, mamf_s = timed(lambda: run_mamf(call))
    report["mamf"] = mamf_summary(runs, mamf_s, args.dtype)
    if report["mamf"]["best_tflops"]:
        report["ratios"]["harness/mamf-best"] = mamf_ratio(medians["harness"], report["mamf"])
        report["ratios"]["harness_wall/mamf_wall"] = wall_ratio(report["harness_wall_s"], mamf_s)
    print_mamf(report)
    write_json(report, args.json)
    return 0 if report["mamf"]["best_tflops"] else 3


def pool_main(paths: list[str], json_path: str | None) -> int:
    """``--pool``: print (and write) the pooled ratios; a bad report is one line, exit 2."""
    try:
        pooled = pool_reports(load_reports(paths))
    except PoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rounds = pooled["ratios"][RATIOS[0][0]]["rounds"]
    print(f"{pooled['device']} ({pooled['backend']}, {pooled['dtype']}): {len(paths)} reports pooled, {rounds} paired rounds")
    print_ratios(pooled["ratios"])
    write_json(pooled, json_path)
    return 0


def mamf_skip_reason(args: argparse.Namespace) -> str | None:
    """Why mamf-finder is not run (None: it is)."""
    if not args.mamf:
        return "no --mamf path given"
    if args.device != "cuda":
        return "mamf-finder needs --device cuda"
    if args.dtype not in MAMF_DTYPES:
        return f"mamf-finder has no {args.dtype} GEMM"
    return None


def mamf_summary(runs: list[dict[str, Any]], wall_s: float, dtype: str) -> dict[str, Any]:
    """The report's ``mamf`` object: every run, the best headline figure among them, the wall time."""
    best = max((r for r in runs if r["tflops"] and r.get("ended") != "killed"), key=lambda r: r["tflops"], default=None)
    return {"runs": runs, "best_tflops": best["tflops"] if best else None, "best_shape": best["shape"] if best else None,
            "best_form": best["form"] if best else None, "headline": best["headline"] if best else None,
            "lower_bound": best.get("lower_bound") if best else None, "wall_s": wall_s,
            "dtype": MAMF_DTYPES[dtype], "note": MAMF_DTYPE_NOTES.get(dtype)}


def wall_ratio(harness_wall_s: float, mamf_wall_s: float,
               bound: float = WALL_GOALS["harness_wall/mamf_wall"]) -> dict[str, Any]:
    """``harness_wall/mamf_wall``: the harness's warm-up + search + one sustained run over
    mamf-finder's wall time, met when at most ``bound``."""
    ratio = harness_wall_s / mamf_wall_s
    return {"median": ratio, "goal": bound, "verdict": "met" if ratio <= bound else "not met",
            "why": f"{ratio:.4f} {'<=' if ratio <= bound else '>'} {bound:g} (one figure each)"}


def mamf_ratio(harness_tflops: float, mamf: dict[str, Any], goal: float = GOALS["harness/mamf-best"]) -> dict[str, Any]:
    """``harness/mamf-best``: the harness's sustained median over mamf-finder's best figure, its
    note, and a verdict against ``goal`` -- ``inconclusive`` when that figure is a lower bound of
    mamf-finder's best and the ratio clears the goal (the true ratio may be lower)."""
    ratio = harness_tflops / mamf["best_tflops"]
    bound = mamf["lower_bound"]
    out: dict[str, Any] = {"median": ratio, "goal": goal,
                           "note": f"one mamf-finder figure (its best {mamf['headline']}, {mamf['best_form']} form)"
                                   + (f"; {bound}" if bound else "")}
    if ratio < goal:  # a lower-bound peer figure only lowers the true ratio further
        out["verdict"], out["why"] = "not met", f"{ratio:.4f} < {goal:g} (one figure, no interval)"
    elif bound:
        out["verdict"], out["why"] = "inconclusive", f"{ratio:.4f} >= {goal:g} against a {bound}"
    else:
        out["verdict"], out["why"] = "met", f"{ratio:.4f} >= {goal:g} (one figure, no interval)"
    return out


def write_json(report: dict[str, Any], path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=str)


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    c = report["conditions"]
    print(f"\n{report['device']} ({args.device}, {args.dtype}), CPUs {c['cpus']}, {c['torch_threads']} torch threads; "
          f"{args.rounds} paired rounds of {args.seconds:g} s; load average {report['load_avg_start'][0]:.2f} at the "
          f"start, {report['load_avg_end'][0]:.2f} at the end")
    s = report["harness_search"]
    print(f"harness search: {s['chosen']} ({s['family']}) {s['tflops_search']:.4f} TFLOPS in {s['spent_s']:.2f} s "
          f"= {s['share_of_core_phase']:.1%} of a {args.core_s:g} s core phase ({s['stopped']})")
    g = report["grid"]
    print(f"grid: {g['shapes']} shapes in {g['wall_s']:.1f} s, best {g['best']} "
          f"({'among' if g['grid_best_among_candidates'] else 'not among'} the harness's candidates); "
          f"chosen shape's brief rank in the grid: {g['chosen_brief_rank']}")
    for name, v in report["sustained"].items():
        print(f"  {name:12s} median {v['median_tflops']:10.4f} TFLOPS   wall {v['wall_s']:7.1f} s")
    print_ratios(report["ratios"])


def print_mamf(report: dict[str, Any]) -> None:
    """One line per mamf-finder run, then the comparison (or why there is none)."""
    m = report["mamf"]
    for r in m["runs"]:
        others = ", ".join(f"{k} {v['tflops']:.1f}" for k, v in r["best"].items() if k != r["headline"])
        bound = f" [{r['lower_bound']}]" if r.get("lower_bound") else ""
        figure = f"{r['tflops']:.1f} TFLOPS {r['headline']} @ {r['shape']} ({others}){bound}; " if r["tflops"] else ""
        print(f"mamf-finder {r['form']} ({r['args']}): {figure}{r['status']}; {r['wall_s']:.1f} s")
    if not m["best_tflops"]:
        print("mamf-finder: no figure from any run (each run's line above says why)")
        return
    note = f" ({m['note']})" if m["note"] else ""
    ratio = report["ratios"]["harness/mamf-best"]
    verdict = f" {ratio['verdict']}: {ratio['why']}" if "verdict" in ratio else ""
    print(f"mamf-finder best: {m['best_tflops']:.1f} TFLOPS @ {m['best_shape']} ({m['best_form']}){note}; "
          f"harness/mamf-best {ratio['median']:.4f}{verdict}")
    wall = report["ratios"]["harness_wall/mamf_wall"]
    print(f"wall time: harness {report['harness_wall_s']:.1f} s (warm-up, search, one sustained round), "
          f"mamf-finder {m['wall_s']:.1f} s; harness_wall/mamf_wall {wall['median']:.4f} {wall['verdict']}: {wall['why']}")


if __name__ == "__main__":
    sys.exit(main())
