"""Fuzzing with a fixed budget (issue 7, part 6): declarations and records through the CLI.

Each example must end in a result (exit 0 or 1, strict JSON) or exit 2 with exactly one `error:`
line — never a traceback, never a hang (an alarm fails the example after a generous bound; the
machine is shared, so this bounds runaway work such as building 10**100000000, not speed).
Deterministic: ``derandomize=True`` and a fixed ``max_examples``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import typer
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from icb_bench.verify.cli import register

from .conftest import RackSpec, example_dict, few_racks_dict, measurement, write_fleet, write_run
from .test_bad_input import hang_guard as bounded

runner = CliRunner()
_app = typer.Typer()
register(_app)
BUDGET = settings(max_examples=200, derandomize=True, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _outcome(res) -> str:
    """'result' or 'error'; fails on a traceback, an uncaught exception or a malformed error."""
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code == 2:
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and res.stderr.startswith("error: "), res.stderr
        return "error"
    assert res.exit_code in (0, 1), res.output
    json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON output"))
    return "result"


# ------------------------------------------------------------------------------ declarations

NASTY_TEXT = ["9" * 4301, "1e5000 PB", "1e100000000", "１２０", "1e400 PFLOPS", "150 TFLOPS/W", "-0", "NaN", ".inf",
              "0x1F", "1_000_000", "1,2,3", "٣", "1e-400", "100%%", "∞", "12 PiB", "2 EFLOPS", "600万", "\x00", "",
              "[" * 300, "&a [*a]", "!!python/object:os.system", "*x", "~", "yes", "2024-01-01", "1" * 60]


def _paths(d, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))


PATHS = list(_paths(example_dict()))
scalar = st.one_of(st.sampled_from(NASTY_TEXT), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=12), st.booleans(), st.none())


@BUDGET
@given(st.lists(st.tuples(st.sampled_from(PATHS), scalar, st.booleans()), min_size=1, max_size=4))
def test_fuzzed_declarations(tmp_path, changes):
    data = example_dict()
    raw_lines = []
    for path, value, as_raw in changes:
        obj = data
        for part in path[:-1]:
            obj = obj.setdefault(part, {}) if isinstance(obj.get(part), dict) else obj
        if as_raw and isinstance(value, str):  # spliced into the YAML text as written (tags, aliases, digits)
            obj[path[-1]] = f"__RAW{len(raw_lines)}__"
            raw_lines.append(value)
        else:
            obj[path[-1]] = value
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    for i, raw in enumerate(raw_lines):
        text = text.replace(f"__RAW{i}__", raw.replace("\n", " "))
    p = tmp_path / "d.yaml"  # rewritten by every example
    p.write_text(text, encoding="utf-8")
    with bounded():
        event(_outcome(runner.invoke(_app, ["score", str(p), "--format", "json"])))


# ------------------------------------------------------------------------------ records


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A node run and a fleet run (two racks), and a declaration, written once and copied per example."""
    root = tmp_path_factory.mktemp("fuzz-base")
    write_run(root / "runs" / "node", [measurement("g", i, "NVIDIA H100 80GB HBM3", 700.0) for i in range(3)])
    write_fleet(root / "runs" / "fleet", {"R1": RackSpec(130.0), "R2": RackSpec(128.0)})
    decl = root / "decl.yaml"
    decl.write_text(yaml.safe_dump(few_racks_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    files = sorted(str(p.relative_to(root / "runs")) for p in (root / "runs").rglob("*") if p.is_file())
    return root, decl, files


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=10), st.sampled_from(["ok", "complete", "assessment", "fp16", "rack", "fleet", "nodes/../.."])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
RAW = [b"NaN", b"[" * 2000 + b"]" * 2000, b'{"x": ' + b"9" * 4301 + b"}", b"\xff\xfe", b"", b'{"schema": "icb-bench/record/1"',
       b'{"tflops": Infinity}', b'{"a": 1e400}', b"null", b"[]"]


def _json_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _json_paths(v, prefix + (i,))


def _set(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def _mutate(target: Path, kind: str, data, pick: int, outside: Path) -> None:
    if kind == "json" and target.suffix == ".json":
        try:
            doc = json.loads(target.read_text(encoding="utf-8"))
        except (ValueError, RecursionError):  # already mutated into something that is not JSON
            return
        paths = list(_json_paths(doc))
        doc = _set(doc, paths[pick % len(paths)], data)
        target.write_text(json.dumps(doc), encoding="utf-8")
    elif kind == "raw":
        target.write_bytes(RAW[pick % len(RAW)])
    elif kind == "truncate":
        content = target.read_bytes()
        target.write_bytes(content[: pick % (len(content) + 1)])
    elif kind == "fifo":
        target.unlink()
        os.mkfifo(target)
    elif kind == "zero":
        target.unlink()
        os.symlink("/dev/zero", target)
    elif kind == "outside":
        target.unlink()
        os.symlink(outside, target)
    elif kind == "dir":
        target.unlink()
        target.mkdir()
    elif kind == "delete":
        target.unlink()


@BUDGET
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["json", "json", "json", "raw", "truncate", "fifo", "zero",
                                                                  "outside", "dir", "delete"]), junk, st.integers(0, 10**6)),
                min_size=1, max_size=3))
def test_fuzzed_records(tmp_path, base, mutations):
    root, decl, files = base
    work = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: hypothesis reuses tmp_path
    runs = work / "runs"
    shutil.copytree(root / "runs", runs, symlinks=True)
    outside = work / "outside.json"
    outside.write_text(json.dumps(measurement("x", 9, "NVIDIA H100 80GB HBM3", 980.0)), encoding="utf-8")
    for which, kind, data, pick in mutations:
        target = runs / files[which % len(files)]
        if target.is_file() and not target.is_symlink():
            _mutate(target, kind, data, pick, outside)
    try:
        with bounded():
            event(_outcome(runner.invoke(_app, ["verify", "--allow-unsigned", str(decl), str(runs), "--format", "json"])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
