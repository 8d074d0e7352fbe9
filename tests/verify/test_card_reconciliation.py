"""Declared cards vs measured devices: a two-die card is sampled and compared per die, credited
and extrapolated per card (the ×2 errors of multi-vendor peers must be impossible)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from icb_bench.verify.collect import DeviceSample, collect, load_records
from icb_bench.verify.fp16 import Fp16Rule, model_figure, nominal_pflops_exact
from icb_bench.verify.inventory import ResolvedItem
from icb_bench.verify.rules import load_peaks
from icb_bench.verify.sampling import load_sampling_rules

from .conftest import measurement, write_run

DUAL = "Ascend910_9392"  # the driver's name for one die of a two-die Atlas A3 / 910C card


def _item(model: str, cards: int) -> ResolvedItem:
    entry = load_peaks().match(model)
    return ResolvedItem(index=0, model=model, key=entry.key if entry else model, count=cards, declared_tflops=None,
                        datasheet=entry, domestic=True, domestic_source="datasheet")


def _samples(model_key: str, tflops: list[float]) -> list[DeviceSample]:
    return [DeviceSample(tflops=v, valid=True, peak=None, peak_source=None, peak_kind=None, domestic=True,
                         model=model_key, raw_model=DUAL, rack_id=None, label=f"d{i}") for i, v in enumerate(tflops)]


def _rule(level: int = 1) -> Fp16Rule:
    return Fp16Rule(min_efficiency=Fraction(1, 2), level=level, rules=load_sampling_rules())


def test_the_table_states_the_dual_die_part_per_card_with_two_dies():
    e = load_peaks().match(DUAL)
    assert e.key == "ascend-910c" and e.dies_per_card == 2
    assert e.fp16_tflops == 800 and e.device_fp16_tflops == 400


def test_100_cards_200_dies_all_measured_nominal_is_cards_times_card_peak():
    it = _item(DUAL, 100)
    assert it.devices == 200
    mf = model_figure(it, _samples(it.key, [300.0] * 200), _rule())
    assert mf.sampled == 200 and mf.required <= 200 and mf.rule_met and mf.credited, mf.reason
    assert mf.interval == "census"  # every device of the population measured
    nominal = nominal_pflops_exact([mf])
    assert nominal == Fraction(100 * 800, 1000)  # 80 PFLOPS
    assert nominal != Fraction(200 * 800, 1000) and nominal != Fraction(100 * 400, 1000)
    # measured: 300 per die = 600 per card, × 100 cards = 60 PFLOPS (not 30, not 120)
    assert mf.mean_tflops == pytest.approx(600.0) and mf.measured_pflops == pytest.approx(60.0)
    assert mf.attainment == pytest.approx(0.75)


def test_each_die_is_compared_with_the_die_peak():
    it = _item(DUAL, 2)
    # 250 per die is 62.5 % of the die peak (400) but only 31 % of the card peak: it passes
    mf = model_figure(it, _samples(it.key, [250.0, 250.0, 250.0, 150.0]), _rule())
    assert mf.below_efficiency == 1  # 150 < 50 % × 400, the others are not
    assert "below 50% of the datasheet peak" in mf.reason and not mf.credited


def test_fewer_dies_than_the_rule_asks_is_a_shortfall_in_devices():
    it = _item(DUAL, 100)
    level = next(lv for lv, spec in load_sampling_rules().levels.items() if spec.fraction == 1)  # census level
    mf = model_figure(it, _samples(it.key, [300.0] * 100), _rule(level=level))
    assert mf.required == 200 and not mf.rule_met  # 100 dies are half of 100 cards, not all of them
    assert "100 of 200 Ascend910_9392 devices (100 cards × 2 dies) measured" in mf.measured_reason


def test_one_die_per_card_models_are_unchanged():
    it = _item("NVIDIA H200", 4)
    assert it.dies_per_card == 1 and it.devices == 4
    mf = model_figure(it, _samples(it.key, [700.0, 720.0, 710.0, 690.0]), _rule())
    assert mf.mean_tflops == pytest.approx(705.0) and mf.measured_pflops == pytest.approx(4 * 705.0 / 1000)
    assert nominal_pflops_exact([mf]) == Fraction(4 * 989, 1000)


def test_a_per_die_figure_is_turned_into_a_card_figure(tmp_path):
    """An entry stated ``per: die`` reaches verify per card (× dies_per_card), the declaration's unit."""
    p = tmp_path / "peaks.yaml"
    p.write_text("schema: icb-peaks/2\nmodels:\n"
                 "  - {key: x2, name: X2, vendor: V, domestic: true, kind: press, source: s, per: die,\n"
                 "     dies_per_card: 2, upper_tflops: 60, aliases: ['\\bx2\\b'], tflops: {fp16: 50}}\n", encoding="utf-8")
    e = load_peaks(str(p)).match("X2")
    assert e.fp16_tflops == 100 and e.device_fp16_tflops == 50 and e.ceiling_tflops == 120


def test_a_die_above_its_own_ceiling_is_caught_though_below_the_cards(tmp_path):
    """A die's figure is checked against the die's ceiling: 700 TFLOPS is credible for the card
    (800) but not for one die (400), and counts as a failed device."""
    write_run(tmp_path / "r", [measurement("n", 0, DUAL, 700.0), measurement("n", 1, DUAL, 300.0)])
    got = collect(load_records([tmp_path]), load_peaks())
    assert any("700 TFLOPS is above the datasheet dense FP16 ceiling 400" in x for x in got.excluded), got.excluded
    assert not any("300 TFLOPS" in x for x in got.excluded)
