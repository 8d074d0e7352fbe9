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
