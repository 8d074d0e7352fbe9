"""`draw_sample` / `bench sample`: whole racks drawn from the assessor's nonce, deterministic, blind
to the file's rack order, and meeting the sampling rules for every device model."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import typer
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from icb_bench.bench.cli_sample import register
from icb_bench.bench.sample import SampleError, draw_sample, load_sample_plan, rack_order
from icb_bench.bench.site import Site, parse_site
from icb_bench.verify.sampling import devices_required, load_sampling_rules, racks_required

EXAMPLE = Path(__file__).resolve().parents[2] / "bench" / "data" / "site.example.yaml"


def site_data(layout: list[list[tuple[str, int]]], name: str = "t") -> dict:
    """layout: per rack, per node (model, count)."""
    return {
        "schema": "icb-bench/site/1",
        "site": name,
        "racks": [
            {"name": f"R{i:03d}",
             "nodes": [{"name": f"R{i:03d}-n{j}", "devices": {"model": m, "count": c}} for j, (m, c) in enumerate(nodes)]}
            for i, nodes in enumerate(layout)
        ],
    }


def uniform(racks: int, nodes: int = 2, model_of=lambda i: "A", count: int = 8) -> Site:
    return parse_site(site_data([[(model_of(i), count)] * nodes for i in range(racks)]))


# ----------------------------------------------------------------------------- determinism


def test_same_nonce_same_racks_and_file_order_irrelevant():
    data = site_data([[("A", 8)] * 2 for _ in range(40)])
    plan = draw_sample(parse_site(data), "nonce-1")
    assert draw_sample(parse_site(data), "nonce-1").racks == plan.racks
    for seed in range(5):
        shuffled = dict(data, racks=random.Random(seed).sample(data["racks"], len(data["racks"])))
        again = draw_sample(parse_site(shuffled), "nonce-1")
        assert again.racks == plan.racks and again.nodes == plan.nodes


def test_rack_order_is_the_hmac_order():
    import hashlib
    import hmac

    site = uniform(10)
    expected = sorted((r.name for r in site.racks), key=lambda n: hmac.new(b"k", n.encode(), hashlib.sha256).digest())
    assert [r.name for r in rack_order(site.racks, "k")] == expected


def test_different_nonces_give_different_draws_uniformly():
    """Over 400 nonces every rack of a 40-rack site comes first about equally often (a distribution
    check, deterministic because the nonces are fixed), and almost every draw differs."""
    site = uniform(40)
    n = 400
    plans = [draw_sample(site, f"assessor-{i}") for i in range(n)]
    assert all(len(p.racks) == 8 for p in plans)  # 15 nodes at 2 a rack (more than 1/10 of 40 racks)
    assert len({p.racks for p in plans}) >= n - 2
    first = Counter(p.racks[0] for p in plans)
    assert len(first) >= 35  # 40 racks, 10 expected each: seeing fewer than 35 of them is ~1e-4 likely
    chi2 = sum((first[r.name] - n / 40) ** 2 / (n / 40) for r in site.racks)
    assert chi2 < 90  # 39 degrees of freedom: the 99.999th percentile is about 87
    drawn = Counter(r for p in plans for r in p.racks)  # every rack's chance of being measured is 8/40
    assert min(drawn.values()) > 40 and max(drawn.values()) < 130


# ----------------------------------------------------------------------------- the rules


def check_rules(site: Site, nonce: str, level: int | None) -> None:
    plan = draw_sample(site, nonce, level)
    rules = load_sampling_rules()
    lv = plan.level
    racks = {r.name: r for r in site.racks}
    drawn = [racks[n] for n in plan.racks]
    need_r, need_n = racks_required([len(r.nodes) for r in site.racks], lv)
    assert (plan.racks_required, plan.nodes_required) == (need_r, need_n)
    assert len(drawn) >= need_r and sum(len(r.nodes) for r in drawn) >= need_n
    counts: Counter = Counter()
    for r in drawn:
        counts.update(r.devices_by_model())
    for m in plan.models:
        assert m.site_devices == site.models()[m.model]
        assert m.required == devices_required(m.site_devices, lv)
        assert m.sample_devices == counts[m.model] >= m.required
    assert {m.model for m in plan.models} == set(site.models())
    # drawn in nonce order; every rack skipped before the last drawn one held only models that were met
    order = [r.name for r in rack_order(site.racks, nonce)]
    pos = [order.index(n) for n in plan.racks]
    assert pos == sorted(pos)
    for name in order[: pos[-1]]:
        if name not in plan.racks:
            assert all(counts[m] >= devices_required(site.models()[m], lv) for m in racks[name].devices_by_model())
    # nothing drawn beyond need: without the last rack some requirement fails
    rest = drawn[:-1]
    short: Counter = Counter()
    for r in rest:
        short.update(r.devices_by_model())
    assert (len(rest) < need_r or sum(len(r.nodes) for r in rest) < need_n
            or any(short[m] < devices_required(c, lv) for m, c in site.models().items()))
    assert rules.level(lv).fraction < 1 or len(plan.racks) == len(site.racks)


MODELS = ["NVIDIA H100", "Ascend 910B", "MLU370", "BR104"]
layouts = st.lists(
    st.lists(st.tuples(st.sampled_from(MODELS), st.integers(1, 8)), min_size=1, max_size=4),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(layout=layouts, nonce=st.text(min_size=1, max_size=20).filter(str.strip), level=st.sampled_from([None, 1, 2, 3]))
def test_rules_hold_for_every_model_on_random_sites(layout, nonce, level):
    check_rules(parse_site(site_data(layout)), nonce, level)


def test_rare_model_is_reached_by_stratified_top_up():
    # 200 racks of A and one rack of C: at Level 1 the draw must reach the C rack, wherever it sorts
    site = uniform(201, model_of=lambda i: "C" if i == 77 else "A")
    for i in range(20):
        plan = draw_sample(site, f"n{i}")
        assert "R077" in plan.racks
        c = next(m for m in plan.models if m.model == "C")
        assert c.sample_devices == 16 >= c.required == 2
        check_rules(site, f"n{i}", None)


def test_level_3_takes_every_rack_and_level_defaults():
    site = uniform(30)
    assert set(draw_sample(site, "x", 3).racks) == {r.name for r in site.racks}
    assert draw_sample(site, "x").level == load_sampling_rules().default_level
    data = site_data([[("A", 8)]] * 30)
    data["level"] = 2
    assert draw_sample(parse_site(data), "x").level == 2


@pytest.mark.parametrize("nonce", ["", "   ", "x" * 1025])
def test_bad_nonce(nonce):
    with pytest.raises(SampleError, match=r"^--challenge: nonce: "):
        draw_sample(uniform(3), nonce)


def test_unknown_level():
    with pytest.raises(SampleError, match=r"^--level: level: 7 — expected a level of the sampling rules"):
        draw_sample(uniform(3), "x", 7)


# ----------------------------------------------------------------------------- plan files


def test_plan_round_trip_and_checks(tmp_path):
    site = uniform(40)
    plan = draw_sample(site, "abc", created_at="2025-01-01T00:00:00.000Z")
    p = tmp_path / "plan.json"
    p.write_text(plan.to_json(), encoding="utf-8")
    loaded = load_sample_plan(p)
    assert loaded == plan and loaded.plan_sha256 == plan.digest()
    assert plan.covers(list(plan.racks)) == (True, f"all {len(plan.racks)} drawn racks measured")
    ok, why = plan.covers(plan.racks[1:])
    assert not ok and why == f"drawn racks not measured: {plan.racks[0]}"
    spare = next(r.name for r in site.racks if r.name not in plan.racks)
    ok, why = plan.covers([*plan.racks, spare])
    assert not ok and spare in why and "not drawn" in why
    assert plan.matches(site)[0]
    other = uniform(41)
    assert not plan.matches(other)[0]


@pytest.mark.parametrize("edit,expected", [
    (lambda d: d.update(racks=[*d["racks"][:-1], next(f"R{i:03d}" for i in range(40) if f"R{i:03d}" not in d["racks"])]),
     "plan_sha256: "),
    (lambda d: d.update(nonce="other"), "nonce_sha256: "),
    (lambda d: d.update(level="1"), "level: '1' — expected a whole number"),
    (lambda d: d.update(extra=1), "extra: 1 — expected no such field"),
    (lambda d: d.pop("racks"), "racks: (missing)"),
])
def test_tampered_or_malformed_plan_refused(tmp_path, edit, expected):
    d = draw_sample(uniform(40), "abc").to_dict()
    edit(d)
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(SampleError) as exc:
        load_sample_plan(p)
    assert any(line.startswith(f"{p}: {expected}") for line in exc.value.render().splitlines()), exc.value.render()


def test_plan_not_json(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text("{", encoding="utf-8")
    with pytest.raises(SampleError, match="a JSON sample plan"):
        load_sample_plan(p)
    with pytest.raises(SampleError, match="a readable sample-plan file"):
        load_sample_plan(tmp_path / "none.json")


# ----------------------------------------------------------------------------- CLI

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)

    @a.command("noop")
    def _noop() -> None:  # a second command keeps Typer's sub-command form: `app sample ...`
        pass

    return a


def test_cli_json_contract(app, tmp_path):
    out = tmp_path / "plans" / "plan.json"
    r = runner.invoke(app, ["sample", str(EXAMPLE), "--challenge", "abc", "--format", "json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["schema"] == "icb-bench/sample-plan/1" and d["site"] == "示例工业智算基地" and d["level"] == 1
    assert set(d["racks"]) <= {"R01", "R02", "R03", "R04"} and len(d["racks"]) == len(set(d["racks"]))
    models = {m["model"]: m for m in d["models"]}
    assert set(models) == {"NVIDIA H100 80GB HBM3", "Ascend 910B"}
    for m in models.values():
        assert m["site_devices"] == 32 and m["sample_devices"] >= m["required"] >= 1
    assert d["nodes_required"] == 8 and len(d["nodes"]) == 8  # 8 nodes < 15: all of them
    assert load_sample_plan(out).to_dict() == d


def test_cli_table_has_both_languages(app):
    r = runner.invoke(app, ["sample", str(EXAMPLE), "--challenge", "abc"])
    assert r.exit_code == 0, r.output
    for label in ("抽样方案 sample plan", "机柜", "rack", "型号覆盖 per-model coverage", "required", "plan sha256"):
        assert label in r.stdout
    assert "meter-log 0.5%" in r.stdout


def test_cli_errors_exit_2_one_line_each(app, tmp_path):
    bad = tmp_path / "site.yaml"
    d = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    d["racks"][0]["nodes"][0]["devices"]["count"] = -1
    d["racks"][1]["pdus"][0]["community"] = "public"
    bad.write_text(yaml.safe_dump(d, allow_unicode=True), encoding="utf-8")
    cases = {
        (str(bad), "abc"): [f"error: {bad}: racks[0].nodes[0].devices.count: -1", f"error: {bad}: racks[1].pdus[0].community: (value not shown)"],
        (str(EXAMPLE), " "): ["error: --challenge: nonce: ' '"],
        (str(tmp_path / "none.yaml"), "abc"): ["error: "],
    }
    for (path, nonce), starts in cases.items():
        r = runner.invoke(app, ["sample", path, "--challenge", nonce])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and "Traceback" not in r.output and len(lines) == len(starts), r.output
        for line, start in zip(lines, starts):
            assert line.startswith(start), line
    r = runner.invoke(app, ["sample", str(EXAMPLE), "--challenge", "abc", "--level", "4"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --level: level: 4")
    r = runner.invoke(app, ["sample", str(EXAMPLE), "--challenge", "abc", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.stderr


def test_bench_app_has_sample():
    from icb_bench.bench.cli import app as bench_app

    r = runner.invoke(bench_app, ["sample", "--help"])
    assert r.exit_code == 0 and "--challenge" in r.stdout
