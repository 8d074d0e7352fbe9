"""Closing a record on a full disk: the writer's reserve is freed before the final manifest, so a
run stopped by ENOSPC closes as `failed` with its reason; when even that cannot be written, a
typed one-line error and the last whole manifest stay, never a half-written one."""

import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from icb_bench.bench import liveness, record
from icb_bench.bench.sign import check_record_integrity

MEASUREMENT = {"id": "h-d0-fp16", "host": "h", "device": 0, "dtype": "fp16", "samples": {"pad": "x" * 1000}}


@pytest.fixture
def small_disk(tmp_path):
    """A real 12 MiB tmpfs (root only); unmounted at the end."""
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", str(mnt)],
                         capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root and mount permission): {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(where: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    with open(where / "filler", "wb") as fh:
        chunk = b"\1" * (64 << 10)
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with pytest.raises(OSError) as exc:
        (where / "probe").write_bytes(b"\1" * (64 << 10))
    assert exc.value.errno == errno.ENOSPC


def _writer(run: Path) -> record.RecordWriter:
    w = record.RecordWriter(run, {"run_id": run.name, "host": {"hostname": "h"}})
    w.start()
    record.write_measurement(run, MEASUREMENT)
    return w


def test_full_tmpfs_closes_failed_with_its_reason(small_disk):
    run = small_disk / "run"
    w = _writer(run)
    _fill(small_disk)
    with pytest.raises(OSError) as full:
        record.write_measurement(run, {**MEASUREMENT, "id": "h-d0-fp32", "dtype": "fp32"})
    assert full.value.errno == errno.ENOSPC
    w.close_failed("disk full: measurements/h-d0-fp32.json could not be written\nsecond line dropped", finished_at="t1")
    rec = record.load_run(run)
    assert rec.status == "failed" and rec.manifest["failure_reason"] == "disk full: measurements/h-d0-fp32.json could not be written"
    assert [m["id"] for m in rec.measurements] == ["h-d0-fp16"] and rec.manifest["finished_at"] == "t1"
    assert [f["path"] for f in rec.manifest["files"]] == ["measurements/h-d0-fp16.json"]
    assert not any((run / n).exists() for n in record.WRITER_FILES)
    assert check_record_integrity(run).ok
    assert not [p for p in run.rglob("*") if record.is_temp_name(p.name)]


def test_without_a_reserve_the_close_fails_typed_and_the_old_manifest_stays(small_disk, monkeypatch):
    monkeypatch.setattr(record, "RESERVE_BYTES", 1)
    run = small_disk / "run"
    w = _writer(run)
    w.update(inventory=[{"index": 0, "model": "x" * 4000}])
    before = (run / record.MANIFEST).read_bytes()
    _fill(small_disk)
    # what a freed 1-byte reserve gives back is not a manifest's worth: make sure nothing is left
    for i in range(1000):
        try:
            (small_disk / f"tiny{i}").write_bytes(b"\1" * 512)
        except OSError:
            break
    with pytest.raises(record.RecordCloseError) as exc:
        w.close_failed("disk full")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{run}: could not close the record as 'failed' (") and "stays 'running'" in msg
    assert (run / record.MANIFEST).read_bytes() == before  # whole, and still the last one written
    assert json.loads(before)["status"] == "running"
    gone = liveness.writer_state(run)
    assert gone["state"] == "gone" and gone["measurements_on_disk"] == 1


def test_enospc_until_the_reserve_goes_then_the_close_succeeds(tmp_path, monkeypatch):
    """The reserve is deleted before the final manifest is written (monkeypatched ENOSPC)."""
    run = tmp_path / "run"
    w = _writer(run)
    real = record.atomic_write_json

    def full_while_reserved(path, obj, **kw):
        if (run / record.RESERVE).exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, obj, **kw)

    monkeypatch.setattr(record, "atomic_write_json", full_while_reserved)
    with pytest.raises(OSError):
        w.update(note="cannot be written while the disk is full")
    w.close_failed("disk full")
    rec = record.load_run(run)
    assert rec.status == "failed" and rec.manifest["failure_reason"] == "disk full"


def test_enospc_on_the_close_itself_is_a_typed_error(tmp_path, monkeypatch):
    run = tmp_path / "run"
    w = _writer(run)

    def always_full(path, obj, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(record, "atomic_write_json", always_full)
    with pytest.raises(record.RecordCloseError, match=r"could not close the record as 'complete' \(No space left on device\)"):
        w.finish("complete")
    assert isinstance(record.RecordCloseError("x"), record.RecordError)
    assert liveness.writer_state(run)["state"] == "gone"


def test_reserve_that_cannot_be_set_aside_refuses_the_start(small_disk):
    _fill(small_disk)
    with pytest.raises(record.RecordError, match=r"cannot set aside the 4 MiB the record needs to close"):
        record.RecordWriter(small_disk / "run", {"run_id": "run"}).start()
    assert not (small_disk / "run" / record.RESERVE).exists()
