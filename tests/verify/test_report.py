"""Report rendering: the JSON golden file of the example declaration, tables and JUnit."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pathlib import Path

from icb_bench.verify import load_declaration, score
from icb_bench.verify.declaration import parse_declaration
from icb_bench.verify.report import render, to_json

from .conftest import EXAMPLE_COPY, example_dict

GOLDEN = Path(__file__).parent / "data" / "example.score.golden.json"


def test_example_json_matches_golden():
    """After a deliberate change, regenerate with:
    ``to_json(score(load_declaration(EXAMPLE_COPY), certified_on=dt.date(2025, 1, 15)))`` into GOLDEN,
    and review the diff."""
    card = score(load_declaration(EXAMPLE_COPY), certified_on=dt.date(2025, 1, 15))
    assert json.loads(to_json(card)) == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_golden_values_are_the_declared_ones():
    doc = json.loads(GOLDEN.read_text(encoding="utf-8"))
    values = {i["id"]: i["value"] for i in doc["indicators"]}
    assert values["A2.6"] == 0.75 and values["A2.12"] == 1.28 and values["A1.9"] == 6_000_000
    assert doc["review_dates"] == ["2026-01-15", "2027-01-15", "2028-01-15", "2030-01-15", "2032-01-15"]


def test_unmet_rows_and_precision_in_table():
    data = example_dict()
    data["technical"]["fp16_peak"] = "900 PFLOPS"
    text = render(score(parse_declaration(data)), "table", "en")
    assert "900 PFLOPS (FP16)" in text and "unmet" in text and "A2.7" in text


def test_unknown_format():
    import pytest

    with pytest.raises(ValueError, match="unknown format"):
        render(score(parse_declaration(example_dict())), "csv")


def _under_sampled(tmp_path):
    """One H100 (of 300) and 30 Ascend (of 2600) measured, three racks of which one insufficient."""
    from icb_bench.verify.measured import load_records, verify

    from .conftest import ASCEND, RackSpec, few_racks_dict, write_fleet

    ascend = dict(model=ASCEND, measurement=dict(peak=313.0, domestic=True, vendor="Huawei"))
    write_fleet(tmp_path / "r", {
        "R1": RackSpec(130.0, devices=1, tflops=lambda i: 980.0),
        "R2": RackSpec(128.0, devices=29, tflops=lambda i: 261.0 + i, **ascend),
        "R3": RackSpec(None, devices=1, tflops=lambda i: 260.0, agg=dict(status="insufficient", reason="4 readings inside the window"),
                       override=dict(valid=False), model=ASCEND, measurement=dict(peak=313.0, domestic=True, valid=False)),
    })
    return verify(parse_declaration(few_racks_dict()), load_records([tmp_path]), basis="measured")


def test_verify_json_shows_the_sample_against_the_rule(tmp_path):
    doc = json.loads(to_json(_under_sampled(tmp_path)))
    m = {x["key"]: x for x in doc["fp16"]["models"]}
    h, a = m["h100-sxm"], m["ascend-910b"]
    assert (h["sampled"], h["required"], h["invalid"], h["rule_met"], h["confirmable"]) == (1, 30, 0, False, False)
    assert h["measured_reason"] == "1 of 300 NVIDIA H100 SXM5 80GB measured; the rule asks for 30 (level 1)"
    assert (a["sampled"], a["required"], a["invalid"], a["interval"]) == (30, 260, 1, "t+fpc")
    assert a["ci_low_tflops"] < a["mean_tflops"] < a["ci_high_tflops"]
    assert a["measured_pflops"] == pytest.approx(a["mean_tflops"] * 2600 / 1000)
    assert a["measured_low_pflops"] == pytest.approx(a["ci_low_tflops"] * 2600 / 1000)
    assert doc["level"] == 1 and doc["sample_plan"] is None and len(doc["fp16"]["gaps"]) == 2
    racks = {e["label"]: e for e in doc["efficiency"]}
    assert racks["R3"]["status"] == "insufficient" and racks["R3"]["scored"] is False
    assert racks["R1"]["assurance"] == "rack-meter" and racks["R1"]["gflops_per_w_low"] == pytest.approx(128.7)


@pytest.mark.parametrize("lang, words", [
    ("en", ["1/30", "30/260 (1 ✗)", "Sampled/required", "1 of 300 NVIDIA H100 SXM5 80GB measured; the rule asks for 30",
            "insufficient: 4 readings inside the window", "rack-meter", "level 1"]),
    ("zh", ["抽测/应抽", "1/30", "计量来源", "抽样等级", "无法判定"]),
])
def test_verify_table_shows_the_sample_against_the_rule(tmp_path, lang, words):
    text = render(_under_sampled(tmp_path), "table", lang)
    for w in words:
        assert w in text, w


def test_verify_junit_gives_the_reason(tmp_path):
    import xml.etree.ElementTree as ET

    text = render(_under_sampled(tmp_path), "junit")
    root = ET.fromstring(text.split("?>", 1)[1])
    a27 = next(tc for tc in root.iter("testcase") if tc.get("name", "").startswith("A2.7 ") and tc.get("classname") == "claims")
    msg = a27.find("failure").get("message")
    assert msg.startswith("INCONCLUSIVE: ") and "the rule asks for 30" in msg and "the rule asks for 260" in msg
