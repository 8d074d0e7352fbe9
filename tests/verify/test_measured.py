"""Declared against measured: claims, bases, grades, scopes, uncertainty."""

from __future__ import annotations

from fractions import Fraction

import pytest

from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.measured import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, load_records, median_ci, verify

from .conftest import example_dict, measurement, rack_aggregate, write_run

H100 = "NVIDIA H100 80GB HBM3"  # what the driver reports for the SXM part
ASCEND = "Ascend910B3"


def _site(tmp_path, h100=700.0, ascend=260.0, n=8, racks=(130.0, 125.0, 128.0), **kw):
    ms = [measurement("g", i, H100, h100 + (i % 3)) for i in range(n)]
    ms += [measurement("a", i, ASCEND, ascend + (i % 3), peak=313.0, domestic=True, vendor="Huawei") for i in range(n)]
    aggs = [rack_aggregate(f"R{k}", e) for k, e in enumerate(racks)]
    write_run(tmp_path / "run1", ms, aggs)
    return load_records([tmp_path])


def _claim(v, ind_id):
    return next(c for c in v.claims if c.id == ind_id)


def test_all_claims_confirmed(tmp_path):
    decl = parse_declaration(example_dict())
    v = verify(decl, _site(tmp_path))
    assert {c.id: c.status for c in v.claims} == {"A2.7": CONFIRMED, "A2.14": CONFIRMED, "A1.7": CONFIRMED}
    assert v.all_confirmed
    # nominal = 300 × 989 + 2600 × 313 TFLOPS, exact
    assert v.site.nominal == pytest.approx(1110.5)
    assert v.scorecard.indicator("A2.7").value == Fraction(2221, 2)
    assert v.scorecard.indicator("A2.7").source == "nominal"
    assert v.scorecard.indicator("A1.7").source == "measured"
    assert v.scorecard.indicator("A2.14").source == "nominal"
    m = {mf.key: mf for mf in v.models}
    assert m["h100-sxm"].sampled == 8 and m["h100-sxm"].credited
    assert m["h100-sxm"].median_tflops == pytest.approx(701.0)
    assert m["h100-sxm"].attainment == pytest.approx(701 / 989)
    # measured = per-device median × count
    assert v.site.measured == pytest.approx((701 * 300 + 261 * 2600) / 1000)
    assert v.site.attainment == pytest.approx(v.site.measured / v.site.nominal)


def test_measured_basis_scores_the_measured_figure(tmp_path):
    decl = parse_declaration(example_dict())
    v = verify(decl, _site(tmp_path), basis="measured")
    a27 = v.scorecard.indicator("A2.7")
    assert a27.source == "measured" and float(a27.value) == pytest.approx(v.site.measured)
    # measured 888 PFLOPS < 1100 × 0.95 -> not confirmed, but the site still clears 1000? no: 888 < 1000
    assert _claim(v, "A2.7").status == NOT_CONFIRMED
    assert not a27.met and "A2.7" in v.scorecard.blocking


def test_tolerance_boundary(tmp_path):
    data = example_dict()
    data["technical"]["fp16_peak"] = "1168.95 PFLOPS"  # 1110.5 / 0.95 = 1168.947… -> needs 1110.5025
    v = verify(parse_declaration(data), _site(tmp_path))
    assert _claim(v, "A2.7").status == NOT_CONFIRMED
    data["technical"]["fp16_peak"] = "1168.9 PFLOPS"  # needs 1110.455
    v = verify(parse_declaration(data), load_records([tmp_path]))
    assert _claim(v, "A2.7").status == CONFIRMED
    v = verify(parse_declaration(data), load_records([tmp_path]), tolerance=0.0)
    assert _claim(v, "A2.7").status == NOT_CONFIRMED


def test_devices_below_min_efficiency_are_not_credited(tmp_path):
    decl = parse_declaration(example_dict())
    records = _site(tmp_path, ascend=140.0)  # 140/313 = 45 % < 50 %
    v = verify(decl, records)
    ascend = next(mf for mf in v.models if mf.key == "ascend-910b")
    assert not ascend.credited and "below 50%" in ascend.reason
    assert v.site.nominal == pytest.approx(296.7)
    assert _claim(v, "A2.7").status == NOT_CONFIRMED
    assert verify(decl, records, min_efficiency=0.4).site.nominal == pytest.approx(1110.5)


def test_an_incorrect_device_withdraws_its_model(tmp_path):
    ms = [measurement("g", i, H100, 700.0) for i in range(4)] + [measurement("g", 4, H100, 700.0, valid=False)]
    ms += [measurement("a", i, ASCEND, 260.0, peak=313.0, domestic=True) for i in range(4)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    h = next(mf for mf in v.models if mf.key == "h100-sxm")
    assert h.invalid == 1 and not h.credited and "correctness" in h.reason
    assert h.median_tflops == 700.0  # the measured figure uses the correct devices only


def test_smoke_measurements_are_listed_and_ignored(tmp_path):
    ms = [measurement("g", i, H100, 100.0, grade="smoke") for i in range(4)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert len(v.smoke) == 4 and all("smoke" in s for s in v.smoke)
    assert all(mf.sampled == 0 for mf in v.models)
    assert _claim(v, "A2.7").status == INCONCLUSIVE
    assert v.scorecard.indicator("A2.7").source == "declared"  # nothing measured: declared stays


def test_unmeasured_model_makes_the_peak_inconclusive(tmp_path):
    ms = [measurement("g", i, H100, 700.0) for i in range(4)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    c = _claim(v, "A2.7")
    assert c.status == INCONCLUSIVE and "not every declared model" in c.reason
    assert not v.site.complete
    assert "Huawei Ascend 910B" in v.scorecard.indicator("A2.7").note


def test_unmatched_models_are_reported(tmp_path):
    ms = [measurement("x", i, "NVIDIA L40S", 300.0, peak=362.0) for i in range(2)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert v.unmatched == {"NVIDIA L40S": 2}
    assert any("L40S" in n for n in v.notes)


def test_declared_device_peak_above_datasheet_is_flagged(tmp_path):
    data = example_dict()
    data["inventory"][0]["fp16_tflops"] = 1979
    v = verify(parse_declaration(data), _site(tmp_path))
    h = next(mf for mf in v.models if mf.key == "h100-sxm")
    assert h.above_datasheet
    assert any("1979" in n and "sparse" in n for n in v.notes)


def test_domestic_share_recomputed_from_inventory(tmp_path):
    data = example_dict()
    data["technical"]["domestic_compute_share"] = "90%"
    v = verify(parse_declaration(data), _site(tmp_path))
    assert v.domestic_share == Fraction(2600 * 313, 300 * 989 + 2600 * 313)
    assert _claim(v, "A2.14").status == NOT_CONFIRMED
    assert v.scorecard.indicator("A2.14").value == v.domestic_share


def test_lower_scopes_are_shown_never_scored_as_rack(tmp_path):
    ms = [measurement("g", i, H100, 700.0, power_scope="device") for i in range(4)]
    ms += [measurement("a", i, ASCEND, 260.0, peak=313.0, domestic=True) for i in range(4)]
    write_run(tmp_path / "r", ms, [rack_aggregate("N1", 500.0, scope="node")])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    c = _claim(v, "A1.7")
    assert c.status == INCONCLUSIVE and "node-scope" in c.reason and "device-scope" in c.reason
    assert v.racks == [] and {s.scope for s in v.lower_scopes} == {"node", "device"}
    assert v.scorecard.indicator("A1.7").source == "declared"


def test_rack_efficiency_median_and_nominal_efficiency(tmp_path):
    ms = [measurement("g", i, H100, 700.0) for i in range(32)]
    write_run(tmp_path / "rack7", ms, [rack_aggregate("R7", 90.0, devices=32)])
    ms = [measurement("a", i, ASCEND, 260.0, peak=313.0, domestic=True) for i in range(32)]
    write_run(tmp_path / "rack8", ms, [rack_aggregate("R8", 110.0, devices=32)])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert sorted(r.gflops_per_w for r in v.racks) == [90.0, 110.0]
    assert float(v.scorecard.indicator("A1.7").value) == pytest.approx(100.0)
    r7 = next(r for r in v.racks if r.label == "R7")
    assert r7.nominal_gflops_per_w == pytest.approx(32 * 989 * 1000 / 40000)  # 理论算效
    # declared 120, median 100, lower bound 90 < 114 -> not confirmed
    assert _claim(v, "A1.7").status == NOT_CONFIRMED


def test_smoke_rack_aggregates_are_ignored(tmp_path):
    write_run(tmp_path / "r", [measurement("g", 0, H100, 700.0)], [rack_aggregate("R1", 200.0, grade="smoke")])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert v.racks == [] and any("aggregate" in s for s in v.smoke)


def test_uncertainty_straddling_is_inconclusive(tmp_path):
    # two devices per model, widely spread: CI of the median spans [min, max]
    ms = [measurement("g", 0, H100, 500.0), measurement("g", 1, H100, 900.0)]
    ms += [measurement("a", 0, ASCEND, 200.0, peak=313.0, domestic=True), measurement("a", 1, ASCEND, 300.0, peak=313.0, domestic=True)]
    write_run(tmp_path / "r", ms)
    data = example_dict()
    data["technical"]["fp16_peak"] = "800 PFLOPS"  # needs 760; CI of the site figure is [670, 1050]
    v = verify(parse_declaration(data), load_records([tmp_path]), basis="measured")
    c = _claim(v, "A2.7")
    assert c.low < 760 < c.high and c.status == INCONCLUSIVE


def test_a_device_measured_twice_counts_once(tmp_path):
    write_run(tmp_path / "r1", [measurement("g", 0, H100, 600.0)])
    write_run(tmp_path / "r2", [measurement("g", 0, H100, 700.0)])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path / "r1", tmp_path / "r2"]))
    h = next(mf for mf in v.models if mf.key == "h100-sxm")
    assert h.sampled == 1 and h.median_tflops == 700.0  # the later record replaces the earlier


def test_other_dtypes_do_not_count_for_fp16(tmp_path):
    write_run(tmp_path / "r", [measurement("g", 0, H100, 60.0, dtype="fp32", peak=67.0)])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert all(mf.sampled == 0 for mf in v.models)


def test_median_ci():
    xs = sorted(float(x) for x in range(1, 101))
    lo, hi = median_ci(xs)
    assert lo < 50.5 < hi and hi - lo < 25
    assert median_ci([1.0, 2.0]) == (1.0, 2.0)


def test_bad_arguments():
    decl = parse_declaration(example_dict())
    with pytest.raises(ValueError):
        verify(decl, [], basis="declared")
    with pytest.raises(ValueError):
        verify(decl, [], tolerance=1.5)


# ---------------------------------------------------------------- review fixes: what may count


def test_ungraded_rack_aggregate_is_not_assessment_grade(tmp_path):
    """An aggregate with no `grade` is not assessment-grade: A1.7 stays unconfirmed and unscored."""
    ms = [measurement("g", i, H100, 700.0, grade="smoke") for i in range(4)]
    agg = {"scope": "rack", "dtype": "fp16", "power_scope": "rack", "gflops_per_w": 280, "tflops": 1400, "power_w": 5000}
    write_run(tmp_path / "r", ms, [agg])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    c = _claim(v, "A1.7")
    assert v.racks == [] and c.status == INCONCLUSIVE and c.figure is None
    assert v.scorecard.indicator("A1.7").source == "declared"
    assert any("aggregate" in s and "no grade" in s for s in v.smoke)


@pytest.mark.parametrize("valid, why", [(None, "no `valid` flag"), (False, "valid is false"), ("yes", "not true")])
def test_rack_aggregate_must_be_marked_valid(tmp_path, valid, why):
    agg = rack_aggregate("R1", 280.0)
    if valid is None:
        del agg["valid"]
    else:
        agg["valid"] = valid
    write_run(tmp_path / "r", [measurement("g", 0, H100, 700.0)], [agg])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert v.racks == [] and _claim(v, "A1.7").status == INCONCLUSIVE
    assert v.scorecard.indicator("A1.7").source == "declared"
    assert any("aggregate" in s and why in s for s in v.excluded)


def test_measurements_need_the_assessment_grade_and_a_valid_flag(tmp_path):
    """Measurements: only grade == assessment counts (no grade, or another one, is listed and ignored);
    a rack-scope efficiency counts only from a measurement marked valid."""
    ms = [measurement("g", 0, H100, 700.0, grade=None), measurement("g", 1, H100, 700.0, grade="Assessment")]
    rack = measurement("g", 2, H100, 700.0, power_scope="rack", rack_id="R1")
    del rack["valid"]
    write_run(tmp_path / "r", ms + [rack])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    assert len(v.smoke) == 2 and any("no grade" in s for s in v.smoke)
    assert v.racks == [] and _claim(v, "A1.7").status == INCONCLUSIVE


def test_timing_inconsistent_measurements_are_excluded(tmp_path):
    """The wall-clock cross-check failed: the device-timer figure is not trusted for A2.7."""
    ms = [measurement("g", i, H100, 700.0, timing_consistent=True, wall_vs_events=1.0) for i in range(3)]
    ms.append(measurement("g", 3, H100, 700.0))  # an older record without the key: not a failure
    ms += [measurement("g", 4 + i, H100, 980.0, timing_consistent=False, wall_vs_events=0.81) for i in range(4)]
    ms += [measurement("a", i, ASCEND, 300.0, peak=313.0, domestic=True, timing_consistent=False, wall_vs_events=1.2)
           for i in range(2)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]), basis="measured")
    m = {mf.key: mf for mf in v.models}
    assert m["h100-sxm"].sampled == 4 and m["h100-sxm"].median_tflops == 700.0
    assert m["ascend-910b"].sampled == 0 and m["ascend-910b"].reason == "not measured"
    assert len(v.excluded) == 6
    assert all("device timer and wall clock disagree (wall_vs_events=" in s for s in v.excluded)
    assert any("wall_vs_events=0.81" in s for s in v.excluded)
    assert _claim(v, "A2.7").status != CONFIRMED


def test_excluded_measurements_are_reported(tmp_path):
    from icb_bench.verify.report import to_json, to_table

    write_run(tmp_path / "r", [measurement("g", 0, H100, 700.0, timing_consistent=False, wall_vs_events=0.5)])
    v = verify(parse_declaration(example_dict()), load_records([tmp_path]))
    import json

    doc = json.loads(to_json(v))
    assert len(doc["excluded"]) == 1 and "wall_vs_events=0.5" in doc["excluded"][0]
    assert "wall_vs_events=0.5" in to_table(v, lang="en")


def test_consistency_warning_names_the_scored_figure_in_verify(tmp_path):
    """bench verify scores the recomputed figure: the contradiction warning must not say the declared one is."""
    from icb_bench.verify.scoring import score

    data = example_dict()
    data["technical"]["fp16_peak"] = "1300 PFLOPS"  # the inventory sums to 1110.5
    decl = parse_declaration(data)
    declared_only = [w for w in score(decl).warnings if w.startswith("technical.fp16_peak")]
    assert len(declared_only) == 1 and declared_only[0].endswith("; the declared figure is scored")
    v = verify(decl, _site(tmp_path))
    w = [w for w in v.scorecard.warnings if w.startswith("technical.fp16_peak")]
    assert len(w) == 1 and "the declared figure is scored" not in w[0]
    assert "the nominal figure" in w[0] and "is scored" in w[0]
    vm = verify(decl, _site(tmp_path / "m"), basis="measured")
    w = [w for w in vm.scorecard.warnings if w.startswith("technical.fp16_peak")]
    assert len(w) == 1 and "; the measured figure, " in w[0] and w[0].endswith("is scored")
