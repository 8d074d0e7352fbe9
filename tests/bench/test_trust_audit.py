"""Challenge, audit and signatures on real CPU records: a replayed, edited or fabricated record fails."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icb_bench.bench import challenge as chal
from icb_bench.bench import record
from icb_bench.bench.audit import AuditInputError, audit_record
from icb_bench.bench.cli import app
from icb_bench.bench.orchestrate import execute
from icb_bench.bench.plan import RunPlan
from icb_bench.bench.sign import SignError, check_record_integrity, keygen, load_private_key, sign_record
from icb_bench.bench.stats import Stats
from icb_bench.kernels.backends.cpu import CPU_DEVICES_ENV

NONCE = "5f" * 32
OTHER = "a7" * 32


def _run(out: Path, extra: dict) -> Path:
    plan = RunPlan.build("cpu", (0,), ("fp32", "fp16"), quick=True, duration_s=0.3, shape=(128, 128, 128), extra=extra)
    outcome = execute(plan, out, lambda kind, data: None)
    assert outcome.status == "complete", outcome.failed_devices
    return out


@pytest.fixture(scope="module")
def base_record(tmp_path_factory) -> Path:
    saved = os.environ.pop(CPU_DEVICES_ENV, None)
    try:
        return _run(tmp_path_factory.mktemp("rec") / "run", {"challenge": chal.resolve(NONCE, None).to_dict()})
    finally:
        if saved is not None:
            os.environ[CPU_DEVICES_ENV] = saved


@pytest.fixture
def rec(base_record: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(base_record, dst)
    return dst


def _measurements(run: Path) -> list[Path]:
    return sorted((run / record.MEASUREMENTS_DIR).glob("*.json"))


def _edit(path: Path, fn) -> None:
    m = json.loads(path.read_text())
    fn(m)
    record.atomic_write_json(path, m)


def _reindex(run: Path) -> None:
    """What a careful editor does: make the manifest's file index match the edited files."""
    _edit(run / record.MANIFEST, lambda man: man.update(files=record.file_index(run)))


def test_record_carries_challenge_digests_and_freivalds(rec: Path) -> None:
    for p in _measurements(rec):
        m = json.loads(p.read_text())
        assert m["valid"], m["error"]
        assert m["challenge"]["mode"] == "challenge" and m["challenge"]["nonce"] == NONCE
        assert m["challenge"]["source"] == "assessor" and m["challenge"]["device_id"].endswith(":0")
        assert m["output_samples"]["count"] == chal.OUTPUT_SAMPLES == len(m["output_samples"]["values"])
        fr = m["correctness"]["freivalds"]
        assert fr["passed"] and fr["time_s"] > 0
        assert fr["fraction_of_core_phase"] == pytest.approx(fr["time_s"] / m["core_phase_s"])
        assert m["workload"]["input_source"] == "icb-bench/host-rows/1"


def test_audit_passes_with_the_assessors_nonce(rec: Path) -> None:
    report = audit_record(rec, NONCE)
    assert report.ok, report.failures()
    assert [m.status for m in report.measurements] == ["pass", "pass"]
    assert all(m.recomputed["output_max_rel_err"] <= m.recomputed["output_tolerance"] for m in report.measurements)
    assert report.exit_code == 0


def test_replayed_under_another_nonce_fails(rec: Path) -> None:
    report = audit_record(rec, OTHER)
    assert not report.ok and report.exit_code == 1
    fails = report.failures()
    assert len(fails) == 2 and all("not the assessor's nonce" in f for f in fails)
    assert {f.split(":")[0] for f in fails} == {json.loads(p.read_text())["id"] for p in _measurements(rec)}


def _rebind(m: dict, nonce_hex: str, *, fix_digests: bool = True) -> None:
    """A forger's replay: the record's nonce replaced, and every derived field recomputed."""
    ch = chal.Challenge("challenge", bytes.fromhex(nonce_hex), "assessor")
    device_id = m["challenge"]["device_id"]
    shape = (m["m"], m["n"], m["k"])
    seed = chal.input_seed(ch, m["dtype"], device_id, shape)
    ctx = chal.SampleContext(ch, m["dtype"], device_id, shape, m["output_samples"]["raw_sha256"])
    rows, cols = chal.positions(ctx) if fix_digests else (m["output_samples"]["rows"], m["output_samples"]["cols"])
    # the old values, moved to the new positions: the forger has no outputs for the new inputs
    m.update(chal.measurement_fields(ctx, seed, rows, cols, m["output_samples"]["values"]))


def test_replay_with_the_nonce_rewritten_fails_on_the_fp64_reference(rec: Path) -> None:
    for p in _measurements(rec):
        _edit(p, lambda m: _rebind(m, OTHER))
    _edit(rec / record.MANIFEST, lambda man: man["plan"]["extra"].update(challenge=chal.resolve(OTHER, None).to_dict()))
    _reindex(rec)
    report = audit_record(rec, OTHER)
    assert report.integrity.ok  # the edits are consistent: only the outputs give the replay away
    assert not report.ok
    for m in report.measurements:
        assert m.status == "fail"
        assert any("do not match the FP64 reference for this challenge" in p for p in m.problems), m.problems


def test_one_byte_edit_fails_integrity_show_and_audit(rec: Path) -> None:
    path = _measurements(rec)[0]
    data = bytearray(path.read_bytes())
    at = data.index(b'"tflops": ') + len(b'"tflops": ')
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    path.write_bytes(bytes(data))
    integrity = check_record_integrity(rec)
    assert not integrity.ok and path.name in integrity.first_problem and "edited after the run" in integrity.first_problem
    report = audit_record(rec, NONCE)
    assert not report.ok and any(path.name in f for f in report.failures())
    runner = CliRunner()
    shown = runner.invoke(app, ["show", str(rec)])
    assert shown.exit_code == 2 and path.name in shown.output and "Traceback" not in shown.output
    audited = runner.invoke(app, ["audit", str(rec), "--challenge", NONCE])
    assert audited.exit_code == 1 and path.name in audited.output


def _faster(m: dict, factor: float) -> None:
    """Batch times edited down and every figure recomputed to match (what the audit recomputes)."""
    times = [t * factor for t in m["samples"]["batch_time_ms"]]
    m["samples"]["batch_time_ms"] = times
    per_batch = m["flops_per_gemm"] * m["samples"]["iters_per_batch"]
    st = Stats.of([per_batch / (t * 1e-3) / 1e12 for t in times])
    m["tflops"], m["tflops_stats"], m["unstable"] = st.median, st.as_dict(), st.unstable


def test_tflops_edited_with_its_batch_times_fails_on_the_output_digests(rec: Path) -> None:
    for p in _measurements(rec):
        _edit(p, lambda m: _faster(m, 0.8))
    _reindex(rec)
    report = audit_record(rec, NONCE)
    assert report.integrity.ok and not report.ok
    for m in report.measurements:
        assert m.status == "fail"
        # the figures agree with the edited batch times; the output samples give the edit away
        assert not any("tflops" in p for p in m.problems), m.problems
        assert any("drawn for other raw samples" in p for p in m.problems), m.problems


def test_fabricated_output_values_fail(rec: Path) -> None:
    def fabricate(m: dict) -> None:
        vals = [float.fromhex(v) * 1.01 + 0.05 for v in m["output_samples"]["values"]]
        s = m["output_samples"]
        m.update(chal.measurement_fields(
            chal.SampleContext(chal.Challenge.from_dict(m["challenge"]), m["dtype"], m["challenge"]["device_id"],
                               (m["m"], m["n"], m["k"]), s["raw_sha256"]),
            m["challenge"]["input_seed"], s["rows"], s["cols"], chal.encode_values(vals, False)))

    _edit(_measurements(rec)[0], fabricate)
    _reindex(rec)
    report = audit_record(rec, NONCE)
    failed = [m for m in report.measurements if m.status == "fail"]
    assert len(failed) == 1 and "FP64 reference" in failed[0].problems[0]


def test_relabelled_device_fails(rec: Path) -> None:
    _edit(_measurements(rec)[0], lambda m: m["device_info"].update(uuid="GPU-00000000-feed-beef"))
    _reindex(rec)
    report = audit_record(rec, NONCE)
    assert any("is not this device" in p for m in report.measurements for p in m.problems)


def test_audit_bad_input_is_exit_2(rec: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["audit", str(rec), "--challenge", "xyz"], ["audit", str(tmp_path / "nope")],
                 ["audit", str(rec), "--challenge", "ab" * 4]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output
    with pytest.raises(AuditInputError):
        audit_record(tmp_path)  # a directory without a manifest
    ok = runner.invoke(app, ["audit", str(rec), "--challenge", NONCE, "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True


# -- signatures ------------------------------------------------------------------------------

def test_keygen_sign_verify_round_trip(rec: Path, tmp_path: Path) -> None:
    keys = keygen(tmp_path / "assessor.key")
    assert stat.S_IMODE(os.stat(keys.private_path).st_mode) == 0o600 and keys.public_path.is_file()
    with pytest.raises(SignError, match="never overwritten"):
        keygen(tmp_path / "assessor.key")
    sig = sign_record(rec, load_private_key(keys.private_path), signer="assessor A")
    assert sig["algorithm"] == "Ed25519" and sig["key_fingerprint"] == keys.fingerprint
    paths = {f["path"] for f in sig["manifest"]["files"]}
    assert record.MANIFEST in paths and all(f"measurements/{p.name}" in paths for p in _measurements(rec))
    assert sig["manifest"]["devices"][0]["index"] == 0 and sig["manifest"]["harness"]["version"]
    good = check_record_integrity(rec, require_signature=True, trusted=[keys.fingerprint])
    assert good.ok and good.signed and good.signature_valid and good.trusted and good.signer == "assessor A"
    assert audit_record(rec, NONCE, trusted=[keys.fingerprint]).ok
    untrusted = check_record_integrity(rec, trusted=["sha256:" + "0" * 64])
    assert not untrusted.ok and "not among the trusted keys" in untrusted.first_problem


def test_signature_catches_a_reindexed_edit_and_a_forged_manifest(rec: Path, tmp_path: Path) -> None:
    keys = keygen(tmp_path / "k")
    sign_record(rec, load_private_key(keys.private_path))
    _edit(_measurements(rec)[0], lambda m: _faster(m, 0.9))
    _reindex(rec)  # the manifest's own index now agrees: only the signature holds
    report = check_record_integrity(rec)
    assert not report.ok and any("differs from the signed manifest" in p for p in report.problems)
    assert any(record.MANIFEST in p for p in report.problems)
    # re-writing the signed manifest inside signature.json breaks the Ed25519 signature
    sig_path = rec / record.SIGNATURE
    _edit(sig_path, lambda s: s["manifest"].update(files=[{**f, "sha256": "0" * 64} for f in s["manifest"]["files"]]))
    assert any("does not verify" in p for p in check_record_integrity(rec).problems)


def test_unsigned_record_is_refused_when_a_signature_is_required(rec: Path) -> None:
    report = check_record_integrity(rec, require_signature=True)
    assert not report.ok and not report.signed and "unsigned" in report.first_problem
    assert check_record_integrity(rec).ok  # digests alone hold


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "k")
    os.chmod(keys.private_path, 0o644)
    with pytest.raises(SignError, match="readable by others"):
        load_private_key(keys.private_path)
    with pytest.raises(SignError, match="no such file"):
        load_private_key(tmp_path / "missing")


def test_run_refuses_bad_challenge_and_key_before_measuring(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--backend", "cpu", "--out", str(tmp_path / "r"), "--challenge", "nothex"])
    assert res.exit_code == 2 and "--challenge" in res.output and not (tmp_path / "r").exists()
    res = runner.invoke(app, ["run", "--backend", "cpu", "--out", str(tmp_path / "r"), "--sign", str(tmp_path / "no.key")])
    assert res.exit_code == 2 and "--sign" in res.output and not (tmp_path / "r").exists()


# -- fleet records: audited shard by shard, covered by one signature ------------------------------

def _fleet(rec: Path, tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    nodes = []
    for name in ("node01", "node02"):
        shutil.copytree(rec, root / "nodes" / name)
        nodes.append({"name": name, "shard": f"nodes/{name}", "status": "complete"})
    man = {"schema": record.SCHEMA, "kind": "fleet", "run_id": "fleet-1", "status": "complete", "nodes": nodes,
           "plan": json.loads((rec / record.MANIFEST).read_text())["plan"], "aggregates": [],
           "shards": [{"path": f"nodes/{n['name']}/{record.MANIFEST}",
                       "sha256": record.sha256_file(root / n["shard"] / record.MANIFEST)} for n in nodes]}
    man["files"] = record.file_index(root)
    record.atomic_write_json(root / record.MANIFEST, man)
    return root


def test_fleet_record_audited_shard_by_shard(rec: Path, tmp_path: Path) -> None:
    root = _fleet(rec, tmp_path)
    files = {f["path"] for f in json.loads((root / record.MANIFEST).read_text())["files"]}
    assert "nodes/node01/manifest.json" in files  # the fleet index covers the shards' manifests
    report = audit_record(root, NONCE)
    assert report.ok, report.failures()
    assert sorted({m.part for m in report.measurements}) == ["nodes/node01", "nodes/node02"]
    keys = keygen(tmp_path / "k")
    sign_record(root, load_private_key(keys.private_path))
    shard_m = _measurements(root / "nodes" / "node02")[0]
    _edit(shard_m, lambda m: _faster(m, 0.8))
    report = audit_record(root, NONCE)
    assert not report.ok
    assert any("nodes/node02/measurements" in p for p in report.integrity.problems)
    assert [m.part for m in report.measurements if m.status == "fail"] == ["nodes/node02"]


def test_size_overhead_of_digests_and_signature(rec: Path, tmp_path: Path) -> None:
    keys = keygen(tmp_path / "k")
    sign_record(rec, load_private_key(keys.private_path))
    total = sum(f.stat().st_size for f in rec.rglob("*") if f.is_file())
    sig_bytes = (rec / record.SIGNATURE).stat().st_size
    per_measurement = []
    for p in _measurements(rec):
        m = json.loads(p.read_text())
        added = {"challenge": m["challenge"], "output_samples": m["output_samples"],
                 "freivalds": m["correctness"]["freivalds"], "input_health": m["workload"]["input_health"]}
        per_measurement.append(len(json.dumps(added, indent=2, sort_keys=True)))
    print(f"\nsize overhead: signature.json {sig_bytes} B; challenge+output samples+Freivalds+input health "
          f"{per_measurement} B per measurement; record total {total} B")
    assert sig_bytes < 8192 and max(per_measurement) < 8192
