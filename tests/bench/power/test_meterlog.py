"""Meter logs: PTDaemon logs transcribed from MLPerf Power material (data/meterlog, sources in
its README) and CSV logs written here; every refusal names the file, line, column and value."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from icb_bench.bench.power import meterlog
from icb_bench.bench.power.base import PowerError
from icb_bench.bench.meter_energy import Reading
from icb_bench.bench.power.meterlog import MeterLogError, MeterReading, load_meter_log

DATA = Path(__file__).parent / "data" / "meterlog"


def epoch(text: str, tz: dt.tzinfo = dt.timezone.utc) -> float:
    return dt.datetime.strptime(text, "%m-%d-%Y %H:%M:%S.%f").replace(tzinfo=tz).timestamp()


# ------------------------------------------------------------------------------- PTDaemon


def test_ptdaemon_power_dev_example() -> None:
    path = DATA / "power-dev-spl-testing.txt"
    log = load_meter_log(path, "ptdaemon", tz="UTC", accuracy_rel=0.005)
    rs = log.readings
    assert len(rs) == 10
    first = rs[0]
    assert first.t_end_epoch_s == pytest.approx(epoch("12-23-2020 10:21:51.496"), abs=1e-6)
    assert first.t_end_epoch_s - first.t_begin_epoch_s == pytest.approx(1.0)
    assert first.power_w == pytest.approx(23.43) and first.energy_j is None
    assert [r.power_w for r in rs[-2:]] == pytest.approx([40.0, 39.41])
    assert all(a.t_end_epoch_s < b.t_end_epoch_s for a, b in zip(rs, rs[1:]))
    assert log.resolution_w == pytest.approx(0.01)  # "23.430000": PTDaemon's %f, trailing zeros ignored
    d = log.describe()
    assert d["name"] == "meter-log" and d["method"] == "meter-log" and d["scope"] == "rack"
    assert d["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (d["format"], d["rows"], d["timezone"], d["accuracy_rel"]) == ("ptdaemon", 10, "UTC", 0.005)
    assert d["marks"] == ["testing-workload"] and d["channels"] is None and d["messages"] == {}
    assert d["interval_s"] == {"min": pytest.approx(1.0), "max": pytest.approx(1.0)}
    assert d["max_gap_s"] == pytest.approx(1.012, abs=1e-6)  # 10:21:59.502 -> 10:22:00.514


def test_ptdaemon_timezone_is_required_and_applied() -> None:
    path = DATA / "krai-rpi4coral-ranging-spl.txt"
    with pytest.raises(MeterLogError) as exc:
        load_meter_log(path, "ptdaemon")
    e = exc.value
    assert (e.line, e.column, e.value) == (1, "Time", "03-03-2021 00:42:30.170")
    assert str(path) in str(e) and "UTC offset" in str(e) and "tz=" in str(e)
    utc = load_meter_log(path, "ptdaemon", tz="UTC")
    plus8 = load_meter_log(path, "ptdaemon", tz="+08:00")
    shanghai = load_meter_log(path, "ptdaemon", tz="Asia/Shanghai")
    for a, b, c in zip(utc.readings, plus8.readings, shanghai.readings):
        assert a.t_end_epoch_s - b.t_end_epoch_s == pytest.approx(8 * 3600)
        assert b == c


def test_ptdaemon_messages_and_repeated_timestamp(tmp_path) -> None:
    path = DATA / "power-dev-test-server-messages.txt"
    with pytest.raises(MeterLogError) as exc:
        load_meter_log(path, "ptdaemon", tz="UTC")
    e = exc.value
    assert (e.line, e.column, e.value) == (6, "Time", "01-22-2021 15:05:15.322")
    assert "after the previous reading's" in str(e) and "line 5" in str(e)
    # without the repeated line the log loads: the daemon's messages are recorded, not readings
    trimmed = tmp_path / "trimmed.txt"
    trimmed.write_text("".join(path.read_text().splitlines(keepends=True)[:5]))
    log = load_meter_log(trimmed, "ptdaemon", tz="UTC")
    assert [r.power_w for r in log.readings] == pytest.approx([22.97, 25.65])
    d = log.describe()
    assert d["messages"] == {"ERROR": 1, "NOTICE": 1} and d["skipped_lines"] == 1
    assert d["first_messages"][1] == [2, "ERROR", "Bad volts reading nan from WT310"]


def test_ptdaemon_multichannel_total() -> None:
    log = load_meter_log(DATA / "power-dev-test-server-multichannel.txt", "ptdaemon", tz="UTC")
    assert [r.power_w for r in log.readings] == pytest.approx([272.93, 275.63])
    assert log.describe()["channels"] == 3 and log.describe()["marks"] == ["notset"]


LINE = "Time,01-22-2021 15:05:14.313,Watts,22.970000,Volts,227.370000,Amps,0.204340,PF,0.494400,Mark,m\n"


@pytest.mark.parametrize(
    "second,column,value,why",
    [
        (LINE.replace("22.970000", "-1.000000").replace("14.313", "15.313"), "Watts", "-1.000000", ">= 0"),
        (LINE.replace("22.970000", "nan").replace("14.313", "15.313"), "Watts", "nan", "finite"),
        (LINE.replace("Volts", "Volts1").replace("14.313", "15.313"), "field 5", "Volts1", "'Volts'"),
        (LINE.replace("01-22-2021 15:05:14.313", "2021-01-22 15:05:15"), "Time", "2021-01-22 15:05:15", "MM-DD-YYYY"),
        (LINE.replace("14.313", "14.000"), "Time", "01-22-2021 15:05:14.000", "after the previous"),
        ("Time,01-22-2021 15:05:15.313,Watts,22.9\n", "field 5", None, "'Volts'"),
    ],
)
def test_ptdaemon_bad_lines(tmp_path, second, column, value, why) -> None:
    path = tmp_path / "ptd.log"
    path.write_text(LINE + second)
    with pytest.raises(MeterLogError, match=why) as exc:
        load_meter_log(path, "ptdaemon", tz="UTC")
    assert (exc.value.line, exc.value.column, exc.value.value) == (2, column, value)


@pytest.mark.parametrize("stamp", ["10-25-2020 02:30:00.000", "03-29-2020 02:30:00.000"])
def test_ptdaemon_dst_repeated_or_skipped_local_time_is_refused(tmp_path, stamp) -> None:
    path = tmp_path / "ptd.log"
    path.write_text(LINE.replace("01-22-2021 15:05:14.313", stamp))
    with pytest.raises(MeterLogError, match="daylight-saving") as exc:
        load_meter_log(path, "ptdaemon", tz="Europe/Berlin")
    assert exc.value.line == 1


# ------------------------------------------------------------------------------- CSV


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_iso_with_interval_and_energy(tmp_path) -> None:
    path = write(
        tmp_path,
        "# R01 feed A, analyser WT333E s/n C3VD30030E\n"
        "Time,Power_W,interval_s,energy_kwh,operator\n"
        "2024-05-05T13:06:44.250+08:00,10500.5,1,1000.125,zhang\n"
        "\n"
        "2024-05-05 05:06:45.250Z,10510.0,1,1000.128,zhang\n"
        "2024-05-05T13:06:46.250+08:00,10490.25,,1000.131,zhang\n",
    )
    log = load_meter_log(path, scope="rack", accuracy_rel=0.005)
    t0 = dt.datetime(2024, 5, 5, 5, 6, 44, 250000, tzinfo=dt.timezone.utc).timestamp()
    assert log.readings == (
        MeterReading(t0 - 1, t0, 10500.5, pytest.approx(1000.125 * 3.6e6)),
        MeterReading(t0, t0 + 1, 10510.0, pytest.approx(1000.128 * 3.6e6)),
        MeterReading(t0 + 2, t0 + 2, 10490.25, pytest.approx(1000.131 * 3.6e6)),  # empty interval: instantaneous
    )
    assert log.resolution_w == pytest.approx(0.01)  # "10490.25"
    d = log.describe()
    assert d["ignored_columns"] == ["operator"] and d["energy_register"] is True and d["rows"] == 3
    assert d["interval_s"] == {"min": 0.0, "max": 1.0} and d["format"] == "csv"


def test_csv_epoch_kw_resolution_and_bom(tmp_path) -> None:
    path = tmp_path / "pdu-display.csv"
    path.write_bytes("\ufeffepoch_s,power_kw\n1714885604,12.5\n1714885664,12.7\n1714885724,13\n".encode())
    log = load_meter_log(path, accuracy_rel=0.01)
    assert [r.power_w for r in log.readings] == [12500.0, 12700.0, 13000.0]
    assert [r.t_end_epoch_s for r in log.readings] == [1714885604.0, 1714885664.0, 1714885724.0]
    assert log.resolution_w == pytest.approx(100.0)  # a display showing 0.1 kW


def test_csv_naive_times_need_tz(tmp_path) -> None:
    path = write(tmp_path, "time,power_w\n2024-05-05 13:06:44,100\n2024-05-05 13:06:45,101\n")
    with pytest.raises(MeterLogError) as exc:
        load_meter_log(path)
    assert (exc.value.line, exc.value.column, exc.value.value) == (2, "time", "2024-05-05 13:06:44")
    log = load_meter_log(path, tz="+08:00")
    assert log.readings[0].t_end_epoch_s == dt.datetime(2024, 5, 5, 5, 6, 44, tzinfo=dt.timezone.utc).timestamp()
    assert log.describe()["timezone"] == "+08:00"


HEAD = "time,power_w\n"
T1, T2, T3 = "2024-05-05T13:06:44+08:00", "2024-05-05T13:06:45+08:00", "2024-05-05T13:06:46+08:00"


@pytest.mark.parametrize(
    "text,line,column,value,why",
    [
        ("time,volts\n" + f"{T1},230\n", 1, "header", "time,volts", "a power column"),
        ("time,epoch_s,power_w\n", 1, "header", "time,epoch_s,power_w", "one time column"),
        ("time,power_w,power_kw\n", 1, "header", "time,power_w,power_kw", "one power column"),
        ("time,power_w,Power_W\n", 1, "power_w", "time,power_w,power_w", "distinct"),
        (HEAD + f"{T1},100\n{T3},101\n{T2},102\n", 4, "time", T2, "after the previous reading's"),
        (HEAD + f"{T1},100\n{T1},101\n", 3, "time", T1, "after the previous reading's"),
        (HEAD + f"{T1},nan\n", 2, "power_w", "nan", "finite"),
        (HEAD + f"{T1},inf\n", 2, "power_w", "inf", "finite"),
        (HEAD + f"{T1},1E+400\n", 2, "power_w", "1E+400", "finite"),
        (HEAD + f"{T1},-0.5\n", 2, "power_w", "-0.5", ">= 0"),
        (HEAD + f"{T1},\n", 2, "power_w", "", "finite"),
        (HEAD + f"{T1},12 kW\n", 2, "power_w", "12 kW", "finite"),
        (HEAD + f"{T1},100,7\n", 2, None, f"{T1},100,7", "2 fields"),
        (HEAD + "yesterday,100\n", 2, "time", "yesterday", "ISO 8601"),
        ("epoch_s,power_w\n1714885604000,100\n", 2, "epoch_s", "1714885604000", "milliseconds"),
        ("time,power_w,energy_j\n" + f"{T1},100,5000\n{T2},100,4000\n", 3, "energy_j", "4000", "does not decrease"),
        ("time,power_w,interval_s\n" + f"{T1},100,1\n{T2},100,10\n", 3, "time", T2, "not overlapping"),
        ("time,power_w,interval_s\n" + f"{T1},100,-1\n", 2, "interval_s", "-1", ">= 0"),
        (HEAD, None, None, None, "at least one reading"),
        ("", None, None, None, "a header row"),
        ("# only a comment\n\n", None, None, None, "a header row"),
        (HEAD + f'{T1},"100\n', 2, None, None, "well-formed CSV"),
    ],
)
def test_csv_refusals_name_line_column_value(tmp_path, text, line, column, value, why) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MeterLogError, match=why) as exc:
        load_meter_log(path)
    e = exc.value
    assert isinstance(e, PowerError) and str(e).startswith(str(path))
    assert (e.line, e.column) == (line, column)
    if value is not None:
        assert e.value == value and repr(value) in str(e)


def test_wrong_encoding_names_the_line(tmp_path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"time,power_w,note\n{T1},100,ok\n{T2},101,".encode() + "机柜".encode("gbk") + b"\n")
    with pytest.raises(MeterLogError, match="UTF-8") as exc:
        load_meter_log(path)
    assert exc.value.line == 3


def test_size_bound_and_unreadable_file(tmp_path, monkeypatch) -> None:
    path = write(tmp_path, HEAD + f"{T1},100\n{T2},101\n")
    monkeypatch.setattr(meterlog, "MAX_LOG_BYTES", 32)
    with pytest.raises(MeterLogError, match="at most 32 bytes"):
        load_meter_log(path)
    monkeypatch.undo()
    with pytest.raises(MeterLogError, match="readable file") as exc:
        load_meter_log(tmp_path / "missing.csv")
    assert str(tmp_path / "missing.csv") in str(exc.value)


@pytest.mark.parametrize(
    "kw,column",
    [({"fmt": "xlsx"}, "format"), ({"tz": "Mars/Olympus"}, "tz"), ({"tz": "+25:00"}, "tz"),
     ({"accuracy_rel": 5.0}, "accuracy_rel"), ({"scope": "row"}, "scope")],
)
def test_bad_options(tmp_path, kw, column) -> None:
    path = write(tmp_path, HEAD + f"{T1},100\n")
    with pytest.raises(MeterLogError) as exc:
        load_meter_log(path, **kw)
    assert exc.value.column == column


def test_to_timeline_shifts_onto_rank0_monotonic_clock() -> None:
    log = load_meter_log(DATA / "power-dev-spl-testing.txt", "ptdaemon", tz="UTC")
    epoch_s, monotonic_s = log.readings[3].t_end_epoch_s - 0.25, 5000.0
    tl = log.to_timeline(epoch_s, monotonic_s)
    assert len(tl) == len(log.readings) and all(isinstance(r, Reading) for r in tl)
    for r, m in zip(log.readings, tl):
        assert m.t_begin_s == pytest.approx(r.t_begin_epoch_s - epoch_s + monotonic_s, abs=1e-6)
        assert m.t_end_s == pytest.approx(r.t_end_epoch_s - epoch_s + monotonic_s, abs=1e-6)
        assert (m.power_w, m.energy_j) == (r.power_w, r.energy_j)
    assert tl[3].t_end_s == pytest.approx(5000.25, abs=1e-6)
    with pytest.raises(ValueError, match="finite"):
        log.to_timeline(float("nan"), 0.0)
