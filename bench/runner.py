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
from typing import Any, Callable, Protocol

from . import challenge, record
from .inventory import hostname, utc_now
from .plan import RunPlan
from .stats import Stats

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
) -> dict[str, Any]:
    """Assemble one measurement object (the format in results/README.md). Pure: no I/O.

    ``core_window``: the core phase's edges on this host's ``time.monotonic()`` clock, which a
    fleet run maps onto rank 0's timeline to line up devices and rack meters. ``trust``: the
    ``challenge`` and ``output_samples`` objects (:func:`challenge.measurement_fields`); a
    Freivalds result travels in ``correctness["freivalds"]`` and must pass for ``valid``."""
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
        "throttled": bool(getattr(window, "throttled", False)),
        "throttle_reasons": list(getattr(window, "throttle_reasons", []) or []),
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
                   worker_count: int = 1) -> list[dict[str, Any]]:
    """Measure every dtype of ``plan`` on device ``index``; each measurement is written as it finishes."""
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
            emit("phase", device=index, dtype=dtype, phase="search", total_s=None)
            arrived = _Arrival()  # whether this dtype's common start was reached (at most one wait each)
            try:
                if unsupported[dtype] is not None:
                    raise UnsupportedDtype(f"{info.get('model')} ({plan.backend}) cannot run {dtype} GEMMs here: "
                                           f"{unsupported[dtype]}")
                meas = _measure_one(plan, backend, index, dtype, DTYPES[dtype], info, seq, host, run_dir, emit,
                                    barrier, sampler, gemm, peaks, arrived)
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


class _Arrival:
    """One device's arrival at one dtype's common start: waited for exactly once, whether the
    dtype ran or failed before it (a second wait would pair this device with its peers' next dtype)."""

    def __init__(self) -> None:
        self.done = False

    def wait(self, barrier: StartBarrier | None, emit: Emit | None = None, index: int | None = None) -> None:
        if barrier is None or self.done:
            return
        self.done = True
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
        except Exception:  # a broken or timed-out barrier only costs the common start
            if emit is not None:
                emit("warning", device=index, message="common start missed: peers did not arrive in time")

    def skip(self, barrier: StartBarrier | None) -> None:
        """A device that cannot measure a dtype still arrives, so its peers do not wait for it."""
        self.wait(barrier)


def _measure_one(plan, backend, index, dtype, spec, info, seq, host, run_dir, emit, barrier, sampler, gemm, peaks,
                 arrived: _Arrival):
    with backend.numeric_mode(dtype) as flags:
        free_b, _total_b = backend.memory_info(index)
        if plan.shape:
            best = gemm.GemmShape(*plan.shape)
            tried: list[dict[str, Any]] = []
        else:
            shapes = gemm.candidate_shapes(dtype, free_b, quick=backend.prefers_small_shapes,
                                            limit=plan.max_shapes)
            best, tried = gemm.search_best_shape(
                backend, index, dtype, shapes, plan.seed, batch_ms=plan.batch_ms, batches=plan.search_batches,
                on_candidate=lambda done, total: emit("search", device=index, dtype=dtype, done=done, total=total))
        emit("phase", device=index, dtype=dtype, phase="warmup", total_s=None)
        ch = challenge.from_plan(plan.extra, plan.seed)
        device_id = challenge.device_identity(info, host, index)
        shape = (best.m, best.n, best.k)
        seed = challenge.input_seed(ch, dtype, device_id, shape)
        # host-generated seeded rows: `bench audit` regenerates exactly these inputs on a CPU
        wl = gemm.GemmWorkload(backend, index, dtype, best, seed, inputs="host-rows")
        try:
            wl.warmup_for(plan.warmup_ms)
            iters = wl.calibrate(plan.batch_ms)
            # two timed batches outside the window: the graph for this batch size is captured and
            # replayed once here, so the energy window holds steady-state batches only
            wl.run_timed(iters, n_batches=2)
            # the numeric-mode probe now runs through the eager call and the captured graph alike
            probe = _plain(wl.mode_probe())
            wl.poison()
            if barrier is not None:
                emit("phase", device=index, dtype=dtype, phase="waiting", total_s=None)
                arrived.wait(barrier, emit, index)
            emit("phase", device=index, dtype=dtype, phase="core", total_s=plan.duration_s)
            started = utc_now()
            t_start = time.monotonic()
            backend.synchronize(index)
            win = sampler.begin_window()

            def on_batch(i: int, time_ms: float) -> None:
                emit("progress", device=index, dtype=dtype, elapsed_s=time.monotonic() - t_start)

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
    trace_file = record.write_trace(run_dir, trace_id, sampler.trace_rows(win))
    pk = peaks.lookup(info.get("model") or "", dtype)
    return build_measurement(
        plan=plan, host=host, index=index, seq=seq, dtype_spec=_plain(spec), device_info=info,
        shape=(best.m, best.n, best.k), shape_search=_plain(tried), timed=timed, window=window,
        telemetry=_plain(sampler.telemetry(win)), correctness=corr, mode_probe=probe, numeric_mode=_plain(flags),
        peak=_plain(pk) if pk else None, started_at=started, ended_at=ended, trace_file=trace_file,
        workload=workload, core_window=(win.t_begin_s, win.t_end_s), trust=trust,
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
            "core_phase_s", "throttled", "throttle_reasons", "wall_vs_events", "timing_consistent")
    out = {key: m.get(key) for key in keys}
    out["model"] = (m.get("device_info") or {}).get("model")
    st = m.get("tflops_stats") or {}
    out["tflops_iqr"] = st.get("iqr")
    out["tflops_cv"] = st.get("cv")
    return out
