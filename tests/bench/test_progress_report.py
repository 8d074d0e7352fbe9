"""What `bench run` shows while it runs and after: the shape search as its own progress with an
ETA, one device naming in the bar and the tables, scaled throughput units, planned vs measured
core phase. Events are fed by hand on a scripted clock: no run, no wall time."""

from __future__ import annotations

import pytest
from rich.console import Console

from icb_bench.bench.inventory import hostname
from icb_bench.bench.plan import RunPlan
from icb_bench.bench.progress import EtaColumn, RunDisplay
from icb_bench.bench.report import print_run, throughput_unit


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _plan(**kw) -> RunPlan:
    # duration 10 s, warm-up 2 s: after a search each dtype needs 2 + 10 × 1.15 = 13.5 s
    return RunPlan(backend="cpu", devices=(0,), dtypes=("fp16", "fp32"), duration_s=10.0, warmup_ms=2000.0, **kw)


def _fields(display: RunDisplay, task_id) -> dict:
    (task,) = [t for t in display.progress.tasks if t.id == task_id]
    return task


def _eta_text(display: RunDisplay, task_id) -> str:
    return EtaColumn(display.clock).render(_fields(display, task_id)).plain


@pytest.fixture
def shown():
    clock = Clock()
    display = RunDisplay(_plan(), enabled=False, clock=clock)
    with display:
        yield display, clock


def test_search_is_its_own_progress_with_an_eta(shown) -> None:
    display, clock = shown
    main, search = display.devices[0].task, display.search_tasks[0]
    display.on_event("phase", {"device": 0, "dtype": "fp16", "phase": "search"})
    display.on_event("search", {"device": 0, "dtype": "fp16", "done": 0, "total": 8})
    # nothing finished yet: no pace to project from, and it says so rather than guessing
    assert _fields(display, search).visible
    assert _fields(display, search).fields["count"] == "0/8"
    assert _eta_text(display, search) == "ETA -:--:--" and _eta_text(display, main) == "ETA -:--:--"
    clock.now_s += 5.0
    display.on_event("search", {"device": 0, "dtype": "fp16", "done": 1, "total": 8})
    s = _fields(display, search)
    assert s.fields["count"] == "1/8" and s.completed == pytest.approx(1 / 8)
    assert "shape search fp16" in s.fields["phase"]
    assert _eta_text(display, search) == "ETA 0:00:35"  # 5 s a try, 7 to go
    # the whole run: this search (35 s) + 13.5 s, then fp32: a search like this one (40 s) + 13.5 s
    assert _fields(display, main).fields["eta_at"] == pytest.approx(clock.now_s + 35 + 13.5 + 40 + 13.5)
    assert 0 < _fields(display, main).completed < 0.1
    clock.now_s += 10.0  # the countdown runs between events
    assert _eta_text(display, search) == "ETA 0:00:25"


def test_search_row_hides_after_the_search_and_its_time_is_reused(shown) -> None:
    display, clock = shown
    main, search = display.devices[0].task, display.search_tasks[0]
    display.on_event("phase", {"device": 0, "dtype": "fp16", "phase": "search"})
    clock.now_s += 30.0
    display.on_event("search", {"device": 0, "dtype": "fp16", "done": 4, "total": 4})
    display.on_event("phase", {"device": 0, "dtype": "fp16", "phase": "core"})
    assert not _fields(display, search).visible
    clock.now_s += 4.0
    display.on_event("progress", {"device": 0, "dtype": "fp16", "elapsed_s": 4.0})
    # 6 s of core + 1.5 s after it, then fp32: the 30 s search measured here + 13.5 s
    assert _fields(display, main).fields["eta_at"] == pytest.approx(clock.now_s + 6 + 1.5 + 30 + 13.5)
    display.on_event("measurement", {"device": 0, "dtype": "fp16", "summary": {"status": "ok", "dtype": "fp16"}})
    display.on_event("phase", {"device": 0, "dtype": "fp32", "phase": "search"})
    # fp32's search has no try done yet: the earlier search's 30 s stands in for it
    assert _fields(display, main).fields["eta_at"] == pytest.approx(clock.now_s + 30 + 13.5)


def test_fixed_shape_has_no_search_to_wait_for() -> None:
    clock = Clock()
    display = RunDisplay(_plan(shape=(128, 128, 128)), enabled=False, clock=clock)
    with display:
        display.on_event("phase", {"device": 0, "dtype": "fp16", "phase": "search"})
        assert _fields(display, display.devices[0].task).fields["eta_at"] == pytest.approx(clock.now_s + 2 * 13.5)
        assert not _fields(display, display.search_tasks[0]).visible


def _payload(host: str, tflops: float, core_phase_s: float = 3.1) -> dict:
    m = {"host": host, "device": 0, "dtype": "fp32", "m": 256, "n": 256, "k": 256, "tflops": tflops,
         "tflops_iqr": tflops / 10, "valid": True, "grade": "smoke", "status": "ok", "power_method": "none",
         "core_phase_s": core_phase_s, "fraction_of_peak": None}
    agg = {"dtype": "fp32", "devices": 1, "tflops": tflops, "power_scope": "device", "power_method": "none"}
    return {"run_id": "r", "run_dir": "results/r", "status": "complete", "measurements": [m],
            "aggregates": [agg], "plan": {"profile": "quick", "duration_s": 3.0, "seed": 0}}


def _printed(payload: dict) -> str:
    console = Console(record=True, width=200)
    print_run(payload, console)
    return console.export_text()


def test_bar_and_tables_name_the_device_alike(shown) -> None:
    display, _ = shown
    label = _fields(display, display.devices[0].task).fields["device"]
    assert label == f"{hostname()}:0"  # the runner records host = hostname()
    assert label in _printed(_payload(hostname(), 0.5))


def test_cpu_throughput_prints_in_gflops_not_zero() -> None:
    text = _printed(_payload("vm", 0.0042))
    assert "GFLOPS" in text and "4.20" in text and "0.42" in text  # median and IQR, scaled alike
    assert "0.00" not in text
    gpu = _printed(_payload("vm", 645.7))
    assert "645.70" in gpu and "TFLOPS" in gpu


def test_throughput_unit_rule() -> None:
    assert throughput_unit([645.7, 51.3]) == ("TFLOPS", 1.0)
    assert throughput_unit([645.7, 0.004]) == ("GFLOPS", 1e3)  # one column, one unit
    assert throughput_unit([None, 0.0]) == ("TFLOPS", 1.0)  # nothing measured: no reason to scale
    assert throughput_unit([2e-9])[0] == "MFLOPS"


def test_core_phase_says_planned_and_measured() -> None:
    text = _printed(_payload("vm", 1.0, core_phase_s=3.1))
    assert "core phase (planned): 3.0 s" in text
    assert "measured core phase 3.1 s" in text
