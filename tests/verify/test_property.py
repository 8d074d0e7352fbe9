"""Property-based: random and malformed declarations give a score or a clear error, never a crash."""

from __future__ import annotations

import json

import typer
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from icb_bench.verify.cli import register
from icb_bench.verify.declaration import DeclarationError, parse_declaration
from icb_bench.verify.report import render
from icb_bench.verify.scoring import score

from .conftest import example_dict

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10**6, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["45%", "101%", "1 Tbps", "12 PB", "10 PiB", "2 EFLOPS", "600万", "0.1亿", "6,000,000", "A", "none",
                     "national", "19:00-20:00", "-1", "1e400", "1.5", "0", "true"]),
)
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def _paths(d, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                yield prefix + (k, i)
                if isinstance(item, dict):
                    yield from _paths(item, prefix + (k, i))


PATHS = list(_paths(example_dict()))


def _check(data) -> None:
    try:
        decl = parse_declaration(data)
    except DeclarationError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.path and issue.expected
        assert exc.render()
        return
    card = score(decl)
    assert 0 <= card.total <= 100
    assert card.certified == (all(c.met for c in card.checks) and not card.blocking)
    doc = json.loads(render(card, "json"))
    assert len(doc["indicators"]) == 29
    render(card, "table")
    render(card, "junit")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), junk), min_size=1, max_size=4), st.booleans())
def test_mutated_declarations(changes, delete):
    data = example_dict()
    for path, value in changes:
        target = data
        try:
            for p in path[:-1]:
                target = target[p]
            if delete and isinstance(target, dict):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _check(data)


@settings(max_examples=100, deadline=None)
@given(junk)
def test_arbitrary_documents(doc):
    _check(doc)


valid_values = {
    ("base", "tier"): st.sampled_from(["economic_region", "hub", "provincial", "municipal", "industry"]),
    ("industrial_value", "enterprises_served"): st.integers(0, 100),
    ("industrial_value", "industrial_compute_share"): st.integers(0, 100).map(lambda x: f"{x}%"),
    ("industrial_value", "rack_efficiency"): st.integers(0, 300).map(lambda x: f"{x} GFLOPS/W"),
    ("industrial_value", "rnd_spend"): st.integers(0, 2000).map(lambda x: f"{x}万"),
    ("technical", "pue"): st.decimals(1, 2, places=2).map(str),
    ("technical", "fp16_peak"): st.integers(0, 3000).map(lambda x: f"{x} PFLOPS"),
    ("technical", "racks_total"): st.integers(1, 4000),  # 0 racks for the inventory's devices is a contradiction
    ("technical", "rer"): st.fractions(0, 1).map(lambda f: float(f)),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries(valid_values))
def test_valid_random_declarations_score(values):
    data = example_dict()
    data["technical"]["racks_in_use"] = 1
    for (sec, key), v in values.items():
        data[sec][key] = v
    card = score(parse_declaration(data))
    expected_total = card.sections["A1"] / 2 + card.sections["A2"] * 3 / 10 + card.sections["A3"] / 5
    assert card.total == expected_total
    assert card.sections["A1"] == sum(i.points for i in card.indicators if i.section == "A1")


_app = typer.Typer()
register(_app)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=200), junk.map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_cli_never_tracebacks(tmp_path, text):
    p = tmp_path / "decl.yaml"
    p.write_text(text, encoding="utf-8")
    r = CliRunner().invoke(_app, ["score", str(p), "--format", "json"])
    assert r.exit_code in (0, 1, 2)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output


# ------------------------------------------------------------------ malformed measurement records

from icb_bench.bench.record import RunRecord  # noqa: E402
from icb_bench.verify.measured import verify  # noqa: E402

from .conftest import measurement, rack_aggregate  # noqa: E402

MEASUREMENT_KEYS = list(measurement().keys())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(MEASUREMENT_KEYS), junk), max_size=4),
    st.lists(st.tuples(st.sampled_from(list(rack_aggregate("R", 1.0).keys())), junk), max_size=3),
    st.one_of(st.just(None), junk),
)
def test_malformed_records_never_crash(m_changes, a_changes, aggregates_override):
    m = measurement("g", 0, "NVIDIA H100 80GB HBM3", 700.0)
    for k, v in m_changes:
        m[k] = v
    agg = rack_aggregate("R1", 120.0)
    for k, v in a_changes:
        agg[k] = v
    manifest = {"run_id": "x", "aggregates": [agg] if aggregates_override is None else aggregates_override}
    rec = RunRecord(path=__import__("pathlib").Path("mem"), manifest=manifest, measurements=[m, measurement("a", 0, "Ascend910B3", 250.0, peak=313.0)])
    v = verify(parse_declaration(example_dict()), [rec])
    doc = json.loads(render(v, "json"))
    assert {c["status"] for c in doc["claims"]} <= {"CONFIRMED", "NOT CONFIRMED", "INCONCLUSIVE"}
    render(v, "table")
    render(v, "junit")


def test_overflowing_measurement_gives_json_not_a_crash():
    m = measurement("g", 0, "NVIDIA H100 80GB HBM3", 1.7e308)
    rec = RunRecord(path=__import__("pathlib").Path("mem"), manifest={"run_id": "x", "aggregates": []}, measurements=[m])
    v = verify(parse_declaration(example_dict()), [rec], basis="measured")
    json.loads(render(v, "json"))
    render(v, "table")


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["technical.egress_bandwidth", "technical.fp16_peak", "industrial_value.rnd_spend",
                        "technical.pue", "technical.storage_capacity"]),
       st.integers(300, 500))
def test_huge_values_render(path, digits):
    data = example_dict()
    sec, key = path.split(".")
    data[sec][key] = "9" * digits + ".5"
    _check(data)
