"""Batch-size calibration: how many back-to-back GEMMs make one timed batch of about a target
length. It knows nothing of devices or GEMMs: it only calls the batch timer it is given."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

#: never put more than this many GEMMs in one batch (graph size, calibration of tiny shapes)
MAX_ITERS_PER_BATCH = 10_000


@dataclass(frozen=True)
class CalibrationPolicy:
    """How hard :func:`calibrate_iters` tries: a shared or throttling machine makes any single
    timed batch an unreliable estimate, so it takes medians and re-checks its answer."""

    #: timed batches per round; their median is the round's estimate (one outlier is ignored)
    samples: int = 3
    #: accept once the median batch is within this fraction of the target
    tolerance: float = 0.25
    #: rounds of ``samples`` batches at most, so a machine that never settles still ends
    max_rounds: int = 4

    def __post_init__(self) -> None:
        if self.samples < 1 or self.max_rounds < 1 or not 0 < self.tolerance < 1:
            raise ValueError(f"bad calibration policy {self}: samples and max_rounds >= 1, 0 < tolerance < 1")


@dataclass(frozen=True)
class Calibration:
    """Outcome of :func:`calibrate_iters`."""

    iters: int
    #: the last round's median batch time over its GEMM count
    ms_per_gemm: float
    #: median batch time of the last round, at the iteration count that round timed
    median_batch_ms: float
    rounds: int
    #: whether the last round's median landed within tolerance of the target
    converged: bool


def _iters_for(target_batch_ms: float, ms_per_gemm: float) -> int:
    return max(1, min(MAX_ITERS_PER_BATCH, round(target_batch_ms / max(ms_per_gemm, 1e-9))))


def calibrate_iters(
    time_batch_ms: Callable[[int], float],
    target_batch_ms: float,
    policy: CalibrationPolicy | None = None,
) -> Calibration:
    """GEMMs per batch so one batch takes about ``target_batch_ms``.

    ``time_batch_ms(n)`` runs and times ``n`` back-to-back GEMMs. One GEMM gives a first guess;
    then each round times ``policy.samples`` batches at the current guess, re-estimates from
    their median and stops once that median is within ``policy.tolerance`` of the target (or
    the count can move no further, or after ``policy.max_rounds``)."""
    if target_batch_ms <= 0:
        raise ValueError("target_batch_ms must be positive")
    policy = policy or CalibrationPolicy()
    iters = _iters_for(target_batch_ms, time_batch_ms(1))
    for rounds in range(1, policy.max_rounds + 1):
        median_ms = statistics.median(time_batch_ms(iters) for _ in range(policy.samples))
        ms_per_gemm = max(median_ms, 1e-9) / iters
        converged = abs(median_ms - target_batch_ms) <= policy.tolerance * target_batch_ms
        better = _iters_for(target_batch_ms, ms_per_gemm)
        if converged or better == iters:  # on target, or pinned at 1 / MAX_ITERS_PER_BATCH
            return Calibration(iters, ms_per_gemm, median_ms, rounds, converged)
        iters = better
    # out of rounds: the last estimate, not yet confirmed by a round of its own
    return Calibration(iters, ms_per_gemm, median_ms, policy.max_rounds, False)
