"""Clock and temperature anomalies (bench/anomaly.py): flagged against the siblings, in the node
aggregates, the printed summary and `bench show`; no telemetry is 'not available', never a pass."""

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from icb_bench.bench import anomaly, record
from icb_bench.bench.cli import app
from icb_bench.bench.orchestrate import node_aggregates
from icb_bench.bench.report import print_run
from icb_bench.bench.shard_index import _compact

NO_TELEMETRY = {"sm_clock_mhz_median": None, "mem_clock_mhz_median": None, "temperature_c_max": None,
                "power_w_median": None, "power_w_max": None, "power_limit_w": None, "power_limit_w_min": None}


def meas(device, clock_mhz=1800.0, temp_c=60.0, tflops=700.0, dtype="fp16", host="node01", **kw):
    tel = {**NO_TELEMETRY, "sm_clock_mhz_median": clock_mhz, "temperature_c_max": temp_c}
    return {"id": f"{host}-d{device}-{dtype}", "host": host, "device": device, "seq": 0, "dtype": dtype,
            "valid": True, "status": "ok", "grade": "smoke", "tflops": tflops, "flops_total": 1e15,
            "core_phase_s": 2.0, "energy_j": None, "power_w": None, "power_scope": "device", "power_method": "none",
            "telemetry": tel, **kw}


def test_device_at_60_percent_clock_is_flagged_with_its_figures():
    ms = [meas(i) for i in range(4)] + [meas(4, clock_mhz=1080.0, tflops=420.0)]
    got = anomaly.node_anomalies(ms)
    assert got["anomaly_check"] == {"clock": "checked", "temperature": "checked"}
    clock = [a for a in got["anomalies"] if a["kind"] == "clock_low"]
    assert [(a["device"], a["value"], a["siblings_median"], a["siblings"]) for a in clock] == [(4, 1080.0, 1800.0, 4)]
    assert clock[0]["threshold"] == pytest.approx(0.85 * 1800.0) and clock[0]["unit"] == "MHz"
    low = [a for a in got["anomalies"] if a["kind"] == "throughput_low"]
    assert [(a["device"], a["cause"], a["value"], a["siblings_median"]) for a in low] == [(4, "clock", 420.0, 700.0)]
    assert "SM clock 1080 MHz < 0.85 × siblings' median 1800 MHz" in anomaly.describe(clock[0])


def test_clock_just_above_the_threshold_and_a_fast_device_are_not_flagged():
    ms = [meas(0), meas(1), meas(2, clock_mhz=0.86 * 1800.0), meas(3, clock_mhz=2400.0)]
    assert anomaly.node_anomalies(ms)["anomalies"] == []


def test_hot_device_is_flagged_and_a_low_throughput_names_temperature():
    ms = [meas(0, temp_c=62.0), meas(1, temp_c=64.0), meas(2, temp_c=88.0, tflops=500.0)]
    got = anomaly.node_anomalies(ms)["anomalies"]
    assert [(a["kind"], a["device"]) for a in got] == [("temperature_high", 2), ("throughput_low", 2)]
    assert got[0]["siblings_median"] == 63.0 and got[0]["threshold"] == 73.0 and got[1]["cause"] == "temperature"


def test_throughput_outlier_with_normal_clock_and_temperature_is_no_anomaly():
    # a slow device whose telemetry is normal: the node's `outliers` report it, not this check
    ms = [meas(0), meas(1), meas(2, tflops=300.0)]
    assert anomaly.node_anomalies(ms)["anomalies"] == []


def test_cpu_without_telemetry_flags_nothing_and_says_not_available():
    ms = [meas(i, clock_mhz=None, temp_c=None) for i in range(3)] + [{**meas(3), "telemetry": None}]
    got = anomaly.node_anomalies(ms)
    assert got["anomalies"] == []
    assert got["anomaly_check"] == {"clock": "not available: no SM clock telemetry",
                                    "temperature": "not available: no temperature telemetry"}


def test_single_device_or_partial_telemetry():
    one = anomaly.node_anomalies([meas(0, clock_mhz=900.0)])
    assert one["anomaly_check"]["clock"].startswith("not available: 1 of 1 devices") and one["anomalies"] == []
    part = anomaly.node_anomalies([meas(0), meas(1), meas(2, clock_mhz=1000.0), meas(3, clock_mhz=None)])
    assert part["anomaly_check"]["clock"] == "checked on 3 of 4 devices"
    assert [a["device"] for a in part["anomalies"] if a["kind"] == "clock_low"] == [2]


def test_node_aggregates_carry_anomalies_per_dtype():
    ms = [meas(i, dtype=d) for d in ("fp16", "fp32") for i in range(3)]
    ms[1] = meas(1, clock_mhz=1000.0, dtype="fp16")
    aggs = {a["dtype"]: a for a in node_aggregates(ms, 0.10)}
    assert [a["device"] for a in aggs["fp16"]["anomalies"]] == [1] and aggs["fp32"]["anomalies"] == []
    assert aggs["fp32"]["anomaly_check"] == {"clock": "checked", "temperature": "checked"}


def test_fleet_merge_keeps_telemetry_for_the_check():
    m = meas(0, clock_mhz=1234.0)
    assert _compact(m)["telemetry"]["sm_clock_mhz_median"] == 1234.0


def test_rules_file_is_read_and_a_bad_threshold_is_named():
    rules = anomaly.load_rules()
    assert (rules.clock_min_fraction, rules.temperature_max_above_c, rules.min_siblings) == (0.85, 10.0, 1)
    with pytest.raises(anomaly.AnomalyRulesError, match=r"clock.min_fraction_of_siblings is 1.5, expected a number in \[0, 1\]"):
        anomaly.parse_rules({"schema": anomaly.RULES_SCHEMA, "min_siblings": 1, "clock": {"min_fraction_of_siblings": 1.5}})
    with pytest.raises(anomaly.AnomalyRulesError, match="schema is 'x'"):
        anomaly.parse_rules({"schema": "x"})


def _record(path, ms):
    w = record.RecordWriter(path, {"run_id": path.name, "plan": {"outlier_tolerance": 0.1}, "host": {"hostname": "node01"}})
    w.start()
    for m in ms:
        record.write_measurement(path, m)
    w.finish("complete", aggregates=node_aggregates(record.load_run(path).measurements, 0.1))
    return path


def test_summary_and_show_flag_the_device(tmp_path):
    ms = [meas(0), meas(1), meas(2, clock_mhz=1080.0, tflops=400.0)]
    run = _record(tmp_path / "r", ms)
    res = CliRunner().invoke(app, ["show", str(run), "--json"])
    assert res.exit_code == 0, res.output
    agg = json.loads(res.stdout)["aggregates"][0]
    assert [(a["device"], a["kind"]) for a in agg["anomalies"]] == [(2, "clock_low"), (2, "throughput_low")]
    buf = io.StringIO()
    print_run(json.loads(res.stdout), Console(file=buf, width=250))
    text = buf.getvalue()
    assert "2: clock_low, 2: throughput_low" in text
    assert "warning: device node01:2 fp16: SM clock 1080 MHz < 0.85 × siblings' median 1800 MHz" in text


def test_summary_says_not_available_without_telemetry(tmp_path):
    run = _record(tmp_path / "r", [meas(i, clock_mhz=None, temp_c=None) for i in range(2)])
    buf = io.StringIO()
    print_run(json.loads(CliRunner().invoke(app, ["show", str(run), "--json"]).stdout), Console(file=buf, width=250))
    assert "not available" in buf.getvalue() and "SM clock" not in buf.getvalue()
