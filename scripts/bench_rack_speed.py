#!/usr/bin/env python
"""Speed and memory of the per-rack GFLOPS/W arithmetic (bench/rack.py) on a large site.

Builds, in memory, 3,000 racks × 8 nodes × 4 devices (96,000 devices), each device with ~600
batch times of ~100 ms (jittered) over a ~60.5 s core phase, a device energy reading, and per rack
two PDU feeds (A + B) read at 1 Hz around the load (optionally also one BMC per node at 1 Hz);
then computes every rack's figure and the site sums. Prints the compute time (untraced, wall and CPU), its
peak traced allocation (tracemalloc, a second pass) and the process's peak RSS, against the goals
(≤ 10 s on 2 cores, ≤ 2 GiB).

    python scripts/bench_rack_speed.py [--racks 3000] [--nodes 8] [--devices 4] [--node-meters]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from icb_bench.bench.rack import DeviceLoad, MeterSeries, MeterSpec, RackInput, Reading, rack_figure, site_figures

GOAL_S = 10.0
GOAL_MIB = 2048
DEVICE_W = 600.0
NODE_OVERHEAD_W = 800.0


def _meter(source: str, scope: str, power_w: float, t0: float, seconds: int, rng: np.random.Generator) -> MeterSeries:
    """1 Hz instantaneous readings from 5 s before ``t0`` to 5 s after the load, ±1 % noise."""
    times = t0 - 5.0 + np.arange(seconds + 10) + rng.uniform(0, 1)
    powers = power_w * (1 + 0.01 * rng.standard_normal(times.size))
    spec = MeterSpec(source, scope, "polled", 0.01, resolution_w=1.0, period_s=1.0)  # type: ignore[arg-type]
    return MeterSeries(spec, [Reading(float(t), float(t), power_w=float(p)) for t, p in zip(times, powers)])


def build_site(racks: int, nodes: int, devices: int, node_meters: bool, seed: int = 0) -> list[RackInput]:
    rng = np.random.default_rng(seed)
    out = []
    for r in range(racks):
        name = f"R{r:04d}"
        base = 1000.0 + 200.0 * r  # racks run one after another on rank 0's timeline
        node_names = [f"{name}n{n}" for n in range(nodes)]
        loads = []
        for node in node_names:
            for d in range(devices):
                bt = rng.normal(100.0, 1.0, 605)  # ~60.5 s of 100 ms batches
                t_begin = base + rng.uniform(0.0, 0.3)
                t_end = t_begin + float(bt.sum()) / 1e3 * 1.005  # 0.5 % host gaps
                loads.append(DeviceLoad(name, node, d, "fp16", t_begin, t_end, bt, 2 * 8192**3 * 40, True,
                                        "assessment", energy_j=DEVICE_W * (t_end - t_begin)))
        rack_w = nodes * (devices * DEVICE_W + NODE_OVERHEAD_W)
        pdus = [_meter(f"pdu:{name}/{feed}", "rack", rack_w / 2, base, 61, rng) for feed in "AB"]
        bmcs = {n: [_meter(f"bmc:{n}", "node", rack_w / nodes, base, 61, rng)] for n in node_names} if node_meters else {}
        out.append(RackInput(name, node_names, nodes * devices, loads, pdus, bmcs))
    return out


def compute(site: list[RackInput]) -> tuple[list[dict], dict]:
    figures = [rack_figure(inp, "fp16") for inp in site]
    return figures, site_figures(figures)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--racks", type=int, default=3000)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--node-meters", action="store_true", help="also one 1 Hz BMC per node")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    site = build_site(args.racks, args.nodes, args.devices, args.node_meters)
    build_s = time.perf_counter() - t
    rss_inputs_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t, cpu = time.perf_counter(), time.process_time()
    figures, totals = compute(site)
    compute_s, compute_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    load_1min = os.getloadavg()[0]

    tracemalloc.start()
    compute(site)
    _, peak_b = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    fp16 = totals["dtypes"]["fp16"]
    n_dev = sum(len(inp.loads) for inp in site)
    print(f"site: {len(site)} racks, {n_dev} devices, node meters: {args.node_meters}; built in {build_s:.1f} s")
    print(f"racks ok/insufficient/missing: {fp16['ok']}/{fp16['insufficient']}/{fp16['missing']}, valid {fp16['valid']}; "
          f"Σ {fp16['tflops']:.4g} TFLOPS; rack 0: {figures[0]['gflops_per_w']:.4g} GFLOPS/W ± {figures[0]['uncertainty_rel']:.2%} "
          f"({figures[0]['assurance']}, {figures[0]['readings_inside']} readings inside)")
    print(f"compute: {compute_s:.2f} s wall, {compute_cpu_s:.2f} s CPU (goal ≤ {GOAL_S:g} s; load average "
          f"{load_1min:.1f} on {os.cpu_count()} cores: on a shared machine the CPU time is the figure); traced peak of the compute: {peak_b / 2**20:.0f} MiB; "
          f"process peak RSS: {rss_mib:.0f} MiB ({rss_inputs_mib:.0f} MiB after building the inputs; goal ≤ {GOAL_MIB} MiB)")
    ok = min(compute_s, compute_cpu_s) <= GOAL_S and rss_mib <= GOAL_MIB and fp16["ok"] == len(site)
    print("within goals" if ok else "OUTSIDE GOALS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
