"""Candidates sized to the device, and the successive-halving search on a budget -- every
timing on a scripted clock, never the shared machine's wall time."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from icb_bench.kernels.errors import DeviceError
from icb_bench.kernels.gemm import GemmWorkload
from icb_bench.kernels.search import HalvingPolicy, halving_search
from icb_bench.kernels.shapes import (
    MEMORY_FRACTION,
    SHAPE_FAMILIES,
    WAVE_TILE,
    GemmShape,
    ShapeCandidate,
    search_candidates,
    shape_bytes,
    wave_shape,
)


def test_candidates_cover_every_family_and_fit_memory():
    free = 79 * 2**30
    cands = search_candidates("fp16", free, 132, limit=16)
    assert len(cands) == 16 and len({c.shape for c in cands}) == 16
    assert {c.family for c in cands} == set(SHAPE_FAMILIES) | {"wave"}
    for c in cands:
        assert c.shape.m % 128 == 0 and c.shape.n % 256 == 0 and c.shape.k % 256 == 0
        assert shape_bytes("fp16", c.shape) <= MEMORY_FRACTION * free
    assert cands[0] == ShapeCandidate(GemmShape(8192, 8192, 8192), "square")  # the preferred size first
    # a small limit keeps one of each family rather than one family's every size
    assert [c.family for c in search_candidates("fp16", free, 132, limit=6)] == [*SHAPE_FAMILIES, "wave"]


def test_wave_shapes_fill_whole_waves():
    tm, tn = WAVE_TILE[False]
    for units in (132, 108, 80, 120):
        for size in (4096, 8192, 16384):
            s = wave_shape(size, units, (tm, tn))
            assert s is not None and s.k == size
            assert (s.m // tm) * (s.n // tn) % units == 0, (units, size, s)
            assert abs(s.m - size) / size + abs(s.n - size) / size <= 0.5
    # 8192² on 132 SMs is 15.5 waves of 128×256 tiles; the wave shape makes it 16
    assert wave_shape(8192, 132, (tm, tn)) == GemmShape(8192, 8448, 8192)


def test_candidates_without_compute_units_or_memory():
    assert "wave" not in {c.family for c in search_candidates("fp16", 79 * 2**30, None)}
    small = search_candidates("fp32", 300 * 2**20, 132)
    assert small and all(shape_bytes("fp32", c.shape) <= 0.4 * 300 * 2**20 for c in small)
    assert search_candidates("fp32", 1 * 2**20, 132) == []
    quick = search_candidates("fp32", 16 * 2**30, 2, quick=True, limit=8)
    assert quick and max(max(c.shape.m, c.shape.n) for c in quick) <= 2048


class ScriptedCard:
    """A card on a scripted clock: each timed batch advances it by ``batch_s``; the throughput of
    a shape is its true figure times a factor falling ``heat_per_s`` per second (heating up)."""

    def __init__(self, truth: dict[GemmShape, float], heat_per_s: float = 0.0, batch_s: float = 0.01,
                 overhead_s: float = 0.002) -> None:
        self.truth, self.heat, self.batch_s, self.overhead_s = truth, heat_per_s, batch_s, overhead_s
        self.now = 0.0
        self.slices: list[GemmShape] = []
        #: (shape, first slice index, factor): a load burst that slows one shape from then on
        self.dip: tuple[GemmShape, int, float] | None = None

    def clock(self) -> float:
        return self.now

    def install(self, monkeypatch) -> None:
        card = self

        def calibrate(self, target_ms, policy=None):
            card.now += card.overhead_s
            self.ms_per_gemm = card.batch_s * 1e3
            return 1

        def run_timed(self, iters, *, n_batches=None, duration_s=None, on_batch=None):
            self._mm()  # a real product, so the search's correctness check passes
            start = card.now
            card.now += card.overhead_s + n_batches * card.batch_s
            card.slices.append(self.shape)
            factor = 1.0 - card.heat * (start + card.now) / 2
            if card.dip and card.dip[0] == self.shape and len(card.slices) > card.dip[1]:
                factor *= card.dip[2]
            return SimpleNamespace(tflops_median=card.truth[self.shape] * factor, method="events")

        monkeypatch.setattr(GemmWorkload, "calibrate", calibrate)
        monkeypatch.setattr(GemmWorkload, "run_timed", run_timed)
        monkeypatch.setattr(GemmWorkload, "warmup", lambda self, iters=3, min_time_s=0.0: None)


def _cands(n: int) -> list[ShapeCandidate]:
    return [ShapeCandidate(GemmShape(64 + 64 * i, 64, 64), "square") for i in range(n)]


def test_halving_picks_the_best_shape_on_a_heating_card(cpu, monkeypatch):
    """Eight shapes; the last in order is truly 2 % faster, the card loses 5 % per second
    throughout: one forward pass would favour the early shapes, the per-round reversal does not."""
    cands = _cands(8)
    truth = {c.shape: 1.0 for c in cands}
    truth[cands[-1].shape] = 1.02
    card = ScriptedCard(truth, heat_per_s=0.05)
    card.install(monkeypatch)
    out = halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=6.0, batch_ms=10), clock=card.clock)
    assert out.best == cands[-1].shape and out.stopped == "done"
    assert [len(r["candidates"]) for r in out.rounds] == [8, 4, 2]
    assert [sum(c["kept"] for c in r["candidates"]) for r in out.rounds] == [4, 2, 1]
    # each round: one pass in order, one reversed; every candidate's figure of every round recorded
    first = [c.shape for c in cands]
    assert card.slices[:16] == first + first[::-1]
    best_rec = next(r for r in out.candidates if r["m"] == cands[-1].shape.m)
    assert len(best_rec["tflops_rounds"]) == 3 and best_rec["tflops"] == pytest.approx(out.tflops_search)
    assert all(len(c["tflops_slices"]) == 2 for c in out.rounds[0]["candidates"])
    # the heating matters: in round 0's forward pass alone, the first shape beat the truly best one
    r0 = {(c["m"], c["n"], c["k"]): c["tflops_slices"] for c in out.rounds[0]["candidates"]}
    key = lambda s: (s.m, s.n, s.k)  # noqa: E731
    assert r0[key(cands[0].shape)][0] > r0[key(cands[-1].shape)][0]


def test_ranking_pools_every_round_so_a_burst_in_the_last_does_not_decide(cpu, monkeypatch):
    """Four shapes, the second truly 3 % faster; a load burst slows it 4 % in the final round
    only. On the last round alone it would lose; pooled over both rounds (weighted by slice
    time) it wins, and each round's own figure is still recorded."""
    cands = _cands(4)
    truth = {c.shape: 1.0 for c in cands}
    truth[cands[1].shape] = 1.03
    card = ScriptedCard(truth)
    card.dip = (cands[1].shape, 8, 0.96)  # slices 0-7 are round 0 (4 candidates, 2 passes)
    card.install(monkeypatch)
    out = halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=6.0, batch_ms=10), clock=card.clock)
    assert [len(r["candidates"]) for r in out.rounds] == [4, 2] and out.stopped == "done"
    last = {(c["m"]): c for c in out.rounds[-1]["candidates"]}
    best_m, other_m = cands[1].shape.m, cands[0].shape.m
    assert last[best_m]["tflops"] < last[other_m]["tflops"]  # the last round alone picks the other
    assert out.best == cands[1].shape
    w0, w1 = out.rounds[0]["slice_s"], out.rounds[1]["slice_s"]
    assert last[best_m]["tflops_pooled"] == pytest.approx((1.03 * w0 + last[best_m]["tflops"] * w1) / (w0 + w1))
    assert out.tflops_search == pytest.approx(last[best_m]["tflops_pooled"])


def test_halving_respects_its_budget(cpu, monkeypatch):
    cands = _cands(16)
    card = ScriptedCard({c.shape: 1.0 + 0.001 * i for i, c in enumerate(cands)}, batch_s=0.05, overhead_s=0.02)
    card.install(monkeypatch)
    out = halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=1.0, batch_ms=50), clock=card.clock)
    assert out.spent_s <= 1.0 and out.as_dict()["within_budget"]
    assert out.stopped == "budget" and "budget reached" in out.notes[0]
    assert out.slices == len(card.slices) < sum(2 * math.ceil(16 / 2**r) for r in range(4))
    # the winner comes from a completed round (or round 0's candidates measured in both passes)
    assert out.rounds and all(len(c["tflops_slices"]) >= 1 for c in out.rounds[-1]["candidates"])


@pytest.mark.parametrize("budget_s", [0.5, 2.0, 6.0])
def test_budget_holds_for_any_budget(cpu, monkeypatch, budget_s):
    cands = _cands(12)
    card = ScriptedCard({c.shape: 1.0 for c in cands}, batch_s=0.02, overhead_s=0.01)
    card.install(monkeypatch)
    out = halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=budget_s, batch_ms=20), clock=card.clock)
    assert out.spent_s <= budget_s


def test_failing_candidates_drop_out(cpu, monkeypatch):
    cands = _cands(4)
    card = ScriptedCard({c.shape: 1.0 for c in cands})
    card.install(monkeypatch)
    original = GemmWorkload._fill_inputs

    def fill(self):
        if self.shape == cands[1].shape:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        original(self)

    monkeypatch.setattr(GemmWorkload, "_fill_inputs", fill)
    out = halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=2.0, batch_ms=10), clock=card.clock)
    assert out.best != cands[1].shape
    bad = next(r for r in out.candidates if r["m"] == cands[1].shape.m)
    assert "out of memory" in bad["error"] and bad["tflops"] is None

    monkeypatch.setattr(GemmWorkload, "_fill_inputs", lambda self: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(DeviceError, match="no candidate shape"):
        halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=2.0), clock=card.clock)
    with pytest.raises(ValueError):
        halving_search(cpu, 0, "fp32", [], 0, HalvingPolicy(budget_s=1.0))
    with pytest.raises(ValueError, match="budget_s > 0"):
        HalvingPolicy(budget_s=0.0)


def test_real_cpu_search_runs_and_records(cpu):
    """On the real CPU backend (no scripted clock): the records are complete; no timing asserted."""
    cands = [ShapeCandidate(GemmShape(64, 64, 64), "square"), ShapeCandidate(GemmShape(128, 64, 64), "rect-wide-m")]
    out = halving_search(cpu, 0, "fp32", cands, 0, HalvingPolicy(budget_s=5.0, batch_ms=2))
    assert out.best in {c.shape for c in cands} and out.tflops_search > 0
    d = out.as_dict()
    assert d["chosen"]["family"] in {"square", "rect-wide-m"} and d["method"] == "successive-halving"
    assert d["rounds"][0]["candidates"] and d["spent_s"] >= 0
