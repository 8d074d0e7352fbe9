"""The rules file: complete, internally consistent and faithful to the specification."""

from fractions import Fraction

import pytest
import yaml

from icb_bench.verify.rules import RulesError, available_specs, load_peaks, load_rules

from .spec_table import MANDATORY, POINTS


def test_edition_is_shipped():
    assert "icb-eval/2024" in available_specs()


def test_29_indicators_with_ids_points_and_mandatory_flags():
    rules = load_rules("icb-eval/2024")
    ids = [i.id for i in rules.indicators]
    assert ids == [f"A1.{n}" for n in range(1, 11)] + [f"A2.{n}" for n in range(1, 16)] + [f"A3.{n}" for n in range(1, 5)]
    assert {i.id: i.points for i in rules.indicators} == POINTS
    assert set(rules.mandatory_ids) == MANDATORY
    for ind in rules.indicators:
        assert ind.zh and ind.en and ind.feeds


def test_sections_weights_and_certification_are_data():
    rules = load_rules()
    assert {s: sec.weight for s, sec in rules.sections.items()} == {"A1": Fraction(1, 2), "A2": Fraction(3, 10), "A3": Fraction(1, 5)}
    assert rules.sections["A3"].all_or_nothing and not rules.sections["A1"].all_or_nothing
    reqs = {(r.of, r.op, r.value) for r in rules.certification.requirements}
    assert reqs == {("A1", "ge", 60), ("A2", "ge", 60), ("A3", "ge", 60), ("total", "gt", 80)}


def test_every_tier_has_every_threshold():
    rules = load_rules()
    for ind in rules.indicators:
        for k, cond in enumerate(ind.conditions):
            if cond.op == "is_true":
                continue
            for tier in rules.tiers:
                assert rules.threshold(ind.id, k, tier) is not None, (ind.id, k, tier)


def _write_variant(tmp_path, mutate):
    from icb_bench.verify.rules import available_specs

    data = yaml.safe_load(available_specs()["icb-eval/2024"].read_text(encoding="utf-8"))
    mutate(data)
    p = tmp_path / "variant.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(p)


def test_a_new_edition_is_a_new_file(tmp_path):
    def tighten(d):
        d["id"] = "icb-eval/test"
        pue = next(i for i in d["indicators"] if i["id"] == "A2.12")
        pue["conditions"][0]["threshold"]["provincial"] = 1.1

    rules = load_rules(_write_variant(tmp_path, tighten))
    assert rules.id == "icb-eval/test"
    assert rules.threshold("A2.12", 0, "provincial") == Fraction(11, 10)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["indicators"][0].update(points=6), "sum to"),
        (lambda d: d["indicators"][3]["conditions"][0]["threshold"].pop("hub"), "every tier"),
        (lambda d: d["indicators"][3]["conditions"][0].update(field="industrial_value.nonsense"), "not in the declaration"),
        (lambda d: d["indicators"][4]["conditions"][0]["threshold"].update(hub="lots"), "threshold"),
        (lambda d: d["sections"]["A1"].update(weight="1/3"), "weights"),
    ],
)
def test_inconsistent_rules_are_rejected(tmp_path, mutate, message):
    load_rules.cache_clear()
    with pytest.raises(RulesError, match=message):
        load_rules(_write_variant(tmp_path, mutate))


def test_unknown_edition():
    with pytest.raises(RulesError, match="no rules"):
        load_rules("icb-eval/1999")


@pytest.mark.parametrize(
    "name, key, tflops",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm", 989),
        ("NVIDIA H100 SXM5 80GB", "h100-sxm", 989),
        ("H100-SXM", "h100-sxm", 989),
        ("NVIDIA H100 PCIe", "h100-pcie", 756),
        ("NVIDIA H200", "h200", 989),
        ("NVIDIA A100-SXM4-80GB", "a100", 312),
        ("NVIDIA L40S", "l40s", 362),
        ("AMD Instinct MI300X", "mi300x", 1300),
        ("Huawei Ascend 910B", "ascend-910b", 313),
        ("Ascend910B3", "ascend-910b", 313),
        ("Ascend 910", "ascend-910", 256),
        ("MetaX C500 OAM", "metax-c500-oam", 280),
        ("Hygon K100-AI", "hygon-k100-ai", 196),
        ("Hygon K100", "hygon-k100", 100),
        ("Iluvatar BI-V150", "iluvatar-bi-v150", Fraction(393, 2)),
    ],
)
def test_peak_aliases(name, key, tflops):
    entry = load_peaks().match(name)
    assert entry is not None and entry.key == key and entry.fp16_tflops == tflops
    assert entry.source


@pytest.mark.parametrize("name", ["NVIDIA H100 NVL", "NVIDIA H200 NVL", "Some Accelerator 9000", ""])
def test_unknown_models_do_not_match(name):
    assert load_peaks().match(name) is None


def test_domestic_flags():
    peaks = load_peaks()
    assert peaks.match("Ascend 910B").domestic and not peaks.match("H100 SXM").domestic
