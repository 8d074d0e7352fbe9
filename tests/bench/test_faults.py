"""A record whose disk fills up (or fails) during `bench run`: the run stops at the first failed write,
closes the record `failed` with the reason, or says in one line why it cannot; never a traceback,
never a half-written file, exit 4."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icb_bench.bench import record
from icb_bench.bench.orchestrate import EXIT_WRITE_FAILED, execute
from icb_bench.bench.plan import RunPlan

FAKES = Path(__file__).parent / "fakes"
DTYPES = ("fp32", "fp16", "bf16")
ARGS = ["--quick", "--duration", "1", "--shape", "128x128x128", "--dtypes", ",".join(DTYPES)]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "ICB_BENCH_BACKENDS": "diskfull=diskfull_backend:DiskFull", **extra}


def _bench(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _no_half_written_files(out: Path) -> None:
    assert not [p for p in out.rglob("*") if record.is_temp_name(p.name)]
    for p in out.rglob("*.json"):
        json.loads(p.read_text())  # whole JSON, every one


def test_worker_disk_full_stops_every_worker_and_closes_failed(tmp_path):
    out = tmp_path / "run"
    proc = _bench(["run", "--backend", "diskfull", *ARGS, "--out", str(out), "--json"], _env())
    assert proc.returncode == EXIT_WRITE_FAILED, proc.stderr
    line = _one_error_line(proc)
    assert "the run stopped: disk full writing measurements/" in line and "-d1-fp32.json: No space left on device" in line
    assert f"the record at {out} is closed as failed" in line
    rec = record.load_run(out)
    m = rec.manifest
    assert rec.status == "failed" and m["failure_reason"].startswith("disk full writing measurements/")
    assert m["failed_devices"] == {}  # the disk failed, not a device
    # the first failed write stopped the run: no later dtype was measured on any device
    assert {x["dtype"] for x in rec.measurements} <= {"fp32"} and all(x["device"] == 0 for x in rec.measurements)
    missing = {(p["device"], p["dtype"]) for p in m["missing"]}
    assert missing == {(d, t) for d in (0, 1) for t in DTYPES} - {(x["device"], x["dtype"]) for x in rec.measurements}
    assert not list((out / record.TRACES_DIR).glob("*-d1-*"))  # device 1's trace without its measurement: gone
    assert "finished status=failed" in (out / "run.log").read_text()
    n = len(rec.measurements)
    time.sleep(3)
    assert len(list((out / record.MEASUREMENTS_DIR).glob("*.json"))) == n, "a worker measured on"
    _no_half_written_files(out)
    # room again: the record resumes to complete
    proc = _bench(["run", "--resume", str(out), "--quiet"], _env(FAKE_DISKFULL_DEVICE="-1"))
    assert proc.returncode == 0, proc.stderr
    rec = record.load_run(out)
    assert rec.status == "complete" and len(rec.measurements) == 6
    assert rec.manifest["resumes"][0]["previous"]["failure_reason"].startswith("disk full writing")


def _measurements_disk_full(monkeypatch) -> None:
    """Every measurement file written in this process fails with ENOSPC (other files are written)."""
    real = record._atomic_write

    def full(path, data):
        if path.parent.name == record.MEASUREMENTS_DIR:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(record, "_atomic_write", full)


def test_in_process_disk_full_stops_before_the_next_dtype(tmp_path, monkeypatch):
    _measurements_disk_full(monkeypatch)
    events = []
    plan = RunPlan.build("cpu", (0,), ("fp32", "fp16"), quick=True, duration_s=0.5, shape=(128, 128, 128))
    outcome = execute(plan, tmp_path / "run", lambda kind, data: events.append((kind, data)))
    assert outcome.exit_code == EXIT_WRITE_FAILED and outcome.close_error is None
    assert outcome.status == "failed" and outcome.error.endswith("-d0-fp32.json: No space left on device")
    assert not [d for k, d in events if k == "phase" and d["dtype"] == "fp16"], "measured on after the failed write"
    m = record.load_run(tmp_path / "run").manifest
    assert m["status"] == "failed" and m["failure_reason"] == outcome.error
    assert [(p["device"], p["dtype"], p["state"]) for p in m["missing"]] == [(0, "fp32", "in_progress"), (0, "fp16", "not_started")]
    assert not list((tmp_path / "run" / record.TRACES_DIR).iterdir())


@pytest.fixture()
def small_fs(tmp_path):
    """A real filesystem of 72 MiB (tmpfs): room for the run's pre-check (64 MiB), then filled."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=72m", "tmpfs", str(mnt)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount permission): {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def _fill(folder: Path) -> None:
    """Write until the filesystem is full (ENOSPC)."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        block = b"\0" * (1 << 20)
        try:
            while True:
                fh.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        for size in (1 << 16, 1 << 12, 1):  # the last pages too
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass


def test_real_full_disk_stops_the_run_without_a_traceback(small_fs):
    out = small_fs / "run"
    cmd = [sys.executable, "-m", "icb_bench.bench.cli", "run", "--backend", "cpu", *ARGS, "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ICB_BENCH_CPU_DEVICES": "2"})
    mdir = out / record.MEASUREMENTS_DIR
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and not (mdir.is_dir() and any(mdir.glob("*.json"))):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        _fill(small_fs)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    assert done.returncode == EXIT_WRITE_FAILED, stderr
    line = _one_error_line(done)
    assert "disk full writing" in line and "No space left on device" in line
    rec = record.load_run(out)  # the manifest left is a whole one, whichever
    assert {x["dtype"] for x in rec.measurements} == {"fp32"}, "measured on after the disk filled"
    if "could not be closed" in line:
        assert f"the record at {out} could not be closed (disk full writing manifest.json" in line
        assert rec.status == "running"
    else:
        assert rec.status == "failed" and rec.manifest["failure_reason"].startswith("disk full writing")
    _no_half_written_files(out)


def test_resume_onto_a_read_only_disk_is_refused_before_measuring(small_fs, monkeypatch):
    from typer.testing import CliRunner

    from icb_bench.bench.cli import app

    with monkeypatch.context() as mp:
        _measurements_disk_full(mp)
        plan = RunPlan.build("cpu", (0,), ("fp32",), quick=True, duration_s=0.5, shape=(128, 128, 128))
        assert execute(plan, small_fs / "run", lambda kind, data: None).status == "failed"
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True, capture_output=True)
    monkeypatch.delenv("ICB_BENCH_CPU_DEVICES", raising=False)
    res = CliRunner().invoke(app, ["run", "--resume", str(small_fs / "run")])
    assert res.exit_code == 2, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert f"--resume: {small_fs / 'run'} is not writable (Read-only file system)" in line
    assert record.load_run(small_fs / "run").status == "failed"


def test_a_worker_stopped_alone_is_a_failed_device_not_an_interrupt(tmp_path):
    """SIGTERM to one device's worker, not to the run: that device failed (exit 1, record `failed`),
    the run is not `interrupted`, so `--resume` cannot measure the device again."""
    out = tmp_path / "run"
    env = _env(ICB_BENCH_BACKENDS="stopped=stopped_backend:StoppedWorker")
    proc = _bench(["run", "--backend", "stopped", *ARGS, "--out", str(out), "--json"], env)
    assert proc.returncode == 1, proc.stderr
    rec = record.load_run(out)
    assert rec.status == "failed" and list(rec.manifest["failed_devices"]) == ["0"]
    assert "stopped by SIGTERM from outside the run" in rec.manifest["failed_devices"]["0"]
    assert sorted(m["device"] for m in rec.measurements) == [1] * len(DTYPES)  # its peer measured on
    again = _bench(["run", "--resume", str(out)], env)
    assert again.returncode == 2 and "nothing missing" in _one_error_line(again)


def test_a_signal_while_a_failed_write_is_handled_still_closes_the_record(tmp_path, monkeypatch):
    """A SIGTERM that lands as the run stops for a failed write (here: inside the hold on signals
    itself, before it takes effect) cannot escape: the record is closed ``failed`` with the write's
    reason, never a traceback."""
    from icb_bench.bench import orchestrate

    _measurements_disk_full(monkeypatch)
    real_hold, sent = orchestrate._StopSignals.hold, []

    def hold_after_a_signal(self):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before the hold below takes effect
            time.sleep(0.05)
        real_hold(self)

    monkeypatch.setattr(orchestrate._StopSignals, "hold", hold_after_a_signal)
    plan = RunPlan.build("cpu", (0,), ("fp32", "fp16"), quick=True, duration_s=0.5, shape=(128, 128, 128))
    try:
        outcome = execute(plan, tmp_path / "run", lambda kind, data: None)
    except KeyboardInterrupt as exc:  # caught here, or it would end the whole test session
        pytest.fail(f"the signal escaped the run: KeyboardInterrupt({exc})")
    # the write failed first: the record says so, with its reason
    assert sent and outcome.status == "failed" and outcome.close_error is None
    assert outcome.error.endswith("-d0-fp32.json: No space left on device")
    m = record.load_run(tmp_path / "run").manifest
    assert m["status"] == "failed" and m["failure_reason"] == outcome.error and m["missing"]
    _no_half_written_files(tmp_path / "run")


def test_a_signal_while_an_unexpected_error_leaves_the_run_does_not_hide_it(tmp_path, monkeypatch):
    """A stop landing as a bug's exception leaves the run must not turn it into an ``interrupted``
    (resumable) record: the error goes on as it would have without the signal."""
    from icb_bench.bench import orchestrate

    def bug(run, handle):
        raise RuntimeError("a bug in the measuring")

    real_hold, sent = orchestrate._StopSignals.hold, []

    def hold_after_a_signal(self):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        real_hold(self)

    monkeypatch.setattr(orchestrate, "_measure_in_process", bug)
    monkeypatch.setattr(orchestrate._StopSignals, "hold", hold_after_a_signal)
    plan = RunPlan.build("cpu", (0,), ("fp32",), quick=True, duration_s=0.5, shape=(128, 128, 128))
    try:
        with pytest.raises(RuntimeError, match="a bug in the measuring"):
            execute(plan, tmp_path / "run", lambda kind, data: None)
    except KeyboardInterrupt as exc:
        pytest.fail(f"the signal escaped the run: KeyboardInterrupt({exc})")
    assert sent
