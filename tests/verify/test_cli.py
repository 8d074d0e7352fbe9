"""`bench score` / `bench verify` through Typer: exit codes, JSON contract, JUnit, no tracebacks."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import typer
from typer.testing import CliRunner

from icb_bench.verify.cli import register

from .conftest import (ASCEND, EXAMPLE_COPY, N_ASCEND, N_H100, RackSpec, example_dict, few_racks_dict, write_decl, write_fleet,
                       write_site_for)

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


def _run(app, *args):
    return runner.invoke(app, [str(a) for a in args])


def test_score_certified_exit_0_and_table_labels(app):
    r = _run(app, "score", EXAMPLE_COPY)
    assert r.exit_code == 0, r.output
    assert "FP16算力峰值" in r.output and "FP16 peak" in r.output and "(FP16)" in r.output
    assert "国家工业互联网大数据中心工业智算基地（示例工业智算基地）省级节点" in r.output


def test_score_english(app):
    r = _run(app, "score", EXAMPLE_COPY, "--lang", "en")
    assert r.exit_code == 0 and "FP16 peak compute" in r.output and "FP16算力峰值" not in r.output


def test_score_json_contract(app):
    r = _run(app, "score", EXAMPLE_COPY, "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert (doc["a1"], doc["a2"], doc["a3"], doc["total"], doc["certified"], doc["blocking"]) == (100, 100, 100, 100, True, [])
    assert len(doc["indicators"]) == 29
    for ind in doc["indicators"]:
        assert {"id", "met", "points", "max", "value", "source"} <= set(ind)
        assert ind["source"] in ("declared", "measured", "nominal")
    a27 = next(i for i in doc["indicators"] if i["id"] == "A2.7")
    assert a27["value"] == 1100 and a27["precision"] == "fp16"


def test_score_not_certified_exit_1(app, tmp_path):
    data = example_dict()
    data["industrial_value"]["enterprises_served"] = 3
    r = _run(app, "score", write_decl(tmp_path, data), "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["blocking"] == ["A1.4"] and not doc["certified"]
    r = _run(app, "score", write_decl(tmp_path, data), "--format", "json", "--no-mandatory-block")
    assert r.exit_code == 0 and json.loads(r.stdout)["certified"]


def test_exact_80_through_the_cli(app, tmp_path):
    data = example_dict()
    data["industrial_value"].update(policy_compliant=False, industrial_compute_share="10%", rack_efficiency=10, rnd_spend=1)
    r = _run(app, "score", write_decl(tmp_path, data), "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["total"] == 80 and doc["total_exact"] == "80" and doc["certified"] is False and r.exit_code == 1


def test_score_junit(app, tmp_path):
    data = example_dict()
    data["technical"]["pue"] = 1.3  # equal to the provincial threshold: fails
    r = _run(app, "score", write_decl(tmp_path, data), "--format", "junit")
    assert r.exit_code == 0  # A2 = 85, still certified
    root = ET.fromstring(r.stdout.split("?>", 1)[1])
    failures = [tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert failures == ["A2.12 power usage effectiveness (PUE)"]


def test_score_out_file(app, tmp_path):
    out = tmp_path / "report" / "score.json"
    r = _run(app, "score", EXAMPLE_COPY, "--format", "json", "--out", out)
    assert r.exit_code == 0 and json.loads(out.read_text(encoding="utf-8"))["certified"] is True


def test_bad_declaration_exit_2_no_traceback(app, tmp_path):
    data = example_dict()
    data["technical"]["rer"] = 12
    data["technical"]["racks_in_use"] = 99999
    r = _run(app, "score", write_decl(tmp_path, data))
    assert r.exit_code == 2
    assert "technical.rer" in r.output and "'12%'" in r.output and "technical.racks_in_use" in r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_missing_file_exit_2(app):
    r = _run(app, "score", "/nonexistent.yaml")
    assert r.exit_code == 2 and "Traceback" not in r.output


def _records(tmp_path, h100=701.0, ascend=261.0, **extra):
    """Enough devices for the level-1 rule (30 H100, 260 Ascend) in a fleet record of racks R1 (H100)
    and R2 (Ascend); returns the declaration (20 racks in use, so two rack figures meet the rack rule)."""
    write_fleet(tmp_path / "runs" / "r1", {
        "R1": RackSpec(130.0, devices=N_H100, tflops=lambda i: h100 + (i % 3) - 1, measurement=extra),
        "R2": RackSpec(131.0, devices=N_ASCEND // 5, nodes=5, model=ASCEND, tflops=lambda i: ascend + (i % 3) - 1,
                       measurement=dict(peak=313.0, domestic=True, vendor="Huawei", **extra)),
    })
    return write_decl(tmp_path, few_racks_dict())


def _site_file(tmp_path):
    """The assessor's site file of the records under ``tmp_path/runs`` (``--site``)."""
    from icb_bench.verify.measured import load_records

    return write_site_for(load_records([tmp_path / "runs"]), tmp_path / "site.yaml")


def _plan(tmp_path, racks, level=1):
    from icb_bench.verify.sample_plan import plan_digest

    doc = {"schema": "icb-bench/sample-plan/1", "racks": racks, "level": level, "nonce_sha256": "0" * 64, "models": []}
    doc["plan_sha256"] = plan_digest(doc)
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def test_verify_all_confirmed_exit_0_json(app, tmp_path):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--format", "json", "--site", _site_file(tmp_path))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {c["id"]: c["status"] for c in doc["claims"]} == {"A2.7": "CONFIRMED", "A2.14": "CONFIRMED", "A1.7": "CONFIRMED"}
    assert doc["fp16"]["nominal"] == pytest.approx(1110.5) and doc["fp16"]["precision"] == "fp16"
    sources = {i["id"]: i["source"] for i in doc["indicators"]}
    assert sources["A2.7"] == "nominal" and sources["A1.7"] == "measured" and sources["A1.1"] == "declared"


def test_verify_table_vocabulary(app, tmp_path):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs")
    for word in ("标称算力", "实测算力", "算力达成率", "理论算效", "实测算效", "FP16", "已确认"):
        assert word in r.output, word


def test_verify_measured_basis_not_confirmed_exit_1(app, tmp_path):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--basis", "measured", "--format", "junit",
             "--site", _site_file(tmp_path))
    assert r.exit_code == 1
    root = ET.fromstring(r.stdout.split("?>", 1)[1])
    claims = next(s for s in root.iter("testsuite") if s.get("name") == "claims")
    failed = {tc.get("name").split(" ")[0] for tc in claims.iter("testcase") if tc.find("failure") is not None}
    assert claims.get("failures") == "3" and failed == {"A2.7", "verdict", "certified"}  # the claim, the verdict, certification


def test_verify_bad_results_exit_2(app, tmp_path):
    r = _run(app, "verify", "--allow-unsigned", EXAMPLE_COPY, tmp_path / "nothing-here")
    assert r.exit_code == 2 and "results:" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("opt", [["--tolerance", "1.5"], ["--basis", "declared"], ["--min-efficiency", "-1"]])
def test_verify_bad_options_exit_2(app, tmp_path, opt):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", *opt)
    assert r.exit_code == 2


def test_verify_level_option(app, tmp_path):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--level", "3", "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    h = next(m for m in doc["fp16"]["models"] if m["key"] == "h100-sxm")
    assert doc["level"] == 3 and (h["sampled"], h["required"], h["rule_met"]) == (30, 300, False)
    a27 = next(c for c in doc["claims"] if c["id"] == "A2.7")
    assert a27["status"] == "INCONCLUSIVE" and "30 of 300 NVIDIA H100 SXM5 80GB measured; the rule asks for 300" in a27["reason"]


def test_verify_sample_plan_option(app, tmp_path):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--sample-plan", _plan(tmp_path, ["R1", "R2"]), "--format", "json",
             "--site", _site_file(tmp_path))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["sample_plan"]["racks"] == ["R1", "R2"] and doc["sample_plan"]["not_measured"] == []
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--sample-plan", _plan(tmp_path, ["R1", "R2", "R9"]),
             "--format", "junit", "--lang", "en")
    assert r.exit_code == 1 and "drawn rack(s) not measured: R9" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--sample-plan", "PLAN_BAD"], ["--sample-plan", "schema"]),
    (["--sample-plan", "PLAN_L2", "--level", "1"], ["--level", "differs from the sample plan's level 2"]),
    (["--level", "7"], ["--level", "not one of"]),
    (["--sample-plan", "/nonexistent/plan.json"], ["--sample-plan", "unreadable sample plan"]),
])
def test_verify_bad_plan_or_level_exit_2(app, tmp_path, args, words):
    decl = _records(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "other", "racks": ["R1"]}), encoding="utf-8")
    subst = {"PLAN_BAD": bad, "PLAN_L2": _plan(tmp_path, ["R1", "R2"], level=2)}
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", *[subst.get(a, a) for a in args])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert all(w in r.output for w in words), r.output



def test_verify_without_site_cannot_confirm_the_racks(app, tmp_path):
    decl = _records(tmp_path)
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--format", "json")
    assert r.exit_code == 1, r.output
    a17 = next(c for c in json.loads(r.stdout)["claims"] if c["id"] == "A1.7")
    assert a17["status"] == "INCONCLUSIVE" and "not checked against a site file" in a17["reason"]


def test_verify_bad_site_file_is_one_line_exit_2(app, tmp_path):
    decl = _records(tmp_path)
    bad = tmp_path / "site.yaml"
    bad.write_text("schema: icb-bench/site/1\nsite: s\nracks: []\n", encoding="utf-8")
    r = _run(app, "verify", "--allow-unsigned", decl, tmp_path / "runs", "--site", bad)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0 and "--site" in r.output and "racks" in r.output
