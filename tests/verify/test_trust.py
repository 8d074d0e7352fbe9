"""Issue 7, part 1: a verdict that follows from the evidence (verdict, certification, what counts)."""

from __future__ import annotations

import json
import random

import pytest
import typer
from typer.testing import CliRunner

from icb_bench.bench.record import RecordWriter, load_run
from icb_bench.verify.cli import register
from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.measured import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, load_records, verify
from icb_bench.verify.rack_check import window_flops
from icb_bench.verify.report import render, to_json

from .conftest import (ASCEND, EXAMPLE_COPY, H100, N_H100, RackSpec, example_dict, measurement, rack_aggregate, verify_with_site,
                       site_measurements, write_fleet, write_run)

runner = CliRunner()
_app = typer.Typer()
register(_app)


def _claim(v, ind_id):
    return next(c for c in v.claims if c.id == ind_id)


def _three_rack_site() -> dict:
    """The example declaration scaled to a site whose three measured racks meet the sampling rule
    (level 1: a tenth of the racks in use), utilisation unchanged (24 of 32)."""
    data = example_dict()
    data["technical"]["racks_total"], data["technical"]["racks_in_use"] = 32, 24
    return data


def _site(tmp_path, racks=(130.0, 125.0, 128.0), h100_kw=None, ascend_kw=None):
    per = N_H100 // len(racks)
    write_fleet(tmp_path / "fleet", {f"R{k}": RackSpec(e, devices=per, tflops=lambda i: 700.0 + i % 3,
                                                       measurement=dict(h100_kw or {}))
                                     for k, e in enumerate(racks)})
    write_run(tmp_path / "run1", site_measurements(n_h100=0, **(ascend_kw or {})))
    return load_records([tmp_path])


# ------------------------------------------------------------------------------ verdict, certification


def test_smoke_runs_only_are_not_certified_and_not_measured(tmp_path):
    """The example declaration with only smoke runs printed `达标认定 Certified 是 yes` and `0 PFLOPS ◀`."""
    write_run(tmp_path / "r", [measurement("vm", 0, "AMD EPYC", 0.5, grade="smoke", peak=None)])
    res = runner.invoke(_app, ["verify", "--allow-unsigned", str(EXAMPLE_COPY), str(tmp_path / "r")])
    assert res.exit_code == 1
    first = res.stdout.strip().splitlines()[0]
    assert first.startswith("核验结论 Verdict: 无法判定 INCONCLUSIVE")
    assert "达标认定 Certified 是 yes" not in res.stdout and "是 yes" not in res.stdout.split("达标认定 Certified")[-1]
    assert "未核实 not verified：A1.7、A2.7 无法判定 inconclusive" in res.stdout
    assert " 0 PFLOPS" not in res.stdout and "◀" not in res.stdout and "未实测 not measured" in res.stdout
    en = runner.invoke(_app, ["verify", "--allow-unsigned", str(EXAMPLE_COPY), str(tmp_path / "r"), "--lang", "en"])
    assert "not verified: A1.7, A2.7 inconclusive" in en.stdout and "not measured" in en.stdout
    doc = json.loads(runner.invoke(_app, ["verify", "--allow-unsigned", str(EXAMPLE_COPY), str(tmp_path / "r"), "--format", "json"]).stdout)
    assert doc["verdict"] == INCONCLUSIVE and doc["certified"] is False and doc["certified_name"] is None
    assert doc["certification"] == {"status": "not verified", "inconclusive": ["A1.7", "A2.7"],
                                    "text": "not verified: A1.7, A2.7 inconclusive", "scorecard_certified": True}
    junit = runner.invoke(_app, ["verify", "--allow-unsigned", str(EXAMPLE_COPY), str(tmp_path / "r"), "--format", "junit"]).stdout
    assert 'name="verdict"' in junit and "not verified: A1.7, A2.7 inconclusive" in junit


def test_measured_site_is_confirmed_and_certified(tmp_path):
    v = verify_with_site(parse_declaration(_three_rack_site()), _site(tmp_path))
    assert v.verdict == CONFIRMED and v.certification == "yes" and v.unverified == []
    doc = json.loads(to_json(v))
    assert doc["verdict"] == CONFIRMED and doc["certified"] is True and doc["certified_name"]
    assert render(v, "table", "en").splitlines()[0].startswith("Verdict: CONFIRMED · Certified: yes")


def test_a_refuted_claim_makes_the_verdict_not_confirmed(tmp_path):
    data = _three_rack_site()
    data["industrial_value"]["rack_efficiency"] = "200 GFLOPS/W"
    v = verify_with_site(parse_declaration(data), _site(tmp_path))
    assert _claim(v, "A1.7").status == NOT_CONFIRMED and v.verdict == NOT_CONFIRMED


# ------------------------------------------------------------------------------ what counts


def test_a_records_own_peak_is_informational(tmp_path):
    """A record carrying `peak: 1400` for an H100 raised the credited nominal figure."""
    ms = site_measurements()
    for m in ms:
        if m["device_info"]["model"] == H100:
            m["peak"] = {"tflops": 1400.0, "source": "the site", "kind": "datasheet"}
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    h = next(mf for mf in v.models if mf.key == "h100-sxm")
    assert h.datasheet_tflops == 989.0 and h.credited
    assert v.site.nominal == pytest.approx((300 * 989 + 2600 * 313) / 1000)
    assert any("peak 1400 TFLOPS is informational" in n for n in v.notes)


@pytest.mark.parametrize("status", ["running", "interrupted"])
def test_unclosed_records_are_listed_not_counted(tmp_path, status):
    write_run(tmp_path / "ok", site_measurements())
    write_run(tmp_path / "late", [measurement("late", i, H100, 400.0) for i in range(30)], status=status)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert next(mf for mf in v.models if mf.key == "h100-sxm").sampled == 30
    assert v.not_counted == [f"late: status {status!r} (" + ("the run has not finished (or its writer died)" if status == "running"
                                                             else "the run was interrupted") + "); not counted"]
    assert "late" in render(v, "table", "en") and json.loads(to_json(v))["not_counted"] == v.not_counted


def test_an_interrupted_fleet_node_does_not_count(tmp_path):
    write_fleet(tmp_path / "fleet", {"R1": RackSpec(130.0), "R2": RackSpec(128.0)}, node_status={"n-R2": "interrupted"})
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert next(mf for mf in v.models if mf.key == "h100-sxm").sampled == 2
    assert any(n.startswith("fleet/n-R2: status 'interrupted'") for n in v.not_counted)
    assert [r.rack_id for r in v.racks] == ["R1"]
    assert any("aggregate rack R2" in e and "its record is 'interrupted'" in e for e in v.excluded)


def test_a_rack_aggregate_appended_to_a_node_record_does_not_count(tmp_path):
    """A rack aggregate appended to a manifest by hand earned A1.7 CONFIRMED and its 10 points."""
    write_run(tmp_path / "r", site_measurements(), [rack_aggregate(f"R{k}", 500.0) for k in range(3)])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert v.racks == [] and _claim(v, "A1.7").status == INCONCLUSIVE
    assert v.scorecard.indicator("A1.7").source == "declared"
    assert sum("not a fleet record; not counted" in e for e in v.excluded) == 3


def _edited(**override):
    return {"R0": RackSpec(130.0, override=override), "R1": RackSpec(128.0)}


@pytest.mark.parametrize("override, words", [
    ({"flops": 2 * 1.414e17 * 2}, "is not the"),
    ({"tflops": 5000.0}, "tflops 5000 is not flops / window_s / 1e12"),
    ({"window_s": 60.0}, "window_s 60 is not t_end_s"),
    ({"nodes": ["ghost"]}, "node 'ghost' is not a node of this record"),
    ({"nodes": []}, "lists no nodes"),
    ({"nodes": ["n-R0", "n-R0"]}, "lists node(s) 'n-R0' more than once"),
    ({"devices": 3, "devices_expected": 3, "devices_valid": 3}, "devices is 3, its nodes hold 2"),
    ({"gflops_per_w": 150000.0}, "gflops_per_w 150000 is not flops / energy_j"),
    ({"power_sources": ["pdu-elsewhere"]}, "power source 'pdu-elsewhere' is not in the record's power list"),
    ({"power_sources": []}, "names no power_sources"),
])
def test_a_rack_aggregate_edited_in_a_fleet_record_does_not_count(tmp_path, override, words):
    write_fleet(tmp_path / "fleet", _edited(**override))
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert [r.rack_id for r in v.racks] == ["R1"]
    why = next(e for e in v.excluded if "aggregate rack R0" in e)
    assert "does not agree with the record" in why and words in why, why


def test_a_rack_above_its_best_device_is_implausible(tmp_path):
    """150 TFLOPS/W per rack was accepted: consistent arithmetic, physically impossible."""
    write_fleet(tmp_path / "fleet", {"R0": RackSpec(150_000.0), "R1": RackSpec(128.0)})
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    why = next(e for e in v.excluded if "aggregate rack R0" in e)
    assert "above the best of its own devices'" in why and [r.rack_id for r in v.racks] == ["R1"]


def test_a_power_trace_edited_after_the_run_does_not_count(tmp_path):
    run = write_fleet(tmp_path / "fleet", _edited())
    (run / "power" / "readings.parquet").write_bytes(b"not the readings of the run")
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert any("aggregate rack R0" in e and "does not match its sha256 in the file index" in e for e in v.excluded)


def test_a_node_missing_a_device_makes_its_rack_invalid(tmp_path):
    run = write_fleet(tmp_path / "fleet", _edited())
    m = json.loads((run / "nodes" / "n-R0" / "manifest.json").read_text())
    m["inventory"].append({"index": 2, "model": H100})
    (run / "nodes" / "n-R0" / "manifest.json").write_text(json.dumps(m))
    fleet = json.loads((run / "manifest.json").read_text())
    fleet["nodes"][0]["devices"] = 3
    (run / "manifest.json").write_text(json.dumps(fleet))
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert any("n-R0" in e and "2 FP16 measurement(s) of 3 device(s)" in e for e in v.excluded)


# ------------------------------------------------------------------------------ one operating point


def test_throughput_at_full_power_and_efficiency_at_a_cap_is_inconclusive(tmp_path):
    full = {"telemetry": {"power_limit_w": 700.0, "sm_clock_mhz_median": 1980.0}}
    capped = {"telemetry": {"power_limit_w": 400.0, "sm_clock_mhz_median": 1980.0}}
    write_fleet(tmp_path / "fleet", {f"R{k}": RackSpec(130.0, devices=2, measurement=capped) for k in range(3)})
    write_run(tmp_path / "run1", site_measurements(**full))
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    for ind in ("A2.7", "A1.7"):
        c = _claim(v, ind)
        assert c.status == INCONCLUSIVE and "not one operating point for h100-sxm: power limit 400 W" in c.reason
    assert v.verdict == INCONCLUSIVE and v.operating_point


def test_power_limits_within_one_percent_are_one_operating_point(tmp_path):
    a = {"telemetry": {"power_limit_w": 700.0}}
    b = {"telemetry": {"power_limit_w": 705.0}}
    v = verify_with_site(parse_declaration(_three_rack_site()), _site(tmp_path, h100_kw=a, ascend_kw=b))
    assert v.operating_point == [] and v.verdict == CONFIRMED


def test_three_racks_of_1200_in_use_cannot_confirm_the_rack_efficiency(tmp_path):
    """Three good rack figures stand for 30 racks at level 1, not for 1,200: INCONCLUSIVE, with the rule."""
    v = verify(parse_declaration(example_dict()), _site(tmp_path))
    c = _claim(v, "A1.7")
    assert c.status == INCONCLUSIVE and c.figure is not None
    assert "3 of 1200 racks in use measured with a rack or node meter; the rule asks for 120 (level 1)" in c.reason
    assert _claim(verify_with_site(parse_declaration(_three_rack_site()), load_records([tmp_path])), "A1.7").status == CONFIRMED


def test_one_device_of_eight_loaded_is_another_operating_point(tmp_path):
    inv = [{"index": i, "model": H100} for i in range(8)]
    write_run(tmp_path / "alone", [measurement("x", 0, H100, 750.0)], inventory=inv, plan={"devices": [0]})
    write_run(tmp_path / "all", [measurement("y", i, H100, 700.0) for i in range(8)], inventory=inv,
              plan={"devices": list(range(8))})
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert any("loaded devices 1 of 8 (alone/x-d0-fp16) vs all devices of the node" in w for w in v.operating_point)


# ------------------------------------------------------------------------------ the FLOPs recomputation


def test_window_flops_matches_the_fleets_own_arithmetic():
    """verify recomputes rack FLOPs itself (it does not import bench.rack); both must agree."""
    from icb_bench.bench.rack import device_load, flops_in_window

    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 50)
        bt = [rng.uniform(1, 100) for _ in range(n)]
        b = rng.uniform(0, 100)
        e = b + sum(bt) / 1000 * rng.uniform(1.0, 1.3)
        m = {"id": "x", "device": 0, "dtype": "fp16", "flops_per_gemm": 1e12, "samples": {"batch_time_ms": bt, "iters_per_batch": 3},
             "core_window": {"t_begin_s": b, "t_end_s": e}, "valid": True, "grade": "assessment"}
        off = rng.uniform(-5, 5)
        t0 = rng.uniform(b - off - 1, e - off)
        t1 = t0 + rng.uniform(0, e - b + 1)
        load = device_load(m, rack="R", node="n", t_begin_s=b - off, t_end_s=e - off)
        assert window_flops(m, off, t0, t1) == pytest.approx(flops_in_window(load, t0, t1), rel=1e-9, abs=1e-3)
