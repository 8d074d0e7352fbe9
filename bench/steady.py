"""Steady state and drift of a device under load: pure arithmetic on readings (no I/O, no clocks).

*Steady state* (judged over the trailing ``SteadyRule.window_s`` of a warm-up) holds when at
least one criterion below has data (``min_points`` readings in the window) and every criterion
that has data passes:

- throughput plateau: the median throughput of the window's second half is within
  ``tflops_plateau_rel`` of its first half's;
- temperature: the least-squares slope is at most ``temp_slope_c_per_min`` (either sign);
- power: the median power is within ``power_limit_band_rel`` of the power limit (*at the limit*),
  or, where no limit is known or it is not reached, the halves' medians are within
  ``power_flat_rel`` (*flat*);
- SM clock: halves within ``clock_flat_rel`` -- judged only when the power is not at its limit
  (at the limit the clock is whatever fits under it).

The basis says which held: ``power-limit``, ``plateau`` (telemetry flat), or
``throughput-plateau`` (no temperature/power telemetry, as on the CPU backend).

*Drift* compares the first sixth of the core phase with its last sixth (by time): the median
throughput (relative change) and the median temperature, power and SM clock (differences).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class SteadyRule:
    """Thresholds of the steady-state and drift judgements (one per profile, see bench/plan.py)."""

    window_s: float = 30.0
    min_points: int = 5
    tflops_plateau_rel: float = 0.01
    temp_slope_c_per_min: float = 2.0
    power_limit_band_rel: float = 0.05
    power_flat_rel: float = 0.02
    clock_flat_rel: float = 0.02
    #: a core phase is steady when |throughput drift| and the temperature rise stay within these
    drift_tflops_rel_max: float = 0.01
    drift_temp_c_max: float = 2.0

    def __post_init__(self) -> None:
        if not self.window_s > 0 or self.min_points < 2:
            raise ValueError(f"bad steady rule {self}: window_s > 0 and min_points >= 2 expected")


@dataclass(frozen=True)
class Reading:
    """One telemetry reading (any field but the time may be missing)."""

    t_s: float
    power_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None


@dataclass
class SteadyVerdict:
    """Whether the trailing window was steady, on which basis, and the figures judged."""

    steady: bool
    basis: str | None
    reason: str | None
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def readings_from(samples: Iterable[Any]) -> list[Reading]:
    """Readings from objects or dicts with the :class:`Reading` field names (PowerSample, trace rows)."""

    def get(s: Any, name: str) -> Any:
        return s.get(name) if isinstance(s, dict) else getattr(s, name, None)

    out = []
    for s in samples:
        vals = {name: get(s, name) for name in ("power_w", "power_limit_w", "temperature_c", "sm_clock_mhz")}
        out.append(Reading(float(get(s, "t_s")), **{k: (None if v is None or v != v else float(v)) for k, v in vals.items()}))
    return out


def slope_per_min(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t_s, value) points, per minute (0 when all times coincide)."""
    ts = [t for t, _ in points]
    if len(set(ts)) < 2:
        return 0.0
    return statistics.linear_regression(ts, [v for _, v in points]).slope * 60.0


def halves_change_rel(points: Sequence[tuple[float, float]], t0: float, t1: float) -> float | None:
    """median(second half) / median(first half) − 1 over [t0, t1]; None if a half is empty or ~0."""
    mid = 0.5 * (t0 + t1)
    first = [v for t, v in points if t < mid]
    second = [v for t, v in points if t >= mid]
    if not first or not second:
        return None
    a = statistics.median(first)
    return None if abs(a) < 1e-12 else statistics.median(second) / a - 1.0


def _series(readings: Sequence[Reading], name: str, t0: float) -> list[tuple[float, float]]:
    return [(r.t_s, v) for r in readings if r.t_s >= t0 and (v := getattr(r, name)) is not None]


def judge_steady(rule: SteadyRule, readings: Sequence[Reading], throughput: Sequence[tuple[float, float]],
                 now_s: float) -> SteadyVerdict:
    """Judge the window ``[now_s − rule.window_s, now_s]`` (see the module docstring).
    ``throughput``: (t_s, TFLOPS) of each finished batch, on the readings' clock."""
    t0 = now_s - rule.window_s
    checks: dict[str, Any] = {"window_s": rule.window_s}
    failed: list[str] = []
    enough = rule.min_points

    def flat(points: Sequence[tuple[float, float]], key: str, tol: float, what: str) -> None:
        """Record the halves' change under ``key``; a failure when it exceeds ``tol``."""
        change = halves_change_rel(points, t0, now_s)
        checks[key] = change
        if change is None or abs(change) > tol:
            failed.append(f"{what} moved {_pct(change)} between the window's halves (flat: within {tol:.1%})")

    tput = [(t, v) for t, v in throughput if t >= t0]
    if len(tput) >= enough:
        flat(tput, "tflops_change_rel", rule.tflops_plateau_rel, "throughput")

    temp = _series(readings, "temperature_c", t0)
    if len(temp) >= enough:
        slope = slope_per_min(temp)
        checks["temp_slope_c_per_min"] = slope
        if abs(slope) > rule.temp_slope_c_per_min:
            failed.append(f"temperature changing {slope:+.2f} °C/min (plateau: within ±{rule.temp_slope_c_per_min} °C/min)")

    at_limit = None
    power = _series(readings, "power_w", t0)
    if len(power) >= enough:
        limits = [v for _, v in _series(readings, "power_limit_w", t0)]
        median_w = statistics.median(v for _, v in power)
        checks["power_w_median"] = median_w
        if limits:
            limit_w = statistics.median(limits)
            checks["power_limit_w"] = limit_w
            at_limit = median_w >= (1.0 - rule.power_limit_band_rel) * limit_w
            checks["at_power_limit"] = at_limit
        if not at_limit:
            flat(power, "power_change_rel", rule.power_flat_rel, "power, not at its limit,")

    clock = _series(readings, "sm_clock_mhz", t0)
    if not at_limit and len(clock) >= enough:
        flat(clock, "clock_change_rel", rule.clock_flat_rel, "SM clock")

    judged = [k for k in ("tflops_change_rel", "temp_slope_c_per_min", "power_w_median", "clock_change_rel") if k in checks]
    if not judged:
        return SteadyVerdict(False, None, f"fewer than {enough} readings in the last {rule.window_s:g} s", checks)
    if failed:
        return SteadyVerdict(False, None, "; ".join(failed), checks)
    if at_limit:
        basis = "power-limit"
    elif judged == ["tflops_change_rel"]:
        basis = "throughput-plateau"
    else:
        basis = "plateau"
    return SteadyVerdict(True, basis, None, checks)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2%}"


def _sixths(points: Sequence[tuple[float, float]], t0: float, t1: float) -> tuple[list[float], list[float]]:
    sixth = (t1 - t0) / 6.0
    return ([v for t, v in points if t0 <= t <= t0 + sixth], [v for t, v in points if t1 - sixth <= t <= t1])


def drift(rule: SteadyRule, throughput: Sequence[tuple[float, float]], readings: Sequence[Reading],
          t0: float, t1: float) -> dict[str, Any]:
    """First sixth vs last sixth of ``[t0, t1]``: throughput (relative), temperature, power and SM
    clock (differences), and whether the phase was steady by ``rule`` (``steady``, ``reason``)."""
    out: dict[str, Any] = {"first_sixth_s": [t0, t0 + (t1 - t0) / 6.0], "last_sixth_s": [t1 - (t1 - t0) / 6.0, t1]}
    first, last = _sixths(throughput, t0, t1)
    ok = bool(first) and bool(last)
    out["tflops_first"] = statistics.median(first) if first else None
    out["tflops_last"] = statistics.median(last) if last else None
    out["tflops_rel"] = (out["tflops_last"] / out["tflops_first"] - 1.0) if ok and out["tflops_first"] else None
    for name, key in (("temperature_c", "temp_c"), ("power_w", "power_w"), ("sm_clock_mhz", "sm_clock_mhz")):
        a, b = _sixths(_series(readings, name, t0), t0, t1)
        out[f"{key}_first"] = statistics.median(a) if a else None
        out[f"{key}_last"] = statistics.median(b) if b else None
        out[f"{key}_delta"] = (out[f"{key}_last"] - out[f"{key}_first"]) if a and b else None
    reasons = []
    if out["tflops_rel"] is None:
        reasons.append("too few batches in the first or last sixth to judge the throughput drift")
    elif abs(out["tflops_rel"]) > rule.drift_tflops_rel_max:
        reasons.append(f"throughput drifted {out['tflops_rel']:+.2%} from the first sixth to the last "
                       f"(steady: within {rule.drift_tflops_rel_max:.1%})")
    if out["temp_c_delta"] is not None and abs(out["temp_c_delta"]) > rule.drift_temp_c_max:
        reasons.append(f"temperature moved {out['temp_c_delta']:+.1f} °C from the first sixth to the last "
                       f"(steady: within {rule.drift_temp_c_max:g} °C)")
    out["steady"] = not reasons
    out["reason"] = "; ".join(reasons) or None
    return out


__all__ = ["Reading", "SteadyRule", "SteadyVerdict", "drift", "halves_change_rel", "judge_steady", "readings_from",
           "slope_per_min"]
