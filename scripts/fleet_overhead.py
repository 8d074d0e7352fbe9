"""Overhead of multi-node coordination on the core phase, measured side by side on this host.

    python scripts/fleet_overhead.py [--rounds 3] [--duration 10] [--shape 512x512x512]

Two "nodes" (CPU backend, one device each), each pinned to a core of its own (`taskset`), run the
same plan in each round, alternating: **A** as one job (two torchrun agents: process group, store,
heartbeats, rank 0's coordinator thread, shards shipped to rank 0) and **B** as two independent
`bench run` processes on the same two cores (no coordination; pinned, they do not contend, so
their phases need not line up). Printed: each round's GFLOPS per node and the ratio A/B of the
medians over all rounds (1.0 = no overhead). Loopback only; in a network namespace where one can
be made.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "bench"))

from fleet_helpers import env, loopback_netns, start_job  # noqa: E402

from icb_bench.bench import record  # noqa: E402


def tflops(run_dir: Path) -> list[float]:
    return [m["tflops"] for m in record.load_run(run_dir).measurements if m.get("tflops")]


PIN = {0: ["taskset", "-c", "0"], 1: ["taskset", "-c", "1"]}


def job_round(tmp: Path, args: list[str], prefix: list[str]) -> list[float]:
    nodes = start_job(tmp, 2, args, prefix=prefix, node_prefix=PIN)
    codes = [n.wait(600) for n in nodes]
    if any(codes):
        raise SystemExit(f"job failed: {[n.stderr()[-500:] for n in nodes]}")
    return tflops(nodes[0].out)


def solo_round(tmp: Path, args: list[str]) -> list[float]:
    bench = str(Path(sys.executable).parent / "bench")
    procs = [subprocess.Popen([*PIN[i], bench, "run", *args, "--out", str(tmp / f"solo{i}")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env()) for i in range(2)]
    out = []
    for i, p in enumerate(procs):
        if p.wait(600):
            raise SystemExit(f"solo run failed: {p.stderr.read()[-500:]!r}")
        out += tflops(tmp / f"solo{i}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--shape", default="512x512x512")
    a = ap.parse_args()
    args = ["--backend", "cpu", "--quick", "--duration", str(a.duration), "--shape", a.shape, "--dtypes", "fp32", "--json"]
    job, solo = [], []
    with loopback_netns() as prefix, tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for kind in (("job", "solo") if r % 2 == 0 else ("solo", "job")):
                d = Path(tmp) / f"r{r}-{kind}"
                d.mkdir()
                got = job_round(d, args, prefix) if kind == "job" else solo_round(d, args)
                (job if kind == "job" else solo).extend(got)
                print(f"round {r} {kind:4s}: " + ", ".join(f"{x * 1e3:.2f}" for x in got) + " GFLOPS", flush=True)
    ratio = statistics.median(job) / statistics.median(solo)
    print(json.dumps({"job_median_gflops": statistics.median(job) * 1e3, "solo_median_gflops": statistics.median(solo) * 1e3,
                      "ratio_job_over_solo": ratio, "rounds": a.rounds, "duration_s": a.duration, "shape": a.shape}))


if __name__ == "__main__":
    main()
