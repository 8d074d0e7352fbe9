"""`bench export compute-info`: the specification's 基地算力信息 fields, from site, records and live."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench.cli import app
from icb_bench.bench.export import FIELDS, ExportError, ExportInput, Live, compute_info
from report_records import measurement, write_run

SPEC_TEXT = sorted(Path("/work/shared/spec").glob("*.txt")) if Path("/work/shared/spec").is_dir() else []

SITE = """\
schema: icb-bench/site/1
site: 示例工业智算基地
racks:
  - name: R01
    nodes:
      - {name: g01, devices: {model: "NVIDIA H100 80GB HBM3", count: 8}}
      - {name: g02, devices: {model: "NVIDIA H100 80GB HBM3", count: 8}}
  - name: R02
    nodes:
      - {name: a01, devices: {model: "Ascend910B3", count: 8}}
"""


def _site(tmp_path) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(SITE, encoding="utf-8")
    return p


def _records(tmp_path) -> Path:
    ms = [measurement("g01", i, t) for i, t in enumerate((640.0, 650.0, 660.0))]
    ms += [measurement("g01", i, 50.0, dtype="fp32") for i in range(3)]
    return write_run(tmp_path / "run", ms)


def _fake_live() -> Live:
    return Live("here", 16, 4.2, 64 * 2**30, 48 * 2**30, [("NVIDIA H100 80GB HBM3", 0.0), ("NVIDIA H100 80GB HBM3", 0.97)])


@pytest.mark.skipif(not SPEC_TEXT, reason="the specification text (/work/shared/spec) is not on this machine")
def test_fields_are_the_specifications_in_its_order():
    text = SPEC_TEXT[0].read_text(encoding="utf-8")
    line = next(l for l in text.splitlines() if "基地算力信息" in l and "参照评估规范附录C" in l)
    listed = line.split("附录C", 1)[1].split("\t")[0].strip(" 。")
    names = [n for n in re.split(r"[、；]", listed.replace("FP32算力总量FP32", "FP32算力总量、FP32")) if n]
    assert list(FIELDS) == names


def test_site_and_records_totals(tmp_path):
    doc = compute_info(ExportInput(runs=[_records(tmp_path)], site=_site(tmp_path)))
    f = doc["fields"]
    assert doc["schema"] == "icb-bench/compute-info/1" and doc["timestamp"].endswith("Z")
    assert set(f) == set(FIELDS)
    assert f["GPU服务器数量"]["value"] == 2 and f["NPU服务器数量"]["value"] == 1
    assert f["GPU总核数"]["value"] == 16 and f["NPU总核数"]["value"] == 8 and f["GPU总核数"]["unit"] == "卡"
    # FP16: 16 H100 × measured median 650 TFLOPS + 8 Ascend × datasheet 313 (not measured) = 12.904 PFLOPS
    fp16 = f["FP16算力总量"]
    assert fp16["value"] == pytest.approx((16 * 650 + 8 * 313) / 1000) and fp16["unit"] == "PFLOPS"
    assert fp16["source"] == "measured+nominal" and fp16["estimated"] is True and "datasheet" in fp16["note"]
    # FP32: the H100 measured at 50; the Ascend has no FP32 datasheet figure: not counted, and said so
    fp32 = f["FP32算力总量"]
    assert fp32["value"] == pytest.approx(16 * 50 / 1000) and "Ascend910B3" in fp32["note"]
    assert f["CPU总核数"]["value"] == 64 and f["CPU总核数"]["estimated"] is True  # one host of three known


def test_what_a_harness_cannot_know_is_null_with_the_reason(tmp_path):
    f = compute_info(ExportInput(site=_site(tmp_path)))["fields"]
    for name in ("上行网络带宽总量", "空闲下行网络流量", "存储空间总容量", "空闲存储空间容量"):
        assert f[name]["value"] is None and f[name]["source"] == "not-known" and f[name]["note"]
    for name in ("FP16算力空闲量", "空闲GPU核数", "内存空间总容量", "空闲CPU核数"):
        assert f[name]["value"] is None and "live" in f[name]["note"]


def test_live_readings_fill_idle_fields(tmp_path):
    doc = compute_info(ExportInput(runs=[_records(tmp_path)], live=True), probe=_fake_live)
    f = doc["fields"]
    assert f["内存空间总容量"]["value"] == 64.0 and f["空闲内存空间容量"]["value"] == 48.0 and f["内存空间总容量"]["unit"] == "GiB"
    assert f["空闲CPU核数"]["value"] == 12 and f["空闲CPU核数"]["estimated"] is True  # 16 − load 4.2
    assert f["空闲GPU核数"]["value"] == 1  # one of two at 0 % utilisation
    assert f["FP16算力空闲量"]["value"] == pytest.approx(0.65)  # that idle H100 × measured 650 TFLOPS
    # records alone: the measured devices (3 H100 on g01)
    assert f["GPU总核数"]["value"] == 3 and f["GPU服务器数量"]["value"] == 1


def test_bad_site_is_one_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(SITE.replace("count: 8}}\n  - name: R02", "count: -1}}\n  - name: R02", 1), encoding="utf-8")
    with pytest.raises(ExportError, match="--site: .*count"):
        compute_info(ExportInput(site=p))


def test_cli(tmp_path):
    r = CliRunner().invoke(app, ["export", "compute-info", str(_records(tmp_path)), "--site", str(_site(tmp_path))])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["fields"]["GPU总核数"]["value"] == 16 and doc["site"] == "示例工业智算基地"
    r = CliRunner().invoke(app, ["export", "compute-info", "--site", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2 and r.output.startswith("error: --site")
