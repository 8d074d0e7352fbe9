"""Declared against measured: claims, bases, grades, scopes, uncertainty."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.measured import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, load_records, median_ci, verify

from .conftest import (ASCEND, H100, N_ASCEND, N_H100, RackSpec, example_dict, few_racks_dict, measurement, rack_aggregate, site_measurements,
                       verify_with_site,
                       write_fleet, write_run)

RACKS = (130.0, 125.0, 128.0)


def _site(tmp_path, h100=700.0, ascend=260.0, racks=RACKS, **kw):
    """The H100s in a fleet record of len(racks) whole racks (with those GFLOPS/W), the Ascends in a node run."""
    per = N_H100 // len(racks)
    specs = {f"R{k}": RackSpec(e, devices=per, tflops=lambda i, k=k: h100 + ((k * per + i) % 3), measurement=kw)
             for k, e in enumerate(racks)}
    write_fleet(tmp_path / "fleet", specs)
    write_run(tmp_path / "run1", site_measurements(h100, ascend, n_h100=0, **kw))
    return load_records([tmp_path])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The standard site, written once: 30 H100 + 260 Ascend (the level-1 rule) and three racks."""
    return _site(tmp_path_factory.mktemp("site"))


def _claim(v, ind_id):
    return next(c for c in v.claims if c.id == ind_id)


def _model(v, key):
    return next(mf for mf in v.models if mf.key == key)


def test_all_claims_confirmed(site):
    decl = parse_declaration(few_racks_dict())
    v = verify_with_site(decl, site)
    assert {c.id: c.status for c in v.claims} == {"A2.7": CONFIRMED, "A2.14": CONFIRMED, "A1.7": CONFIRMED}
    assert v.all_confirmed
    # nominal = 300 × 989 + 2600 × 313 TFLOPS, exact
    assert v.site.nominal == pytest.approx(1110.5)
    assert v.scorecard.indicator("A2.7").value == Fraction(2221, 2)
    assert v.scorecard.indicator("A2.7").source == "nominal"
    assert v.scorecard.indicator("A1.7").source == "measured"
    assert v.scorecard.indicator("A2.14").source == "nominal"
    h = _model(v, "h100-sxm")
    assert (h.sampled, h.required, h.rule_met, h.credited) == (30, 30, True, True)
    assert h.median_tflops == pytest.approx(701.0)
    assert h.mean_tflops == pytest.approx(701.0) and h.interval == "t+fpc"
    assert h.attainment == pytest.approx(701 / 989)
    # measured = mean per device × declared count
    assert v.site.measured == pytest.approx((701 * 300 + (260 + 259 / 260) * 2600) / 1000)
    assert v.site.attainment == pytest.approx(v.site.measured / v.site.nominal)
    assert v.site.measured_low < v.site.measured < v.site.measured_high


def test_measured_basis_scores_the_measured_figure(site):
    decl = parse_declaration(few_racks_dict())
    v = verify(decl, site, basis="measured")
    a27 = v.scorecard.indicator("A2.7")
    assert a27.source == "measured" and float(a27.value) == pytest.approx(v.site.measured)
    # measured ≈ 887 PFLOPS, its upper bound far below 1100 × 0.95
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
    decl = parse_declaration(few_racks_dict())
    records = _site(tmp_path, ascend=140.0)  # 140/313 = 45 % < 50 %
    v = verify(decl, records)
    ascend = _model(v, "ascend-910b")
    assert not ascend.credited and "below 50%" in ascend.reason
    assert v.site.nominal == pytest.approx(296.7)
    assert _claim(v, "A2.7").status == NOT_CONFIRMED
    assert verify(decl, records, min_efficiency=0.4).site.nominal == pytest.approx(1110.5)


# ------------------------------------------------- the issue: few devices must not stand for many


def test_one_device_per_model_cannot_confirm_the_site(tmp_path):
    """One H100 and one Ascend record for 2,900 declared devices: below the rule, nothing is credited."""
    write_run(tmp_path / "r", [measurement("g", 0, H100, 980.0), measurement("a", 0, ASCEND, 310.0, peak=313.0, domestic=True)])
    data = example_dict()
    data["technical"]["fp16_peak"] = "1 PFLOPS"  # even a trivially low declaration is not confirmed by this
    for basis in ("nominal", "measured"):
        v = verify(parse_declaration(data), load_records([tmp_path]), basis=basis)
        c = _claim(v, "A2.7")
        assert c.status == INCONCLUSIVE, basis
        assert "1 of 300 NVIDIA H100 SXM5 80GB measured; the rule asks for 30" in c.reason
        assert "1 of 2600 Huawei Ascend 910B measured; the rule asks for 260" in c.reason
        h = _model(v, "h100-sxm")
        assert not h.rule_met and not h.credited and not h.confirmable and "the rule asks for 30" in h.reason
    assert v.site.nominal == 0 and v.site.measured == 0 and not v.site.complete


def _small_inventory(h100_count=40, ascend_count=None):
    data = example_dict()
    data["inventory"] = [{"model": "NVIDIA H100 SXM5 80GB", "count": h100_count, "fp16_tflops": 989}]
    if ascend_count:
        data["inventory"].append({"model": "Huawei Ascend 910B", "count": ascend_count, "fp16_tflops": 313, "domestic": True})
    data["technical"]["fp16_peak"] = f"{h100_count * 989 / 1000} PFLOPS"
    data["technical"].pop("domestic_compute_share", None)
    return data


def test_failed_devices_count_as_zero(tmp_path):
    """3 of 4 H100 fail correctness: the model contributes a quarter of its count, not all of it."""
    ms = [measurement("g", 0, H100, 700.0)]
    ms += [measurement("g", i, H100, 980.0, valid=False) for i in (1, 2, 3)]  # an invalid figure is not believed
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(_small_inventory(40)), load_records([tmp_path]), basis="measured")
    h = _model(v, "h100-sxm")
    assert (h.sampled, h.required, h.invalid) == (4, 4, 3)
    assert h.mean_tflops == pytest.approx(175.0) and h.median_tflops == 700.0
    assert h.measured_pflops == pytest.approx(175.0 * 40 / 1000)
    assert not h.credited and "3 of 4 sampled device(s) failed correctness (counted as zero)" in h.reason
    assert _claim(v, "A2.7").status == NOT_CONFIRMED  # upper bound of the t interval is below 39.56 × 0.95


def test_a_device_that_died_in_the_run_counts_as_zero(tmp_path):
    """A device in the manifest's failed_devices left no measurement: it is sampled with zero, not dropped."""
    from icb_bench.bench.record import RecordWriter, write_measurement

    run = tmp_path / "r"
    w = RecordWriter(run, {"run_id": "r", "host": {"hostname": "g"},
                           "plan": {"dtypes": ["fp16"], "duration_s": 60.0, "min_assessment_s": 60.0},
                           "inventory": [{"index": i, "model": H100, "uuid": f"GPU-g-{i}"} for i in range(4)]})
    w.start()
    for i in range(3):
        write_measurement(run, measurement("g", i, H100, 700.0))
    w.finish("failed", failed_devices={"3": "RuntimeError: device lost"})
    v = verify(parse_declaration(_small_inventory(40)), load_records([run]), basis="measured")
    h = _model(v, "h100-sxm")
    assert (h.sampled, h.invalid) == (4, 1) and h.mean_tflops == pytest.approx(525.0)


def test_pairs_a_stopped_run_never_measured_count_as_zero(tmp_path):
    """A run stopped by a full disk before device 3's FP16 (``missing``): sampled with zero, so
    filling the disk cannot drop a poor device; its other dtypes are not FP16 and add nothing."""
    from icb_bench.bench.record import RecordWriter, write_measurement

    run = tmp_path / "r"
    w = RecordWriter(run, {"run_id": "r", "host": {"hostname": "g"},
                           "plan": {"dtypes": ["fp16", "fp32"], "duration_s": 60.0, "min_assessment_s": 60.0},
                           "inventory": [{"index": i, "model": H100, "uuid": f"GPU-g-{i}"} for i in range(4)]})
    w.start()
    for i in range(3):
        write_measurement(run, measurement("g", i, H100, 700.0))
    w.finish("failed", failed_devices={}, failure_reason="disk full writing measurements/x.json: No space left on device",
             missing=[{"device": 3, "dtype": "fp16", "state": "not_started"},
                      {"device": 2, "dtype": "fp32", "state": "not_started"}])
    v = verify(parse_declaration(_small_inventory(40)), load_records([run]), basis="measured")
    h = _model(v, "h100-sxm")
    assert (h.sampled, h.invalid) == (4, 1) and h.mean_tflops == pytest.approx(525.0)


def test_one_device_of_many_has_no_interval(tmp_path):
    """5 declared, 1 measured: the level-1 rule (⌈0.5⌉ = 1) is met, but there is no spread to extrapolate with."""
    write_run(tmp_path / "r", [measurement("g", 0, H100, 980.0)])
    data = _small_inventory(5)
    data["technical"]["fp16_peak"] = "4 PFLOPS"  # 980 × 5 = 4.9 PFLOPS would clear it
    v = verify(parse_declaration(data), load_records([tmp_path]), basis="measured")
    h = _model(v, "h100-sxm")
    assert h.rule_met and h.interval == "single" and h.ci_low_tflops is None and not h.confirmable
    assert h.measured_pflops == pytest.approx(4.9)
    c = _claim(v, "A2.7")
    assert c.status == INCONCLUSIVE and "no device-to-device spread" in c.reason
    # nominal: the rule is met and the device was correct and efficient, so the model is credited
    vn = verify(parse_declaration(data), load_records([tmp_path]))
    assert _model(vn, "h100-sxm").credited and _claim(vn, "A2.7").status == CONFIRMED


def test_every_device_measured_is_a_census(tmp_path):
    write_run(tmp_path / "r", [measurement("g", 0, H100, 900.0), measurement("g", 1, H100, 960.0)])
    data = _small_inventory(2)
    data["technical"]["fp16_peak"] = "1.9 PFLOPS"  # needs 1.805; census figure 1.86
    v = verify(parse_declaration(data), load_records([tmp_path]), basis="measured")
    h = _model(v, "h100-sxm")
    assert h.interval == "census" and h.ci_low_tflops == h.ci_high_tflops == pytest.approx(930.0)
    assert _claim(v, "A2.7").status == CONFIRMED


def test_interval_comes_from_device_spread_not_batch_iqr(tmp_path):
    """Two devices with tiny batch IQRs but far apart: the interval is wide (t with 1 dof)."""
    write_run(tmp_path / "r", [measurement("g", 0, H100, 600.0, spread=0.1), measurement("g", 1, H100, 900.0, spread=0.1)])
    data = _small_inventory(20)  # the rule asks for 2
    data["technical"]["fp16_peak"] = "14 PFLOPS"  # needs 13.3; mean 750 × 20 = 15 PFLOPS
    v = verify(parse_declaration(data), load_records([tmp_path]), basis="measured")
    h = _model(v, "h100-sxm")
    assert h.ci_low_tflops == 0.0 and h.ci_high_tflops > 2000  # 750 ± 12.7 × 150 × √(18/19)
    c = _claim(v, "A2.7")
    assert c.low < 13.3 < c.high and c.status == INCONCLUSIVE


def test_level_sets_the_rule(site):
    decl = parse_declaration(few_racks_dict())
    v = verify(decl, site, level=3)
    h = _model(v, "h100-sxm")
    assert h.required == 300 and not h.credited and "30 of 300" in h.reason and "level 3" in h.reason
    assert _claim(v, "A2.7").status == INCONCLUSIVE and v.level == 3
    assert verify(decl, site, level=2).models[0].required == 38  # ⌈300/8⌉


def test_an_incorrect_device_withdraws_its_model(tmp_path):
    ms = site_measurements()
    ms[4] = measurement("g", 4, H100, 700.0, valid=False)
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    h = _model(v, "h100-sxm")
    assert h.invalid == 1 and not h.credited and "correctness" in h.reason
    assert h.median_tflops == pytest.approx(701.0)  # the median of the correct devices
    assert h.mean_tflops < 701 * 29 / 30 + 1  # but the failed one counts as zero in the mean


def test_smoke_measurements_are_listed_and_ignored(tmp_path):
    ms = [measurement("g", i, H100, 100.0, grade="smoke") for i in range(4)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert len(v.smoke) == 4 and all("smoke" in s for s in v.smoke)
    assert all(mf.sampled == 0 for mf in v.models)
    assert _claim(v, "A2.7").status == INCONCLUSIVE
    assert v.scorecard.indicator("A2.7").source == "declared"  # nothing measured: declared stays


def test_unmeasured_model_makes_the_peak_inconclusive(tmp_path):
    write_run(tmp_path / "r", site_measurements(n_ascend=0))
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    c = _claim(v, "A2.7")
    assert c.status == INCONCLUSIVE and "0 of 2600 Huawei Ascend 910B measured; the rule asks for 260" in c.reason
    assert not v.site.complete
    assert "Huawei Ascend 910B" in v.scorecard.indicator("A2.7").note


def test_unmatched_models_are_reported(tmp_path):
    ms = [measurement("x", i, "NVIDIA L40S", 300.0, peak=362.0) for i in range(2)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert v.unmatched == {"NVIDIA L40S": 2}
    assert any("L40S" in n for n in v.notes)


def test_declared_device_peak_above_datasheet_is_flagged(site):
    data = example_dict()
    data["inventory"][0]["fp16_tflops"] = 1979
    v = verify(parse_declaration(data), site)
    assert _model(v, "h100-sxm").above_datasheet
    assert any("1979" in n and "sparse" in n for n in v.notes)


def test_domestic_share_recomputed_from_inventory(site):
    data = example_dict()
    data["technical"]["domestic_compute_share"] = "90%"
    v = verify(parse_declaration(data), site)
    assert v.domestic_share == Fraction(2600 * 313, 300 * 989 + 2600 * 313)
    assert _claim(v, "A2.14").status == NOT_CONFIRMED
    assert v.scorecard.indicator("A2.14").value == v.domestic_share


def test_lower_scopes_are_shown_never_scored_as_rack(tmp_path):
    """Node figures are recomputed from a whole node's measurements (the manifest's node aggregate is
    not read) and shown with device figures; neither is scored as a rack figure."""
    ms = [measurement("g", i, H100, 700.0, power_scope="device") for i in range(4)]
    ms += [measurement("a", 4 + i, ASCEND, 260.0, peak=313.0, domestic=True) for i in range(4)]
    for m in ms:
        m["flops_total"] = m["tflops"] * 1e12 * 120
    inv = [{"index": i, "model": H100} for i in range(8)]
    write_run(tmp_path / "r", ms, [rack_aggregate("N1", 500.0, scope="node")], inventory=inv)
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    c = _claim(v, "A1.7")
    assert c.status == INCONCLUSIVE and "node-scope" in c.reason and "device-scope" in c.reason
    assert v.racks == [] and {s.scope for s in v.lower_scopes} == {"node", "device"}
    node = next(s for s in v.lower_scopes if s.scope == "node")
    assert node.n == 1 and node.median == pytest.approx((4 * 700 + 4 * 260) * 1000 / (8 * 650))  # not the manifest's 500
    assert v.scorecard.indicator("A1.7").source == "declared"


def test_a_partial_node_has_no_node_figure(tmp_path):
    """Node aggregates are valid only when every device of the node was measured: 1 of 8 is no node figure."""
    m = measurement("g", 0, H100, 700.0)
    m["flops_total"] = 700e12 * 120
    write_run(tmp_path / "r", [m], inventory=[{"index": i, "model": H100} for i in range(8)])
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert {s.scope for s in v.lower_scopes} == {"device"}


def test_rack_efficiency_median_and_nominal_efficiency(tmp_path):
    write_fleet(tmp_path / "fleet", {
        "R7": RackSpec(90.0, devices=32, tflops=lambda i: 700.0),
        "R8": RackSpec(110.0, devices=32, model=ASCEND, tflops=lambda i: 260.0,
                       measurement=dict(peak=313.0, domestic=True, vendor="Huawei")),
    })
    v = verify_with_site(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert sorted(r.gflops_per_w for r in v.racks) == [90.0, 110.0]
    assert float(v.scorecard.indicator("A1.7").value) == pytest.approx(100.0)
    r7 = next(r for r in v.racks if r.label == "R7")
    assert r7.nominal_gflops_per_w == pytest.approx(32 * 989 * 1000 / r7.power_w)  # 理论算效, from verify's table
    # declared 120, median 100, upper bound 101 < 114 -> not confirmed
    assert _claim(v, "A1.7").status == NOT_CONFIRMED


def test_smoke_rack_aggregates_are_ignored(tmp_path):
    write_fleet(tmp_path / "fleet", {"R1": RackSpec(200.0, agg=dict(grade="smoke"))})
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert v.racks == [] and any("aggregate" in s for s in v.smoke)


def test_a_device_measured_twice_counts_once_with_the_median(tmp_path):
    """"A later record of a device replaces it": the arguments' order chose the run. Now every record
    is listed and the device counts once, with the median, whatever the order."""
    write_run(tmp_path / "r1", [measurement("g", 0, H100, 600.0)])
    write_run(tmp_path / "r2", [measurement("g", 0, H100, 700.0)])
    write_run(tmp_path / "r3", [measurement("g", 0, H100, 650.0)])
    decl = parse_declaration(few_racks_dict())
    paths = [tmp_path / "r1", tmp_path / "r2", tmp_path / "r3"]
    v = verify(decl, load_records(paths))
    h = _model(v, "h100-sxm")
    assert h.sampled == 1 and h.median_tflops == 650.0
    assert len(v.repeats) == 1 and all(f"r{k}/g-d0-fp16 {t}" in v.repeats[0] for k, t in ((1, 600), (2, 700), (3, 650)))
    assert "median 650 TFLOPS counted" in v.repeats[0]
    for order in (paths[::-1], [paths[1], paths[0], paths[2]]):
        assert _model(verify(decl, load_records(order)), "h100-sxm").median_tflops == 650.0


def test_a_device_that_failed_once_counts_as_failed(tmp_path):
    write_run(tmp_path / "r1", [measurement("g", 0, H100, 700.0)])
    write_run(tmp_path / "r2", [measurement("g", 0, H100, 700.0, valid=False)])
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    h = _model(v, "h100-sxm")
    assert (h.sampled, h.invalid, h.mean_tflops) == (1, 1, 0.0) and "counted as a failed device" in v.repeats[0]


def test_other_dtypes_do_not_count_for_fp16(tmp_path):
    write_run(tmp_path / "r", [measurement("g", 0, H100, 60.0, dtype="fp32", peak=67.0)])
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert all(mf.sampled == 0 for mf in v.models)


def test_median_ci():
    xs = sorted(float(x) for x in range(1, 101))
    lo, hi = median_ci(xs)
    assert lo < 50.5 < hi and hi - lo < 25
    assert median_ci([1.0, 2.0]) == (1.0, 2.0)


def test_bad_arguments():
    from icb_bench.verify.measured import LevelError

    decl = parse_declaration(few_racks_dict())
    with pytest.raises(ValueError):
        verify(decl, [], basis="declared")
    with pytest.raises(ValueError):
        verify(decl, [], tolerance=1.5)
    with pytest.raises(LevelError, match="not one of"):
        verify(decl, [], level=4)


# ---------------------------------------------------------------- review fixes: what may count


def test_ungraded_rack_aggregate_is_not_assessment_grade(tmp_path):
    """An aggregate with no `grade` is not assessment-grade: A1.7 stays unconfirmed and unscored."""
    write_fleet(tmp_path / "fleet", {"R1": RackSpec(280.0, measurement=dict(grade="smoke"), override={"grade": None})})
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    c = _claim(v, "A1.7")
    assert v.racks == [] and c.status == INCONCLUSIVE and c.figure is None
    assert v.scorecard.indicator("A1.7").source == "declared"
    assert any("aggregate" in s and "no grade" in s for s in v.smoke)


@pytest.mark.parametrize("valid, why", [(None, "no `valid` flag"), (False, "valid is false"), ("yes", "not true")])
def test_rack_aggregate_must_be_marked_valid(tmp_path, valid, why):
    write_fleet(tmp_path / "fleet", {"R1": RackSpec(280.0, override={"valid": valid})})
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
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
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    assert len(v.smoke) == 2 and any("no grade" in s for s in v.smoke)
    assert v.racks == [] and _claim(v, "A1.7").status == INCONCLUSIVE


def test_timing_inconsistent_measurements_count_as_failed_devices(tmp_path):
    """The wall-clock cross-check failed: the device-timer figure is not trusted, and the device counts as zero."""
    ms = [measurement("g", i, H100, 700.0, timing_consistent=True, wall_vs_events=1.0) for i in range(3)]
    ms.append(measurement("g", 3, H100, 700.0))  # an older record without the key: not a failure
    ms += [measurement("g", 4 + i, H100, 980.0, timing_consistent=False, wall_vs_events=0.81) for i in range(4)]
    ms += [measurement("a", i, ASCEND, 300.0, peak=313.0, domestic=True, timing_consistent=False, wall_vs_events=1.2)
           for i in range(2)]
    write_run(tmp_path / "r", ms)
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]), basis="measured")
    h, a = _model(v, "h100-sxm"), _model(v, "ascend-910b")
    assert (h.sampled, h.invalid) == (8, 4) and h.median_tflops == 700.0 and h.mean_tflops == pytest.approx(350.0)
    assert (a.sampled, a.invalid) == (2, 2) and a.mean_tflops == 0.0
    assert len(v.excluded) == 6
    assert all("device timer and wall clock disagree (wall_vs_events=" in s and "zero throughput" in s for s in v.excluded)
    assert any("wall_vs_events=0.81" in s for s in v.excluded)
    assert _claim(v, "A2.7").status != CONFIRMED


def test_excluded_measurements_are_reported(tmp_path):
    from icb_bench.verify.report import to_json, to_table

    write_run(tmp_path / "r", [measurement("g", 0, H100, 700.0, timing_consistent=False, wall_vs_events=0.5)])
    v = verify(parse_declaration(few_racks_dict()), load_records([tmp_path]))
    doc = json.loads(to_json(v))
    assert len(doc["excluded"]) == 1 and "wall_vs_events=0.5" in doc["excluded"][0]
    assert "wall_vs_events=0.5" in to_table(v, lang="en")


def test_consistency_warning_names_the_scored_figure_in_verify(site):
    """bench verify scores the recomputed figure: the contradiction warning must not say the declared one is."""
    from icb_bench.verify.scoring import score

    data = example_dict()
    data["technical"]["fp16_peak"] = "1300 PFLOPS"  # the inventory sums to 1110.5
    decl = parse_declaration(data)
    declared_only = [w for w in score(decl).warnings if w.startswith("technical.fp16_peak")]
    assert len(declared_only) == 1 and declared_only[0].endswith("; the declared figure is scored")
    v = verify(decl, site)
    w = [w for w in v.scorecard.warnings if w.startswith("technical.fp16_peak")]
    assert len(w) == 1 and "the declared figure is scored" not in w[0]
    assert "the nominal figure" in w[0] and "is scored" in w[0]
    vm = verify(decl, site, basis="measured")
    w = [w for w in vm.scorecard.warnings if w.startswith("technical.fp16_peak")]
    assert len(w) == 1 and "; the measured figure, " in w[0] and w[0].endswith("is scored")


def test_site_sizes_match_the_rule():
    from icb_bench.verify.sampling import devices_required

    assert (devices_required(300), devices_required(2600)) == (N_H100, N_ASCEND)


def test_a_resumed_record_says_what_was_measured_after_the_stop(tmp_path):
    from icb_bench.bench.record import RecordWriter, write_measurement

    run = tmp_path / "r"
    w = RecordWriter(run, {"run_id": "r", "host": {"hostname": "g"},
                           "plan": {"dtypes": ["fp16"], "duration_s": 60.0, "min_assessment_s": 60.0},
                           "inventory": [{"index": i, "model": H100, "uuid": f"GPU-g-{i}"} for i in range(2)],
                           "resumes": [{"started_at": "2026-12-01T10:00:00Z", "measured": [{"device": 1, "dtype": "fp16"}],
                                        "previous": {"status": "interrupted",
                                                     "missing": [{"device": 1, "dtype": "fp16", "state": "in_progress"}]}}]})
    w.start()
    for i in range(2):
        write_measurement(run, measurement("g", i, H100, 700.0))
    w.finish("complete")
    v = verify(parse_declaration(_small_inventory(40)), load_records([run]), basis="measured")
    (note,) = [n for n in v.notes if "resumed at" in n]
    assert note == ("r: resumed at 2026-12-01T10:00:00Z after it stopped interrupted; measured then: device 1 fp16; "
                    "cut off mid-measurement before: device 1 fp16")
