"""The audit's arithmetic: every figure of a measurement recomputed from its raw samples, and the
internal consistency of the measurement and its power trace (the checks MLPerf's power
compliance checker makes of a log: sample counts, timestamps inside the window, power within
the device's limits, a counter that only grows).

Each check returns problems as short sentences; :mod:`.audit` names the measurement.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from .stats import Stats

#: recomputed and recorded figures agree to this relative precision (same arithmetic, same inputs)
REL_TOL = 1e-9
#: the most power a source of each scope can plausibly read (W): above it a trace is not a reading
POWER_BOUNDS_W = {"device": 3_000.0, "node": 30_000.0, "rack": 300_000.0}
#: samples may exceed the enforced power limit briefly (sensor averaging, limit updates)
LIMIT_HEADROOM = 1.25
#: batches fit in the window: their summed time may exceed it by this fraction + slack (timer resolution)
BATCH_FIT_REL, BATCH_FIT_ABS_S = 0.02, 0.005
#: the ISO stamps around the core phase may lag it by setup and teardown (sync, window edges)
STAMP_SLACK_S = 30.0
#: a counter's energy recomputed from polled readings: relative slack, plus power × edge gaps
COUNTER_REL_TOL = 0.01


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=1e-12)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _stamp(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def raw_fields(m: dict[str, Any]) -> tuple[list[float], int] | str:
    """(batch times in ms, GEMMs per batch), or why they are unusable."""
    samples = m.get("samples")
    if not isinstance(samples, dict):
        return "no raw samples (samples.batch_time_ms)"
    times, iters = samples.get("batch_time_ms"), samples.get("iters_per_batch")
    if not isinstance(times, list) or not times or not all(_num(t) and t > 0 for t in times):
        return "samples.batch_time_ms is not a non-empty list of positive batch times"
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 1:
        return f"samples.iters_per_batch is {iters!r}, expected a positive integer"
    return [float(t) for t in times], iters


def check_throughput(m: dict[str, Any], times_ms: list[float], iters: int) -> tuple[list[str], dict[str, Any]]:
    """Shape, FLOPs, TFLOPS median and statistics, wall-clock ratio, sample counts."""
    problems: list[str] = []
    dims = [m.get(x) for x in ("m", "n", "k")]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        return [f"shape {dims} is not three positive integers"], {}
    mm, nn, kk = dims
    flops = 2 * mm * nn * kk
    per_batch = flops * iters
    st = Stats.of([per_batch / (t * 1e-3) / 1e12 for t in times_ms])
    total = per_batch * len(times_ms)
    out = {"tflops": st.median, "flops_total": total}
    if m.get("flops_per_gemm") != flops:
        problems.append(f"flops_per_gemm {m.get('flops_per_gemm')} is not 2·m·n·k = {flops}")
    if m.get("flops_total") != total:
        problems.append(f"flops_total {m.get('flops_total')} is not {total} from the batches")
    if not _close(m.get("tflops"), st.median):
        problems.append(f"tflops {m.get('tflops')} is not the median of the batch times ({st.median:.6g})")
    recorded = m.get("tflops_stats") if isinstance(m.get("tflops_stats"), dict) else {}
    for key, value in st.as_dict().items():
        if not _close(recorded.get(key), value):
            problems.append(f"tflops_stats.{key} {recorded.get(key)} is not {value:.6g} from the batch times")
            break
    if m.get("unstable") is not st.unstable:
        problems.append(f"unstable is {m.get('unstable')}, the batch times say {st.unstable}")
    timing = m.get("timing") if isinstance(m.get("timing"), dict) else {}
    if timing.get("batches") != len(times_ms) or timing.get("iters_per_batch") != iters:
        problems.append(f"timing says {timing.get('batches')} batches of {timing.get('iters_per_batch')}, "
                        f"the samples hold {len(times_ms)} of {iters}")
    wall_s = timing.get("wall_s")
    if _num(wall_s) and wall_s > 0:
        wall_tflops = total / wall_s / 1e12
        out["tflops_wall"] = wall_tflops
        if not _close(m.get("tflops_wall"), wall_tflops):
            problems.append(f"tflops_wall {m.get('tflops_wall')} is not {wall_tflops:.6g} from flops and wall_s")
        if sum(times_ms) / 1e3 > wall_s * (1 + BATCH_FIT_REL) + BATCH_FIT_ABS_S:
            problems.append(f"the batches add up to {sum(times_ms) / 1e3:.3f} s, longer than the run's wall time {wall_s:.3f} s")
    return problems, out


def check_window(m: dict[str, Any], times_ms: list[float], manifest: dict[str, Any]) -> list[str]:
    """The core phase: its length against the window edges, the batches and the ISO stamps."""
    problems: list[str] = []
    core_s = m.get("core_phase_s")
    if not _num(core_s) or core_s <= 0:
        return [f"core_phase_s {core_s!r} is not a positive length"]
    cw = m.get("core_window")
    if isinstance(cw, dict) and _num(cw.get("t_begin_s")) and _num(cw.get("t_end_s")):
        if not math.isclose(cw["t_end_s"] - cw["t_begin_s"], core_s, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"core_phase_s {core_s} is not the window's length {cw['t_end_s'] - cw['t_begin_s']:.6f} s")
    power = m.get("power") if isinstance(m.get("power"), dict) else None
    if power is not None and _num(power.get("window_s")) and not _close(power["window_s"], core_s):
        problems.append(f"core_phase_s {core_s} differs from the power window's {power['window_s']}")
    if sum(times_ms) / 1e3 > core_s * (1 + BATCH_FIT_REL) + BATCH_FIT_ABS_S:
        problems.append(f"the batches add up to {sum(times_ms) / 1e3:.3f} s, longer than the core phase {core_s:.3f} s")
    want_grade = "assessment" if core_s >= float((manifest.get("plan") or {}).get("min_assessment_s") or 60.0) else "smoke"
    if m.get("grade") != want_grade:
        problems.append(f"grade {m.get('grade')!r} but a {core_s:.1f} s core phase is {want_grade!r}")
    started, ended = _stamp(m.get("started_at")), _stamp(m.get("ended_at"))
    if started is None or ended is None:
        problems.append("started_at/ended_at are not ISO 8601 times")
    else:
        span = (ended - started).total_seconds()
        if span < core_s - 0.05 or span > core_s + STAMP_SLACK_S:
            problems.append(f"started_at..ended_at spans {span:.2f} s for a {core_s:.2f} s core phase")
        created, finished = _stamp(manifest.get("created_at")), _stamp(manifest.get("finished_at"))
        if created is not None and started < created:
            problems.append("started_at is before the record was created")
        if finished is not None and ended > finished:
            problems.append("ended_at is after the record was finished")
    return problems


def _trace_rows(run_dir: Path, rel: str) -> list[dict[str, Any]] | str:
    from . import record

    try:
        df = record.read_trace(run_dir, rel)
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas errors of a damaged file
        return f"trace {rel} unreadable ({type(exc).__name__}: {exc})"
    rows = []
    for r in df.to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return rows


def check_energy(m: dict[str, Any], run_dir: Path, flops_total: int) -> tuple[list[str], dict[str, Any]]:
    """Energy, power and GFLOPS/W from the trace, and the trace's own consistency."""
    from .power.base import PowerSample
    from .power.sampler import integrate_power

    problems: list[str] = []
    out: dict[str, Any] = {}
    power = m.get("power") if isinstance(m.get("power"), dict) else {}
    core_s = float(m.get("core_phase_s") or 0.0)
    energy, method = m.get("energy_j"), m.get("power_method")
    if energy is None:
        if m.get("gflops_per_w") is not None or m.get("power_w") is not None:
            problems.append("power_w/gflops_per_w given without an energy")
    else:
        if not _num(energy) or energy <= 0:
            return [f"energy_j {energy!r} is not a positive number"], out
        if not _close(m.get("power_w"), energy / core_s):
            problems.append(f"power_w {m.get('power_w')} is not energy_j / core_phase_s = {energy / core_s:.6g}")
        gpw = flops_total / energy / 1e9
        out["gflops_per_w"] = gpw
        if not _close(m.get("gflops_per_w"), gpw):
            problems.append(f"gflops_per_w {m.get('gflops_per_w')} is not flops_total / energy_j = {gpw:.6g}")
    rel = m.get("trace_file")
    if not rel:
        if energy is not None:
            problems.append("an energy figure without a trace to recompute it from")
        return problems, out
    rows = _trace_rows(run_dir, str(rel))
    if isinstance(rows, str):
        return problems + [rows], out
    ts = [r.get("t_s") for r in rows]
    if not all(_num(t) for t in ts) or any(b < a for a, b in zip(ts, ts[1:])):
        return problems + [f"trace {rel}: timestamps missing or out of order"], out
    eps = 1e-9
    before = [t for t in ts if t < -eps]
    after = [t for t in ts if t > core_s + eps]
    inside = len(ts) - len(before) - len(after)
    if len(before) > 1 or len(after) > 1:
        problems.append(f"trace {rel}: {len(before)} samples before and {len(after)} after the window "
                        "(one bracketing sample each at most)")
    if _num(power.get("n_samples")) and power["n_samples"] != inside:
        problems.append(f"trace {rel}: {inside} samples inside the window, the record says {power['n_samples']}")
    scope = str(m.get("power_scope") or "device")
    watts = [r.get("power_w") for r in rows if r.get("power_w") is not None]
    limits = [r.get("power_limit_w") for r in rows if _num(r.get("power_limit_w"))]
    bound = POWER_BOUNDS_W.get(scope, POWER_BOUNDS_W["rack"])
    if limits:
        bound = min(bound, LIMIT_HEADROOM * max(limits))
    bad = [w for w in watts if not _num(w) or w < 0 or w > bound]
    if bad:
        problems.append(f"trace {rel}: power reading {bad[0]!r} W outside 0..{bound:.0f} W "
                        f"({'the device power limit' if limits else f'plausible for a {scope}'})")
    counters = [(r["t_s"], r["energy_j"]) for r in rows if _num(r.get("energy_j"))]
    if any(b[1] < a[1] for a, b in zip(counters, counters[1:])):
        problems.append(f"trace {rel}: the energy counter goes backwards")
    if energy is None or bad:
        return problems, out
    samples = [PowerSample(t_s=float(r["t_s"]), power_w=r.get("power_w"), energy_j=r.get("energy_j")) for r in rows]
    if method == "polled":
        polled, _note = integrate_power(samples, 0.0, core_s)
        out["energy_j"] = polled
        if polled is None or not math.isclose(polled, energy, rel_tol=1e-6):
            problems.append(f"energy_j {energy} is not the trace's integral {polled}")
    elif method == "counter":
        got = _counter_energy(counters, core_s)
        if got is None:
            problems.append(f"trace {rel}: no counter readings bracketing the window to recompute energy_j")
        else:
            value, slack = got
            out["energy_j"] = value
            if abs(value - energy) > COUNTER_REL_TOL * energy + slack:
                problems.append(f"energy_j {energy:.6g} J is not the trace's counter difference {value:.6g} J "
                                f"(± {COUNTER_REL_TOL * energy + slack:.3g} J)")
    return problems, out


def _counter_energy(counters: list[tuple[float, float]], core_s: float) -> tuple[float, float] | None:
    """(counter at the window's end minus at its begin, linear between bracketing readings; the
    slack that interpolation allows: the mean power times the bracketing gaps)."""
    def at(t: float) -> tuple[float, float] | None:
        before = [c for c in counters if c[0] <= t][-1:]
        after = [c for c in counters if c[0] >= t][:1]
        if not before or not after:
            return None
        (t0, e0), (t1, e1) = before[0], after[0]
        return (e0 if t1 == t0 else e0 + (e1 - e0) * (t - t0) / (t1 - t0)), t1 - t0

    a, b = at(0.0), at(core_s)
    if a is None or b is None:
        return None
    value = b[0] - a[0]
    mean_w = value / core_s if core_s > 0 else 0.0
    return value, 2 * mean_w * (a[1] + b[1])


def check_validity(m: dict[str, Any]) -> list[str]:
    """``valid`` follows from the correctness results it summarises."""
    corr = m.get("correctness") if isinstance(m.get("correctness"), dict) else {}
    probe = corr.get("mode_probe") if isinstance(corr.get("mode_probe"), dict) else {}
    fr = corr.get("freivalds") if isinstance(corr.get("freivalds"), dict) else None
    problems = []
    if fr is None:
        problems.append("no Freivalds result (correctness.freivalds): full-output correctness not shown")
    want = bool(corr.get("valid")) and bool(probe.get("passed", True)) and bool(fr and fr.get("passed"))
    if bool(m.get("valid")) and not want:
        problems.append("valid is true but a correctness check in the record failed or is missing")
    if fr is not None and _num(fr.get("time_s")) and _num(m.get("core_phase_s")) and m["core_phase_s"] > 0:
        if not _close(fr.get("fraction_of_core_phase"), fr["time_s"] / m["core_phase_s"]):
            problems.append("correctness.freivalds.fraction_of_core_phase is not time_s / core_phase_s")
    return problems


__all__ = ["check_energy", "check_throughput", "check_validity", "check_window", "raw_fields"]
