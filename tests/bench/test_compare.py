"""`bench compare`: direction, thresholds, missing figures, power scopes, formats and exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from icb_bench.bench import record
from icb_bench.bench.cli import app
from icb_bench.bench.compare import CompareError, compare, parse_threshold
from report_records import measurement, write_run


def _run(tmp_path, name, fp16=(700.0, 702.0, 698.0), fp32=(50.0, 50.0, 50.0), gpw=1000.0, **kw):
    ms = [measurement("g", i, t, gflops_per_w=gpw, **kw) for i, t in enumerate(fp16)]
    ms += [measurement("g", i, t, dtype="fp32", gflops_per_w=gpw / 10, **kw) for i, t in enumerate(fp32)]
    return write_run(tmp_path / name, ms)


def _cmp(tmp_path, base, new, threshold=0.05):
    return compare(record.find_runs([base]), record.find_runs([new]), threshold)


def _row(c, dtype, metric):
    return next(r for r in c.rows if r.dtype == dtype and r.metric == metric)


def test_a_drop_beyond_the_threshold_is_a_regression(tmp_path):
    base = _run(tmp_path, "base")
    new = _run(tmp_path, "new", fp16=(630.0, 630.0, 631.0))  # median 630 vs 700: −10 %
    c = _cmp(tmp_path, base, new)
    r = _row(c, "fp16", "tflops")
    assert r.status == "regression" and r.change_rel == pytest.approx(-0.1) and c.exit_code == 1
    assert _row(c, "fp32", "tflops").status == "ok"


def test_higher_is_better_so_a_rise_is_an_improvement(tmp_path):
    c = _cmp(tmp_path, _run(tmp_path, "base"), _run(tmp_path, "new", fp16=(800.0,) * 3, gpw=1200.0))
    assert _row(c, "fp16", "tflops").status == "improved" and _row(c, "fp16", "gflops_per_w").status == "improved"
    assert c.exit_code == 0


def test_within_the_threshold_passes_and_the_headline_is_the_median(tmp_path):
    # one slow device of three does not move the median: 700 → 690 is −1.4 %
    new = _run(tmp_path, "new", fp16=(690.0, 300.0, 695.0))
    c = _cmp(tmp_path, _run(tmp_path, "base"), new)
    r = _row(c, "fp16", "tflops")
    assert r.baseline == 700.0 and r.new == 690.0 and r.status == "ok"
    assert _cmp(tmp_path, tmp_path / "base", new, threshold=0.01).exit_code == 1


def test_efficiency_regression_alone_fails(tmp_path):
    c = _cmp(tmp_path, _run(tmp_path, "base"), _run(tmp_path, "new", gpw=900.0))
    assert _row(c, "fp16", "gflops_per_w").status == "regression" and _row(c, "fp16", "tflops").status == "ok"


def test_a_missing_precision_fails_and_a_new_one_is_listed(tmp_path):
    base = _run(tmp_path, "base")
    new = write_run(tmp_path / "new", [measurement("g", 0, 700.0), measurement("g", 0, 900.0, dtype="bf16")])
    c = _cmp(tmp_path, base, new)
    assert _row(c, "fp32", "tflops").status == "missing" and _row(c, "bf16", "tflops").status == "new"
    assert c.exit_code == 1


def test_different_power_scopes_are_not_compared(tmp_path):
    c = _cmp(tmp_path, _run(tmp_path, "base"), _run(tmp_path, "new", gpw=500.0, power_scope="node"))
    r = _row(c, "fp16", "gflops_per_w")
    assert r.status == "not-comparable" and "device vs node" in r.note and c.exit_code == 0


def test_shapes_are_shown(tmp_path):
    c = _cmp(tmp_path, _run(tmp_path, "base"), _run(tmp_path, "new", shape=16384))
    r = _row(c, "fp16", "tflops")
    assert r.shapes_baseline == ("8192x8192x8192",) and r.shapes_new == ("16384x16384x16384",) and "shapes differ" in r.note


def test_failed_devices_do_not_count(tmp_path):
    new = write_run(tmp_path / "new", [measurement("g", 0, 700.0), measurement("g", 1, 1.0, status="failed", valid=False)])
    assert _row(_cmp(tmp_path, _run(tmp_path, "base"), new), "fp16", "tflops").new == 700.0


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("12.5 %", 0.125), ("0.05", 0.05), ("0", 0.0)])
def test_threshold_parsing(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "-5%", "100%", "1.5", "nan"])
def test_bad_thresholds(text):
    with pytest.raises(CompareError, match="--fail-under"):
        parse_threshold(text)


def test_nothing_in_common_is_bad_input(tmp_path):
    other = write_run(tmp_path / "other", [measurement("g", 0, 300.0, model="Ascend910B3", peak=313.0)])
    with pytest.raises(CompareError, match="share no device model and precision"):
        _cmp(tmp_path, _run(tmp_path, "base"), other)


def test_cli_exit_codes_and_formats(tmp_path):
    base, slow = _run(tmp_path, "base"), _run(tmp_path, "slow", fp16=(600.0,) * 3)
    runner = CliRunner()
    r = runner.invoke(app, ["compare", str(base), str(base)])
    assert r.exit_code == 0 and "no regression" in r.output
    r = runner.invoke(app, ["compare", str(base), str(slow), "--format", "json"])
    doc = json.loads(r.output)
    assert r.exit_code == 1 and doc["schema"] == "icb-bench/compare/1" and doc["failures"] == 1
    r = runner.invoke(app, ["compare", str(base), str(slow), "--format", "junit", "--fail-under", "20%"])
    suite = ET.fromstring(r.output).find("testsuite")
    assert r.exit_code == 0 and suite.get("failures") == "0" and suite.get("tests") == "4"
    r = runner.invoke(app, ["compare", str(base), str(slow), "-q"])
    assert r.exit_code == 1 and r.output == ""
    r = runner.invoke(app, ["compare", str(base), str(tmp_path / "nope")])
    assert r.exit_code == 2 and r.output.startswith("error:") and r.output.count("\n") == 1
    r = runner.invoke(app, ["compare", str(base), str(slow), "--fail-under", "lots"])
    assert r.exit_code == 2 and "--fail-under" in r.output


def test_committed_references_compare(tmp_path):
    """The two committed H100 references (same card, later code): within 5 %."""
    from report_records import REPO

    ref = REPO / "results" / "reference"
    c = compare(record.find_runs([ref / "2026-11-26-h100-sxm" / "reference"]),
                record.find_runs([ref / "2026-11-26-h100-sxm-final" / "reference"]))
    assert c.exit_code == 0 and {r.dtype for r in c.rows} == {"fp16", "fp32"}
