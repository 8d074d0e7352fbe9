"""Fleet records, sample plans and A1.7 rack figures (assurance, status, uncertainty)."""

from __future__ import annotations

import json

import pytest

from icb_bench.bench.record import RecordWriter
from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.measured import CONFIRMED, INCONCLUSIVE, LevelError, load_records, verify
from icb_bench.verify.sample_plan import SamplePlanError, load_sample_plan, plan_digest

from .conftest import FEW_RACKS, H100, RackSpec, example_dict, measurement, verify_with_site, write_fleet, write_run


def _decl(h100_count=40, rack_efficiency="120 GFLOPS/W", racks_in_use=FEW_RACKS):
    data = example_dict()
    data["inventory"] = [{"model": "NVIDIA H100 SXM5 80GB", "count": h100_count, "fp16_tflops": 989}]
    data["technical"]["fp16_peak"] = f"{h100_count * 989 / 1000} PFLOPS"
    data["technical"].pop("domestic_compute_share", None)
    data["industrial_value"]["rack_efficiency"] = rack_efficiency
    data["technical"]["racks_in_use"] = racks_in_use
    return parse_declaration(data)


def _fleet(tmp_path, racks: dict[str, float], devices_per_node=2, rack_in_manifest=True, **agg_kw):
    """A fleet record: one node per rack under nodes/, one rack aggregate per rack in the fleet manifest
    (``rack_in_manifest=False``: the node entries do not name their rack; the aggregates' node lists do)."""
    specs = {r: RackSpec(eff, devices=devices_per_node, agg=agg_kw) for r, eff in racks.items()}
    write_fleet(tmp_path / "fleet", specs, rack_in_manifest=rack_in_manifest)
    return load_records([tmp_path])


def _plan(tmp_path, racks, level=1, **changes):
    p = tmp_path / "plan.json"
    doc = {"schema": "icb-bench/sample-plan/1", "racks": racks, "level": level, "nonce_sha256": "a" * 64,
           "plan_sha256": "b" * 64, "models": {"NVIDIA H100 SXM5 80GB": 4}}
    doc.update(changes)
    doc["plan_sha256"] = plan_digest(doc)
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def _claim(v, ind_id):
    return next(c for c in v.claims if c.id == ind_id)


# ------------------------------------------------------------------------------ fleet records


def test_fleet_record_reads_its_node_records(tmp_path):
    recs = _fleet(tmp_path, {"R01": 130.0, "R02": 128.0})
    v = verify(_decl(), recs)
    h = v.models[0]
    assert (h.sampled, h.required) == (4, 4) and h.credited
    assert _claim(v, "A2.7").status == CONFIRMED
    assert {r.rack_id for r in v.racks} == {"R01", "R02"} and all(r.scored for r in v.racks)


# ------------------------------------------------------------------------------ sample plans


@pytest.mark.parametrize("rack_in_manifest", [True, False])
def test_racks_outside_the_plan_do_not_count(tmp_path, rack_in_manifest):
    recs = _fleet(tmp_path, {"R01": 130.0, "R02": 128.0, "R03": 60.0}, rack_in_manifest=rack_in_manifest)
    path = _plan(tmp_path, ["R01", "R02"])
    v = verify_with_site(_decl(), recs, sample_plan=load_sample_plan(path), sample_plan_path=path)
    assert v.plan.outside == ["R03"] and v.plan.not_measured == []
    assert v.models[0].sampled == 4  # R03's two devices are not counted
    assert {r.rack_id for r in v.racks} == {"R01", "R02"}
    assert any("outside the sample plan, not counted: R03" in n for n in v.notes)
    assert _claim(v, "A2.7").status == CONFIRMED and _claim(v, "A1.7").status == CONFIRMED


def test_a_drawn_rack_not_measured_is_inconclusive(tmp_path):
    recs = _fleet(tmp_path, {"R01": 130.0, "R02": 128.0, "R03": 129.0})
    path = _plan(tmp_path, ["R01", "R02", "R04"])
    v = verify(_decl(), recs, sample_plan=load_sample_plan(path), sample_plan_path=path)
    assert v.plan.not_measured == ["R04"] and v.plan.outside == ["R03"]
    a27, a17 = _claim(v, "A2.7"), _claim(v, "A1.7")
    assert a27.status == INCONCLUSIVE and "1 of 3 drawn rack(s) not measured: R04" in a27.reason
    assert a17.status == INCONCLUSIVE and "R04" in a17.reason
    assert v.models[0].credited  # the model itself met the rule; the plan is what was not followed


def test_devices_without_a_rack_cannot_be_matched_to_a_plan(tmp_path):
    write_run(tmp_path / "r", [measurement("g", i, H100, 700.0) for i in range(4)])
    path = _plan(tmp_path, ["R01"])
    v = verify(_decl(), load_records([tmp_path / "r"]), sample_plan=load_sample_plan(path))
    assert v.plan.unplaced == 4 and v.models[0].sampled == 0
    assert any("4 measured device(s) with no rack_id" in n for n in v.notes)
    assert _claim(v, "A2.7").status == INCONCLUSIVE


def test_the_plan_sets_the_level(tmp_path):
    recs = _fleet(tmp_path, {"R01": 130.0, "R02": 128.0})
    plan = load_sample_plan(_plan(tmp_path, ["R01", "R02"], level=3))
    v = verify(_decl(), recs, sample_plan=plan)
    assert v.level == 3 and v.models[0].required == 40 and not v.models[0].credited
    with pytest.raises(LevelError, match="differs from the sample plan's level 3"):
        verify(_decl(), recs, sample_plan=plan, level=1)


@pytest.mark.parametrize("change, field", [
    ({"schema": "icb-bench/sample-plan/9"}, "schema"),
    ({"racks": []}, "racks"),
    ({"racks": ["R01", "R01"]}, "racks"),
    ({"nonce_sha256": "xyz"}, "nonce_sha256"),
    ({"level": "one"}, "level"),
])
def test_bad_sample_plan_names_the_field(tmp_path, change, field):
    path = _plan(tmp_path, ["R01"])
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update(change)
    doc["plan_sha256"] = plan_digest(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SamplePlanError, match=field):
        load_sample_plan(path)


def test_a_plan_changed_after_the_draw_is_refused(tmp_path):
    path = _plan(tmp_path, ["R01", "R02"])
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["racks"] = ["R01", "R05"]  # a friendlier rack swapped in, seal left as it was
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SamplePlanError, match="plan_sha256 .* changed after the draw"):
        load_sample_plan(path)
    doc["nonce"] = "not the drawn nonce"
    doc["plan_sha256"] = plan_digest(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SamplePlanError, match="nonce_sha256"):
        load_sample_plan(path)


def test_unreadable_sample_plan(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(SamplePlanError, match="unreadable sample plan"):
        load_sample_plan(p)


# ------------------------------------------------------------------------------ A1.7 rack figures


def _racks_run(tmp_path, specs: dict[str, RackSpec]):
    write_fleet(tmp_path / "fleet", specs)
    return load_records([tmp_path / "fleet"])


def test_insufficient_and_missing_racks_are_listed_never_scored(tmp_path):
    specs = {"R1": RackSpec(130.0), "R2": RackSpec(128.0),
             "R3": RackSpec(None, agg=dict(status="insufficient", reason="4 readings inside the window")),
             "R4": RackSpec(300.0, agg=dict(status="missing", reason="pdu:R04/0 stale for 30 s"))}
    v = verify_with_site(_decl(), _racks_run(tmp_path, specs))
    shown = {r.rack_id: r for r in v.racks}
    assert not shown["R3"].scored and not shown["R4"].scored and shown["R1"].scored
    c = _claim(v, "A1.7")
    assert c.status == CONFIRMED and c.figure == pytest.approx(129.0)  # median of R1, R2 only
    assert "R3 insufficient: 4 readings inside the window" in c.reason and "R4 missing: pdu:R04/0 stale" in c.reason


def test_device_counters_are_shown_not_confirmed(tmp_path):
    specs = {f"R{i}": RackSpec(200.0, agg=dict(power_scope="device", assurance="device-counters")) for i in range(3)}
    v = verify(_decl(), _racks_run(tmp_path, specs))
    c = _claim(v, "A1.7")
    assert c.status == INCONCLUSIVE and c.figure is None and "summed device counters" in c.reason
    assert len(v.racks) == 3 and not any(r.scored for r in v.racks)
    assert v.scorecard.indicator("A1.7").source == "declared"


def test_node_meters_can_confirm(tmp_path):
    specs = {f"R{i}": RackSpec(130.0, agg=dict(power_scope="node", assurance="node-meters")) for i in range(3)}
    c = _claim(verify_with_site(_decl(), _racks_run(tmp_path, specs)), "A1.7")
    assert c.status == CONFIRMED and "node-meters 3" in c.reason


@pytest.mark.parametrize("rel, status", [(0.10, INCONCLUSIVE), (0.01, CONFIRMED)])
def test_each_racks_uncertainty_bounds_the_median(tmp_path, rel, status):
    specs = {f"R{i}": RackSpec(e, agg=dict(uncertainty_rel=rel)) for i, e in enumerate((120.0, 121.0, 122.0))}
    c = _claim(verify_with_site(_decl(), _racks_run(tmp_path, specs)), "A1.7")  # needs 114
    assert c.figure == pytest.approx(121.0) and c.low == pytest.approx(121.0 * (1 - rel))
    assert c.status == status


def test_no_stated_uncertainty_takes_the_levels_meter_accuracy(tmp_path):
    specs = {f"R{i}": RackSpec(118.0, agg=dict(uncertainty_rel=None)) for i in range(3)}
    recs = _racks_run(tmp_path, specs)
    v1 = verify_with_site(_decl(), recs)  # level 1: ±5 % -> 118 / 1.05 = 112.4 < 114
    assert _claim(v1, "A1.7").status == INCONCLUSIVE and "meter accuracy ±5% assumed" in v1.racks[0].reason
    v3 = verify_with_site(_decl(racks_in_use=3), recs, level=3)  # level 3 (every rack in use measured): ±1 % -> 116.8
    assert _claim(v3, "A1.7").status == CONFIRMED
