"""Time `load_site` and `draw_sample` on a large site: 3,000 racks × 8 nodes × 8 devices, three models.

    python scripts/bench_sample_speed.py [--racks 3000] [--repeat 5]

Goal: the draw in at most 1 s on 2 cores (loading the YAML is reported beside it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from icb_bench.bench.sample import draw_sample
from icb_bench.bench.site import load_site

MODELS = ("NVIDIA H100 80GB HBM3", "Ascend 910B", "MLU370-X8")


def site_data(racks: int, nodes: int = 8, devices: int = 8) -> dict:
    """A site whose models are uneven (70 %, 25 %, 5 % of racks), with a PDU on every rack."""
    def model(i: int) -> str:
        return MODELS[0] if i % 20 < 14 else MODELS[1] if i % 20 < 19 else MODELS[2]

    return {
        "schema": "icb-bench/site/1",
        "site": "speed",
        "level": 1,
        "racks": [
            {"name": f"R{i:05d}",
             "pdus": [{"type": "redfish", "url": f"https://127.0.0.1:8443/redfish/v1/PowerEquipment/RackPDUs/{i}",
                       "password_env": "ICB_PDU_PASSWORD", "accuracy": "1%"}],
             "nodes": [{"name": f"R{i:05d}-n{j}", "devices": {"model": model(i), "count": devices}} for j in range(nodes)]}
            for i in range(racks)
        ],
    }


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--racks", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site.yaml"
        path.write_text(yaml.dump(site_data(args.racks), Dumper=dumper, allow_unicode=True, sort_keys=False), encoding="utf-8")
        size_mib = path.stat().st_size / 2**20
        t_load, site = best_of(max(1, args.repeat // 2), lambda: load_site(path))
    print(f"site: {args.racks} racks, {sum(len(r.nodes) for r in site.racks)} nodes, "
          f"{sum(site.models().values())} devices, {size_mib:.1f} MiB of YAML")
    print(f"load_site:   {t_load:.3f} s (best of {max(1, args.repeat // 2)})")
    for level in (1, 2, 3):
        t, plan = best_of(args.repeat, lambda: draw_sample(site, "speed-test-nonce", level))
        print(f"draw_sample level {level}: {t:.3f} s (best of {args.repeat}), {len(plan.racks)} racks drawn, "
              f"{'ok' if t <= 1.0 else 'SLOWER THAN THE 1 s GOAL'}")


if __name__ == "__main__":
    main()
