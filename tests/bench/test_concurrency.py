"""The common start across worker processes, and what happens when a worker fails, dies or the
run is terminated."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icb_bench.bench import record

FAKES = Path(__file__).parent / "fakes"
ARGS = ["--quick", "--duration", "1", "--shape", "128x128x128", "--json"]


def _env(**extra):
    return {**os.environ, "PYTHONPATH": f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "ICB_BENCH_BACKENDS": "latefail=latefail_backend:LateFail,hardexit=latefail_backend:HardExit", **extra}


def _bench(args, env, timeout=240):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", "run", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    return proc, time.monotonic() - t0


def _start(m) -> dt.datetime:
    return dt.datetime.fromisoformat(m["started_at"].replace("Z", "+00:00"))


def test_core_phases_start_together(tmp_path):
    out = tmp_path / "run"
    proc, _ = _bench(["--backend", "cpu", *ARGS, "--dtypes", "fp32,fp16", "--out", str(out)],
                     _env(ICB_BENCH_CPU_DEVICES="2"))
    assert proc.returncode == 0, proc.stderr
    by = {(m["device"], m["dtype"]): m for m in record.load_run(out).measurements}
    for dtype in ("fp32", "fp16"):
        gap = abs((_start(by[(0, dtype)]) - _start(by[(1, dtype)])).total_seconds())
        assert gap < 0.5, f"{dtype}: core phases started {gap:.2f} s apart"


def test_failure_after_the_common_start_keeps_later_dtypes_in_step(tmp_path):
    out = tmp_path / "run"
    proc, _ = _bench(["--backend", "latefail", *ARGS, "--dtypes", "fp32,fp16,bf16", "--out", str(out)],
                     _env(FAKE_BARRIER_TIMEOUT_S="30"))
    assert proc.returncode == 1, proc.stderr
    by = {(m["device"], m["dtype"]): m for m in record.load_run(out).measurements}
    assert by[(1, "fp32")]["status"] == "failed" and "simulated failure" in by[(1, "fp32")]["error"]
    for dtype in ("fp16", "bf16"):
        assert by[(0, dtype)]["valid"] and by[(1, dtype)]["valid"]
        gap = abs((_start(by[(0, dtype)]) - _start(by[(1, dtype)])).total_seconds())
        assert gap < 0.5, f"{dtype}: devices out of step by {gap:.2f} s (a second wait at the barrier?)"


def test_a_worker_that_dies_hard_does_not_stall_its_peers(tmp_path):
    out = tmp_path / "run"
    proc, took = _bench(["--backend", "hardexit", *ARGS, "--dtypes", "fp32,fp16", "--out", str(out)],
                        _env(FAKE_BARRIER_TIMEOUT_S="120"))
    assert proc.returncode == 1, proc.stderr
    payload = json.loads(proc.stdout)
    assert "137" in payload["failed_devices"]["1"]
    assert [m["device"] for m in payload["measurements"]] == [0, 0]
    assert all(m["valid"] for m in payload["measurements"])
    assert took < 100, f"device 0 waited {took:.0f} s at the common start for a dead peer"


def test_sigterm_stops_workers_and_closes_the_record(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "icb_bench.bench.cli", "run", "--backend", "cpu", "--quick", "--duration", "2",
           "--shape", "128x128x128", "--dtypes", "fp32,fp16,bf16", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(ICB_BENCH_CPU_DEVICES="2"))
    mdir = out / "measurements"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (mdir.exists() and any(mdir.glob("*.json"))):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3  # orchestrate.EXIT_INTERRUPTED
    rec = record.load_run(out)
    assert rec.status == "interrupted"
    n = len(rec.measurements)
    assert 1 <= n < 6
    time.sleep(6)  # ample for a surviving worker to finish another 2 s dtype
    assert len(list(mdir.glob("*.json"))) == n, "a worker kept measuring after the run was terminated"
