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


def _phases_after_wait(log: list) -> list[list[str]]:
    """For each wait, the phases emitted between it and the next wait."""
    groups: list[list[str]] = []
    for item in log:
        if item == ("wait",):
            groups.append([])
        elif groups:
            groups[-1].append(item[2])
    return groups


def test_wait_precedes_the_warmup_and_the_core_phase(tmp_path, monkeypatch):
    log, out = _run(tmp_path, monkeypatch)
    assert sum(1 for x in log if x == ("wait",)) == 3
    for phases in _phases_after_wait(log):
        assert phases[:2] == ["warmup", "core"] or phases[0] == "warmup"
        assert "core" in phases and phases.index("warmup") < phases.index("core")
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
    assert sum(1 for x in log if x == ("wait",)) == 3
    by = {m["dtype"]: m for m in out}
    assert by["fp16"]["status"] == "failed" and "simulated failure" in by["fp16"]["error"]
    assert by["fp32"]["valid"] and by["bf16"]["valid"]
