"""`bench run` / `bench show` end to end on the CPU backend, and the CLI's input errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench import record
from icb_bench.bench.cli import app

runner = CliRunner()
FAST = ["--backend", "cpu", "--quick", "--duration", "0.5", "--shape", "128x128x128"]


def _run(args, **kw):
    return runner.invoke(app, ["run", *args], **kw)


def test_cpu_end_to_end_json(tmp_path):
    out = tmp_path / "run"
    res = _run([*FAST, "--dtypes", "fp32,fp16", "--seed", "3", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["status"] == "complete" and payload["exit_code"] == 0
    ms = payload["measurements"]
    assert [m["dtype"] for m in ms] == ["fp32", "fp16"]
    for m in ms:
        assert m["valid"] is True and m["grade"] == "smoke"
        assert (m["m"], m["n"], m["k"]) == (128, 128, 128)
        assert m["tflops"] > 0
        assert m["power_method"] in ("counter", "polled", "none")
        if m["power_method"] == "none":
            assert m["gflops_per_w"] is None and m["energy_j"] is None
    rec = record.load_run(out)
    full = rec.measurements[0]
    assert full["seed"] == 3 and full["samples"]["batch_time_ms"]
    assert full["numeric_mode"] and full["correctness"]["n_checked"] > 0
    assert full["workload"]["seed"] == 3 and full["workload"]["input_source"]
    assert full["timing_consistent"] in (True, False) and full["wall_vs_events"] > 0
    assert rec.manifest["inventory"][0]["backend"] == "cpu"
    assert {f["path"] for f in rec.manifest["files"]} >= {f"measurements/{m['id']}.json" for m in rec.measurements}


def test_show_prints_table_and_json(tmp_path):
    out = tmp_path / "run"
    assert _run([*FAST, "--dtypes", "fp32", "--out", str(out)]).exit_code == 0
    res = runner.invoke(app, ["show", str(out)])
    assert res.exit_code == 0 and "fp32" in res.output and "smoke" in res.output
    res = runner.invoke(app, ["show", str(out), "--json"])
    assert json.loads(res.stdout)["measurements"][0]["dtype"] == "fp32"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dtypes", "fp17"], "--dtypes: 'fp17' is not a GEMM dtype"),
        (["--devices", "5"], "--devices: device 5 does not exist"),
        (["--devices", "x"], "--devices: 'x' is not a device index"),
        (["--duration", "-1"], "--duration: -1 is not a positive"),
        (["--backend", "tpu"], "--backend: 'tpu' is not a backend"),
        (["--shape", "12x12"], "--shape: '12x12' is not MxNxK"),
        (["--sample-hz", "2"], "--sample-hz: 2 is below 10 Hz"),
        (["--sample-hz", "nan"], "--sample-hz: nan is below 10 Hz"),
        (["--duration", "inf"], "--duration: inf is not a positive, finite number"),
        (["--devices", "²"], "--devices: '²' is not a device index"),
        (["--devices", "[/x]"], "--devices: '[/x]' is not a device index"),
        (["--dtypes", "fp16,[red]oops"], "--dtypes: '[red]oops' is not a GEMM dtype"),
        (["--shape", "2x2x²"], "--shape: '2x2x²' is not MxNxK"),
        (["--shape", "1000000000000x8x8"], "is not MxNxK; expected three positive integers up to"),
        (["--shape", "1000000x1000000x8"], "needs 3725.3 GiB for A, B and C"),
        (["--seed", "99999999999999999999"], "--seed: 99999999999999999999 is out of range"),
        (["--node-power", "garbage"], "--node-power: 'garbage': expected redfish+https://[user@]host"),
    ],
)
def test_bad_options_exit_2_with_one_clear_line(args, needle, tmp_path):
    res = _run(["--backend", "cpu", *args, "--out", str(tmp_path / "r")] if "--backend" not in args else [*args, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not (tmp_path / "r").exists()  # nothing half-started


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = _run([*FAST, "--dtypes", "fp32", "--out", str(f)])
    assert res.exit_code == 2 and "exists and is not a directory" in res.output


def test_bad_cpu_device_count_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ICB_BENCH_CPU_DEVICES", "abc")
    res = _run([*FAST, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "ICB_BENCH_CPU_DEVICES='abc' is not an integer" in res.output


def test_show_bad_dir_exit_2(tmp_path):
    res = runner.invoke(app, ["show", str(tmp_path)])
    assert res.exit_code == 2 and "not a bench run record" in res.output


def test_existing_out_refused(tmp_path):
    out = tmp_path / "run"
    assert _run([*FAST, "--dtypes", "fp32", "--out", str(out)]).exit_code == 0
    res = _run([*FAST, "--dtypes", "fp32", "--out", str(out)])
    assert res.exit_code == 2 and "already holds a record" in res.output


def test_invalid_measurement_exits_1(tmp_path, monkeypatch):
    from icb_bench.kernels import gemm

    real = gemm.GemmWorkload.check

    def corrupt(self, *a, **k):
        res = real(self, *a, **k)
        return type(res)(**{**res.__dict__, "valid": False, "reason": "forced by test"})

    monkeypatch.setattr(gemm.GemmWorkload, "check", corrupt)
    res = _run([*FAST, "--dtypes", "fp32", "--out", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 1
    m = json.loads(res.stdout)["measurements"][0]
    assert m["valid"] is False and m["status"] == "invalid" and "forced by test" in m["error"]


def test_multi_device_concurrent_cpu(tmp_path):
    """Two logical CPU devices in two worker processes with a common start; node sums per dtype."""
    out = tmp_path / "run"
    env = {**os.environ, "ICB_BENCH_CPU_DEVICES": "2"}
    proc = subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", "run", *FAST, "--dtypes", "fp32",
                           "--out", str(out), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert sorted(m["device"] for m in payload["measurements"]) == [0, 1]
    (agg,) = payload["aggregates"]
    assert agg["devices"] == 2
    assert agg["tflops"] == pytest.approx(sum(m["tflops"] for m in payload["measurements"]))
    # that the two core phases started together is tested in test_concurrency.py


def test_killed_run_keeps_finished_measurements(tmp_path):
    """SIGKILL during the second dtype: the first one's file is whole and `bench show` reads it."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "icb_bench.bench.cli", "run", "--backend", "cpu", "--shape", "128x128x128",
           "--dtypes", "fp32,fp16", "--duration", "30", "--quick", "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            files = list((out / "measurements").glob("*.json")) if (out / "measurements").exists() else []
            if files:
                time.sleep(1.0)  # well into the second dtype's 30 s core phase
                break
            time.sleep(0.2)
        else:
            pytest.fail("first measurement never appeared")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rec = record.load_run(out)
    assert rec.status == "running"
    assert [m["dtype"] for m in rec.measurements] == ["fp32"]
    assert rec.measurements[0]["valid"] is True
    assert not [p for p in (out / "measurements").iterdir() if p.name.startswith(".")]
    res = runner.invoke(app, ["show", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["measurements"][0]["dtype"] == "fp32"
