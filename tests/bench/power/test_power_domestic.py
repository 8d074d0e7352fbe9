"""Domestic vendors' SMI readers (mthreads-gmi, hy-smi, xpu-smi, mx-smi, ixsmi, cnmon's table):
parsers on output samples transcribed from public sources (tests/bench/power/data/<vendor>/README.md),
on malformed output, and the readers end to end against fake tools run as real subprocesses."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest

from icb_bench.bench.power import NullReader, PowerError, Sampler, reader_for
from icb_bench.bench.power.smi import CNMON_TABLE_SOURCE, CnmonReader, visible_index
from icb_bench.bench.power.vendor_smi import (
    TOOL_SPECS,
    VendorSmiReader,
    parse_hy_smi_json,
    parse_ixsmi_xml,
    parse_mthreads_gmi_json,
    parse_usage_cap_table,
    parse_xpu_smi_m,
    watts,
)

DATA = Path(__file__).parent / "data"


def sample(path: str) -> str:
    return (DATA / path).read_text()


# ================================================================================================
# parsers on the transcribed samples
# ================================================================================================


def test_mthreads_gmi_json_sample() -> None:
    rows = parse_mthreads_gmi_json(sample("moorethreads/mthreads-gmi-q-json.json"))
    assert [(r.index, r.power_w) for r in rows] == [(0, 96.66), (1, 97.09)]
    assert rows[0].bdf == "00000000:2a:00.0" and rows[1].bdf is None  # the second GPU has no PCI block


def test_hy_smi_json_sample() -> None:
    rows = parse_hy_smi_json(sample("hygon/rocm-smi-json-on-hygon.json"))
    assert [(r.index, r.power_w) for r in rows] == [(0, 80.0)]
    assert rows[0].quantity == "average graphics package power"


def test_xpu_smi_m_sample() -> None:
    rows = parse_xpu_smi_m(sample("kunlunxin/xpu-smi-m.txt"))
    assert [(r.index, r.bdf, r.power_w) for r in rows] == [(0, "00000000:03:00.0", 86.0), (1, "00000000:05:00.0", 86.0)]
    assert "P800 OAM" in rows[0].quantity


@pytest.mark.parametrize(("path", "expected"), [
    ("metax/mx-smi-c500.txt", [(0, "0000:0e:00.0", 57.0)]),
    ("metax/mx-smi-n260.txt", [(0, "0000:01:00.0", 29.0)]),
    ("cambricon/cnmon.txt", [(0, None, 30.0)]),
])
def test_usage_cap_tables(path: str, expected: list) -> None:
    assert [(r.index, r.bdf, r.power_w) for r in parse_usage_cap_table(sample(path))] == expected


def test_ixsmi_xml_sample_reports_chip_power_when_board_is_na() -> None:
    rows = parse_ixsmi_xml(sample("iluvatar/ixsmi-q-x.xml"))
    assert [(r.index, r.bdf, r.power_w) for r in rows] == [(0, "00000000:0C:00.0", 37.0), (1, "00000000:0F:00.0", 39.0)]
    assert rows[0].quantity.startswith("GPU (chip) power")
    board = sample("iluvatar/ixsmi-q-x.xml").replace("<board_power_draw>N/A", "<board_power_draw>45.5 W", 1)
    first = parse_ixsmi_xml(board)[0]
    assert (first.power_w, first.quantity) == (45.5, "board power")


def test_watts_units_and_na() -> None:
    assert watts("96.66W", "x") == 96.66 and watts(" 37 W ", "x") == 37.0 and watts("500 mW", "x") == 0.5
    assert watts("N/A", "x") is None and watts("[Not Supported]", "x") is None
    for bad in ("ten", "-3 W", "12 V", ""):
        with pytest.raises(ValueError):
            watts(bad, "x")


@pytest.mark.parametrize(("parse", "bad"), [
    (parse_mthreads_gmi_json, "{not json"),
    (parse_mthreads_gmi_json, '{"GPU": []}'),
    (parse_mthreads_gmi_json, '{"GPU": [{"Index": "0", "Power Readings": {"Current Power Limit": "950W"}}]}'),
    (parse_mthreads_gmi_json, '{"GPU": [{"Index": "0", "Power Readings": {"Power Draw": "lots"}}]}'),
    (parse_hy_smi_json, "[]"),
    (parse_hy_smi_json, '{"system": {"Driver version": "6.2"}}'),
    (parse_hy_smi_json, '{"card0": {"DCU use (%)": "3"}}'),
    (parse_xpu_smi_m, "No XPU device found"),
    (parse_xpu_smi_m, "00000000:03:00.0 0 0 serial 36 0 0 0 86"),  # truncated line
    (parse_xpu_smi_m, ""),
    (parse_usage_cap_table, "| 0     MetaX C500 | 0   Off | 0000:0e:00.0 |\n| N/A  | 35C P0 |\n"),
    (parse_usage_cap_table, "mx-smi: command failed"),
    (parse_ixsmi_xml, "<ixsmi_log><gpu id='x'><minor_number>0</minor_number></gpu></ixsmi_log>"),
    (parse_ixsmi_xml, "<ixsmi_log>"),
    (parse_ixsmi_xml, "<ixsmi_log></ixsmi_log>"),
])
def test_malformed_output_is_a_value_error(parse, bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def test_na_power_row_is_kept_as_none() -> None:
    text = sample("metax/mx-smi-c500.txt").replace("57W / 350W", "N/A / 350W")
    assert parse_usage_cap_table(text)[0].power_w is None


def test_visible_index() -> None:
    assert visible_index(1, ("A", "B"), "t", {"B": "3,5"}) == (5, "B entry 1")
    assert visible_index(1, ("A", "B"), "t", {"A": "7,2", "B": "3,5"})[0] == 2
    assert visible_index(2, ("A",), "t", {}) == (2, "index (no visibility variable set)")
    with pytest.raises(PowerError, match=r"t: cannot map device 2 through A='0,1'"):
        visible_index(2, ("A",), "t", {"A": "0,1"})
    with pytest.raises(PowerError, match="GPU-abc"):
        visible_index(0, ("A",), "t", {"A": "GPU-abc"})


# ================================================================================================
# readers against fake tools (real subprocesses, a PATH holding only the fakes)
# ================================================================================================

FAKE_TOOL = r'''#!{python}
"""A fake vendor tool: logs its arguments, prints $FAKE_OUT_<tool> (a file), or fails on demand."""
import os, sys
tool = os.path.basename(sys.argv[0]).replace("-", "_")
with open(os.environ["FAKE_SMI_LOG"], "a") as f:
    f.write(tool + " " + " ".join(sys.argv[1:]) + "\n")
if os.environ.get("FAKE_FAIL_" + tool):
    sys.stderr.write("driver not loaded\n")
    sys.exit(3)
suffix = "_".join(a.strip("-") for a in sys.argv[1:])
key = "FAKE_OUT_" + tool + ("_" + suffix if suffix and os.environ.get("FAKE_BY_ARGS") else "")
path = os.environ.get(key)
if path is None:
    print("version 1.2.3")
    sys.exit(0)
sys.stdout.write(open(path).read())
'''

TOOLS = ("mthreads-gmi", "hy-smi", "xpu-smi", "mx-smi", "ixsmi", "cnmon")


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    for name in TOOLS:
        p = d / name
        p.write_text(FAKE_TOOL.replace("{python}", sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setenv("FAKE_SMI_LOG", str(tmp_path / "calls.log"))
    for var in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "XPU_VISIBLE_DEVICES", "MUSA_VISIBLE_DEVICES",
                "MLU_VISIBLE_DEVICES", "FAKE_BY_ARGS"):
        monkeypatch.delenv(var, raising=False)
    outputs = {"mthreads_gmi": "moorethreads/mthreads-gmi-q-json.json", "hy_smi": "hygon/rocm-smi-json-on-hygon.json",
               "xpu_smi": "kunlunxin/xpu-smi-m.txt", "mx_smi": "metax/mx-smi-c500.txt",
               "ixsmi": "iluvatar/ixsmi-q-x.xml"}
    for tool, path in outputs.items():
        monkeypatch.setenv(f"FAKE_OUT_{tool}", str(DATA / path))
    return tmp_path


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


@pytest.mark.parametrize(("tool", "vendor", "index", "power_w"), [
    ("mthreads-gmi", "moorethreads", 1, 97.09),
    ("hy-smi", "hygon", 0, 80.0),
    ("xpu-smi", "kunlunxin", 1, 86.0),
    ("mx-smi", "metax", 0, 57.0),
    ("ixsmi", "iluvatar", 1, 39.0),
])
def test_each_tool_reads_its_device_by_index(fake_tools, tool, vendor, index, power_w) -> None:
    with VendorSmiReader(TOOL_SPECS[tool], index) as r:
        assert r.sample().power_w == power_w and not r.has_energy_counter and r.energy_j() is None
        d = r.describe()
    assert d["name"] == tool and d["tool_index"] == index and d["matched_by"] == "index (no visibility variable set)"
    assert d["resolution_w"] == TOOL_SPECS[tool].resolution_w and d["format_source"].startswith("sample")
    assert d["method"].startswith("polled") and d["quantity"]
    assert calls(fake_tools)[-1].strip() == " ".join([tool.replace("-", "_"), *TOOL_SPECS[tool].power_args])


def test_pci_address_beats_the_index(fake_tools, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # would say device 0: the address wins
    with VendorSmiReader(TOOL_SPECS["xpu-smi"], 0, pci_bus_id="0000:05:00.0") as r:
        assert r.sample().power_w == 86.0 and r.matched_by == "PCI address 0000:05:00.0"
    with VendorSmiReader(TOOL_SPECS["ixsmi"], 0, pci_bus_id="0F:00.0") as r:  # lspci spelling
        assert r.sample().power_w == 39.0
    with pytest.raises(PowerError, match=r"no device at PCI address 0000:99:00.0"):
        VendorSmiReader(TOOL_SPECS["ixsmi"], 0, pci_bus_id="0000:99:00.0").open()
    # a tool that prints no address (hy-smi) or not for every device (mthreads-gmi): by index
    with VendorSmiReader(TOOL_SPECS["mthreads-gmi"], 1, pci_bus_id="0000:3b:00.0") as r:
        assert r.sample().power_w == 97.09 and "prints no PCI address" in (r.matched_by or "")


def test_visibility_variables_renumber(fake_tools, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with VendorSmiReader(TOOL_SPECS["ixsmi"], 0) as r:
        assert r.tool_index == 1 and r.sample().power_w == 39.0 and r.matched_by == "CUDA_VISIBLE_DEVICES entry 0"
    monkeypatch.setenv("MUSA_VISIBLE_DEVICES", "1,0")
    with VendorSmiReader(TOOL_SPECS["mthreads-gmi"], 1) as r:
        assert r.sample().power_w == 96.66
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    with pytest.raises(PowerError, match=r"no device 5 \(tool lists \[0, 1\]\)"):
        VendorSmiReader(TOOL_SPECS["ixsmi"], 0).open()


def test_malformed_or_failing_tool_leaves_the_run_without_power(fake_tools, tmp_path, monkeypatch) -> None:
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("Segmentation fault in libmxsml\n")
    monkeypatch.setenv("FAKE_OUT_mx_smi", str(garbage))
    r = reader_for("cuda", 0, {"vendor": "metax"})
    assert isinstance(r, NullReader)
    assert "`mx-smi`: no power reading in its output" in (r.reason or "") and "Segmentation fault" in (r.reason or "")
    monkeypatch.setenv("FAKE_FAIL_ixsmi", "1")
    r = reader_for("cuda", 0, {"vendor": "iluvatar"})
    assert isinstance(r, NullReader) and "exited with status 3: 'driver not loaded'" in (r.reason or "")


def test_sample_failure_after_open_is_a_power_error(fake_tools, tmp_path, monkeypatch) -> None:
    with VendorSmiReader(TOOL_SPECS["hy-smi"], 0) as r:
        (tmp_path / "na.json").write_text(json.dumps({"card0": {"Average Graphics Package Power (W)": "N/A"}}))
        monkeypatch.setenv("FAKE_OUT_hy_smi", str(tmp_path / "na.json"))
        with pytest.raises(PowerError, match=r"reports no power \(N/A\)"):
            r.sample()


def test_reader_for_picks_the_vendor_tool_and_skips_the_others(fake_tools) -> None:
    r = reader_for("cuda", 0, {"vendor": "kunlunxin", "pci_bus_id": "00000000:05:00.0"})
    try:
        assert isinstance(r, VendorSmiReader) and r.name == "xpu-smi" and r.sample().power_w == 86.0
    finally:
        r.close()
    r = reader_for("musa", 1, {"vendor": "moorethreads"})
    try:
        assert r.name == "mthreads-gmi" and r.sample().power_w == 97.09
    finally:
        r.close()
    r = reader_for("cuda", 0, {"vendor": "nvidia"})
    assert isinstance(r, NullReader) and not any(t in (r.reason or "") for t in ("hy-smi", "mx-smi", "ixsmi", "xpu-smi"))


def test_hygon_tries_amdsmi_then_hy_smi(fake_tools, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # no amdsmi: hy-smi answers
    r = reader_for("cuda", 0, {"vendor": "hygon"})
    try:
        assert r.name == "hy-smi" and r.sample().power_w == 80.0
    finally:
        r.close()


def test_polled_window_integrates_the_tool_power(fake_tools) -> None:
    with VendorSmiReader(TOOL_SPECS["mx-smi"], 0) as r, Sampler(r, hz=10.0) as s:
        win = s.begin_window()
        time.sleep(0.6)
        res = s.end_window(win)
    assert res.method == "polled" and res.energy_j == pytest.approx(57.0 * res.window_s, rel=0.05)


def test_cnmon_falls_back_to_the_documented_table(fake_tools, tmp_path, monkeypatch) -> None:
    garbage = tmp_path / "info.txt"
    garbage.write_text("Card 0\nProduct Name : MLU370-X4\nPower Information\n  Board : 30 Watt\n")
    monkeypatch.setenv("FAKE_BY_ARGS", "1")
    monkeypatch.setenv("FAKE_OUT_cnmon_info_c_0_p", str(garbage))
    monkeypatch.setenv("FAKE_OUT_cnmon", str(DATA / "cambricon/cnmon.txt"))
    with CnmonReader(0) as r:
        assert r.sample().power_w == 30.0 and r.command[1:] == []
        d = r.describe()
    assert d["format_source"] == CNMON_TABLE_SOURCE and d["resolution_w"] == 1.0
    assert any("summary table" in n for n in d["notes"])
    with pytest.raises(PowerError, match="card 3 has no Pwr:Usage figure"):
        CnmonReader(0, card=3).open()
