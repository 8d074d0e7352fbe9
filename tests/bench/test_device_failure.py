"""A device that fails mid-run: the others still measure, the run exits 1 and says which failed.
Also exercises backends added from outside the package ($ICB_BENCH_BACKENDS)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icb_bench.bench import record
from icb_bench.kernels.backends import backend_class, backend_names, external_backends
from icb_bench.kernels.errors import BackendUnavailable

FAKES = Path(__file__).parent / "fakes"


def test_failed_device_does_not_lose_the_others(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "ICB_BENCH_BACKENDS": "flaky=flaky_backend:FlakyBackend"}
    proc = subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", "run", "--backend", "flaky", "--quick",
                           "--duration", "0.5", "--shape", "128x128x128", "--dtypes", "fp32", "--out", str(out), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["status"] == "failed"
    assert "simulated device loss" in payload["failed_devices"]["1"]
    (m,) = payload["measurements"]
    assert m["device"] == 0 and m["valid"] is True  # device 0 ran alone after the common start broke
    assert record.load_run(out).manifest["status"] == "failed"


def test_external_backend_from_environment(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("ICB_BENCH_BACKENDS", "flaky=flaky_backend:FlakyBackend")
    assert external_backends() == {"flaky": "flaky_backend:FlakyBackend"}
    assert backend_names()[-1] == "flaky"
    assert backend_class("flaky").__name__ == "FlakyBackend"


@pytest.mark.parametrize("value, needle", [("flaky", "is not name=package.module:Class"),
                                           ("ghost=nowhere_module:X", "cannot be loaded")])
def test_external_backend_errors(monkeypatch, value, needle):
    monkeypatch.setenv("ICB_BENCH_BACKENDS", value)
    with pytest.raises(BackendUnavailable, match=needle):
        backend_class("ghost")


def test_builtin_names_cannot_be_replaced(monkeypatch):
    monkeypatch.setenv("ICB_BENCH_BACKENDS", "cpu=flaky_backend:FlakyBackend")
    assert "cpu" not in external_backends()
    assert backend_class("cpu").__name__ == "CpuBackend"
