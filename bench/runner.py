"""Measure one device: for each dtype, shape search, warm-up, the sustained core phase bracketed by
the power reader's window, the correctness check, and one record file written before the next dtype.

The runner sees a backend and a power reader, nothing vendor-specific: the backend comes from
:func:`icb_bench.kernels.backends.get_backend`, the reader from :func:`icb_bench.bench.power.reader_for`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Protocol

from . import challenge, record
from .inventory import hostname, utc_now
from .plan import RunPlan
from .stats import Stats

#: the least time between two progress events of a core phase (one per batch filled a worker's pipe)
PROGRESS_EVERY_S = 0.5


class Throttle:
    """``due(now_s)`` is true at most once per ``every_s`` (the first call always)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last_s: float | None = None

    def due(self, now_s: float) -> bool:
        if self._last_s is not None and now_s - self._last_s < self.every_s:
            return False
        self._last_s = now_s
        return True

Emit = Callable[..., None]


class StartBarrier(Protocol):
    """A common start for the core phase of every device (multiprocessing.Barrier fits)."""

    def wait(self, timeout: float | None = None) -> int: ...


#: how long a device waits at the common start for its peers before starting alone
BARRIER_TIMEOUT_S = 900.0
#: the wall-clock cross-check: whole-window throughput within this fraction of the event median
WALL_TOLERANCE = 0.05


def _plain(obj: Any) -> Any:
    """Dataclasses and tuples into JSON-ready values."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def device_record(info: Any) -> dict[str, Any]:
    """A DeviceInfo as the record's ``device_info`` object, with ``domestic`` made explicit."""
    d = _plain(info)
    d["domestic"] = info.domestic
    return d


def build_measurement(
    *,
    plan: RunPlan,
    host: str,
    index: int,
    seq: int,
    dtype_spec: dict[str, Any],
    device_info: dict[str, Any],
    shape: tuple[int, int, int],
    shape_search: list[dict[str, Any]],
    timed: Any,
    window: Any,
    telemetry: dict[str, Any],
    correctness: dict[str, Any],
    mode_probe: dict[str, Any],
    numeric_mode: dict[str, Any],
    peak: dict[str, Any] | None,
    started_at: str,
    ended_at: str,
    trace_file: str | None,
    workload: dict[str, Any] | None = None,
    core_window: tuple[float, float] | None = None,
    trust: dict[str, Any] | None = None,
    seeking: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble one measurement object (the format in results/README.md). Pure: no I/O.

    ``core_window``: the core phase's edges on this host's ``time.monotonic()`` clock, which a
    fleet run maps onto rank 0's timeline to line up devices and rack meters. ``trust``: the
    ``challenge`` and ``output_samples`` objects (:func:`challenge.measurement_fields`); a
    Freivalds result travels in ``correctness["freivalds"]`` and must pass for ``valid``.
    ``seeking``: the warm-up, search, schedule, drift, steadiness and operating point of the
    measurement (see ``_measure_one``); absent keys are recorded as null."""
    m, n, k = shape
    flops = 2 * m * n * k
    per_batch_flops = flops * timed.iters_per_batch
    tflops_samples = [per_batch_flops / (t_ms * 1e-3) / 1e12 for t_ms in timed.batch_time_ms]
    st = Stats.of(tflops_samples)
    total_flops = per_batch_flops * len(timed.batch_time_ms)
    core_s = float(window.window_s) if window is not None else float(timed.wall_s)
    tflops_wall = total_flops / timed.wall_s / 1e12 if timed.wall_s > 0 else None
    wall_ratio = (tflops_wall / st.median) if tflops_wall and st.median else None
    freivalds = correctness.get("freivalds")
    if isinstance(freivalds, dict):  # its cost, as a fraction of the core phase it follows
        freivalds = {**freivalds, "fraction_of_core_phase": (freivalds.get("time_s") or 0.0) / core_s if core_s else None}
        correctness = {**correctness, "freivalds": freivalds}
    full_ok = freivalds is None or bool(freivalds.get("passed"))
    valid = bool(correctness.get("valid")) and bool(mode_probe.get("passed", True)) and full_ok
    energy_j = getattr(window, "energy_j", None)
    gflops_per_w = (total_flops / energy_j / 1e9) if energy_j else None
    reasons = []
    if not correctness.get("valid"):
        reasons.append(f"correctness: {correctness.get('reason') or 'failed'}")
    if not full_ok:
        reasons.append(f"correctness: {freivalds.get('reason') or 'Freivalds check failed'}")  # type: ignore[union-attr]
    if not mode_probe.get("passed", True):
        reasons.append(f"numeric mode: {mode_probe.get('detail') or 'probe failed'}")
    dtype = dtype_spec["name"]
    seeking = seeking or {}
    op = seeking.get("operating_point")
    search_tflops = ((seeking.get("search") or {}).get("chosen") or {}).get("tflops_search")
    return {
        "schema": record.MEASUREMENT_SCHEMA,
        "id": f"{host}-d{index}-{dtype}",
        "seq": seq,
        "host": host,
        "device": index,
        "backend": plan.backend,
        "device_info": device_info,
        "dtype": dtype,
        "dtype_spec": {key: dtype_spec[key] for key in ("inputs", "accumulate", "output")},
        "m": m,
        "n": n,
        "k": k,
        "flops_per_gemm": flops,
        "flops_total": total_flops,
        "grade": plan.grade_for(core_s),
        "core_phase_s": core_s,
        "valid": valid,
        "status": "ok" if valid else "invalid",
        "error": "; ".join(reasons) or None,
        "correctness": {**correctness, "mode_probe": mode_probe},
        "numeric_mode": numeric_mode,
        "seed": plan.seed,
        "tflops": st.median,
        "tflops_stats": st.as_dict(),
        "unstable": st.unstable,
        "tflops_wall": tflops_wall,
        "wall_vs_events": wall_ratio,
        # the device timer and the host clock must tell the same story (a broken timer or idle
        # gaps between batches show up here)
        "timing_consistent": None if wall_ratio is None else abs(wall_ratio - 1) <= WALL_TOLERANCE,
        "timing": {"method": timed.method, "iters_per_batch": timed.iters_per_batch,
                   "batches": len(timed.batch_time_ms), "batch_ms_target": plan.batch_ms,
                   "warmup_ms": plan.warmup_ms, "wall_s": timed.wall_s},
        "samples": {"batch_time_ms": list(timed.batch_time_ms), "iters_per_batch": timed.iters_per_batch},
        "shape_search": shape_search,
        "workload": workload,
        "power_w": getattr(window, "power_w", None),
        "energy_j": energy_j,
        "gflops_per_w": gflops_per_w,
        "power_scope": getattr(window, "scope", "device"),
        "power_method": getattr(window, "method", "none"),
        "power": _plain(window) if window is not None else None,
        "throttled": bool(op["throttled"]) if op else bool(getattr(window, "throttled", False)),
        "throttle_reasons": list(op["throttle_reasons"]) if op else list(getattr(window, "throttle_reasons", []) or []),
        "at_power_limit": op.get("at_power_limit") if op else None,
        "fully_loaded": op.get("fully_loaded") if op else None,
        "operating_point": op,
        "warmup": seeking.get("warmup"),
        "search": seeking.get("search"),
        "tflops_search": search_tflops,
        "search_vs_core": (search_tflops / st.median) if search_tflops and st.median else None,
        "schedule": seeking.get("schedule"),
        "drift": seeking.get("drift"),
        "steady": seeking.get("steady"),
        "steady_reason": seeking.get("steady_reason"),
        "steady_basis": seeking.get("steady_basis"),
        "steady_note": seeking.get("steady_note"),
        "telemetry": telemetry,
        "trace_file": trace_file,
        "peak": peak,
        "fraction_of_peak": (st.median / peak["tflops"]) if peak and peak.get("tflops") else None,
        "started_at": started_at,
        "ended_at": ended_at,
        "core_window": ({"t_begin_s": core_window[0], "t_end_s": core_window[1], "clock": "monotonic"}
                        if core_window else None),
        "challenge": (trust or {}).get("challenge"),
        "output_samples": (trust or {}).get("output_samples"),
    }


def failed_measurement(plan: RunPlan, host: str, index: int, seq: int, dtype: str, device_info: dict[str, Any] | None,
                       status: str, error: str) -> dict[str, Any]:
    """A measurement that produced no throughput (unsupported dtype, device error): recorded, never counted."""
    return {
        "schema": record.MEASUREMENT_SCHEMA, "id": f"{host}-d{index}-{dtype}", "seq": seq, "host": host,
        "device": index, "backend": plan.backend, "device_info": device_info, "dtype": dtype,
        "grade": "smoke", "valid": False, "status": status, "error": error, "tflops": None,
        "power_w": None, "energy_j": None, "gflops_per_w": None, "power_scope": None, "power_method": "none",
        "m": None, "n": None, "k": None, "seed": plan.seed, "ended_at": utc_now(),
    }


def measure_device(plan: RunPlan, index: int, run_dir: Path, emit: Emit, barrier: StartBarrier | None = None,
                   worker_count: int = 1, only_dtypes: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Measure every dtype of ``plan`` on device ``index``; each measurement is written as it finishes.
    ``only_dtypes`` (a resume): measure just these, each keeping its place (``seq``) in the plan."""
    from icb_bench.kernels import gemm, peaks
    from icb_bench.kernels.backends import get_backend
    from icb_bench.kernels.dtypes import DTYPES, probe_dtypes
    from icb_bench.kernels.errors import KernelError, UnsupportedDtype

    from .power import reader_for
    from .power.sampler import Sampler

    host = hostname()
    backend = get_backend(plan.backend)
    backend.configure_worker(index, worker_count)
    info = device_record(backend.device_info(index))
    reader = reader_for(plan.backend, index, info)
    emit("device", device=index, info=info, power=reader.describe())
    # probe only the dtypes this run measures (each probe is a tiny GEMM), and keep the reason
    unsupported = probe_dtypes(backend, index, plan.dtypes)
    results: list[dict[str, Any]] = []
    sampler = Sampler(reader, hz=plan.sample_hz)
    sampler.start()
    try:
        for seq, dtype in enumerate(plan.dtypes):
            arrived = _Arrival()  # which of this dtype's common starts were reached (one wait each)
            if only_dtypes is not None and dtype not in only_dtypes:
                arrived.skip(barrier)  # measured before: still at its common starts, so peers stay in step
                continue
            emit("phase", device=index, dtype=dtype, phase="starting", total_s=None)
            try:
                if unsupported[dtype] is not None:
                    raise UnsupportedDtype(f"{info.get('model')} ({plan.backend}) cannot run {dtype} GEMMs here: "
                                           f"{unsupported[dtype]}")
                meas = _measure_one(plan, backend, index, dtype, DTYPES[dtype], info, seq, host, run_dir, emit,
                                    barrier, sampler, gemm, peaks, arrived, reader)
            except record.RecordWriteError:
                raise  # the record's disk failed: the run stops (bench/orchestrate.py), nothing is measured on
            except UnsupportedDtype as exc:
                arrived.skip(barrier)
                meas = failed_measurement(plan, host, index, seq, dtype, info, "unsupported", str(exc))
            except KernelError as exc:
                arrived.skip(barrier)
                meas = failed_measurement(plan, host, index, seq, dtype, info, "failed", f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a device failure must not lose the other devices' work
                arrived.skip(barrier)
                meas = failed_measurement(plan, host, index, seq, dtype, info, "failed",
                                          f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
            record.write_measurement(run_dir, meas)  # on disk before the next dtype starts
            results.append(meas)
            emit("measurement", device=index, dtype=dtype, summary=summarize(meas))
    finally:
        sampler.stop()
        reader.close()
    return results


#: the common starts of every dtype, in order: before the warm-up (devices heat up together) and
#: before the core phase (core phases start together even when one device's warm-up, search or
#: set-up ran late). Every device waits at each exactly once per dtype, also when the dtype failed
#: (the n-th wait of every device is the same barrier: a job's barriers are counted, not named).
SYNC_POINTS = ("start", "core")


class _Arrival:
    """One device's arrivals at one dtype's common starts (:data:`SYNC_POINTS`): each waited for
    exactly once, in order, whether the dtype ran or failed before it (a second wait would pair
    this device with its peers' next point)."""

    def __init__(self) -> None:
        self.next = 0  # index into SYNC_POINTS of the next point to arrive at

    @property
    def done(self) -> bool:
        return self.next >= len(SYNC_POINTS)

    def wait(self, barrier: StartBarrier | None, emit: Emit | None = None, index: int | None = None,
             point: str = SYNC_POINTS[0]) -> None:
        """Arrive at ``point`` (and at any earlier point not yet arrived at)."""
        if barrier is None:
            return
        upto = SYNC_POINTS.index(point)
        while self.next <= upto:
            name = SYNC_POINTS[self.next]
            self.next += 1
            try:
                barrier.wait(timeout=BARRIER_TIMEOUT_S)
            except Exception:  # a broken or timed-out barrier only costs the common start
                if emit is not None:
                    emit("warning", device=index, message=f"common {name} missed: peers did not arrive in time")

    def skip(self, barrier: StartBarrier | None) -> None:
        """A device that cannot measure a dtype still arrives at every point left, so its peers do
        not wait for it."""
        self.wait(barrier, point=SYNC_POINTS[-1])


def warm_until_steady(run_chunk: Callable[[], list[tuple[float, float]]], readings: Callable[[float], list[Any]],
                      rule: Any, min_s: float, max_s: float, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Keep the device loaded (``run_chunk()`` runs a few batches and returns their (t_s,
    TFLOPS)) until the steady-state rule holds over its trailing window -- not before ``min_s``
    -- or until ``max_s``. ``readings(since_s)``: the telemetry since then. The record's
    ``warmup`` object: duration, whether steady state was reached, and the last verdict."""
    from .steady import judge_steady

    t0 = clock()
    points: list[tuple[float, float]] = []
    min_s = min(min_s, max_s)
    while True:
        points += run_chunk()
        now = clock()
        verdict = judge_steady(rule, readings(t0), points, now)
        elapsed = now - t0
        if (verdict.steady and elapsed >= min_s) or elapsed >= max_s:
            break
    reason = verdict.reason
    if not verdict.steady:
        reason = f"warm-up reached its maximum ({max_s:g} s) before steady state: {verdict.reason}"
    return {"duration_s": elapsed, "min_s": min_s, "max_s": max_s, "steady": verdict.steady,
            "basis": verdict.basis, "reason": reason, "checks": verdict.checks, "batches": len(points)}


def _tflops_points(timed: Any, flops: int, t_offset_s: float) -> list[tuple[float, float]]:
    """(t_s, TFLOPS) of every batch of a TimedRun, on a clock offset by ``t_offset_s``."""
    per_batch = flops * timed.iters_per_batch
    return [(t_offset_s + t, per_batch / (ms * 1e-3) / 1e12)
            for t, ms in zip(timed.batch_done_s, timed.batch_time_ms) if ms > 0]


def _heat(plan: RunPlan, backend: Any, index: int, dtype: str, shape: Any, sampler: Any, gemm: Any) -> dict[str, Any]:
    """The warm-up after the common start: the heater shape, device-generated inputs, until
    steady state (see :func:`warm_until_steady`)."""
    from .steady import readings_from

    rule = plan.steady_rule()
    with gemm.GemmWorkload(backend, index, dtype, shape, plan.seed) as wl:
        wl.warmup(iters=1)
        iters = wl.calibrate(plan.search_batch_ms)
        per_chunk = max(2, int(min(0.5, rule.window_s / 10) * 1e3 / max(plan.search_batch_ms, 1e-3)))

        def run_chunk() -> list[tuple[float, float]]:
            t_call = time.monotonic()
            return _tflops_points(wl.run_timed(iters, n_batches=per_chunk), shape.flops, t_call)

        def readings(since_s: float) -> list[Any]:
            return readings_from(x for x in sampler.samples(0) if x.t_s >= since_s)

        out = warm_until_steady(run_chunk, readings, rule, plan.warmup_min_ms / 1e3, plan.warmup_ms / 1e3)
    out["shape"] = shape.as_dict()
    return out


def _search(plan: RunPlan, backend: Any, index: int, dtype: str, free_b: int, info: dict[str, Any], emit: Emit,
            gemm: Any) -> tuple[Any, list[dict[str, Any]], dict[str, Any] | None]:
    """(shape, per-candidate records, the ``search`` object): the fixed shape, or a
    successive-halving search within the plan's budget on the (warm) device."""
    from icb_bench.kernels.search import HalvingPolicy, halving_search
    from icb_bench.kernels.shapes import search_candidates

    cands = search_candidates(dtype, free_b, info.get("compute_units"), quick=backend.prefers_small_shapes,
                                   limit=plan.max_shapes)
    if not cands:
        raise gemm.OutOfMemory(f"no GEMM shape fits in {free_b} free bytes for {dtype}")
    out = halving_search(backend, index, dtype, cands, plan.seed,
                         HalvingPolicy(budget_s=plan.search_budget_s, batch_ms=plan.search_batch_ms),
                         on_candidate=lambda done, total: emit("search", device=index, dtype=dtype, done=done,
                                                               total=total))
    d = out.as_dict()
    d["share_of_core_phase"] = out.spent_s / plan.duration_s if plan.duration_s else None
    return out.best, out.candidates, d


def _heater_shape(plan: RunPlan, backend: Any, dtype: str, free_b: int, info: dict[str, Any], gemm: Any) -> Any:
    """The shape that heats the device: the fixed shape, else the search's first candidate."""
    from icb_bench.kernels.shapes import search_candidates

    if plan.shape:
        return gemm.GemmShape(*plan.shape)
    cands = search_candidates(dtype, free_b, info.get("compute_units"), quick=backend.prefers_small_shapes,
                                   limit=1)
    if not cands:
        raise gemm.OutOfMemory(f"no GEMM shape fits in {free_b} free bytes for {dtype}")
    return cands[0].shape


def _operating_point(reader: Any, window: Any, rows: list[dict[str, Any]], telemetry: dict[str, Any],
                     info: dict[str, Any]) -> dict[str, Any]:
    """The window's operating point (bench/load_check.py) from the reader and the trace."""
    from .load_check import WindowLoad, cap_summary, operating_point

    limits_fn = getattr(reader, "power_limits", None)
    limits = dict(limits_fn()) if callable(limits_fn) else {}
    if limits.get("limit_w") is None:
        limits["limit_w"] = telemetry.get("power_limit_w")
    inside = [r for r in rows if 0.0 <= r["t_s"] <= (window.window_s or 0.0)]
    # the window's own samples only: the trace also keeps one sample on either side of it
    cap_reasons, cap_share = cap_summary(reader, (r.get("throttle_reasons") for r in inside))
    return operating_point(WindowLoad(
        power_w=window.power_w,
        power_samples_w=[r["power_w"] for r in inside if r.get("power_w") is not None],
        limits=limits,
        cap_reasons=cap_reasons,
        cap_share=cap_share,
        throttle_reasons=list(window.throttle_reasons or []),
        sm_clock_mhz_median=telemetry.get("sm_clock_mhz_median"),
        base_sm_clock_mhz=(info.get("extra") or {}).get("base_sm_clock_mhz"),
    ))


def _steadiness(plan: RunPlan, warm: dict[str, Any], timed: Any, flops: int, rows: list[dict[str, Any]],
                window_s: float) -> dict[str, Any]:
    """Drift of the core phase and the measurement's ``steady`` verdict with its reason."""
    from .steady import drift, readings_from

    rule = plan.steady_rule()
    d = drift(rule, _tflops_points(timed, flops, 0.0), readings_from(rows), 0.0, window_s)
    reasons = [] if warm["steady"] else [warm["reason"]]
    if not d["steady"]:
        reasons.append(f"core phase: {d['reason']}")
    basis = warm.get("basis")
    note = ("no temperature/power telemetry: steadiness judged by the throughput plateau"
            if basis == "throughput-plateau" or (basis is None and not any(r.get("power_w") for r in rows)) else None)
    return {"drift": d, "steady": not reasons, "steady_reason": "; ".join(reasons) or None, "steady_basis": basis,
            "steady_note": note}


def _measure_one(plan, backend, index, dtype, spec, info, seq, host, run_dir, emit, barrier, sampler, gemm, peaks,
                 arrived: _Arrival, reader=None):
    with backend.numeric_mode(dtype) as flags:
        free_b, _total_b = backend.memory_info(index)
        heater = _heater_shape(plan, backend, dtype, free_b, info, gemm)
        # the common start comes first: every device of the node (of the job) heats up together,
        # and the schedule after it is the same on every device, so the core phases start together
        if barrier is not None:
            emit("phase", device=index, dtype=dtype, phase="waiting", total_s=None)
            arrived.wait(barrier, emit, index)
        t_go = time.monotonic()
        deadline = t_go + plan.schedule_s(searching=not plan.shape)
        emit("phase", device=index, dtype=dtype, phase="warmup", total_s=plan.warmup_ms / 1e3)
        warm = _heat(plan, backend, index, dtype, heater, sampler, gemm)
        if plan.shape:
            best, tried, search = gemm.GemmShape(*plan.shape), [], None
        else:
            emit("phase", device=index, dtype=dtype, phase="search", total_s=plan.search_budget_s)
            best, tried, search = _search(plan, backend, index, dtype, free_b, info, emit, gemm)
        ch = challenge.from_plan(plan.extra, plan.seed)
        device_id = challenge.device_identity(info, host, index)
        shape = (best.m, best.n, best.k)
        seed = challenge.input_seed(ch, dtype, device_id, shape)
        # host-generated seeded rows: `bench audit` regenerates exactly these inputs on a CPU
        wl = gemm.GemmWorkload(backend, index, dtype, best, seed, inputs="host-rows")
        try:
            iters = wl.calibrate(plan.batch_ms)
            # two timed batches: the graph for this batch size is captured and replayed once here
            wl.run_timed(iters, n_batches=2)
            # the numeric-mode probe now runs through the eager call and the captured graph alike
            probe = _plain(wl.mode_probe())
            # hold the device at the measured load until the common schedule's core start, then
            # start together with every peer (a late one holds the others up, never misaligns them)
            t_hold = time.monotonic()
            if deadline - t_hold > 0:
                wl.run_timed(iters, duration_s=deadline - t_hold)
            if barrier is not None:
                arrived.wait(barrier, emit, index, point="core")
            wl.poison()
            emit("phase", device=index, dtype=dtype, phase="core", total_s=plan.duration_s)
            started = utc_now()
            t_start = time.monotonic()
            schedule = {"schedule_s": deadline - t_go, "hold_s": max(0.0, t_start - t_hold),
                        "late_s": max(0.0, t_hold - deadline), "warmup_s": warm["duration_s"],
                        "search_s": search["spent_s"] if search else 0.0}
            backend.synchronize(index)
            win = sampler.begin_window()

            # a display line, not evidence: at most one per PROGRESS_EVERY_S, so a parent busy
            # elsewhere (shipping files) cannot fill this worker's pipe and stall its timed loop
            progress = Throttle(PROGRESS_EVERY_S)

            def on_batch(i: int, time_ms: float) -> None:
                now = time.monotonic()
                if progress.due(now):
                    emit("progress", device=index, dtype=dtype, elapsed_s=now - t_start)

            timed = wl.run_timed(iters, duration_s=plan.duration_s, on_batch=on_batch)
            backend.synchronize(index)
            window = sampler.end_window(win)
            ended = utc_now()
            # node/rack readers in the parent bracket the same window (time.monotonic is host-wide)
            emit("core_window", device=index, dtype=dtype, t_begin_s=win.t_begin_s, t_end_s=win.t_end_s)
            emit("phase", device=index, dtype=dtype, phase="check", total_s=None)
            corr = _plain(wl.check(samples=plan.check_samples))
            trust = _after_run_checks(wl, challenge.SampleContext(
                ch, dtype, device_id, shape,
                challenge.raw_digest(timed.batch_time_ms, timed.iters_per_batch, window.window_s, window.energy_j)),
                seed, corr)
            workload = _plain(wl.describe())
        finally:
            wl.close()
    trace_id = f"{host}-d{index}-{dtype}"
    rows = sampler.trace_rows(win)
    trace_file = record.write_trace(run_dir, trace_id, rows)
    pk = peaks.lookup(info.get("model") or "", dtype)
    telemetry = _plain(sampler.telemetry(win))
    seeking = {"warmup": warm, "search": search, "schedule": schedule,
               "operating_point": _operating_point(reader, window, rows, telemetry, info),
               **_steadiness(plan, warm, timed, best.flops, rows, float(window.window_s))}
    return build_measurement(
        plan=plan, host=host, index=index, seq=seq, dtype_spec=_plain(spec), device_info=info,
        shape=(best.m, best.n, best.k), shape_search=_plain(tried), timed=timed, window=window,
        telemetry=telemetry, correctness=corr, mode_probe=probe, numeric_mode=_plain(flags),
        peak=_plain(pk) if pk else None, started_at=started, ended_at=ended, trace_file=trace_file,
        workload=workload, core_window=(win.t_begin_s, win.t_end_s), trust=trust, seeking=seeking,
    )


def _after_run_checks(wl: Any, ctx: challenge.SampleContext, seed: int, corr: dict[str, Any]) -> dict[str, Any]:
    """Outside the timed window: Freivalds over every output element (into ``corr``), and the
    output samples drawn from the challenge and the raw samples' digest."""
    corr["freivalds"] = _plain(wl.freivalds(challenge.freivalds_seed(ctx)))
    rows, cols = challenge.positions(ctx)
    values = challenge.encode_values(wl.output_values(rows, cols), wl.spec.exact)
    return challenge.measurement_fields(ctx, seed, rows, cols, values)


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    """The per-measurement fields of `bench run --json` (the CLI contract)."""
    keys = ("device", "host", "dtype", "m", "n", "k", "tflops", "valid", "grade", "power_w", "energy_j",
            "gflops_per_w", "power_scope", "power_method", "status", "error", "unstable", "fraction_of_peak",
            "core_phase_s", "throttled", "throttle_reasons", "wall_vs_events", "timing_consistent", "steady",
            "steady_reason", "at_power_limit", "fully_loaded", "tflops_search")
    out = {key: m.get(key) for key in keys}
    out["model"] = (m.get("device_info") or {}).get("model")
    st = m.get("tflops_stats") or {}
    out["tflops_iqr"] = st.get("iqr")
    out["tflops_cv"] = st.get("cv")
    return out
