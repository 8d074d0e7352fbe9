"""Batch pipelining and the graph-replay path, with a CPU backend that pretends to have device
events and graphs (so this logic is tested without a GPU)."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from icb_bench.kernels.backends.base import Timer
from icb_bench.kernels.backends.cpu import CpuBackend
from icb_bench.kernels.errors import KernelError
from icb_bench.kernels.gemm import GemmShape, GemmWorkload


class LoggingTimer(Timer):
    method = "events"

    def __init__(self, log: list[str], n: int) -> None:
        self.log, self.n = log, n
        self.t0 = self.t1 = 0.0

    def start(self) -> None:
        self.log.append(f"start{self.n}")
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.log.append(f"stop{self.n}")
        self.t1 = time.perf_counter()

    def elapsed_ms(self) -> float:
        self.log.append(f"read{self.n}")
        return (self.t1 - self.t0) * 1e3


class FakeGraphBackend(CpuBackend):
    supports_graphs = True

    def __init__(self, capture_fails: bool = False) -> None:
        self.log: list[str] = []
        self.captures: list[int] = []
        self.capture_fails = capture_fails
        self._timers = 0

    def timer(self, index: int) -> Timer:
        t = LoggingTimer(self.log, self._timers)
        self._timers += 1
        return t

    def capture_graph(self, index: int, fn: Callable[[], None]) -> Callable[[], None]:
        self.captures.append(index)
        if self.capture_fails:
            raise KernelError("CUDA graph capture failed: operation not permitted when stream is capturing")
        def replay() -> None:
            self.log.append("replay")
            fn()
        return replay


@pytest.fixture(autouse=True)
def _one_cpu_device(monkeypatch) -> None:
    monkeypatch.delenv("ICB_BENCH_CPU_DEVICES", raising=False)


SHAPE = GemmShape(64, 64, 64)


def test_next_batch_enqueued_before_waiting() -> None:
    backend = FakeGraphBackend()
    with GemmWorkload(backend, 0, "fp32", SHAPE, seed=0) as wl:
        backend.log.clear()
        backend._timers = 0
        run = wl.run_timed(2, n_batches=4)
    log = [e for e in backend.log if e != "replay"]
    assert log == [
        "start0", "stop0", "start1", "stop1", "read0",
        "start2", "stop2", "read1",
        "start3", "stop3", "read2",
        "read3",
    ]
    assert run.method == "graph-replay+events"
    assert backend.log.count("replay") == 4
    assert backend.captures == [0]  # one capture for this iters value


def test_graph_recaptured_per_iters_and_used_by_probe() -> None:
    backend = FakeGraphBackend()
    with GemmWorkload(backend, 0, "fp32", SHAPE, seed=0) as wl:
        wl.run_timed(2, n_batches=1)
        wl.run_timed(2, n_batches=1)
        wl.run_timed(3, n_batches=1)
        assert len(backend.captures) == 2
        probe = wl.mode_probe()
        assert probe.passed and "eager+graph" in probe.detail
        assert wl.describe()["graphs"] == "captured"


def test_capture_failure_falls_back_to_eager_and_is_recorded() -> None:
    backend = FakeGraphBackend(capture_fails=True)
    with GemmWorkload(backend, 0, "fp32", SHAPE, seed=0) as wl:
        run = wl.run_timed(2, n_batches=2)
        assert run.method == "events"
        assert run.graph_error and "capture failed" in run.graph_error
        wl.run_timed(2, n_batches=1)
        assert backend.captures == [0]  # not retried
        assert wl.check().valid
        assert wl.describe()["graphs"] == "capture failed"


def test_use_graphs_false_never_captures() -> None:
    backend = FakeGraphBackend()
    with GemmWorkload(backend, 0, "fp32", SHAPE, seed=0, use_graphs=False) as wl:
        run = wl.run_timed(1, n_batches=2)
    assert run.method == "events" and backend.captures == []
