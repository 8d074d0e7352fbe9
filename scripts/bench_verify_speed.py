#!/usr/bin/env python
"""Speed of `bench verify` on a large site: 100,000 measured device records, scored.

Builds, in memory, 3,000 rack records × 32 FP16 assessment measurements (96,000 devices: 2,000
racks of H100 SXM, 1,000 of Ascend 910B) plus 4,000 smoke-grade measurements that must be listed
and ignored — 100,000 device records in all — each rack with a rack-scope power aggregate; then
runs :func:`icb_bench.verify.measured.verify` and renders JSON. Prints the elapsed seconds and the
peak RSS against the goals (≤ 3 s on a 2-core machine, ≤ 1 GiB).

    python scripts/bench_verify_speed.py [--racks 3000] [--devices 32] [--smoke 4000]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

GOAL_S = 3.0
GOAL_RSS_MIB = 1024


def _measurement(rack: int, dev: int, model: str, peak: float, tflops: float, domestic: bool, grade: str) -> dict[str, Any]:
    host = f"r{rack:04d}n{dev // 8}"
    return {
        "schema": "icb-bench/measurement/1",
        "id": f"{host}-d{dev % 8}-fp16",
        "seq": 0,
        "host": host,
        "device": dev % 8,
        "backend": "npu" if domestic else "cuda",
        "device_info": {"model": model, "vendor": "Huawei" if domestic else "NVIDIA", "domestic": domestic,
                        "uuid": f"{host}-{dev % 8}-{grade}", "serial": None},
        "dtype": "fp16",
        "dtype_spec": {"inputs": "fp16", "accumulate": "fp32", "output": "fp16"},
        "grade": grade,
        "core_phase_s": 120.0 if grade == "assessment" else 5.0,
        "valid": True,
        "status": "ok",
        "tflops": tflops,
        "tflops_stats": {"n": 60, "median": tflops, "q1": tflops - 3, "q3": tflops + 3, "iqr": 6.0, "mean": tflops,
                         "stdev": 2.0, "cv": 2.0 / tflops, "min": tflops - 8, "max": tflops + 8},
        "power_w": 600.0,
        "energy_j": 72000.0,
        "gflops_per_w": tflops * 1000 / 600.0,
        "power_scope": "device",
        "power_method": "counter",
        "peak": {"tflops": peak, "source": "datasheet", "kind": "datasheet"},
        "fraction_of_peak": tflops / peak,
    }


def build_site(racks: int = 3000, devices: int = 32, smoke: int = 4000, seed: int = 0):
    """(declaration, records): the synthetic site, every record a ``RunRecord`` held in memory."""
    from icb_bench.bench.record import RunRecord
    from icb_bench.verify.declaration import parse_declaration

    rng = random.Random(seed)
    nvidia_racks = racks * 2 // 3
    records = []
    for r in range(racks):
        domestic = r >= nvidia_racks
        model, peak, mean = ("Ascend910B3", 313.0, 260.0) if domestic else ("NVIDIA H100 80GB HBM3", 989.0, 720.0)
        ms = [_measurement(r, d, model, peak, rng.gauss(mean, mean * 0.02), domestic, "assessment") for d in range(devices)]
        total = sum(m["tflops"] for m in ms)
        power = devices * 700.0 + 3000.0
        agg = {"scope": "rack", "rack_id": f"R{r:04d}", "dtype": "fp16", "devices": devices, "tflops": total,
               "power_w": power, "energy_j": power * 120, "gflops_per_w": total * 1000 / power, "power_scope": "rack",
               "power_method": "polled", "grade": "assessment", "valid": True}
        manifest = {"schema": "icb-bench/record/1", "run_id": f"run-R{r:04d}", "status": "complete", "aggregates": [agg]}
        records.append(RunRecord(path=Path(f"mem/R{r:04d}"), manifest=manifest, measurements=ms))
    smoke_ms = [_measurement(racks + i // devices, i % devices, "NVIDIA H100 80GB HBM3", 989.0, 100.0, False, "smoke")
                for i in range(smoke)]
    records.append(RunRecord(path=Path("mem/smoke"), manifest={"run_id": "run-smoke", "aggregates": []}, measurements=smoke_ms))

    import yaml

    here = Path(__file__).resolve().parent.parent
    data = yaml.safe_load((here / "tests" / "verify" / "data" / "declaration.example.yaml").read_text(encoding="utf-8"))
    n_nvidia, n_domestic = nvidia_racks * devices, (racks - nvidia_racks) * devices
    data["inventory"] = [
        {"model": "NVIDIA H100 SXM5 80GB", "count": n_nvidia, "fp16_tflops": 989},
        {"model": "Huawei Ascend 910B", "count": n_domestic, "fp16_tflops": 313, "domestic": True},
    ]
    data["technical"]["fp16_peak"] = f"{(n_nvidia * 989 + n_domestic * 313) / 1000} PFLOPS"
    share = n_domestic * 313 / (n_nvidia * 989 + n_domestic * 313)
    data["technical"]["domestic_compute_share"] = f"{share * 100:.2f}%"
    data["technical"]["racks_total"] = racks
    data["technical"]["racks_in_use"] = racks
    return parse_declaration(data), records


def run(racks: int = 3000, devices: int = 32, smoke: int = 4000) -> dict[str, Any]:
    """Build the site, then time verify + JSON rendering; returns the timings and the result."""
    from icb_bench.verify.measured import verify
    from icb_bench.verify.report import to_json

    t0 = time.perf_counter()
    decl, records = build_site(racks, devices, smoke)
    t1 = time.perf_counter()
    v = verify(decl, records)
    text = to_json(v)
    t2 = time.perf_counter()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    n = sum(len(r.measurements) for r in records)
    return {"records": n, "build_s": t1 - t0, "score_s": t2 - t1, "peak_rss_mib": rss_kib / 1024,
            "verification": v, "json_bytes": len(text)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--racks", type=int, default=3000)
    ap.add_argument("--devices", type=int, default=32)
    ap.add_argument("--smoke", type=int, default=4000)
    args = ap.parse_args(argv)
    res = run(args.racks, args.devices, args.smoke)
    v = res["verification"]
    ok_t = res["score_s"] <= GOAL_S
    ok_m = res["peak_rss_mib"] <= GOAL_RSS_MIB
    print(f"device records      {res['records']:,} ({args.racks} racks × {args.devices} + {args.smoke} smoke)")
    print(f"build (in memory)   {res['build_s']:.2f} s")
    print(f"verify + JSON       {res['score_s']:.2f} s   goal ≤ {GOAL_S:.0f} s   {'OK' if ok_t else 'OVER'}")
    print(f"peak RSS            {res['peak_rss_mib']:.0f} MiB goal ≤ {GOAL_RSS_MIB} MiB {'OK' if ok_m else 'OVER'}")
    print(f"result              A = {float(v.scorecard.total):g}, claims "
          + ", ".join(f"{c.id} {c.status}" for c in v.claims))
    return 0 if ok_t and ok_m else 1


if __name__ == "__main__":
    sys.exit(main())
