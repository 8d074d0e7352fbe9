"""`bench verify` checks every record's digests and signature: unsigned records only with
--allow-unsigned, an edited record never, and the report says who signed."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from icb_bench.bench.sign import keygen, load_private_key, sign_record
from icb_bench.verify.cli import register

from .conftest import EXAMPLE_COPY, H100, measurement, write_run

runner = CliRunner()
app = typer.Typer()
register(app)


def _record(tmp_path):
    write_run(tmp_path / "r", [measurement("node01", 0, H100, 700.0)])
    return tmp_path / "r"


def _verify(*args):
    return runner.invoke(app, ["verify", str(EXAMPLE_COPY), *map(str, args), "--format", "json"])


def test_an_unsigned_record_is_refused_unless_allowed(tmp_path):
    rec = _record(tmp_path)
    res = _verify(rec)
    assert res.exit_code == 2
    assert "unsigned" in res.output and "--allow-unsigned" in res.output and "Traceback" not in res.output
    ok = _verify(rec, "--allow-unsigned")
    assert ok.exit_code in (0, 1)
    notes = json.loads(ok.stdout)["notes"]
    assert any("unsigned, accepted with --allow-unsigned; file digests hold" in n for n in notes)


def test_a_signed_record_is_accepted_and_its_signer_named(tmp_path):
    rec = _record(tmp_path)
    key = keygen(tmp_path / "assessor.key")
    sign_record(rec, load_private_key(key.private_path), signer="assessor-01")
    res = _verify(rec)
    assert res.exit_code in (0, 1), res.output
    assert any(f"signed by assessor-01 (key {key.fingerprint})" in n for n in json.loads(res.stdout)["notes"])
    # pinned to another key: refused
    other = keygen(tmp_path / "other.key")
    assert _verify(rec, "--trusted-key", other.fingerprint).exit_code == 2
    assert _verify(rec, "--trusted-key", key.fingerprint).exit_code in (0, 1)


def test_a_record_edited_by_one_byte_is_refused(tmp_path):
    rec = _record(tmp_path)
    m = next((rec / "measurements").glob("*.json"))
    data = bytearray(m.read_bytes())
    i = data.index(b"700")
    data[i] = ord("9")  # 700 -> 900 TFLOPS
    m.write_bytes(bytes(data))
    res = _verify(rec, "--allow-unsigned")
    assert res.exit_code == 2 and m.name in res.output
