"""Speed of rank 0's side of a 24,000-node run (≈ 100,000 devices, 3,000 racks): receiving every
shard's measurements (digest + parse, as they arrive during the run) and the merge at the end
(merged manifest with every node, per-node, per-rack and whole-run aggregates, the file index).

    python scripts/bench_fleet_merge_speed.py [--racks 3000] [--nodes-per-rack 8] [--devices 4]

Prints wall and CPU seconds and peak memory of each phase. Goal (issue "Fleet"): the merge and
every rack's GFLOPS/W ≤ 10 s and ≤ 2 GiB on 2 cores. Measurements are synthesised in the record
format (600 batches of ~100 ms each, 60 s core phases); the PDUs read 1 Hz for 70 s.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from icb_bench.bench.fleet import BarrierEvent, NodeState
from icb_bench.bench.fleet_power import SiteMonitor
from icb_bench.bench.fleet_run import write_fleet_manifest
from icb_bench.bench.plan import RunPlan
from icb_bench.bench.rack import Reading
from icb_bench.bench.shard_index import ShardIndex
from icb_bench.bench.site import parse_site

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "bench" / "golden" / "measurement.json"
BATCHES = 600
T0 = 1000.0  # rank 0's monotonic clock at the common start


def measurement(template: dict, node: str, device: int, rng: random.Random) -> bytes:
    m = dict(template)
    bt = [100.0 + rng.gauss(0, 0.5) for _ in range(BATCHES)]
    iters = m["samples"]["iters_per_batch"]
    m.update(id=f"{node}-d{device}-fp16", host=node, device=device, dtype="fp16", grade="assessment", valid=True,
             samples={"batch_time_ms": bt, "iters_per_batch": iters}, flops_total=m["flops_per_gemm"] * iters * BATCHES,
             core_phase_s=sum(bt) / 1000, core_window={"t_begin_s": T0 + rng.uniform(0, 0.01),
                                                       "t_end_s": T0 + sum(bt) / 1000, "clock": "monotonic"})
    return json.dumps(m).encode()


class SyntheticMonitor(SiteMonitor):
    """The site's meters without a network: each PDU read ~1 Hz from the idle phase to the end
    (made before the clock starts: polling happens during the run, not in the merge)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.readings = {}
        for src in self.sources:
            rng = random.Random(src.source_id)
            self.readings[src.source_id] = [Reading(t, t, 14000.0 + rng.gauss(0, 50))
                                            for t in (T0 - 5 + i + rng.uniform(0, 0.01) for i in range(75))]

    def _polled(self, src):
        return self.readings[src.source_id]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--racks", type=int, default=3000)
    ap.add_argument("--nodes-per-rack", type=int, default=8)
    ap.add_argument("--devices", type=int, default=4)
    args = ap.parse_args()
    template = json.loads(GOLDEN.read_text())
    rng = random.Random(0)
    racks = [{"name": f"R{r:04d}", "pdus": [{"type": "redfish", "url": f"https://pdu-{r}.invalid/redfish/v1/PowerEquipment/RackPDUs/1",
                                              "accuracy": "1%"}],
              "nodes": [{"name": f"R{r:04d}N{n}", "devices": {"model": "NVIDIA H100 80GB HBM3", "count": args.devices}}
                        for n in range(args.nodes_per_rack)]} for r in range(args.racks)]
    site = parse_site({"schema": "icb-bench/site/1", "site": "speed", "racks": racks})
    names = [n["name"] for r in racks for n in r["nodes"]]
    print(f"{len(names)} nodes, {len(names) * args.devices} devices, {args.racks} racks")

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        index = ShardIndex(run_dir)
        # files are made one at a time (rank 0 never holds them all): only the receiving is timed
        wall = cpu = 0.0
        size = 0
        for node in names:
            for d in range(args.devices):
                data = measurement(template, node, d, rng)
                size += len(data)
                w0, c0 = time.perf_counter(), time.process_time()
                index.add(node, f"measurements/{node}-d{d}-fp16.json", data, write=False)
                wall += time.perf_counter() - w0
                cpu += time.process_time() - c0
        print(f"receive (digest + parse each file as it arrives, during the run; {size / 2**30:.2f} GiB of JSON): "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU, {wall / len(names) * 1e3:.2f} ms per node")
        rss_receive = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

        plan = RunPlan.build("cuda", tuple(range(args.devices)), ("fp16",))
        nodes = [NodeState(n, i, args.devices, done={"status": "complete"}) for i, n in enumerate(names)]
        coord = SimpleNamespace(nodes={n.name: n for n in nodes}, received={n: args.devices for n in names}, index=index,
                                barriers=[BarrierEvent("b0", T0 - 0.1, T0, len(names) * args.devices, len(names) * args.devices)],
                                errors=[], rejected=[])
        job = SimpleNamespace(node=names[0], run_id="speed", launch={"launcher": "synthetic"}, world_size=len(names),
                              timeline={"epoch_s": 1.8e9, "monotonic_s": T0 - 100},
                              clock={n: {"offset_s": 0.0, "rtt_s": 0.0} for n in names},
                              nodes=[{"name": n, "rank": i, "hostname": n, "devices": args.devices} for i, n in enumerate(names)])
        (run_dir / "nodes" / names[0]).mkdir(parents=True)
        monitor = SyntheticMonitor(site, run_dir, names, plan)
        monitor.t_load = T0 - 1.0
        import pandas  # noqa: F401 - imported by rank 0 long before its merge (the run's traces)
        w2, c2 = time.perf_counter(), time.process_time()
        man = write_fleet_manifest(run_dir, job, plan, coord, monitor, "2026-12-01T00:00:00Z", ["bench", "run"])
        w3, c3 = time.perf_counter(), time.process_time()
        racks_out = [a for a in man["aggregates"] if a["scope"] == "rack"]
        ok = sum(1 for a in racks_out if a["status"] == "ok")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"merge at the end (manifest, node/rack/run aggregates, file index): {w3 - w2:.2f} s wall, {c3 - c2:.2f} s CPU; "
              f"{len(racks_out)} rack figures ({ok} ok)")
        print(f"peak RSS after receiving {rss_receive:.2f} GiB, after the merge {rss:.2f} GiB")
        print(f"goal merge ≤ 10 s: {'met' if w3 - w2 <= 10 else 'NOT met'} (wall), "
              f"{'met' if c3 - c2 <= 10 else 'NOT met'} (CPU); ≤ 2 GiB: {'met' if rss <= 2 else 'NOT met'} (RSS)")


if __name__ == "__main__":
    main()
