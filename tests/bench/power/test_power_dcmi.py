"""DCMI node power: the parser on published ``ipmitool dcmi power reading`` outputs (data/dcmi,
sources in its README), and DcmiReader against a fake ``ipmitool`` run as a real subprocess."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from icb_bench.bench.power.base import PowerError
from icb_bench.bench.power.dcmi import DcmiOutputError, DcmiReader, DcmiTarget, parse_dcmi_power_reading

DATA = Path(__file__).parent / "data" / "dcmi"
PASSWORD = "s3cr3t-pw-Xy"


def sample(name: str) -> str:
    return (DATA / name).read_text()


# (file, instantaneous, minimum, maximum, average, period_s, period resolution, timestamp)
GOOD = [
    ("ipmi_exporter-18.txt", 215, 162, 276, 176, 1131466.0, 1.0, "Wed Feb 15 12:49:51 2017"),
    ("rabe-zabbix-101.txt", 197, 175, 242, 190, 123893.0, 1.0, "Sun Mar  6 15:13:42 2022"),
    ("telegraf-1566.txt", 167, 124, 422, 156, 699043.0, 1.0, "Mon Aug  1 21:22:51 2016"),
    ("dfinity-ic-2022.txt", 240, 132, 384, 204, 5.0, 1.0, "Thu Dec  1 20:05:44 2022"),
    ("dfinity-ic-2025.txt", 240, 132, 384, 204, 1.0, 1.0, "03/06/2025 07:40:35 UTC"),
    ("wdes-ipmitool-dcmi-power-reading.txt", 214, 2, 468, 184, 1.0, 1e-3, "2024-05-05 13:06:44 UTC"),
]


@pytest.mark.parametrize("name,inst,lo,hi,avg,period_s,res_s,ts", GOOD)
def test_parses_published_outputs(name, inst, lo, hi, avg, period_s, res_s, ts) -> None:
    r = parse_dcmi_power_reading(sample(name))
    assert (r.instantaneous_w, r.minimum_w, r.maximum_w, r.average_w) == (inst, lo, hi, avg)
    assert r.statistics_period_s == pytest.approx(period_s)
    assert r.statistics_period_resolution_s == pytest.approx(res_s)
    assert r.ipmi_timestamp == ts


@pytest.mark.parametrize(
    "name,why",
    [
        ("openbmc-3257-deactivated.txt", "deactivated"),
        ("phosphor-host-ipmid-167-zero.txt", "deactivated"),
        ("home-assistant-ipmi-13-truncated.txt", "power reading state ''"),
    ],
)
def test_refuses_published_bad_outputs(name, why) -> None:
    with pytest.raises(DcmiOutputError, match=why):
        parse_dcmi_power_reading(sample(name))


def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


GOOD_TEXT = sample("ipmi_exporter-18.txt")


@pytest.mark.parametrize(
    "text,why",
    [
        ("", "empty output"),
        ("   \n\n", "empty output"),
        ("Error: Unable to establish IPMI v2 / RMCP+ session\n", "no 'Instantaneous power reading' line"),
        (_edit(GOOD_TEXT, "215 Watts", "21.5 Watts"), "expected a whole number of watts"),
        (_edit(GOOD_TEXT, "215 Watts", "N/A Watts"), "expected a whole number of watts"),
        (_edit(GOOD_TEXT, "215 Watts", "70000 Watts"), "0..65535"),
        (_edit(GOOD_TEXT, "215 Watts", "65535 Watts"), "no reading"),
        (_edit(GOOD_TEXT, "176 Watts", "0 Watts"), "no reading"),
        (_edit(GOOD_TEXT, "    Average power reading over sample period:      176 Watts\n", ""), "no 'Average power"),
        (_edit(GOOD_TEXT, "01131466 Seconds.", "01131466 Fortnights."), "expected Seconds or Milliseconds"),
        (_edit(GOOD_TEXT, "    Sampling period:                          01131466 Seconds.\n", ""), "no 'Sampling period'"),
        (_edit(GOOD_TEXT, "activated", "unknown"), "expected 'activated'"),
        (GOOD_TEXT + GOOD_TEXT, "printed 2 times"),
    ],
)
def test_refuses_malformed_outputs(text, why) -> None:
    with pytest.raises(DcmiOutputError, match=why):
        parse_dcmi_power_reading(text)


def test_enhanced_statistics_period_names() -> None:
    # `ipmitool dcmi power reading 5_min` prints the period's name; "(null)" when it has none
    text = _edit(GOOD_TEXT, "01131466 Seconds.", "5_min ")
    assert parse_dcmi_power_reading(text).statistics_period_s == 300.0
    text = _edit(GOOD_TEXT, "01131466 Seconds.", "(null) ")
    r = parse_dcmi_power_reading(text)
    assert r.statistics_period_s is None and r.instantaneous_w == 215


# ------------------------------------------------------------------------------- DcmiTarget


def test_target_argv_never_holds_the_password() -> None:
    t = DcmiTarget(host="127.0.0.1", username="admin", password=PASSWORD, accuracy_rel=0.02)
    argv = t.argv()
    assert argv == ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", "623", "-U", "admin", "-E", "dcmi", "power", "reading"]
    assert PASSWORD not in " ".join(argv) and PASSWORD not in repr(t)
    assert "-E" not in DcmiTarget(host="::1", interface="lan").argv()


@pytest.mark.parametrize(
    "kw,why",
    [
        ({"host": ""}, "host"),
        ({"host": "-oProxyCommand"}, "host"),
        ({"host": "a b"}, "host"),
        ({"port": 0}, "port"),
        ({"port": "623"}, "port"),
        ({"interface": "open"}, "interface"),
        ({"username": ""}, "username"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"accuracy_rel": 1.5}, "accuracy_rel"),
    ],
)
def test_target_refuses_bad_fields(kw, why) -> None:
    with pytest.raises(ValueError, match=why):
        DcmiTarget(**{"host": "127.0.0.1", **kw})


# ------------------------------------------------------------------------------- fake ipmitool

FAKE_IPMITOOL = r'''#!{python}
"""A fake ipmitool: checks how the password arrives, prints the DCMI samples in turn."""
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_IPMI_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv, "env_password": os.environ.get("IPMI_PASSWORD")}) + "\n")
if args == ["-V"]:
    print("ipmitool version 1.8.19")
    sys.exit(0)
if "-E" in args:
    pw = os.environ.get("IPMI_PASSWORD")
    if pw is None:
        print("Unable to read password from environment", file=sys.stderr)
        sys.exit(1)
    if pw != os.environ.get("FAKE_IPMI_PASSWORD"):
        print("Error: Unable to establish IPMI v2 / RMCP+ session", file=sys.stderr)
        sys.exit(1)
if args[-3:] != ["dcmi", "power", "reading"]:
    print("ipmitool: unexpected arguments", args, file=sys.stderr)
    sys.exit(1)
if os.environ.get("FAKE_IPMI_MODE") == "hang":
    time.sleep(120)
samples = os.environ["FAKE_IPMI_SAMPLES"].split(os.pathsep)
state = os.environ["FAKE_IPMI_STATE"]
n = int(open(state).read()) if os.path.exists(state) else 0
with open(state, "w") as f:
    f.write(str(n + 1))
sys.stdout.write(open(samples[min(n, len(samples) - 1)]).read())
'''


@pytest.fixture
def ipmitool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the fake ipmitool; returns its call log."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "ipmitool"
    exe.write_text(FAKE_IPMITOOL.replace("{python}", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setenv("FAKE_IPMI_LOG", str(log))
    monkeypatch.setenv("FAKE_IPMI_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("FAKE_IPMI_PASSWORD", PASSWORD)
    monkeypatch.setenv("FAKE_IPMI_SAMPLES", str(DATA / "ipmi_exporter-18.txt"))
    monkeypatch.delenv("IPMI_PASSWORD", raising=False)
    monkeypatch.delenv("FAKE_IPMI_MODE", raising=False)
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def target(**kw) -> DcmiTarget:
    return DcmiTarget(**{"host": "127.0.0.1", "username": "admin", "password": PASSWORD, "accuracy_rel": 0.02, **kw})


def test_reader_polls_instantaneous_power_and_records_the_period(ipmitool, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_IPMI_SAMPLES", ":".join(str(DATA / n) for n in ("ipmi_exporter-18.txt", "dfinity-ic-2025.txt")))
    with DcmiReader(target()) as r:
        assert not r.has_energy_counter and r.energy_j() is None
        s = r.sample()  # the second call: open() polled once
        assert s.power_w == 240.0 and s.energy_j is None
        d = r.describe()
    assert d["name"] == "dcmi" and d["scope"] == "node" and d["method"] == "polled"
    assert (d["host"], d["port"], d["interface"]) == ("127.0.0.1", 623, "lanplus")
    assert d["statistics_period_s"] == 1.0 and d["resolution_w"] == 1 and d["accuracy_rel"] == 0.02
    assert d["last_reading"]["average_w"] == 204 and d["power_field"] == "instantaneous"
    assert d["tool_version"] == "ipmitool version 1.8.19"
    assert PASSWORD not in json.dumps(d)
    seen = calls(ipmitool)
    polls = [c for c in seen if c["argv"][-1] == "reading"]
    assert len(polls) == 2
    for c in polls:
        assert PASSWORD not in " ".join(c["argv"]) and "-E" in c["argv"]
        assert c["env_password"] == PASSWORD
    # the version query does not need the secret and does not get it
    assert [c["env_password"] for c in seen if c["argv"][1:] == ["-V"]] == [None]


def test_missing_ipmitool(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(PowerError, match="ipmitool not found on PATH"):
        DcmiReader(target()).open()


def test_wrong_password_is_a_power_error_without_the_password(ipmitool, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_IPMI_PASSWORD", "another")
    with pytest.raises(PowerError, match="Unable to establish IPMI v2") as exc:
        DcmiReader(target()).open()
    assert PASSWORD not in str(exc.value) and "127.0.0.1:623" in str(exc.value)


def test_deactivated_reading_fails_the_sample(ipmitool, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_IPMI_SAMPLES", ":".join(str(DATA / n) for n in ("rabe-zabbix-101.txt", "openbmc-3257-deactivated.txt")))
    with DcmiReader(target()) as r:
        with pytest.raises(PowerError, match="deactivated"):
            r.sample()
        assert r.last_reading is not None and r.last_reading.instantaneous_w == 197


def test_deactivated_at_open_refuses_to_open(ipmitool, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_IPMI_SAMPLES", str(DATA / "phosphor-host-ipmid-167-zero.txt"))
    r = DcmiReader(target())
    with pytest.raises(PowerError, match="not measuring power"):
        r.open()
    with pytest.raises(PowerError, match="before open"):
        r.sample()


def test_hung_ipmitool_times_out(ipmitool, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_IPMI_MODE", "hang")
    with pytest.raises(PowerError, match="timed out after 1 s"):
        DcmiReader(target(timeout_s=1.0)).open()
