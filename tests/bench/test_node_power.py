"""`bench run --node-power`: a BMC (mock Redfish service on loopback) brackets the devices' core phases."""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "power"))
from redfish_server import MockRedfish, loopback_only  # noqa: E402

from icb_bench.bench import record  # noqa: E402
from icb_bench.bench.orchestrate import ScopeMonitor, scope_aggregates  # noqa: E402
from icb_bench.bench.power.redfish import RedfishReader  # noqa: E402
from icb_bench.bench.cli import app  # noqa: E402
from icb_bench.bench.power import PowerError, scope_reader  # noqa: E402

runner = CliRunner()
FAST = ["run", "--backend", "cpu", "--quick", "--duration", "1.5", "--shape", "128x128x128", "--dtypes", "fp32"]


@pytest.fixture
def bmc(monkeypatch):
    loopback_only(monkeypatch)
    srv = MockRedfish(variant="power", node_power=lambda s: 500.0, require_auth=True, password="pw-secret")
    srv.start()
    monkeypatch.setenv("ICB_NODE_POWER_PASSWORD", "pw-secret")
    yield srv
    srv.stop()


def test_node_scope_energy_in_record(tmp_path, bmc):
    out = tmp_path / "run"
    res = runner.invoke(app, [*FAST, "--out", str(out), "--json",
                              "--node-power", "redfish+" + bmc.url.replace("://", "://admin@") + "/redfish/v1/Chassis/1/Power?delay_s=0"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    node = [a for a in payload["aggregates"] if a["power_scope"] == "node"]
    assert len(node) == 1
    (agg,) = node
    assert agg["power_method"] == "polled"  # PowerControl has no counter: integrated polled power
    assert agg["power_w"] == pytest.approx(500.0, rel=0.02)
    assert agg["energy_j"] == pytest.approx(500.0 * agg["window_s"], rel=0.02)
    assert agg["window_s"] >= 1.5
    m = payload["measurements"][0]
    assert agg["tflops"] == pytest.approx(m["tflops"])
    assert agg["gflops_per_w"] > 0
    rec = record.load_run(out)
    assert rec.manifest["scope_readers"][0]["scope"] == "node"
    assert "pw-secret" not in (out / "manifest.json").read_text()
    assert record.read_trace(out, agg["trace_file"])["power_w"].notna().sum() >= 10
    # the device-sum aggregate is still there, and never relabelled node power
    assert [a["power_scope"] for a in payload["aggregates"]].count("device") == 1


def test_unreachable_bmc_is_an_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    res = runner.invoke(app, [*FAST, "--out", str(tmp_path / "r"), "--node-power", "redfish+http://127.0.0.1:9/redfish/v1"])
    assert res.exit_code == 2
    assert "--node-power" in res.output and "127.0.0.1" in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("spec, needle", [
    ("https://bmc/redfish/v1", r"expected redfish\+https://"),
    ("redfish+https://admin:pw@bmc/redfish/v1", "not in the URL"),
    ("redfish+https://bmc/redfish/v1?delay=3", "unknown parameter 'delay'"),
    ("redfish+https://bmc/redfish/v1?delay_s=soon", "delay_s='soon' is not a finite"),
    ("redfish+https://bmc/redfish/v1?delay_s=inf", "delay_s='inf' is not a finite"),
    ("redfish+https://u@[::1/redfish/v1", "is not a URL"),
])
def test_scope_reader_spec_errors(spec, needle):
    with pytest.raises(PowerError, match=needle):
        scope_reader(spec, "node", env={})


def test_bmc_dead_for_the_second_dtype_gives_that_dtype_no_node_figure(tmp_path, monkeypatch):
    """The bug: the BMC died after the first dtype and the next dtype's window still got a node
    GFLOPS/W from the last reading held across it. Only readings inside a window count."""
    import time

    loopback_only(monkeypatch)
    srv = MockRedfish(variant="power", node_power=lambda s: 500.0 + 20.0 * (s % 1.0))
    srv.start()
    writer = record.RecordWriter(tmp_path / "run", {"run_id": "t"})
    writer.start()
    try:
        reader = RedfishReader(srv.url, resource="/redfish/v1/Chassis/1/Power", timeout_s=2.0)
        reader.open()
        with ScopeMonitor([reader], 1, writer, hz=20.0) as mon:
            for dtype in ("fp32", "fp16"):
                if dtype == "fp16":
                    srv.kill()  # the BMC is gone before the second dtype's core phase
                t0 = time.monotonic()
                time.sleep(1.2)
                mon.on_event("core_window", {"dtype": dtype, "t_begin_s": t0, "t_end_s": time.monotonic()})
            mon.flush(final=True)
    finally:
        srv.stop()
    ms = [{"dtype": d, "tflops": 1.0, "flops_total": 1.2e12, "valid": True, "grade": "smoke"} for d in ("fp32", "fp16")]
    aggs = {a["dtype"]: a for a in scope_aggregates(ms, mon.results)}
    assert aggs["fp32"]["gflops_per_w"] is not None and aggs["fp32"]["power_method"] == "polled"
    dead = aggs["fp16"]
    assert dead["gflops_per_w"] is None and dead["energy_j"] is None and dead["power_method"] == "none"
    assert "source stopped answering" in dead["power_note"] and "0 readings inside" in dead["power_note"]
