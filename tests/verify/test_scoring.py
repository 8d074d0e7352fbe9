"""Scoring: every indicator at every tier just met, exactly at and just missed its threshold;
the exact total, mandatory blocking, A3 all-or-nothing, certification name and reviews."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from icb_bench.verify import units
from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.scoring import Override, review_dates, score

from .conftest import example_dict
from .spec_table import FLAGS, LEVELS, MANDATORY, NUMERIC, RACK_UTILISATION, TIERS


def _set(d: dict, path: str, value) -> None:
    *head, last = path.split(".")
    for p in head:
        d = d[p]
    d[last] = value


def _decimal(f: Fraction) -> str:
    """A Fraction with a terminating decimal expansion as plain decimal text."""
    d = Decimal(f.numerator) / Decimal(f.denominator)
    text = format(d.normalize(), "f")
    assert Fraction(text) == f
    return text


def _indicator(data: dict, ind_id: str):
    return score(parse_declaration(data)).indicator(ind_id)


# canonical-unit steps used for "just" above / below
STEP = {"count": Fraction(1), "share": Fraction(1, 10000), "efficiency": Fraction(1, 1000), "money": Fraction(1),
        "bandwidth": Fraction(1, 1000), "storage": Fraction(1, 1000), "compute": Fraction(1, 1000), "number": Fraction(1, 1000)}


def _numeric_cases():
    for ind_id, (field, kind, op, thresholds, points, _) in NUMERIC.items():
        for tier in TIERS:
            t = units.parse(kind, thresholds[tier])
            for label, delta in (("at", 0), ("just above", 1), ("just below", -1)):
                value = t + delta * STEP[kind]
                if op == "ge":
                    met = delta >= 0
                else:  # lt: strictly less; equal fails
                    met = delta < 0
                yield pytest.param(ind_id, field, kind, tier, value, met, points, id=f"{ind_id}-{tier}-{label}")


@pytest.mark.parametrize("ind_id, field, kind, tier, value, met, points", list(_numeric_cases()))
def test_numeric_thresholds(ind_id, field, kind, tier, value, met, points):
    data = example_dict()
    data["base"]["tier"] = tier
    text = _decimal(value)
    if kind == "share":
        text = _decimal(value * 100) + "%"
    if field == "technical.racks_total":
        data["technical"]["racks_in_use"] = 0
    if ind_id == "A2.11":
        value_int = int(value)
        _set(data, field, value_int)
    elif kind == "count":
        _set(data, field, int(value))
    else:
        _set(data, field, text)
    res = _indicator(data, ind_id)
    assert res.met is met
    assert res.points == (points if met else 0)
    assert res.max == points
    assert res.source == "declared"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("ind_id", sorted(LEVELS))
def test_levels_at_above_below(ind_id, tier):
    field, scale, thresholds, points = LEVELS[ind_id]
    need = scale.index(thresholds[tier])
    for i, level in enumerate(scale):
        data = example_dict()
        data["base"]["tier"] = tier
        _set(data, field, level)
        res = _indicator(data, ind_id)
        assert res.met is (i >= need), (level, tier)
        assert res.points == (points if i >= need else 0)


@pytest.mark.parametrize("tier", TIERS)
def test_rack_utilisation_exact_ratio(tier):
    need = units.parse("share", RACK_UTILISATION[tier])
    total = 10000
    at = int(need * total)
    for in_use, met in ((at, True), (at + 1, True), (at - 1, False)):
        data = example_dict()
        data["base"]["tier"] = tier
        data["technical"]["racks_total"] = total
        data["technical"]["racks_in_use"] = in_use
        assert _indicator(data, "A2.6").met is met


def test_rack_utilisation_with_no_racks_is_unmet():
    data = example_dict()
    data["technical"]["racks_total"] = 0
    data["technical"]["racks_in_use"] = 0
    data["inventory"] = []  # accelerators need racks: zero racks with an inventory is a contradiction
    data["technical"].pop("domestic_compute_share", None)
    assert not _indicator(data, "A2.6").met


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("ind_id", sorted(FLAGS))
def test_flags_each_required(ind_id, tier):
    data = example_dict()
    data["base"]["tier"] = tier
    assert _indicator(data, ind_id).met
    for field in FLAGS[ind_id]:
        data = example_dict()
        data["base"]["tier"] = tier
        _set(data, field, False)
        assert not _indicator(data, ind_id).met, field


@pytest.mark.parametrize("tier", TIERS)
def test_security_level_and_assessment(tier):
    needs_assessment = tier in ("economic_region", "hub")
    for level, assessed, met in (
        (3, True, True), (4, True, True), (2, True, False),
        (3, False, not needs_assessment), (5, False, not needs_assessment),
    ):
        data = example_dict()
        data["base"]["tier"] = tier
        data["technical"]["security_level"] = level
        data["technical"]["security_assessed"] = assessed
        assert _indicator(data, "A2.10").met is met, (level, assessed)


@pytest.mark.parametrize(
    "window, met",
    [("07:00-08:00", True), ("12:00-13:00", True), ("19:00-20:00", True), ("19:00 - 20:00", True),
     ("19：00—20：00", True), ("18:00-19:00", False), ("07:00-09:00", False), ("", False)],
)
def test_daily_push_window(window, met):
    data = example_dict()
    data["data_access"]["daily_push_window"] = window
    assert _indicator(data, "A3.4").met is met


def _perfect() -> dict:
    data = example_dict()
    return data


def test_perfect_example_is_certified():
    card = score(parse_declaration(_perfect()), certified_on=dt.date(2025, 1, 15))
    assert (card.sections["A1"], card.sections["A2"], card.sections["A3"]) == (100, 100, 100)
    assert card.total == 100 and card.certified and card.blocking == []
    assert card.certified_name == "国家工业互联网大数据中心工业智算基地（示例工业智算基地）省级节点"
    assert card.review_dates == [dt.date(2026, 1, 15), dt.date(2027, 1, 15), dt.date(2028, 1, 15),
                                 dt.date(2030, 1, 15), dt.date(2032, 1, 15)]


@pytest.mark.parametrize("tier, suffix", [("economic_region", "经济聚集区域节点"), ("hub", "算力网络枢纽节点"),
                                          ("municipal", "城市节点"), ("industry", "行业节点")])
def test_certified_name_per_tier(tier, suffix):
    data = example_dict()
    data["base"]["tier"] = tier
    # meet the strictest column everywhere
    data["industrial_value"].update(enterprises_served=50, industrial_compute_share="80%", rack_efficiency="150 GFLOPS/W",
                                    rnd_spend="1000万", research_level="national")
    data["technical"].update(machine_room_grade="A", egress_bandwidth="1 Tbps", storage_capacity="15 PB", racks_total=3000,
                             racks_in_use=2100, fp16_peak="2 EFLOPS", pue=1.1, rer="80%", dr_level=5)
    card = score(parse_declaration(data))
    assert card.certified, [i.id for i in card.indicators if not i.met]
    assert card.certified_name.endswith(suffix)


def test_exactly_80_is_not_certified():
    data = _perfect()
    # lose 40 non-mandatory A1 points: A1.1 (5) + A1.5 (15) + A1.7 (10) + A1.9 (10) -> A1 = 60
    data["industrial_value"].update(policy_compliant=False, industrial_compute_share="10%", rack_efficiency="10 GFLOPS/W",
                                    rnd_spend="1万")
    card = score(parse_declaration(data))
    assert (card.sections["A1"], card.sections["A2"], card.sections["A3"]) == (60, 100, 100)
    assert card.total == 80 and isinstance(card.total, Fraction)
    assert not card.certified
    assert [c.met for c in card.checks if c.of == "total"] == [False]


def test_just_above_80_is_certified():
    data = _perfect()
    # A1 = 65 -> 32.5 + 30 + 20 = 82.5
    data["industrial_value"].update(industrial_compute_share="10%", rack_efficiency="10 GFLOPS/W", rnd_spend="1万")
    card = score(parse_declaration(data))
    assert card.total == Fraction(165, 2) and card.certified


def test_section_below_60_blocks_even_with_high_total():
    data = _perfect()
    # A2 = 50: lose 15 + 15 + 5 + 5 + 5 + 5 non-mandatory A2 points; total = 50 + 15 + 20 = 85 > 80
    data["technical"].update(pue=1.9, domestic_compute_share="10%", rer="1%", machine_room_grade="none",
                             egress_bandwidth="1 Gbps", storage_capacity="1 PB")
    card = score(parse_declaration(data))
    assert card.sections["A2"] == 50 and card.total == 85
    assert not card.certified


@pytest.mark.parametrize(
    "ind_id, change",
    [
        ("A1.4", lambda d: d["industrial_value"].update(enterprises_served=5)),
        ("A1.6", lambda d: d["industrial_value"]["virtualization"].update(network=False)),
        ("A2.7", lambda d: d["technical"].update(fp16_peak="999 PFLOPS")),
    ],
)
def test_unmet_mandatory_blocks_certification_switchably(ind_id, change):
    data = _perfect()
    change(data)
    decl = parse_declaration(data)
    card = score(decl)
    assert card.total > 80 and all(c.met for c in card.checks)
    assert card.blocking == [ind_id]
    assert not card.certified and card.certified_name is None
    relaxed = score(decl, mandatory_block=False)
    assert relaxed.certified and relaxed.blocking == [ind_id]


@pytest.mark.parametrize("ind_id, field", [("A3.1", "push_to_central"), ("A3.2", "collect_security"),
                                           ("A3.3", "api_compliant"), ("A3.4", "adhoc_push")])
def test_a3_all_or_nothing(ind_id, field):
    data = _perfect()
    data["data_access"][field] = False
    card = score(parse_declaration(data))
    assert card.sections["A3"] == 0
    assert not card.certified
    for ind in card.indicators:
        if ind.section == "A3":
            assert ind.points == 0
            assert ind.met is (ind.id != ind_id)


def test_overrides_replace_declared_values_and_name_their_source():
    decl = parse_declaration(_perfect())
    card = score(decl, overrides={"technical.fp16_peak": Override(Fraction(900), "measured")})
    a27 = card.indicator("A2.7")
    assert a27.value == 900 and a27.source == "measured" and not a27.met
    assert card.blocking == ["A2.7"]


def test_missing_optional_claims_are_unmet():
    data = _perfect()
    del data["technical"]["fp16_peak"]
    del data["industrial_value"]["rack_efficiency"]
    card = score(parse_declaration(data))
    assert not card.indicator("A2.7").met and not card.indicator("A1.7").met
    assert card.indicator("A2.7").value is None


def test_review_dates_leap_day():
    assert review_dates(dt.date(2024, 2, 29), 3, 2, 4) == [
        dt.date(2025, 2, 28), dt.date(2026, 2, 28), dt.date(2027, 2, 28), dt.date(2029, 2, 28)]


# ---------------------------------------------------------------- declared against declared


def test_contradictions_warn_and_declared_is_scored():
    data = _perfect()
    data["technical"]["fp16_peak"] = "2000 PFLOPS"   # inventory says 1110.5
    data["technical"]["domestic_compute_share"] = "95%"  # inventory says 73.28 %
    card = score(parse_declaration(data))
    text = "\n".join(card.warnings)
    assert "2000 PFLOPS" in text and "1110.5 PFLOPS" in text
    assert "95%" in text and "73.28%" in text
    assert card.indicator("A2.7").value == 2000 and card.indicator("A2.7").source == "declared"


def test_verdict_changing_difference_is_called_out_even_when_small():
    data = _perfect()
    data["inventory"] = [{"model": "Huawei Ascend 910B", "count": 3190, "fp16_tflops": 313, "domestic": True}]
    data["technical"]["fp16_peak"] = "1000 PFLOPS"  # inventory: 998.47, under 1 % away but below the threshold
    card = score(parse_declaration(data))
    assert any("changes A2.7" in w for w in card.warnings)


def test_consistent_declaration_has_no_fp16_warning():
    data = _perfect()
    data["technical"]["fp16_peak"] = "1110.5 PFLOPS"
    data["technical"]["domestic_compute_share"] = "73.28%"
    card = score(parse_declaration(data))
    assert card.warnings == []


def test_declared_device_peak_above_datasheet_is_flagged():
    data = _perfect()
    data["inventory"][0]["fp16_tflops"] = 1979  # the sparse figure
    card = score(parse_declaration(data))
    assert any("1979" in w and "989" in w and "sparse" in w for w in card.warnings)
