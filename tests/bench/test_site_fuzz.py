"""Fuzzing site files with a fixed budget and seed (issue 7, part 6): mutations of `bench example
site` through `bench sample`, bytes cut and garbled, and hostile files through the real CLI
(`bench sample`, `bench racks --site`, `bench run --site`) in a subprocess under a time limit and
an address-space cap. Each case ends in a plan (strict JSON, plausible figures) or exit 2 with
only `error:` lines naming the field -- never a traceback, never a hang."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from icb_bench.bench.cli_example import example_text
from icb_bench.bench.cli_sample import register
from icb_bench.bench.site import BOUNDS, load_site

from fuzz_helpers import HOSTILE_FILES, TRIED, budget, error_lines, fleet_record, hang_guard, outcome, report_counts, run_cli

runner = CliRunner()
_app = typer.Typer()  # `bench sample` alone: the whole app's command tree costs more than a case
register(_app)
_app.command("noop", hidden=True)(lambda: None)  # two commands: `sample` stays a subcommand
CHALLENGE = "ab" * 16
EXAMPLE = example_text("site")
BASE = yaml.safe_load(EXAMPLE)

#: values put in place of a field: numbers out of range or not numbers, odd URLs, OIDs, hosts, zones, paths
NASTY: list[Any] = [
    -1, 0, 65536, 2**64, 1e308 * 10, float("nan"), True, None, "", " ", {}, [], [None], {"a": 1},
    "1e5000", "1e-400", "NaN", ".inf", "１２", "٣", "8", "0x10", "1_000", "9" * 4301, "x" * 5000, "\x00", "a\nb",
    "file:///etc/passwd", "gopher://127.0.0.1/", "https://[::1", "https://127.0.0.1:99999/x", "http://u:pw@127.0.0.1/",
    "https:///redfish", "https://127.0.0.1/x?delay_s=nan", "https://127.0.0.1/x?delay_s=1e5000", "https://h/x?evil=1",
    "1", "1.3.6.1.", ".1.3", "1.3.-6", "1." * 300 + "1", "99999999999.1", "1.3.6.1.4.1.318.1.1.12.1.16.0",
    "a b", "h" * 300, "::1", "Mars/Olympus", "+25:00", "../../etc/passwd", "/dev/zero", "a\x00b", "2c", "3", "MD5x",
    "snmp", "dcmi", "meter-log", "ipmi", "100%", "0.5%", "-1%", "1e5000%", "custom",
]
#: text spliced into the YAML as written: tags, aliases, deep nesting, full-width digits
RAW = ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "&a [1, 2]", "*a", "!!binary aGk=",
       "[" * 5000, "{" * 5000, "１２３", "0o777", "! x", "!!float nan", "!!int 99999", "9" * 4301, "1e5000", "-.inf"]


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(BASE)
FIELDS = sorted({p[-1] for p in PATHS if isinstance(p[-1], str)}) + ["password", "acuracy", "community", "extra"]


def _parent(data: Any, path: tuple) -> tuple[Any, Any]:
    obj = data
    for part in path[:-1]:
        try:
            obj = obj[part]
        except (KeyError, IndexError, TypeError):
            return None, None
    return obj, path[-1]


def _structural(data: dict, op: str, i: int) -> None:
    racks = data.get("racks")
    if not isinstance(racks, list) or not racks:
        return
    rack = racks[i % len(racks)]
    if not isinstance(rack, dict):
        return
    if op == "duplicate-rack":
        racks.append(copy.deepcopy(rack))
    elif op == "node-in-two-racks" and isinstance(rack.get("nodes"), list) and rack["nodes"]:
        other = racks[(i + 1) % len(racks)]
        if isinstance(other, dict) and isinstance(other.get("nodes"), list):
            other["nodes"].append(copy.deepcopy(rack["nodes"][0]))
    elif op == "no-nodes":
        rack["nodes"] = []
    elif op == "no-racks":
        data["racks"] = []
    elif op == "many-nodes" and isinstance(rack.get("nodes"), list) and rack["nodes"]:
        rack["nodes"] = [dict(copy.deepcopy(rack["nodes"][0]), name=f"x{k}") for k in range(BOUNDS["nodes_per_rack"] + 1)]
    elif op == "drop-key":
        rack.pop(sorted(rack)[i % len(rack)], None)


def _apply(changes: list, ops: list) -> str:
    data = copy.deepcopy(BASE)
    for op, i in ops:  # first, on the example's own shape
        _structural(data, op, i)
    raws: list[str] = []
    for path, value, raw, key in changes:
        obj, last = _parent(data, path)
        if not isinstance(obj, (dict, list)) or (isinstance(obj, list) and not (isinstance(last, int) and last < len(obj))):
            continue  # an earlier change replaced what held this field
        if key is not None and isinstance(obj, dict):  # a key of the mapping renamed or added
            obj[key] = value
        elif raw is not None:
            obj[last] = f"__RAW{len(raws)}__"
            raws.append(raw)
        else:
            obj[last] = value
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, OverflowError):
        text = EXAMPLE
    for i, raw in enumerate(raws):
        text = text.replace(f"__RAW{i}__", raw)
    return text


def _sample(path: Path) -> str:
    """`bench sample` in-process; on a plan, the figures are checked against the site file."""
    with hang_guard():
        res = runner.invoke(_app, ["sample", str(path), "--challenge", CHALLENGE, "--format", "json"])
    kind = outcome(res.exit_code, res.stdout, res.stderr, res.exception)
    if kind == "error":
        for line in error_lines(res.stderr):  # names the file and a field, a line, or the file itself
            assert str(path) in line or "challenge" in line, line
    else:
        plan, site = json.loads(res.stdout), load_site(path)
        names = [r.name for r in site.racks]
        assert len(set(names)) == len(names) and set(plan["racks"]) <= set(names)
        assert all(0 < n.devices.count <= BOUNDS["devices_per_node"] for r in site.racks for n in r.nodes)
        assert sum(m["site_devices"] for m in plan["models"]) == sum(site.models().values())
    return kind


@budget(200)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(NASTY),
                                  st.one_of(st.none(), st.none(), st.sampled_from(RAW)),
                                  st.one_of(st.none(), st.none(), st.none(), st.sampled_from(FIELDS))), max_size=4),
       ops=st.lists(st.tuples(st.sampled_from(["duplicate-rack", "node-in-two-racks", "no-nodes", "no-racks", "many-nodes",
                                               "drop-key"]), st.integers(0, 50)), max_size=2))
def test_fuzzed_site_fields(tmp_path, changes, ops):
    p = tmp_path / "site.yaml"  # rewritten by every example
    p.write_text(_apply(changes, ops), encoding="utf-8")
    TRIED["site file"] += 1
    event(_sample(p))


@budget(100)
@given(op=st.sampled_from(["truncate", "insert", "replace", "encode"]), at=st.integers(0, len(EXAMPLE.encode())),
       junk=st.binary(min_size=1, max_size=16), encoding=st.sampled_from(["utf-16", "utf-32", "gbk", "latin-1", "utf-8-sig"]))
def test_fuzzed_site_bytes(tmp_path, op, at, junk, encoding):
    raw = EXAMPLE.encode()
    if op == "truncate":
        raw = raw[:at]
    elif op == "insert":
        raw = raw[:at] + junk + raw[at:]
    elif op == "replace":
        raw = raw[:at] + junk + raw[at + len(junk):]
    else:
        raw = EXAMPLE.encode(encoding, errors="replace")
    p = tmp_path / "site.yaml"
    p.write_bytes(raw)
    TRIED["site file"] += 1
    event(_sample(p))


# ------------------------------------------------------------------- the real CLI, in a subprocess

_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(20))
#: file contents (or a hostile file from fuzz_helpers.HOSTILE_FILES) in place of the site file
HOSTILE_TEXT: dict[str, bytes] = {
    "alias-bomb": _BOMB.encode(),
    "python-tag": EXAMPLE.replace("site: 示例工业智算基地", "site: !!python/object/apply:os.system ['touch PWNED']").encode(),
    "deep-nesting": b"racks: " + b"[" * 200_000,
    "utf-16": EXAMPLE.encode("utf-16"),
    "gbk": EXAMPLE.encode("gbk", errors="replace"),
    "truncated": EXAMPLE[: EXAMPLE.index('accuracy: "1%"') + len('accuracy: "1')].encode(),  # inside a quote
    "4301-digit-count": EXAMPLE.replace("count: 8}", "count: " + "9" * 4301 + "}", 1).encode(),
    "accuracy-1e5000": EXAMPLE.replace('accuracy: "1%"', "accuracy: 1e5000", 1).encode(),
    "nul-byte": EXAMPLE.replace("R01", "R\x0001", 1).encode(),
    "meter-path-nul": EXAMPLE.replace("path: logs/r04.csv", 'path: "logs/\\0r04.csv"').encode(),
}
HOSTILE = sorted(HOSTILE_TEXT) + sorted(HOSTILE_FILES)


def _hostile(tmp_path: Path, name: str) -> Path:
    p = tmp_path / "site.yaml"
    if name in HOSTILE_FILES:
        HOSTILE_FILES[name](p)
    else:
        p.write_bytes(HOSTILE_TEXT[name])
    return p


def _refused(proc, tmp_path: Path) -> list[str]:
    """Exit 2, error lines only, nothing executed from the file."""
    assert outcome(proc.returncode, proc.stdout, proc.stderr) == "error", proc.stdout[-2000:]
    assert not (tmp_path / "PWNED").exists()
    return error_lines(proc.stderr)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_site_through_bench_sample(tmp_path, name):
    p = _hostile(tmp_path, name)
    TRIED["site file (CLI)"] += 1
    lines = _refused(run_cli(["sample", str(p), "--challenge", CHALLENGE, "--format", "json"], tmp_path), tmp_path)
    assert all(str(p) in ln for ln in lines), lines


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    return fleet_record(tmp_path_factory.mktemp("site-fuzz-record"))[0]


@pytest.mark.parametrize("name", ["alias-bomb", "python-tag", "4301-digit-count", "fifo", "dev-zero-symlink", "directory"])
def test_hostile_site_through_bench_racks(tmp_path, fleet_run, name):
    p = _hostile(tmp_path, name)
    TRIED["site file (CLI)"] += 1
    before = (fleet_run / "manifest.json").read_bytes()
    lines = _refused(run_cli(["racks", str(fleet_run), "--site", str(p), "--json"], tmp_path), tmp_path)
    assert str(p) in lines[0]
    assert (fleet_run / "manifest.json").read_bytes() == before  # the record is left as it was


#: a launcher's environment (torchrun, rank 0 of 2): `bench run --site` validates the site before it joins
TORCHRUN_ENV = {"TORCHELASTIC_RUN_ID": "fuzz", "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


@pytest.mark.parametrize("name", ["alias-bomb", "4301-digit-count", "accuracy-1e5000", "fifo", "directory"])
def test_hostile_site_fails_bench_run_before_measuring(tmp_path, name):
    p = _hostile(tmp_path, name)
    out = tmp_path / "out"
    TRIED["site file (CLI)"] += 1
    proc = run_cli(["run", "--backend", "cpu", "--quick", "--site", str(p), "--out", str(out)], tmp_path, TORCHRUN_ENV)
    # the site file is checked before the progress display starts: only `error:` lines, each
    # problem one, the first naming the file
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    errors = error_lines(proc.stderr)
    assert str(p) in errors[0], proc.stderr[-2000:]
    assert not out.exists()  # nothing measured, nothing written


def test_every_problem_of_a_site_file_is_an_error_line_of_bench_run(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(EXAMPLE.replace("count: 8", "count: -1"), encoding="utf-8")
    TRIED["site file (CLI)"] += 1
    proc = run_cli(["run", "--backend", "cpu", "--quick", "--site", str(site), "--out", str(tmp_path / "out")],
                   tmp_path, TORCHRUN_ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == EXAMPLE.count("count: 8") >= 2 and all("devices.count: -1" in e for e in errors), errors


def test_bench_racks_refuses_a_record_without_a_timeline(tmp_path):
    fleet_run, _ = fleet_record(tmp_path)
    man = json.loads((fleet_run / "manifest.json").read_text(encoding="utf-8"))
    del man["timeline"]
    (fleet_run / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    site = tmp_path / "site.yaml"
    site.write_text(EXAMPLE, encoding="utf-8")
    lines = error_lines(run_cli(["racks", str(fleet_run), "--site", str(site)], tmp_path).stderr)
    assert "has no timeline" in lines[0], lines


def test_zz_report_counts(capsys):
    with capsys.disabled():
        print("\n" + report_counts(("site file", "site file (CLI)")))
