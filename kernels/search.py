"""The shape search: which of the candidate shapes runs fastest (and correctly) on a device."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .calibrate import CalibrationPolicy
from .errors import DeviceError, OutOfMemory
from .shapes import GemmShape, ShapeCandidate

if TYPE_CHECKING:
    from .backends.base import Backend


def search_best_shape(
    backend: "Backend",
    index: int,
    dtype: str,
    shapes: list[GemmShape],
    seed: int,
    *,
    batch_ms: float = 50.0,
    batches: int = 3,
    passes: int = 2,
    on_candidate: Callable[[int, int], None] | None = None,
) -> tuple[GemmShape, list[dict[str, Any]]]:
    """Try each shape briefly (median of ``batches`` batches of ~``batch_ms``) in ``passes``
    passes, the second in reverse order: a card that heats up and throttles during the search
    would otherwise favour whichever shape ran first. A shape's score is the mean of its pass
    medians. Returns the fastest valid shape and one record per shape ({m, n, k, tflops,
    tflops_passes} plus "error" where it failed). Shapes that run out of memory are skipped (and
    not retried); DeviceError if none works. ``on_candidate(done, total)`` runs before the first
    and after each of the ``passes × len(shapes)`` tries (a skipped one counts as done), for a
    progress display."""
    from .gemm import GemmWorkload  # here, not at the top: gemm re-exports this function

    if not shapes:
        raise ValueError("no candidate shapes to search (not enough free memory?)")
    records: dict[GemmShape, dict[str, Any]] = {
        shape: {**shape.as_dict(), "tflops": None, "tflops_passes": []} for shape in shapes
    }
    total_tries, done_tries = max(1, passes) * len(shapes), 0
    if on_candidate is not None:
        on_candidate(0, total_tries)
    for p in range(max(1, passes)):
        for shape in (shapes if p % 2 == 0 else list(reversed(shapes))):
            done_tries += 1
            record = records[shape]
            if "error" in record:
                if on_candidate is not None:
                    on_candidate(done_tries, total_tries)
                continue
            out_of_memory = False
            try:
                with GemmWorkload(backend, index, dtype, shape, seed) as wl:
                    wl.warmup(iters=2)
                    iters = wl.calibrate(batch_ms)
                    run = wl.run_timed(iters, n_batches=batches)
                    check = wl.check()
                    record["method"] = run.method
                    if check.valid:
                        record["tflops_passes"].append(run.tflops_median)
                    else:
                        record["error"] = f"incorrect result: {check.reason}"
            except OutOfMemory as exc:
                record["error"] = str(exc)
                out_of_memory = True
            if out_of_memory:
                # only now: inside the except block the traceback still pins the tensors
                gc.collect()
                backend.empty_cache(index)
            if on_candidate is not None:
                on_candidate(done_tries, total_tries)
    best: tuple[float, GemmShape] | None = None
    for shape, record in records.items():
        if "error" in record or not record["tflops_passes"]:
            record["tflops_passes"] = record["tflops_passes"] or None
            continue
        record["tflops"] = sum(record["tflops_passes"]) / len(record["tflops_passes"])
        if best is None or record["tflops"] > best[0]:
            best = (record["tflops"], shape)
    results = list(records.values())
    if best is None:
        raise DeviceError(
            f"no candidate shape ran for {dtype}: "
            + "; ".join(f"{r['m']}x{r['n']}x{r['k']}: {r.get('error')}" for r in results)
        )
    return best[1], results


@dataclass(frozen=True)
class HalvingPolicy:
    """A successive-halving search on a time budget: every candidate briefly, the best
    ``1/eta`` of them twice as long per round, until one is left or the budget is spent."""

    budget_s: float
    #: target time of one timed batch during the search
    batch_ms: float = 20.0
    eta: int = 2
    #: a slice starts only if this many times its expected cost still fits: on a busy host a
    #: slice may take longer than the last one did
    margin: float = 1.5

    def __post_init__(self) -> None:
        if not self.budget_s > 0 or not self.batch_ms > 0 or self.eta < 2 or self.margin < 1:
            raise ValueError(f"bad halving policy {self}: budget_s > 0, batch_ms > 0, eta >= 2 and margin >= 1 expected")


@dataclass
class SearchOutcome:
    """The chosen shape, every candidate's figure per round and the time the search took."""

    best: GemmShape
    family: str
    tflops_search: float
    candidates: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    budget_s: float
    spent_s: float
    stopped: str  # "done" | "budget"
    method: str = "successive-halving"
    eta: int = 2
    slices: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "eta": self.eta, "budget_s": self.budget_s, "spent_s": self.spent_s,
            "within_budget": self.spent_s <= self.budget_s, "stopped": self.stopped, "slices": self.slices,
            "chosen": {**self.best.as_dict(), "family": self.family, "tflops_search": self.tflops_search},
            "rounds": self.rounds, "notes": self.notes,
        }


class _Slicer:
    """Timed slices of one candidate at a time (a fresh workload per slice: the candidates
    together would not fit); the batch size is calibrated once per shape and reused."""

    def __init__(self, backend: "Backend", index: int, dtype: str, seed: int, policy: HalvingPolicy) -> None:
        self.backend, self.index, self.dtype, self.seed, self.policy = backend, index, dtype, seed, policy
        self.iters: dict[GemmShape, tuple[int, float]] = {}  # shape -> (iters per batch, batch s)

    def batch_s(self, shape: GemmShape) -> float:
        return self.iters.get(shape, (0, self.policy.batch_ms / 1e3))[1]

    def measure(self, cand: ShapeCandidate, slice_s: float, record: dict[str, Any]) -> float | None:
        """Median TFLOPS of batches filling about ``slice_s`` (at least one); None on failure
        (the reason goes into ``record['error']``)."""
        from .gemm import GemmWorkload  # here, not at the top: gemm re-exports this module

        shape = cand.shape
        out_of_memory = False
        try:
            with GemmWorkload(self.backend, self.index, self.dtype, shape, self.seed) as wl:
                first = shape not in self.iters
                if first:
                    wl.warmup(iters=1)
                    iters = wl.calibrate(self.policy.batch_ms, CalibrationPolicy(samples=1, max_rounds=2))
                    self.iters[shape] = (iters, max(iters * (wl.ms_per_gemm or 0.0) / 1e3, 1e-6))
                iters, batch_s = self.iters[shape]
                run = wl.run_timed(iters, n_batches=max(1, int(slice_s / batch_s)))
                record["method"] = run.method
                if first:
                    check = wl.check()
                    if not check.valid:
                        record["error"] = f"incorrect result: {check.reason}"
                        return None
                return float(run.tflops_median)
        except OutOfMemory as exc:
            record["error"] = str(exc)
            out_of_memory = True
        if out_of_memory:  # only now: inside the except block the traceback still pins the tensors
            gc.collect()
            self.backend.empty_cache(self.index)
        return None


def pooled(scores: list[float], weights: list[float]) -> float:
    """The weighted mean of a candidate's round scores (weights: each round's slice time)."""
    return sum(s * w for s, w in zip(scores, weights)) / sum(weights)


def halving_search(
    backend: "Backend",
    index: int,
    dtype: str,
    candidates: list[ShapeCandidate],
    seed: int,
    policy: HalvingPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_candidate: Callable[[int, int], None] | None = None,
) -> SearchOutcome:
    """Successive halving over ``candidates`` within ``policy.budget_s`` of ``clock``.

    Each round gives the remaining budget's share (remaining ÷ margin ÷ rounds left) evenly to the
    surviving candidates, in two slices each: one pass in order, one reversed, so a card whose
    throughput drifts linearly scores every candidate alike (the two-pass reversal, per round).
    A round's score is the mean of its two slices; candidates are ranked on the mean of their
    round scores so far, weighted by slice time (``tflops``; each round's own in the round's
    record), and the best ``ceil(n / eta)`` go on. Before a
    slice starts, the search stops if ``policy.margin`` × that slice's expected cost (its time
    plus the largest overhead seen for such a slice) would overrun the budget; the winner is then the leader of the last completed round
    (in round 0: of the candidates measured in both passes, else in either). Candidates that
    fail (out of memory, incorrect) drop out. DeviceError when none ran."""
    if not candidates:
        raise ValueError("no candidate shapes to search (not enough free memory?)")
    t0 = clock()
    slicer = _Slicer(backend, index, dtype, seed, policy)
    records = {c.shape: {**c.as_dict(), "tflops": None, "tflops_rounds": []} for c in candidates}
    alive = list(candidates)
    n_rounds = max(1, math.ceil(math.log(len(alive), policy.eta))) if len(alive) > 1 else 1
    planned = sum(2 * max(1, math.ceil(len(alive) / policy.eta**r)) for r in range(n_rounds))
    done = 0
    overhead_s = {True: 0.0, False: 0.0}  # largest overhead of a candidate's first slice / of a later one
    rounds: list[dict[str, Any]] = []
    weights: dict[GemmShape, list[float]] = {}  # slice time of each round a candidate was scored in
    leader: tuple[float, ShapeCandidate] | None = None
    stopped = "done"
    if on_candidate is not None:
        on_candidate(0, planned)
    for r in range(n_rounds):
        left_s = policy.budget_s - (clock() - t0)
        # planned with the margin's headroom, so a calm device finishes every round inside the budget
        slice_s = max(0.0, left_s / policy.margin / (n_rounds - r) / (2 * len(alive)) - overhead_s[False])
        slices: dict[GemmShape, list[float]] = {c.shape: [] for c in alive}
        for cand in alive + alive[::-1]:
            rec = records[cand.shape]
            if "error" in rec:
                continue
            first = cand.shape not in slicer.iters
            expected = max(slice_s, slicer.batch_s(cand.shape)) + overhead_s[first]
            if clock() - t0 + policy.margin * expected > policy.budget_s and (done or r):
                stopped = "budget"
                break
            started = clock()
            got = slicer.measure(cand, slice_s, rec)
            cost = clock() - started - max(slice_s, slicer.batch_s(cand.shape))
            overhead_s[first] = max(overhead_s[first], cost)
            done += 1
            if on_candidate is not None:
                on_candidate(done, planned)
            if got is not None:
                slices[cand.shape].append(got)
        complete = stopped == "done"
        scored = [(sum(v) / len(v), c) for c in alive if (v := slices[c.shape]) and "error" not in records[c.shape]
                  and (complete or r == 0)]
        if complete or r == 0:
            both = [x for x in scored if len(slices[x[1].shape]) == 2]
            pool = both if (both and not complete) else scored
            this_round = {c.shape: score for score, c in pool}
            for score, c in pool:
                records[c.shape]["tflops_rounds"].append(score)
                weights.setdefault(c.shape, []).append(max(slice_s, 1e-3))
                records[c.shape]["tflops"] = pooled(records[c.shape]["tflops_rounds"], weights[c.shape])
            # ranked on every round so far, weighted by slice time: the survivors shared the same
            # rounds, so the pooled figure is as fair as the last round's and far less noisy
            pool = sorted(((records[c.shape]["tflops"], c) for _, c in pool), key=lambda x: -x[0])
            if pool:
                leader = pool[0]
            keep = [c for _, c in pool[: max(1, math.ceil(len(pool) / policy.eta))]]
            rounds.append({"round": r, "slice_s": slice_s, "complete": complete,
                           "candidates": [{**c.as_dict(), "tflops_slices": slices[c.shape],
                                           "tflops": this_round[c.shape], "tflops_pooled": s, "kept": c in keep}
                                          for s, c in pool]})
            alive = keep
        if not complete or len(alive) <= 1:
            break
    spent = clock() - t0
    if leader is None:
        raise DeviceError(f"no candidate shape ran for {dtype}: "
                          + "; ".join(f"{k}: {v.get('error')}" for k, v in ((str(s), rec) for s, rec in records.items())))
    notes = [] if stopped == "done" else [f"budget reached after {done} of {planned} planned slices"]
    return SearchOutcome(best=leader[1].shape, family=leader[1].family, tflops_search=leader[0],
                         candidates=list(records.values()), rounds=rounds, budget_s=policy.budget_s, spent_s=spent,
                         stopped=stopped, eta=policy.eta, slices=done, notes=notes)


__all__ = ["HalvingPolicy", "SearchOutcome", "halving_search", "search_best_shape"]
