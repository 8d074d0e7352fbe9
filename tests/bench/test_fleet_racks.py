"""Rack GFLOPS/W from a multi-node run with a site file: two "nodes" as torchrun agents, each rack's
power logged by a "meter" (a thread writing a meter log, as an analyser would) during the run."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from icb_bench.bench import record

from fleet_helpers import loopback_netns, start_job

pytestmark = pytest.mark.slow

TIMEOUT_S = 300


class MeterLog(threading.Thread):
    """Appends a reading every ``period_s`` (epoch stamp, average power over the period)."""

    def __init__(self, path, power_w: float, period_s: float = 0.5):
        super().__init__(daemon=True)
        self.path, self.power_w, self.period_s = path, power_w, period_s
        self.stop = threading.Event()
        path.write_text("epoch_s,power_w,interval_s\n")

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.period_s):
            n += 1
            wobble = (n % 5) - 2  # a live meter's reading moves; a frozen one is refused as stale
            with open(self.path, "a") as fh:
                fh.write(f"{time.time():.3f},{self.power_w + wobble:.1f},{self.period_s}\n")


def _site(tmp_path) -> None:
    site = {
        "schema": "icb-bench/site/1", "site": "test-site",
        "racks": [
            {"name": "R01", "pdus": [{"type": "meter-log", "path": "r01.csv", "accuracy": "1%"}],
             "nodes": [{"name": "n0", "devices": {"model": "cpu", "count": 1}},
                       {"name": "n9", "devices": {"model": "cpu", "count": 1}}]},  # not in the job
            {"name": "R02", "pdus": [{"type": "meter-log", "path": "r02.csv", "accuracy": "1%"}],
             "nodes": [{"name": "n1", "devices": {"model": "cpu", "count": 1}}]},
        ],
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))


def test_rack_figures_from_meter_logs(tmp_path):
    _site(tmp_path)
    meters = [MeterLog(tmp_path / "r01.csv", 400.0), MeterLog(tmp_path / "r02.csv", 250.0)]
    for m in meters:
        m.start()
    try:
        with loopback_netns() as prefix:
            nodes = start_job(tmp_path, 2, ["--backend", "cpu", "--quick", "--duration", "8", "--shape", "128x128x128",
                                            "--json", "--dtypes", "fp32", "--site", str(tmp_path / "site.yaml")],
                              prefix=prefix)
            codes = [n.wait(TIMEOUT_S) for n in nodes]
    finally:
        for m in meters:
            m.stop.set()
    assert codes == [0, 0], [n.stderr()[-2000:] for n in nodes]
    man = json.loads((nodes[0].out / record.MANIFEST).read_text())
    assert man["site"]["racks"] == ["R01", "R02"] and man["timeline"]["load_s"] is not None
    assert {n["name"]: n["rack"] for n in man["nodes"]} == {"n0": "R01", "n1": "R02"}
    racks = {a["rack_id"]: a for a in man["aggregates"] if a["scope"] == "rack"}
    # R02: its one node measured, its meter logged throughout: a figure, from the rack meter
    r2 = racks["R02"]
    assert r2["status"] == "ok" and r2["valid"] is True, r2
    assert r2["assurance"] == "rack-meter" and r2["power_scope"] == "rack" and r2["power_method"] == "meter-log"
    assert r2["devices"] == r2["devices_expected"] == 1
    assert r2["readings_inside"] >= 10
    assert r2["power_w"] == pytest.approx(250.0, abs=2.5)
    assert r2["gflops_per_w"] == pytest.approx(r2["flops"] / r2["energy_j"] / 1e9)
    assert r2["gflops_per_w_low"] < r2["gflops_per_w"] < r2["gflops_per_w_high"]
    assert r2["grade"] == "smoke"  # an 8 s window is never an assessment figure
    # R01 holds a node that was not measured: its figure is not valid, and says why
    r1 = racks["R01"]
    assert r1["valid"] is False and r1["devices"] == 1 and r1["devices_expected"] == 2
    assert "missing" in (r1["reason"] or "") or "expected" in (r1["reason"] or ""), r1

    # the figures follow from the record and the logs alone: `bench racks` gives them again, also
    # for a record made without --site (its meter logs delivered afterwards)
    import shutil
    import subprocess
    import sys

    def racks_again(run_dir):
        proc = subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", "racks", str(run_dir), "--site",
                               str(tmp_path / "site.yaml"), "--json"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return {a["rack_id"]: a for a in json.loads(proc.stdout)["aggregates"] if a["scope"] == "rack"}

    strip = ("gflops_per_w", "energy_j", "status", "valid", "readings_inside", "flops")
    again = racks_again(nodes[0].out)
    assert {k: {f: again[k][f] for f in strip} for k in again} == {k: {f: racks[k][f] for f in strip} for k in racks}
    bare = tmp_path / "bare"
    shutil.copytree(nodes[0].out, bare)
    m = json.loads((bare / record.MANIFEST).read_text())
    m["aggregates"] = [a for a in m["aggregates"] if a["scope"] != "rack"]
    m["power"], m["site"] = [], None
    shutil.rmtree(bare / "power")
    (bare / record.MANIFEST).write_text(json.dumps(m))
    late = racks_again(bare)
    assert late["R02"]["status"] == "ok" and late["R02"]["valid"] is True
    assert late["R02"]["gflops_per_w"] == pytest.approx(r2["gflops_per_w"], rel=0.02)
    assert (bare / "power" / "readings.parquet").is_file()
