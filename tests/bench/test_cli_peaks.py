"""`bench peaks`: the table as listed, JSON and table, and how a driver's name resolves."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from icb_bench.bench.cli import app
from icb_bench.kernels.peaks import load_table

runner = CliRunner()


def test_json_lists_every_model_with_unit_per_source_and_kind():
    res = runner.invoke(app, ["peaks", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [m["key"] for m in doc["models"]] == list(load_table())
    by_key = {m["key"]: m for m in doc["models"]}
    c = by_key["ascend-910c"]
    assert c["per"] == "card" and c["dies_per_card"] == 2 and c["kind"] == "community" and c["source"]
    assert c["figures"]["fp16"] == {"value": 800.0, "unit": "TFLOPS", "per_device": 400.0, "per_card": 800.0}
    assert by_key["mtt-s4000"]["figures"]["int8"]["unit"] == "TOPS"
    assert "bf16" not in by_key["ascend-910b"]["figures"]  # absent, never 0


def test_table_has_bilingual_headings_and_every_model():
    res = runner.invoke(app, ["peaks"], env={"COLUMNS": "220"})
    assert res.exit_code == 0, res.output
    for heading in ("型号 model", "精度 dtype", "单位 unit", "来源类别 kind", "来源 source", "每设备 per device"):
        assert heading in res.stdout
    for key in load_table():
        assert f"[{key}]" in res.stdout, key


def test_model_resolves_with_reason():
    res = runner.invoke(app, ["peaks", "--model", "Ascend910B3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["normalised"] == "ascend910b3" and doc["key"] == "ascend-910b" and doc["matches"] == ["ascend-910b"]
    assert doc["model"]["figures"]["fp16"]["value"] == 313.0


def test_unknown_model_says_why_and_exits_1():
    res = runner.invoke(app, ["peaks", "--model", "NVIDIA H100"])
    assert res.exit_code == 1
    assert "no datasheet peak" in res.stdout and "nvidia h100" in res.stdout
    assert "Traceback" not in res.output
