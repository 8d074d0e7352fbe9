"""The common start comes before the warm-up: one wait per dtype per device, also when a dtype
fails before or after it, and the measurement records its warm-up, schedule and steadiness."""

from __future__ import annotations

import pytest

from icb_bench.bench import runner
from icb_bench.bench.plan import RunPlan


class RecordingBarrier:
    def __init__(self, log: list) -> None:
        self.log = log

    def wait(self, timeout=None) -> int:
        self.log.append(("wait",))
        return 0


def _plan(**kw) -> RunPlan:
    return RunPlan(backend="cpu", devices=(0,), dtypes=("fp32", "fp16", "bf16"), profile="quick", duration_s=0.3,
                   shape=(64, 64, 64), batch_ms=5.0, search_batch_ms=2.0, warmup_ms=200.0, warmup_min_ms=0.0,
                   steady_window_s=0.1, setup_allowance_ms=300.0, tflops_plateau_rel=0.5, check_samples=16, **kw)


def _run(tmp_path, monkeypatch, fail=None):
    log: list = []

    def emit(kind, **data):
        if kind == "phase":
            log.append(("phase", data["dtype"], data["phase"]))

    monkeypatch.delenv("ICB_BENCH_CPU_DEVICES", raising=False)
    if fail is not None:
        where, dtype = fail
        original = getattr(runner, where)

        def failing(*a, **kw):
            if dtype in a:  # _heater_shape(plan, backend, dtype, …) / _heat(plan, backend, index, dtype, …)
                raise RuntimeError(f"simulated failure in {where}")
            return original(*a, **kw)

        monkeypatch.setattr(runner, where, failing)
    out = runner.measure_device(_plan(), 0, tmp_path, emit, RecordingBarrier(log))
    return log, out


#: common starts per dtype: one before the warm-up, and the later ones (if any) before the core phase
POINTS = len(getattr(runner, "SYNC_POINTS", ("start",)))


def _per_dtype(log: list) -> dict[str, list]:
    """The log cut at each dtype's "starting" phase: the waits and phases of each dtype."""
    out: dict[str, list] = {}
    current = None
    for item in log:
        if item[0] == "phase" and item[2] == "starting":
            current = item[1]
            out[current] = []
        elif current is not None:
            out[current].append(item[2] if item[0] == "phase" else "WAIT")
    return out


def test_wait_precedes_the_warmup_and_the_core_phase(tmp_path, monkeypatch):
    log, out = _run(tmp_path, monkeypatch)
    assert sum(1 for x in log if x == ("wait",)) == 3 * POINTS
    for dtype, seq in _per_dtype(log).items():
        assert seq.count("WAIT") == POINTS, (dtype, seq)
        waits = [i for i, x in enumerate(seq) if x == "WAIT"]
        assert waits[0] < seq.index("warmup"), seq  # devices heat up together
        assert waits[-1] < seq.index("core"), seq
    for m in out:
        assert m["valid"], m.get("error")
        assert m["warmup"]["max_s"] == pytest.approx(0.2) and m["warmup"]["shape"] == {"m": 64, "n": 64, "k": 64}
        assert m["schedule"]["schedule_s"] == pytest.approx(0.5)
        assert m["drift"] is not None and isinstance(m["steady"], bool)
        assert m["steady"] or m["steady_reason"]
        assert m["at_power_limit"] is None and m["fully_loaded"] is None  # no power reader on the CPU here
        assert m["search"] is None and m["tflops_search"] is None  # fixed shape: no search


@pytest.mark.parametrize("fail", [("_heater_shape", "fp16"), ("_heat", "fp16")], ids=["before-wait", "after-wait"])
def test_a_failing_dtype_still_waits_exactly_once(tmp_path, monkeypatch, fail):
    log, out = _run(tmp_path, monkeypatch, fail)
    assert sum(1 for x in log if x == ("wait",)) == 3 * POINTS
    assert all(seq.count("WAIT") == POINTS for seq in _per_dtype(log).values())
    by = {m["dtype"]: m for m in out}
    assert by["fp16"]["status"] == "failed" and "simulated failure" in by["fp16"]["error"]
    assert by["fp32"]["valid"] and by["bf16"]["valid"]
