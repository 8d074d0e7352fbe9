"""Fuzzing meter logs with a fixed budget and seed (issue 7, part 6): CSV and PTDaemon logs built
from nasty cells (NaN, 1e400, negative and huge watts, duplicate, backwards and far timestamps,
truncated lines, garbage bytes, wrong encodings) through ``load_meter_log``, and hostile files
through the real CLI (`bench racks RUN --site`) under a time limit and an address-space cap.
Each case is refused with one MeterLogError line naming the file (and line), or accepted with
finite, plausible readings -- never a crash, never a hang."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from icb_bench.bench.audit_figures import POWER_BOUNDS_W
from icb_bench.bench.power.meterlog import EPOCH_RANGE_S, QUANTITY_MAX, MeterLogError, load_meter_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/bench: the shared fuzz helpers
from fuzz_helpers import (  # noqa: E402
    FLEET_EPOCH_S, HOSTILE_FILES, TRIED, budget, fleet_record, hang_guard, outcome, report_counts, run_cli, strict_json)

T0 = 1_700_000_000
NUMBERS = ["100", "0", "-0", "-5", "NaN", "sNaN", "inf", "-Infinity", "1e400", "1E+306", "1e-400", "300001", "299999.99",
           "１００", "٣", "0x10", "1_000", "", " ", "9" * 5000, "1e999999999", "23.430000", "abc", "1,5", "\x00"]
TIMES = [str(T0), str(T0 + 1), str(T0), str(T0 - 1), str(T0 * 1000), "0", "4102444800", "946684799", "NaN",
         "2024-05-05T13:06:44.250+08:00", "2024-05-05T13:06:44Z", "2024-05-05T13:06:44", "9999-12-31T23:59:59+00:00",
         "0001-01-01T00:00:00+14:00", "2024-02-30T00:00:00Z", "2024-03-31T02:30:00", "garbage", ""]
COLUMNS = ["epoch_s", "time", "power_w", "power_kw", "energy_j", "energy_kwh", "interval_s", "note", "POWER_W", ""]
cell = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(TIMES), st.text(max_size=8),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**30, 10**30).map(str))


def _check(path: Path, fmt: str, tz: str | None, scope: str = "rack") -> str:
    """'refused' (one line naming the file) or 'accepted' (finite, plausible, ordered readings)."""
    TRIED[f"meter log ({fmt})"] += 1
    try:
        with hang_guard(60):
            log = load_meter_log(path, fmt, scope=scope, tz=tz)
    except MeterLogError as exc:
        text = str(exc)
        assert "\n" not in text and text.startswith(str(path)) and "expected" in text, text
        return "refused"
    lo, hi = EPOCH_RANGE_S
    for r in log.readings:
        assert all(math.isfinite(x) for x in (r.t_begin_epoch_s, r.t_end_epoch_s, r.power_w))
        assert 0 <= r.power_w <= POWER_BOUNDS_W[scope] and lo - float(QUANTITY_MAX["interval_s"][0]) <= r.t_begin_epoch_s
        assert r.t_end_epoch_s < hi
        assert r.energy_j is None or (math.isfinite(r.energy_j) and r.energy_j >= 0)
    assert all(a.t_end_epoch_s < b.t_end_epoch_s for a, b in zip(log.readings, log.readings[1:]))
    assert math.isfinite(log.resolution_w) and log.resolution_w >= 0
    strict_json(json.dumps(log.describe(), allow_nan=True))  # describe() holds no NaN or Infinity
    return "accepted"


@budget(300)
@given(header=st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5),
       rows=st.lists(st.lists(cell, min_size=0, max_size=6), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 400)), tz=st.sampled_from([None, "UTC", "+08:00", "Asia/Shanghai"]),
       scope=st.sampled_from(["rack", "node", "device"]))
def test_fuzzed_csv_logs(tmp_path, header, rows, cut, tz, scope):
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    raw = text.encode("utf-8", errors="surrogatepass")
    p = tmp_path / "log.csv"
    p.write_bytes(raw if cut is None else raw[:cut])  # truncated mid-line
    event(_check(p, "csv", tz, scope))


def _ptd_line(t: str, watts: str, mark: str) -> str:
    return f"Time,{t},Watts,{watts},Volts,230.0,Amps,1.0,PF,0.99,Mark,{mark}"


PTD_TIMES = ["05-05-2024 13:06:44.250", "05-05-2024 13:06:45.250", "05-05-2024 13:06:44.250", "02-30-2024 00:00:00.000",
             "12-31-9999 23:59:59.999", "01-01-0001 00:00:00.000", "03-31-2024 02:30:00.000", "13-01-2024 00:00:00.000", "x"]


@budget(200)
@given(lines=st.lists(st.one_of(
           st.builds(_ptd_line, st.sampled_from(PTD_TIMES), st.one_of(st.sampled_from(NUMBERS), cell), st.text(max_size=6)),
           st.sampled_from(["Time,05-05-2024 13:06:44.250,WARNING,Uncertainty unknown", "Buffer was ...", "Time", "Time,,",
                            "Time,05-05-2024 13:06:44.250,Watts", "Time,05-05-2024 13:06:44.250,Watts,1,Volts"]),
           st.text(max_size=30)), max_size=10),
       cut=st.one_of(st.none(), st.integers(0, 600)), tz=st.sampled_from([None, "UTC", "-05:00", "America/New_York"]))
def test_fuzzed_ptdaemon_logs(tmp_path, lines, cut, tz):
    raw = "\r\n".join(lines).encode("utf-8", errors="surrogatepass")
    p = tmp_path / "spl.txt"
    p.write_bytes(raw if cut is None else raw[:cut])
    event(_check(p, "ptdaemon", tz))


@budget(100)
@given(junk=st.binary(max_size=200), at=st.integers(0, 60), encoding=st.sampled_from(["utf-8", "utf-16", "gbk", "latin-1"]))
def test_fuzzed_log_bytes(tmp_path, junk, at, encoding):
    good = f"epoch_s,power_w,note\n{T0},100,机柜 é\n{T0 + 1},101,ok\n".encode(encoding, errors="replace")
    p = tmp_path / "log.csv"
    p.write_bytes(good[:at] + junk + good[at:])
    event(_check(p, "csv", None))


# ------------------------------------------------------------------- the real CLI, in a subprocess

def _rows(n: int, watts: str = "4000") -> str:
    return "epoch_s,power_w,interval_s\n" + "".join(f"{int(FLEET_EPOCH_S) - 20 + i},{watts},1\n" for i in range(n))


#: contents put in place of a rack's meter log (or a hostile file from fuzz_helpers.HOSTILE_FILES)
HOSTILE_LOGS: dict[str, bytes] = {
    "garbage": bytes(range(256)) * 4,
    "nan-watts": _rows(50, "NaN").encode(),
    "1e400-watts": _rows(50, "1e400").encode(),
    "negative-watts": _rows(50, "-4000").encode(),
    "rack-above-bound": _rows(50, "300001").encode(),
    "utf-16": _rows(50).encode("utf-16"),
    "backwards-time": (_rows(3) + f"{int(FLEET_EPOCH_S) - 100},4000,1\n").encode(),
    "truncated": _rows(50).encode()[:-7],
    "many-rows": _rows(200_000).encode(),  # ~5 MB: read within the address-space cap
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return fleet_record(tmp_path_factory.mktemp("meterlog-fuzz-record"))


@pytest.mark.parametrize("name", sorted(HOSTILE_LOGS) + sorted(HOSTILE_FILES))
def test_hostile_log_through_bench_racks(tmp_path, fleet, name):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fleet[0], run)
    log = tmp_path / "r1.csv"
    if name in HOSTILE_FILES:
        HOSTILE_FILES[name](log)
    else:
        log.write_bytes(HOSTILE_LOGS[name])
    site = {"schema": "icb-bench/site/1", "site": "fuzz", "racks": [
        {"name": "R1", "pdus": [{"type": "meter-log", "path": "r1.csv", "accuracy": "1%"}],
         "nodes": [{"name": n, "devices": {"model": "NVIDIA H100 80GB HBM3", "count": 8}} for n in fleet[1]]}]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site), encoding="utf-8")
    TRIED["meter log (CLI)"] += 1
    proc = run_cli(["racks", str(run), "--site", str(tmp_path / "site.yaml"), "--json"], tmp_path)
    # a log that does not load gives its rack no figure and is recorded (it may arrive later): exit 0
    assert outcome(proc.returncode, proc.stdout, proc.stderr) == "result"
    man = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = [e for e in man["power"] if e["kind"] == "meter-log"]
    figures = [a for a in man["aggregates"] if a.get("scope") == "rack"]
    for a in figures:  # whatever the figure rests on, it is finite and plausible
        assert a.get("gflops_per_w") is None or 0 < a["gflops_per_w"] <= a["best_device_gflops_per_w"] * 1.02, a
    if entry["error"]:  # one line naming the log; no figure rests on it
        assert "\n" not in entry["error"] and str(log) in entry["error"], entry["error"]
        assert all(a["assurance"] != "rack-meter" for a in figures), figures
        assert all(alt.get("gflops_per_w") is None for a in figures for alt in a.get("alternatives") or []
                   if alt["assurance"] == "rack-meter"), figures
    else:
        assert name == "many-rows", entry


def test_zz_report_counts(capsys):
    with capsys.disabled():
        print("\n" + report_counts(("meter log (csv)", "meter log (ptdaemon)", "meter log (CLI)")))
