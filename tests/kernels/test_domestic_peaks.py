"""Domestic entries of the peak table: sourced figures only, per card/die consistent with DIE_LAYOUTS,
and `lookup` answering per measured device."""

from __future__ import annotations

import pytest

from icb_bench.kernels.backends.families import die_layout
from icb_bench.kernels.peaks import PEAK_UNITS, load_table, lookup, per_device, resolve

DOMESTIC_NEW = {  # key -> dense figures exactly as their sources state them (see peaks.yaml)
    "ascend-910": {"fp16": 256, "int8": 512},
    "ascend-910c": {"fp16": 800},
    "mtt-s4000": {"fp32": 25, "tf32": 50, "fp16": 100, "bf16": 100, "int8": 200},
    "cambricon-mlu370-x8": {"fp32": 32, "fp16": 96, "bf16": 96, "int8": 256},
    "iluvatar-bi-v100": {"fp32": 37, "fp16": 147, "bf16": 147, "int8": 295},
}


@pytest.mark.parametrize("key, figures", DOMESTIC_NEW.items())
def test_sourced_figures(key, figures):
    entry = load_table()[key]
    assert entry["tflops"] == figures
    assert entry["domestic"] is True and entry["kind"] in ("datasheet", "press", "community", "measured")
    assert len(" ".join(str(entry["source"]).split())) > 40  # a source one can look up, not a bare label


def test_every_entry_states_its_unit_consistently_with_die_layouts():
    for key, entry in load_table().items():
        assert entry.get("per", "card") in PEAK_UNITS, key
        layout = die_layout(entry["name"])
        assert entry.get("dies_per_card", 1) == layout.dies_per_card, (key, layout)


@pytest.mark.parametrize("driver_name", ["Ascend910_9392", "Ascend910_9382", "Ascend 910C"])
def test_dual_die_part_answers_per_device(driver_name):
    assert die_layout(driver_name).dies_per_card == 2
    peak = lookup(driver_name, "fp16")
    assert peak.model_key == "ascend-910c" and peak.per == "die" and peak.dies_per_card == 2
    assert peak.tflops == 400 and peak.card_tflops == 800  # a die is compared with half the card


def test_single_device_cards_are_per_card():
    peak = lookup("MTT S4000", "int8")
    assert (peak.tflops, peak.card_tflops, peak.per, peak.dies_per_card) == (200, 200, "card", 1)


def test_per_device_conversion_both_ways():
    assert per_device({"per": "card", "dies_per_card": 2}, 800.0) == (400.0, 800.0)
    assert per_device({"per": "die", "dies_per_card": 2}, 400.0) == (400.0, 800.0)
    assert per_device({}, 100.0) == (100.0, 100.0)


def test_unsourced_dtypes_and_models_stay_absent():
    assert lookup("Ascend910_9392", "bf16") is None  # the 910C's BF16 estimate is not a second source
    assert lookup("Ascend910B3", "int8") is None
    for name in ("MLU590", "MLU370-X4", "Kunlunxin P800 OAM", "Hygon Z100L"):  # nothing sourced: no peak
        assert lookup(name, "fp16") is None, name


def test_the_910_family_names_do_not_collide():
    assert resolve("Ascend910_9392").key == "ascend-910c"
    assert resolve("Ascend910B4").key == "ascend-910b"
    assert resolve("Ascend910ProB").key == "ascend-910"
    r = resolve("Ascend 910ProC")
    assert r.key is None and "no entry" in r.why
