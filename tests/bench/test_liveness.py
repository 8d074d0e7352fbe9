"""A running record tells a live writer from a dead one (bench/liveness.py): the writer's flock on
its host, the heartbeat's age elsewhere; `bench show`, `audit`, `verify` and `report` say so."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench import liveness, record
from icb_bench.bench.cli import app
from icb_bench.bench.sign import check_record_integrity

runner = CliRunner()
WRITER_FILES = (liveness.LOCK_FILE, liveness.HEARTBEAT_FILE, record.RESERVE)

#: a writer process of its own: opens a record, writes one measurement, then waits to be killed
WRITER = """
import sys, time
from icb_bench.bench import record
w = record.RecordWriter(sys.argv[1], {"run_id": "dead", "host": {"hostname": "node01"}})
w.start()
record.write_measurement(sys.argv[1], {"id": "node01-d0-fp16", "host": "node01", "device": 0, "dtype": "fp16"})
print("ready", flush=True)
time.sleep(600)
"""


def _wait(pred, what, timeout_s=240.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout_s:g} s")


@pytest.fixture
def dead_record(tmp_path):
    """A record whose writer was SIGKILLed after its first measurement."""
    out = tmp_path / "dead"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert liveness.writer_state(out)["state"] == "alive"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return out, proc.pid


def _show_json(path):
    res = runner.invoke(app, ["show", str(path), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_bench_run_alive_then_killed_is_writer_gone(tmp_path):
    """A real `bench run`: `bench show` says its writer is alive, and gone once it is SIGKILLed."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "icb_bench.bench.cli", "run", "--backend", "cpu", "--shape", "128x128x128",
           "--dtypes", "fp32,fp16", "--duration", "60", "--quick", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: list((out / "measurements").glob("*.json")) if (out / "measurements").is_dir() else False,
              "the first measurement appeared")
        live = _show_json(out)["writer"]
        assert live["state"] == "alive" and live["pid"] == proc.pid and live["lock"] == "held"
        assert live["text"].startswith(f"running (writer pid {proc.pid} alive, heartbeat ")
        first = live["heartbeat_at"]
        _wait(lambda: liveness.writer_state(out)["heartbeat_at"] != first, "the heartbeat was refreshed", 60.0)
        assert "writer: running (writer pid" in runner.invoke(app, ["show", str(out)]).output
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    payload = _show_json(out)
    gone = payload["writer"]
    assert payload["status"] == "running" and gone["state"] == "gone" and gone["alive"] is False
    assert gone["lock"] == "free" and gone["measurements_on_disk"] == 1
    assert gone["text"].startswith(f"writer gone: status left running, last heartbeat at {gone['heartbeat_at']} (")
    assert gone["text"].endswith("the run died (killed, power loss, disk full); measurements on disk: 1")
    text = runner.invoke(app, ["show", str(out)]).output
    assert "writer: writer gone: status left running" in " ".join(text.split())


def test_dead_writer_named_by_audit_verify_and_report(dead_record):
    out, _ = dead_record
    from icb_bench.bench.audit import audit_record

    problems = audit_record(out).problems
    assert any(p.startswith("manifest.json: status 'running', not 'complete' (writer gone: status left running")
               for p in problems), problems
    from icb_bench.verify.collect import collect
    from icb_bench.verify.rules import load_peaks

    listed = collect([record.load_run(out)], load_peaks()).not_counted
    assert len(listed) == 1 and listed[0].startswith("dead: status 'running' (writer gone: status left running")
    assert listed[0].endswith("measurements on disk: 1); not counted")
    from icb_bench.bench.reportdoc.evidence import _run_status

    assert _run_status(record.load_run(out)).startswith("running: writer gone:")


def test_live_writer_in_process_is_alive_even_with_a_late_heartbeat(tmp_path):
    w = record.RecordWriter(tmp_path / "r", {"run_id": "r"})
    w.start()
    try:
        late = liveness.writer_state(tmp_path / "r", now_s=time.time() + 100)
        assert late["state"] == "alive" and late["pid"] == os.getpid()
        assert "no heartbeat for 1" in late["text"] and "stuck or its disk full" in late["text"]
        assert liveness.dead_writer_reason(record.load_run(tmp_path / "r")) is None
    finally:
        w.finish("complete")


def test_copied_record_on_another_host_goes_by_heartbeat_age(tmp_path):
    w = record.RecordWriter(tmp_path / "r", {"run_id": "r"})
    w.start()
    try:
        shutil.copytree(tmp_path / "r", tmp_path / "copy")
    finally:
        w.finish("complete")
    hb_path = tmp_path / "copy" / liveness.HEARTBEAT_FILE
    hb = json.loads(hb_path.read_text())
    record.atomic_write_json(hb_path, {**hb, "host": "elsewhere"})
    fresh = liveness.writer_state(tmp_path / "copy", now_s=hb["heartbeat_unix_s"] + 3.0)
    assert fresh["state"] == "alive" and fresh["same_host"] is False and fresh["heartbeat_age_s"] == pytest.approx(3.0)
    assert fresh["text"] == f"running (writer pid {os.getpid()} on elsewhere, heartbeat 3 s ago)"
    stale = liveness.writer_state(tmp_path / "copy", now_s=hb["heartbeat_unix_s"] + liveness.STALE_AFTER_S + 45)
    assert stale["state"] == "gone" and f"last heartbeat at {hb['heartbeat_at']} (60 s ago)" in stale["text"]
    # the same copy read on the writer's host: the lock nobody holds settles it, whatever the age
    record.atomic_write_json(hb_path, hb)
    assert liveness.writer_state(tmp_path / "copy", now_s=hb["heartbeat_unix_s"] + 1.0)["state"] == "gone"


def test_written_before_this_hosts_reboot_is_gone(tmp_path, monkeypatch):
    w = record.RecordWriter(tmp_path / "r", {"run_id": "r"})
    w.start()
    w._lease.release(remove=False)  # as a power loss leaves it: files there, no lock holder
    w._lease = None
    hb_path = tmp_path / "r" / liveness.HEARTBEAT_FILE
    hb = json.loads(hb_path.read_text())
    record.atomic_write_json(hb_path, {**hb, "boot_id": "an-earlier-boot"})
    monkeypatch.setattr(liveness, "_lock_state", lambda p: "unavailable")  # a filesystem without flock
    got = liveness.writer_state(tmp_path / "r", now_s=hb["heartbeat_unix_s"] + 1.0)
    assert got["state"] == "gone" and got["same_host"] is False


def test_running_record_without_writer_files_is_unknown(tmp_path):
    run = tmp_path / "old"
    (run / "measurements").mkdir(parents=True)
    record.atomic_write_json(run / record.MANIFEST, {"schema": record.SCHEMA, "run_id": "old", "status": "running"})
    got = _show_json(run)["writer"]
    assert got["state"] == "unknown" and got["alive"] is None and got["text"].startswith("writer unknown:")


def test_closed_record_drops_writer_files_and_its_index_ignores_them(tmp_path):
    run = tmp_path / "r"
    w = record.RecordWriter(run, {"run_id": "r"})
    w.start()
    assert all((run / n).exists() for n in WRITER_FILES)
    assert json.loads((run / liveness.LOCK_FILE).read_text())["host"] == socket.gethostname()
    record.write_measurement(run, {"id": "h-d0-fp16", "host": "h", "device": 0, "dtype": "fp16"})
    w.finish("complete")
    assert not any((run / n).exists() for n in WRITER_FILES)
    assert [f["path"] for f in record.load_run(run).manifest["files"]] == ["measurements/h-d0-fp16.json"]
    assert _show_json(run)["writer"] == {"state": "closed", "alive": False, "text": None}
    # one left behind (a crash right after the close) is neither indexed nor an integrity problem
    (run / liveness.HEARTBEAT_FILE).write_text("{}")
    assert check_record_integrity(run).ok and all(f["path"] != liveness.HEARTBEAT_FILE for f in record.file_index(run))


def test_second_writer_on_a_live_record_is_refused(tmp_path):
    w = record.RecordWriter(tmp_path / "r", {"run_id": "r"})
    w.start()
    try:
        with pytest.raises(record.RecordError, match="another writer holds .writer.lock"):
            record.RecordWriter(tmp_path / "r", {}).open()
    finally:
        w.finish("complete")


def test_heartbeat_never_recreates_a_removed_record(tmp_path):
    w = record.RecordWriter(tmp_path / "r", {"run_id": "r"})
    w.start()
    lease = w._lease
    shutil.rmtree(tmp_path / "r")
    lease.beat()
    assert not (tmp_path / "r").exists() and lease.last_error == "heartbeat: the record directory is gone"
    lease.release()
