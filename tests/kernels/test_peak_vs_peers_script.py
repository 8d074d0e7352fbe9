"""scripts/peak_vs_peers.py: paired-ratio statistics and verdicts, the alternating round order,
mamf-finder's headline parsing, argument errors, and one tiny real run on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "peak_vs_peers.py"


@pytest.fixture(scope="module")
def pvp():
    spec = importlib.util.spec_from_file_location("peak_vs_peers", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_paired_ratio_is_the_median_of_per_round_ratios(pvp):
    # the host's load moves both sides of a round alike: per-round ratios stay near 0.98
    num = [0.98 * x for x in (1.0, 0.5, 0.8, 0.9, 0.6, 1.0, 0.7)]
    den = [1.0, 0.5, 0.8, 0.9, 0.6, 1.0, 0.7]
    r = pvp.paired_ratio(num, den, goal=0.97)
    assert r["median"] == pytest.approx(0.98) and r["ci_low"] == pytest.approx(0.98)
    assert r["verdict"] == "met" and r["rounds"] == 7


def test_verdicts_met_not_met_inconclusive(pvp):
    base = [1.0] * 9
    spread = [0.95, 0.96, 0.97, 0.98, 0.99, 1.00, 0.94, 1.01, 0.975]
    assert pvp.paired_ratio(spread, base, goal=0.97)["verdict"] == "inconclusive"
    assert "straddles" in pvp.paired_ratio(spread, base, goal=0.97)["why"]
    low = [0.90, 0.91, 0.92, 0.90, 0.91, 0.92, 0.90, 0.91, 0.92]
    assert pvp.paired_ratio(low, base, goal=0.97)["verdict"] == "not met"
    high = [1.00, 1.01, 1.02, 1.00, 1.01, 1.02, 1.00, 1.01, 1.02]
    r = pvp.paired_ratio(high, base, goal=0.97)
    assert r["verdict"] == "met" and 1.0 <= r["ci_low"] <= r["median"] <= r["ci_high"] <= 1.02
    assert r["iqr"][0] <= r["median"] <= r["iqr"][1]
    few = pvp.paired_ratio(high[:3], base[:3], goal=0.97)
    assert few["verdict"] == "inconclusive" and "at least" in few["why"]
    assert "verdict" not in pvp.paired_ratio(high, base)  # no goal asked


def test_paired_ratio_refuses_unpaired_rounds(pvp):
    with pytest.raises(ValueError, match="equally many rounds"):
        pvp.paired_ratio([1.0, 1.0], [1.0])


def test_rounds_alternate_their_order(pvp):
    seen: list[str] = []

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, seconds: float) -> float:
            seen.append(self.name)
            return 1.0

        def close(self) -> None:
            pass

    rounds = pvp.paired_rounds({n: Fake(n) for n in "ABC"}, 3, 0.0)
    assert "".join(seen) == "ABCCBAABC"
    assert rounds.tflops == {"A": [1.0] * 3, "B": [1.0] * 3, "C": [1.0] * 3} and len(rounds.load_avg_1m) == 3


def test_mamf_headlines_of_every_format(pvp):
    old = "The best outcome was 702.5TFLOPS @ 8192x4096x8192 (MxNxK) (tried 16 shapes)"
    assert pvp.parse_mamf(old) == {"tflops": 702.5, "shape": "8192x4096x8192", "headline": "best"}
    grid = "Tried 16 shapes => the best outcomes were:\nmean:   690.1 TFLOPS @ 4096x8192x8192 (MxNxK)\n" \
           "median: 691.0 TFLOPS @ 4096x8192x8192 (MxNxK)\nmax:    700.2 TFLOPS @ 1024x8192x8192 (MxNxK)"
    assert pvp.parse_mamf(grid)["tflops"] == 691.0 and pvp.parse_mamf(grid)["headline"] == "median"
    assert pvp.parse_mamf("nothing useful")["tflops"] is None


def test_bad_arguments_are_one_line_errors(pvp, capsys):
    for argv, field in ((["--cpus", "x"], "--cpus"), (["--cpus", "4096"], "--cpus"), (["--seconds", "0"], "--seconds"),
                        (["--grid-sizes", "a,b"], "--grid-sizes"), (["--rounds", "0"], "--rounds")):
        with pytest.raises(SystemExit) as exc:
            pvp.parse_args(argv)
        assert exc.value.code == 2 and field in capsys.readouterr().err


def test_tiny_real_run_on_the_cpu(pvp, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ICB_BENCH_CPU_DEVICES", raising=False)
    affinity = os.sched_getaffinity(0)
    try:
        code = pvp.main(["--threads", "1", "--cpus", str(min(affinity)), "--seconds", "0.05", "--rounds", "5",
                         "--grid-sizes", "64,128", "--grid-seconds", "0.02", "--search-budget", "0.5",
                         "--warmup-s", "0.05", "--batch-ms", "5", "--json", str(tmp_path / "out.json")])
    finally:
        import torch

        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(len(affinity))
    assert code == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["conditions"]["torch_threads"] == 1 and report["grid"]["shapes"] == 8
    assert set(report["ratios"]) == {"harness/grid-best", "harness/bare-chosen", "bare-chosen/grid-best"}
    for r in report["ratios"].values():
        assert r["rounds"] == 5 and r["ci_low"] <= r["median"] <= r["ci_high"]
    assert report["ratios"]["harness/grid-best"]["verdict"] in ("met", "not met", "inconclusive")
    assert "paired rounds" in capsys.readouterr().out
