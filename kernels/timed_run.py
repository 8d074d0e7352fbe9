"""The statistics of a timed run: batch times, median and IQR, throughput by the device timer and
by the host clock, and how busy the device was (events over wall time)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TimedRun:
    """Device timings of back-to-back batches of ``iters_per_batch`` GEMMs."""

    batch_time_ms: list[float]
    iters_per_batch: int
    #: host wall time from the first enqueue to the last completion (synchronized)
    wall_s: float
    #: "graph-replay+events" | "events" | "wall"
    method: str
    total_gemms: int
    flops_per_gemm: int = 0
    #: host time (s after the start) at which each batch was seen complete, for aligning power
    batch_done_s: list[float] = field(default_factory=list)
    #: time.time() when the first batch was enqueued
    start_unix_s: float = 0.0
    #: why graph capture was not used, when the backend supports graphs but capture failed
    graph_error: str | None = None
    #: numeric flags in force during the run
    flags: dict[str, Any] = field(default_factory=dict)

    @property
    def median_batch_ms(self) -> float:
        return statistics.median(self.batch_time_ms)

    @property
    def iqr_batch_ms(self) -> float:
        """Interquartile range of the batch times (0 with fewer than 2 batches)."""
        if len(self.batch_time_ms) < 2:
            return 0.0
        q = statistics.quantiles(self.batch_time_ms, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def tflops_median(self) -> float:
        """Throughput of the median batch."""
        return self.flops_per_gemm * self.iters_per_batch / self.median_batch_ms / 1e9

    @property
    def tflops_wall(self) -> float:
        """Throughput over the whole run by the host clock (cross-check of the events)."""
        return self.flops_per_gemm * self.total_gemms / self.wall_s / 1e12 if self.wall_s > 0 else 0.0

    @property
    def event_wall_ratio(self) -> float:
        """Sum of device batch times over host wall time: ~1 when the device never idled."""
        return sum(self.batch_time_ms) / 1e3 / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            median_batch_ms=self.median_batch_ms,
            iqr_batch_ms=self.iqr_batch_ms,
            tflops_median=self.tflops_median,
            tflops_wall=self.tflops_wall,
            event_wall_ratio=self.event_wall_ratio,
        )
        return out
