"""SIGINT/SIGTERM during `bench run` and `bench run --resume`: a real two-device run on the CPU
backend is stopped mid-run, closed `interrupted` with what is missing, and resumed to a record that
reads like an uninterrupted one; the resumes that must be refused are."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench import record
from icb_bench.bench.cli import app
from icb_bench.bench.orchestrate import EXIT_INTERRUPTED
from icb_bench.bench.resume import prepare, reopen
from icb_bench.bench.sign import check_record_integrity
from icb_bench.verify.collect import collect, load_records
from icb_bench.verify.rules import load_peaks

DTYPES = ("fp32", "fp16", "bf16")
ARGS = ["--backend", "cpu", "--quick", "--duration", "1", "--shape", "128x128x128", "--dtypes", ",".join(DTYPES)]
ENV = {**os.environ, "ICB_BENCH_CPU_DEVICES": "2"}
runner = CliRunner()


def _bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def interrupt_run(out: Path, sig: int = signal.SIGTERM, *extra: str, repeat: int = 1) -> subprocess.CompletedProcess:
    """Start a two-device run, send ``sig`` (``repeat`` times, 50 ms apart: the later ones land while
    the workers are stopped and the record closed) once its first measurement is on disk."""
    cmd = [sys.executable, "-m", "icb_bench.bench.cli", "run", *ARGS, *extra, "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    mdir = out / record.MEASUREMENTS_DIR
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and not (mdir.is_dir() and any(mdir.glob("*.json"))):
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be interrupted: {proc.stderr.read()}")
            time.sleep(0.05)
        for _ in range(repeat):
            proc.send_signal(sig)
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def pairs(rec: record.RunRecord) -> list[tuple[int, str]]:
    return sorted((m["device"], m["dtype"]) for m in rec.measurements)


def check_interrupted(out: Path, proc: subprocess.CompletedProcess) -> record.RunRecord:
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "interrupted" in line and f"bench run --resume {out}" in line
    rec = record.load_run(out)
    m = rec.manifest
    assert rec.status == "interrupted" and m["interrupt_signal"] in ("SIGTERM", "SIGINT") and m["interrupted_at"]
    assert m["failed_devices"] == {}
    done = set(pairs(rec))
    missing = {(p["device"], p["dtype"]) for p in m["missing"]}
    assert missing and done and not (missing & done)
    assert missing | done == {(d, t) for d in (0, 1) for t in DTYPES}
    assert all(p["state"] in ("in_progress", "not_started") for p in m["missing"])
    # nothing half-written: no temporary files, no trace without its measurement, every file indexed
    assert not [p for p in out.rglob("*") if record.is_temp_name(p.name)]
    traces = {p.relative_to(out).as_posix() for p in (out / record.TRACES_DIR).iterdir()}
    assert traces <= {x["trace_file"] for x in rec.measurements}
    assert {f["path"] for f in m["files"]} == {p.relative_to(out).as_posix() for p in out.rglob("*")
                                               if p.is_file() and p.name not in (record.MANIFEST, record.SIGNATURE)}
    return rec


def check_resumed(out: Path, before: record.RunRecord) -> record.RunRecord:
    proc = _bench("run", "--resume", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "complete"
    rec = record.load_run(out)
    assert rec.status == "complete"
    assert pairs(rec) == sorted((d, t) for d in (0, 1) for t in DTYPES)  # each exactly once
    for m in rec.measurements:
        assert m["seq"] == DTYPES.index(m["dtype"]) and m["id"] == f"{m['host']}-d{m['device']}-{m['dtype']}"
    earlier = {x["id"]: x for x in before.measurements}
    for m in rec.measurements:  # what was measured before the interrupt is left exactly as it was
        if m["id"] in earlier:
            assert m == earlier[m["id"]]
    for key in ("missing", "interrupted_at", "interrupt_signal", "failure_reason"):
        assert key not in rec.manifest
    (res,) = rec.manifest["resumes"]
    assert res["previous"]["status"] == "interrupted" and res["status"] == "complete"
    assert sorted((p["device"], p["dtype"]) for p in res["measured"]) == sorted(
        (p["device"], p["dtype"]) for p in before.manifest["missing"])
    log = (out / "run.log").read_text()
    assert "finished status=interrupted" in log and "resume " in log and log.rstrip().endswith(
        log.rstrip().splitlines()[-1]) and "finished status=complete" in log.splitlines()[-1]
    audit = _bench("audit", str(out))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    show = _bench("show", str(out), "--json")
    assert show.returncode == 0 and json.loads(show.stdout)["status"] == "complete"
    return rec


@pytest.mark.parametrize("sig, repeat", [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 4)])
def test_sigterm_run_resumes_to_a_complete_record(tmp_path, sig, repeat):
    out = tmp_path / "run"
    before = check_interrupted(out, interrupt_run(out, sig, repeat=repeat))
    check_resumed(out, before)


def test_resumed_record_reads_like_an_uninterrupted_one(tmp_path):
    whole = tmp_path / "whole"
    proc = _bench("run", *ARGS, "--out", str(whole), "--json")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run"
    resumed = check_resumed(out, check_interrupted(out, interrupt_run(out)))
    ref = record.load_run(whole)
    assert set(ref.manifest) == set(resumed.manifest) - {"resumes"}
    assert {f["path"] for f in ref.manifest["files"]} == {f["path"] for f in resumed.manifest["files"]}
    assert [set(m) for m in ref.measurements] == [set(m) for m in resumed.measurements]
    assert [(a["dtype"], a["devices"]) for a in ref.aggregates] == [(a["dtype"], a["devices"]) for a in resumed.aggregates]
    assert ref.manifest["inventory"] == resumed.manifest["inventory"]
    counted = [collect(load_records([rec.path]), load_peaks()) for rec in (ref, resumed)]
    for got in counted:  # what `bench verify --allow-unsigned` reads: closed, digests hold, counted
        assert not got.not_counted and len(got.smoke) == len(DTYPES) * 2, got.smoke
    for rec in (ref, resumed):
        assert check_record_integrity(rec.path).ok


def test_resume_with_sign_replaces_the_old_signature(tmp_path):
    key = tmp_path / "key"
    assert runner.invoke(app, ["keygen", "--out", str(key)]).exit_code == 0
    out = tmp_path / "run"
    check_interrupted(out, interrupt_run(out, signal.SIGTERM, "--sign", str(key)))
    assert (out / record.SIGNATURE).is_file()  # the interrupted record was signed as it was
    old = (out / record.SIGNATURE).read_bytes()
    proc = _bench("run", "--resume", str(out), "--sign", str(key), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (out / record.SIGNATURE).read_bytes() != old
    rep = check_record_integrity(out, require_signature=True)
    assert rep.ok and rep.signed and rep.signature_valid, rep.problems


def test_resume_without_sign_drops_the_old_signature(copy, tmp_path):
    key = tmp_path / "key"
    assert runner.invoke(app, ["keygen", "--out", str(key)]).exit_code == 0
    from icb_bench.bench.sign import load_private_key, sign_record

    sign_record(copy, load_private_key(key))
    fp = json.loads((copy / record.SIGNATURE).read_text())["key_fingerprint"]
    missing = record.load_run(copy).manifest["missing"]
    writer = reopen(prepare(copy), ["test"])
    try:
        assert record.load_run(copy).status == "running" and not (copy / record.SIGNATURE).exists()
        previous = record.load_run(copy).manifest["resumes"][0]["previous"]
        # why it stopped, what it lacked (a pair cut off mid-measurement stays visible), the key that had signed it
        assert previous["status"] == "interrupted" and previous["missing"] == missing
        assert previous["signature"]["key_fingerprint"] == fp and len(previous["signature"]["sha256"]) == 64
    finally:
        writer.finish("interrupted")  # lets go of the writer's lease


def test_resume_with_sign_needs_the_record_signed_by_that_key(copy, tmp_path):
    """A signature deleted while the record waited leaves its file index unguarded: an edit made then
    (a disliked measurement removed, to be measured again) must not be covered by a new signature."""
    from icb_bench.bench.sign import load_private_key, sign_record

    keys = {}
    for name in ("mine", "other"):
        keys[name] = tmp_path / name
        assert runner.invoke(app, ["keygen", "--out", str(keys[name])]).exit_code == 0
    assert "is unsigned" in refused(copy, "--sign", str(keys["mine"]))
    sign_record(copy, load_private_key(keys["other"]))
    assert "not among the trusted keys" in refused(copy, "--sign", str(keys["mine"]))


def test_refused_for_garbage_in_the_manifest(copy):
    edit_manifest(copy, lambda m: m.update(failed_devices={"x": "lost"}))
    assert "failed_devices: key 'x' — expected a device index of the plan (0, 1)" in refused(copy)
    edit_manifest(copy, lambda m: m.update(failed_devices=[1]))
    assert "'failed_devices' is a JSON list, expected an object" in refused(copy)  # the record reader's own check
    edit_manifest(copy, lambda m: m.update(failed_devices={}, resumes=5))
    assert "resumes: 5 — expected a list of objects" in refused(copy)


def test_a_record_changed_after_its_checks_is_not_continued(copy):
    """Two resumes at once: the second, checked before the first ran, must not write its stale copy."""
    from icb_bench.bench.resume import ResumeError

    res = prepare(copy)
    edit_manifest(copy, lambda m: m.update(resumes=[{"started_at": "earlier"}]))  # the other resume's trace
    with pytest.raises(ResumeError, match="changed since it was checked"):
        reopen(res, ["test"])
    assert not (copy / record.RESERVE).exists() and record.load_run(copy).status == "interrupted"
    reopen(prepare(copy), ["test"]).finish("interrupted")  # the lease was let go


# -- refusals (one line, exit 2; a complete record: exit 0) -------------------------------------------

@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    check_interrupted(out, interrupt_run(out))
    return out


@pytest.fixture()
def copy(interrupted, tmp_path, monkeypatch):
    monkeypatch.setenv("ICB_BENCH_CPU_DEVICES", "2")
    dst = tmp_path / "copy"
    shutil.copytree(interrupted, dst)
    return dst


def edit_manifest(run_dir: Path, edit) -> None:
    m = json.loads((run_dir / record.MANIFEST).read_text())
    edit(m)
    (run_dir / record.MANIFEST).write_text(json.dumps(m))


def refused(run_dir: Path, *args: str) -> str:
    res = runner.invoke(app, ["run", "--resume", str(run_dir), *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_refused_for_other_devices(copy):
    edit_manifest(copy, lambda m: m["inventory"][1].update(uuid="GPU-00000000-other"))
    before = (copy / record.MANIFEST).read_bytes()
    line = refused(copy)
    assert "device 1's uuid" in line and "GPU-00000000-other" in line
    assert (copy / record.MANIFEST).read_bytes() == before  # nothing was touched


def test_refused_for_another_host(copy):
    edit_manifest(copy, lambda m: m["host"].update(hostname="other-node"))
    assert "measured on host 'other-node'" in refused(copy)


def test_refused_with_fewer_devices_here(copy, monkeypatch):
    monkeypatch.setenv("ICB_BENCH_CPU_DEVICES", "1")
    assert "the record measured device 1" in refused(copy)


def test_refused_for_a_fleet_record(copy):
    edit_manifest(copy, lambda m: m.update(fleet={"run_id": "job", "node": "n0", "rank": 0}))
    assert "multi-node record (a node shard)" in refused(copy)
    edit_manifest(copy, lambda m: (m.pop("fleet"), m.update(kind="fleet", nodes=[])))
    assert "multi-node record (fleet)" in refused(copy)


def test_refused_for_an_edited_record(copy):
    meas = sorted((copy / record.MEASUREMENTS_DIR).glob("*.json"))[0]
    m = json.loads(meas.read_text())
    m["tflops"] = (m["tflops"] or 0) * 2
    meas.write_text(json.dumps(m))
    assert "cannot be resumed" in refused(copy) and meas.name in refused(copy)


def test_refused_options_and_other_inputs(copy):
    assert "--dtypes, --duration cannot be given with --resume" in refused(copy, "--dtypes", "fp32", "--duration", "5")
    assert "--challenge: not the nonce" in refused(copy, "--challenge", "ab" * 32)
    assert "--seed: 7 is not the seed" in refused(copy, "--seed", "7")


def test_refused_while_running_and_nothing_missing(copy):
    edit_manifest(copy, lambda m: m.update(status="running"))
    assert "status 'running'" in refused(copy)
    edit_manifest(copy, lambda m: m.update(status="failed", failed_devices={"0": "lost", "1": "lost"}))
    assert "nothing missing" in refused(copy)


def test_complete_record_has_nothing_to_resume(copy):
    edit_manifest(copy, lambda m: m.update(status="complete"))
    res = runner.invoke(app, ["run", "--resume", str(copy)])
    assert res.exit_code == 0 and res.output.strip() == f"{copy} is complete: nothing to resume"

