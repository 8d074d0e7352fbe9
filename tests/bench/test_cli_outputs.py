"""`bench run --quiet`, the run's log in the record, and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from icb_bench.bench import record


def _bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_quiet_run_prints_nothing_and_the_record_keeps_its_log(tmp_path):
    out = tmp_path / "run"
    res = _bench("run", "--backend", "cpu", "--quick", "--duration", "1", "--shape", "128x128x128", "--dtypes", "fp32",
                 "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    lines = (out / "run.log").read_text().splitlines()
    kinds = [ln.split(" ", 2)[1] for ln in lines]
    assert kinds[0] == "device" and kinds[-1] == "finished"
    assert "measurement" in kinds and "core_window" in kinds and "progress" not in kinds
    assert "status=complete" in lines[-1]
    # the log is part of the record: in its file index, with its digest
    index = {f["path"]: f for f in json.loads((out / record.MANIFEST).read_text())["files"]}
    assert index["run.log"]["sha256"] == record.sha256_file(out / "run.log")


def test_shell_completion_is_offered():
    res = _bench("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert res.returncode == 0 and "complete" in res.stdout and "bench" in res.stdout.lower()


def test_an_unwritable_out_is_refused_before_anything_is_measured():
    """/proc takes no new files, not even from root (CI runs as root, for whom a 0500 directory
    is still writable): one error line, exit 2, before a backend is even opened."""
    res = _bench("run", "--backend", "cpu", "--quick", "--dtypes", "fp32", "--out", "/proc/icb-bench-run")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: --out: /proc/icb-bench-run is not writable")
    assert len(res.stderr.strip().splitlines()) == 1
