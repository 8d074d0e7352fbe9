"""Speed benchmark: a 100,000-device-record site scored by `bench verify` (pytest-benchmark).

With the project's default ``--benchmark-disable`` the benchmark body runs once as an ordinary
test and checks the result; ``pytest tests/verify/test_bench_scoring.py --benchmark-enable``
times it. ``scripts/bench_verify_speed.py`` prints elapsed seconds and peak RSS against the goals.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from icb_bench.verify.measured import CONFIRMED, verify
from icb_bench.verify.report import to_dict

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_verify_speed.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_verify_speed", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return _script().build_site(tmp_path_factory.mktemp("site"), racks=3000, devices=32, smoke=4000)


def test_verify_100k_device_records(benchmark, site):
    decl, records, site_file = site
    assert sum(len(r.measurements) for r in records) == 100_000

    def run():
        return to_dict(verify(decl, records, site_file=site_file))

    doc = benchmark(run)
    models = {m["key"]: m for m in doc["fp16"]["models"]}
    assert models["h100-sxm"]["sampled"] == 64_000 and models["ascend-910b"]["sampled"] == 32_000
    assert models["h100-sxm"]["credited"] and models["ascend-910b"]["credited"]
    assert models["h100-sxm"]["median_tflops"] == pytest.approx(720, rel=0.01)
    assert doc["fp16"]["nominal"] == pytest.approx((64_000 * 989 + 32_000 * 313) / 1000)
    assert len(doc["smoke_ignored"]) == 4000
    assert len(doc["efficiency"]) == 3000
    assert {c["id"]: c["status"] for c in doc["claims"]} == {"A2.7": CONFIRMED, "A2.14": CONFIRMED, "A1.7": CONFIRMED}


def test_speed_script_reports_goals(capsys):
    mod = _script()
    # the script's exit code says whether this machine met the goals (its peak RSS is the whole
    # pytest process's here): a figure to read, never a timed assertion
    assert mod.main(["--racks", "30", "--devices", "32", "--smoke", "40"]) in (0, 1)
    out = capsys.readouterr().out
    assert re.search(r"verify \+ JSON +[0-9.]+ s CPU .*goal ≤ 3 s +(OK|OVER)", out), out
    assert re.search(r"peak RSS +[0-9]+ MiB goal ≤ 1024 MiB (OK|OVER)", out), out
    assert "claims A2.7 CONFIRMED, A2.14 CONFIRMED, A1.7 CONFIRMED" in out
