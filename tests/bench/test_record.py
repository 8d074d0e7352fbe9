import json
import os
import re

import pytest

from icb_bench.bench import record


def test_round_trip_and_file_index(tmp_path):
    run = tmp_path / "run"
    w = record.RecordWriter(run, {"run_id": "r1", "plan": {"dtypes": ["fp16"]}})
    w.start()
    record.write_measurement(run, {"id": "h-d0-fp16", "host": "h", "device": 0, "dtype": "fp16", "tflops": 1.5})
    rel = record.write_trace(run, "h-d0-fp16", [{"t_s": 0.0, "power_w": 100.0}, {"t_s": 0.05, "power_w": 110.0}])
    w.finish("complete", aggregates=[{"dtype": "fp16"}])
    rec = record.load_run(run)
    assert rec.status == "complete" and rec.run_id == "r1"
    assert rec.measurements[0]["tflops"] == 1.5
    assert rec.measurements[0]["schema"] == record.MEASUREMENT_SCHEMA
    df = record.read_trace(run, rel)
    assert list(df["power_w"]) == [100.0, 110.0]
    paths = {f["path"] for f in rec.manifest["files"]}
    assert paths == {"measurements/h-d0-fp16.json", rel}
    assert all(len(f["sha256"]) == 64 for f in rec.manifest["files"])


def test_partial_record_is_readable(tmp_path):
    run = tmp_path / "run"
    w = record.RecordWriter(run, {"run_id": "r2"})
    w.start()
    record.write_measurement(run, {"id": "a", "device": 0, "dtype": "fp16"})
    rec = record.load_run(run)
    assert rec.status == "running" and len(rec.measurements) == 1


def test_refuses_existing_record(tmp_path):
    record.RecordWriter(tmp_path, {}).start()
    with pytest.raises(record.RecordError, match="already holds a record"):
        record.RecordWriter(tmp_path, {}).start()


def test_unknown_schema_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "something/9"}))
    with pytest.raises(record.RecordError, match="schema 'something/9'"):
        record.load_run(tmp_path)


def test_missing_record(tmp_path):
    with pytest.raises(record.RecordError, match="not a bench run record"):
        record.load_run(tmp_path)
    with pytest.raises(record.RecordError, match="no such record"):
        record.find_runs([tmp_path / "nope"])


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    record.atomic_write_json(p, {"a": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        record.atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]  # no temporary left behind


def test_nan_is_rejected_not_written(tmp_path):
    with pytest.raises(ValueError):
        record.atomic_write_json(tmp_path / "n.json", {"x": float("nan")})


def test_find_runs_below_folder(tmp_path):
    for name in ("a", "b"):
        record.RecordWriter(tmp_path / name, {"run_id": name}).start()
    assert [r.run_id for r in record.find_runs([tmp_path])] == ["a", "b"]


@pytest.mark.parametrize("manifest_patch, measurement, needle", [
    (None, [1, 2], "the measurement is a JSON list, expected an object"),
    (None, "x", "the measurement is a JSON str"),
    ({"aggregates": {"a": 1}}, None, "'aggregates' is a JSON dict, expected an array"),
    ({"host": "h"}, None, "'host' is a JSON str, expected an object"),
    (None, {"id": "a", "device": "0"}, "'device' is '0', expected an integer"),
    (None, {"id": "a", "device": True}, "'device' is True, expected an integer"),
    (None, {"id": "a", "device": 0, "tflops": "fast"}, "'tflops' is 'fast', expected a number"),
])
def test_structurally_wrong_records_are_record_errors(tmp_path, manifest_patch, measurement, needle):
    run = tmp_path / "run"
    w = record.RecordWriter(run, {"run_id": "r"})
    w.start()
    if manifest_patch:
        w.update(**manifest_patch)
    if measurement is not None:
        (run / "measurements" / "m.json").write_text(json.dumps(measurement))
    with pytest.raises(record.RecordError, match=re.escape(needle)):
        record.load_run(run)


def test_manifest_that_is_not_an_object(tmp_path):
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(record.RecordError, match="the manifest is a JSON list"):
        record.load_run(tmp_path)


def test_null_aggregates_read_as_empty(tmp_path):
    record.RecordWriter(tmp_path, {"aggregates": None}).start()
    assert record.load_run(tmp_path).aggregates == []


# ------------------------------------------------------------------ hostile records (issue 7, fuzzing)


def _record(tmp_path, measurements=()):
    run = tmp_path / "run"
    w = record.RecordWriter(run, {"run_id": "r"})
    w.start()
    for m in measurements:
        record.write_measurement(run, m)
    w.finish("complete")
    return run


def test_a_fifo_is_refused_not_read(tmp_path):
    """A FIFO in place of a file hung `bench show` and `bench verify` forever."""
    run = _record(tmp_path)
    os.mkfifo(run / "measurements" / "m.json")
    with pytest.raises(record.RecordError, match="not a regular file"):
        record.load_run(run)
    (run / "manifest.json").unlink()
    os.mkfifo(run / "manifest.json")
    with pytest.raises(record.RecordError, match="not a regular file"):
        record.load_run(run)


def test_a_symlink_to_dev_zero_is_refused(tmp_path):
    """A symlink to /dev/zero read until memory ran out."""
    run = _record(tmp_path)
    os.symlink("/dev/zero", run / "measurements" / "m.json")
    with pytest.raises(record.RecordError, match="symbolic link"):
        record.load_run(run)


def test_measurements_linked_from_outside_do_not_count(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.json").write_text(json.dumps({"id": "x", "device": 0, "dtype": "fp16", "tflops": 900.0}))
    run = _record(tmp_path)
    os.symlink(outside / "x.json", run / "measurements" / "x.json")
    with pytest.raises(record.RecordError, match="symbolic link"):
        record.load_run(run)
    os.unlink(run / "measurements" / "x.json")
    os.rmdir(run / "measurements")
    os.symlink(outside, run / "measurements")
    with pytest.raises(record.RecordError, match="symbolic link"):
        record.load_run(run)


def test_sizes_are_bounded_before_reading(tmp_path, monkeypatch):
    run = _record(tmp_path, [{"id": "a", "device": 0, "dtype": "fp16", "pad": "x" * 5000}])
    monkeypatch.setattr(record, "MAX_MEASUREMENT_BYTES", 4096)
    with pytest.raises(record.RecordError, match=r"bytes, more than the 4096"):
        record.load_run(run)


@pytest.mark.parametrize("text, needle", [
    ("[" * 2000 + "]" * 2000, "nested more than 64 deep"),
    ('{"a": ' * 70 + "1" + "}" * 70, "nested more than 64 deep"),
    ('{"id": "a", "tflops": NaN}', "NaN is not a JSON number"),
    ('{"id": "a", "tflops": Infinity}', "Infinity is not a JSON number"),
    ('{"id": "a", "tflops": 1e400}', "beyond the range of a double"),
    ('{"id": "a", "device": ' + "9" * 4301 + "}", "an integer of 4301 digits"),
    (b'{"id": "\xff"}', "not UTF-8"),
])
def test_bad_json_is_one_record_error(tmp_path, text, needle):
    run = _record(tmp_path)
    data = text if isinstance(text, bytes) else text.encode()
    (run / "measurements" / "m.json").write_bytes(data)
    with pytest.raises(record.RecordError, match=re.escape(needle)):
        record.load_run(run)


def test_device_null_is_read_not_a_traceback(tmp_path):
    run = _record(tmp_path, [{"id": "a", "device": None, "dtype": "fp16"}, {"id": "b", "device": 1, "dtype": "fp16"}])
    assert [m["id"] for m in record.load_run(run).measurements] == ["a", "b"]


@pytest.mark.parametrize("shard, needle", [(".", "is the record itself"), ("nodes/../..", "not a relative path inside"),
                                           ("/etc", "not a relative path inside")])
def test_fleet_parts_stay_strictly_inside(tmp_path, shard, needle):
    run = tmp_path / "fleet"
    w = record.RecordWriter(run, {"run_id": "f", "kind": "fleet", "nodes": [{"name": "n", "shard": shard}]})
    w.start()
    with pytest.raises(record.RecordError, match=re.escape(needle)):
        record.load_run(run)


def test_a_part_listed_twice_is_refused(tmp_path):
    run = tmp_path / "fleet"
    nodes = [{"name": "n", "shard": "nodes/n"}, {"name": "n2", "shard": "nodes/n"}]
    w = record.RecordWriter(run, {"run_id": "f", "kind": "fleet", "nodes": nodes})
    w.start()
    record.RecordWriter(run / "nodes" / "n", {"run_id": "n"}).start()
    with pytest.raises(record.RecordError, match="listed twice"):
        record.load_run(run)


def test_read_record_file_and_digest(tmp_path):
    run = _record(tmp_path, [{"id": "a", "device": 0, "dtype": "fp16"}])
    rel = "measurements/a.json"
    assert record.record_file_sha256(run, rel) == record.sha256_file(run / rel)
    with pytest.raises(record.RecordError, match="not a relative path inside"):
        record.record_file_sha256(run, "../x")


def test_bench_show_json_is_strict_and_hostile_records_exit_2(tmp_path):
    """`bench show --json` printed NaN/Infinity; a FIFO hung it; both now: strict JSON, or one error line."""
    from typer.testing import CliRunner

    from icb_bench.bench.cli import app

    run = tmp_path / "run"
    w = record.RecordWriter(run, {"run_id": "r"})
    w.start()  # still `running`: bench show computes node aggregates from what is on disk
    for d in (0, 1):
        record.write_measurement(run, {"id": f"h-d{d}-fp16", "host": "h", "device": d, "dtype": "fp16", "valid": True,
                                       "tflops": 1.5e308, "energy_j": 1e-300, "power_w": 1.0, "flops_total": 1e300})
    res = CliRunner().invoke(app, ["show", str(run), "--json"])
    assert res.exit_code == 0, res.output
    json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"{c} in bench show --json"))
    os.mkfifo(run / "measurements" / "z.json")
    res = CliRunner().invoke(app, ["show", str(run), "--json"])
    assert res.exit_code == 2 and "not a regular file" in res.output and "Traceback" not in res.output
