"""Report rendering: the JSON golden file of the example declaration, tables and JUnit."""

from __future__ import annotations

import datetime as dt
import json
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
