"""The energy of one power source over exactly a window: the arithmetic a rack figure uses
(:mod:`icb_bench.bench.rack`) and the one `bench verify` recomputes it with (verify/rack_energy.py).

Pure data: no I/O, no clocks, no numpy or torch (only the standard library and the power
package's pure coverage rule), so verify can import it. Method: see :func:`source_energy`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from .plan import MIN_ASSESSMENT_S
from .power.base import PowerSample
from .power.coverage import CoverageRule, ReadError, judge
from .power.sampler import _counter_at

__all__ = ["ASSURANCE_SCOPE", "MeterScope", "MeterMethod", "Status", "STATUSES", "RackRules", "RULES", "RackInputError", "MeterSpec",
           "Reading", "MeterSeries", "SourceEnergy", "source_energy", "meter_spec", "ReadingColumns",
           "source_energy_columns"]

MeterScope = Literal["rack", "node"]
MeterMethod = Literal["polled", "counter", "meter-log"]
Status = Literal["ok", "insufficient", "missing"]
STATUSES: tuple[Status, ...] = ("ok", "insufficient", "missing")
#: assurance levels, best first, with the power scope each one measures
ASSURANCE_SCOPE: dict[str, str] = {"rack-meter": "rack", "node-meters": "node", "device-counters": "device"}


@dataclass(frozen=True)
class RackRules:
    """Every threshold of the rack figure, in one place."""

    #: MLPerf Power: power and performance timestamps within 800 ms
    max_phase_spread_s: float = 0.8
    #: dead / stale / gap / too-few judgement of polled readings, shared with the node sampler:
    #: fewer than 10 readings inside is ``insufficient`` (contract), a gap over 3 periods ``missing``
    coverage: CoverageRule = CoverageRule(min_samples=10, max_gap_intervals=3.0)
    #: Green500 Level 2: each reading's interval ≤ 10 % of the core phase
    max_interval_fraction: float = 0.10
    #: Green500 Level 2: at least one reading per second (with 5 % jitter allowed)
    max_period_s: float = 1.0
    period_jitter_rel: float = 0.05
    #: coverage factor of the low/high bounds (~95 %)
    coverage_k: float = 2.0
    #: Green500: a core phase of at least one minute (the same bound as a device's grade)
    min_assessment_window_s: float = MIN_ASSESSMENT_S
    #: device counter accuracy when a load states none (NVML: power within ±5 %)
    device_counter_accuracy_rel: float = 0.05
    #: floating-point slack of the plausibility bound (the bound itself is exact arithmetic)
    plausibility_rel_tol: float = 1e-9


RULES = RackRules()


class RackInputError(ValueError):
    """Bad input to the rack arithmetic: names the field, the value and what was expected."""


def _bad(field_name: str, value: Any, expected: str) -> RackInputError:
    return RackInputError(f"{field_name}: got {value!r}; expected {expected}")


def _is_finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _finite(field_name: str, value: float | None, *, optional: bool = False, positive: bool = False) -> None:
    if value is None:
        if not optional:
            raise _bad(field_name, value, "a number")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(field_name, value, "a finite number")
    if positive and value <= 0:
        raise _bad(field_name, value, "a number > 0")


@dataclass(frozen=True)
class MeterSpec:
    """A power source and what it states about itself.

    ``interval_s``: how long each reading averages (0 for an instantaneous one); ``period_s``: the
    nominal spacing of readings (None: the median spacing of the readings); ``resolution_j``: the
    energy counter's step (counter sources).
    """

    source_id: str
    scope: MeterScope
    method: MeterMethod
    accuracy_rel: float
    resolution_w: float = 0.0
    interval_s: float = 0.0
    period_s: float | None = None
    resolution_j: float = 0.0

    def __post_init__(self) -> None:
        where = f"meter {self.source_id!r}"
        if self.scope not in ("rack", "node"):
            raise _bad(f"{where}.scope", self.scope, "'rack' or 'node'")
        if self.method not in ("polled", "counter", "meter-log"):
            raise _bad(f"{where}.method", self.method, "'polled', 'counter' or 'meter-log'")
        for name in ("accuracy_rel", "resolution_w", "interval_s", "resolution_j"):
            value = getattr(self, name)
            _finite(f"{where}.{name}", value)
            if value < 0:
                raise _bad(f"{where}.{name}", value, "a number ≥ 0")
        _finite(f"{where}.period_s", self.period_s, optional=True, positive=True)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading: the interval it covers (equal edges for an instantaneous one), its power and/or
    energy counter value; ``ok=False`` for a failed read, with ``error``."""

    t_begin_s: float
    t_end_s: float
    power_w: float | None = None
    energy_j: float | None = None
    ok: bool = True
    error: str | None = None
    #: the source's own timestamp of the reading (e.g. Redfish ReadingTime): tells a stale source
    source_time: str | None = None

    def __post_init__(self) -> None:
        tb, te, pw, ej = self.t_begin_s, self.t_end_s, self.power_w, self.energy_j
        # one fast test for the common case (a site's traces hold ~10^6 readings): plain finite
        # floats in order (a NaN or infinity fails the chained comparison); anything else is checked
        # field by field below, with the precise message
        if (type(tb) is float and type(te) is float and -math.inf < tb <= te < math.inf
                and (pw is None or (type(pw) is float and -math.inf < pw < math.inf))
                and (ej is None or (type(ej) is float and -math.inf < ej < math.inf))):
            return
        _finite("reading.t_begin_s", self.t_begin_s)
        _finite("reading.t_end_s", self.t_end_s)
        if self.t_end_s < self.t_begin_s:
            raise _bad("reading.t_end_s", self.t_end_s, f"≥ t_begin_s ({self.t_begin_s})")
        _finite("reading.power_w", self.power_w, optional=True)
        _finite("reading.energy_j", self.energy_j, optional=True)

    @property
    def t_mid_s(self) -> float:
        return 0.5 * (self.t_begin_s + self.t_end_s)

    #: where :func:`~icb_bench.bench.power.coverage.judge` reads a sample's time: a reading has the
    #: ``t_s``, ``power_w`` and ``source_time`` it reads, so it is judged without a copy
    t_s = t_mid_s


@dataclass(frozen=True)
class MeterSeries:
    """Every reading of one source, in any order."""

    spec: MeterSpec
    readings: Sequence[Reading]


# -- energy of one source -----------------------------------------------------------------------
@dataclass
class SourceEnergy:
    """Energy of one source over the window, its standard uncertainty and how it was obtained."""

    source_id: str
    method: str
    status: Status
    reason: str | None = None
    energy_j: float | None = None
    u_energy_j: float | None = None  # standard (1σ) uncertainty, absolute
    readings_inside: int = 0
    readings_dropped_at_edges: int = 0
    components_rel: dict[str, float] = field(default_factory=dict)

    def as_dict(self, window_s: float) -> dict[str, Any]:
        ok = self.status == "ok" and self.energy_j is not None
        return {
            "source": self.source_id, "method": self.method, "status": self.status, "reason": self.reason,
            "energy_j": self.energy_j if ok else None,
            "power_w": self.energy_j / window_s if ok else None,  # type: ignore[operator]
            "uncertainty_rel": (self.u_energy_j / self.energy_j) if ok and self.energy_j else None,  # type: ignore[operator]
            "readings_inside": self.readings_inside, "readings_dropped_at_edges": self.readings_dropped_at_edges,
            "uncertainty_components_rel": self.components_rel,
        }


def _period_s(spec: MeterSpec, times: Sequence[float]) -> float | None:
    """The nominal spacing of readings, or the median spacing of the successful ones."""
    if spec.period_s is not None:
        return spec.period_s
    diffs = [b - a for a, b in zip(times, times[1:]) if b > a]
    return statistics.median(diffs) if diffs else None


def _stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (statistics.stdev is exact but ~20× slower: it adds Fractions)."""
    m = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def _combine_rel(energy_j: float, comps: dict[str, float]) -> float:
    return energy_j * math.sqrt(sum(c * c for c in comps.values()))


def _polled_energy(series: MeterSeries, t0: float, t1: float, rules: RackRules) -> SourceEnergy:
    spec = series.spec
    out = SourceEnergy(spec.source_id, spec.method, "missing")
    window_s = t1 - t0
    inside: list[Reading] = []
    errors: list[ReadError] = []
    good_mid: list[float] = []
    for r in series.readings:
        tb, te = r.t_begin_s, r.t_end_s
        good = r.ok and r.power_w is not None
        if good:
            good_mid.append(0.5 * (tb + te))
        if te < t0 or tb > t1 or (te > tb and (te <= t0 or tb >= t1)):
            continue  # wholly outside (an interval that only touches an edge is outside)
        if tb < t0 or te > t1:
            out.readings_dropped_at_edges += 1  # straddles an edge: only part of it is the window's
        elif good:
            inside.append(r)
        else:
            errors.append(ReadError(r.t_mid_s, r.error or "no power value"))
    good_mid.sort()
    period = _period_s(spec, good_mid)
    interval_s = max(period or rules.max_period_s, spec.interval_s)
    # dead, stale, gaps, too few: the same judgement as the node's own sampler (bench/power/coverage.py)
    cov = judge(inside, t0, t1, interval_s, errors, rules.coverage)  # type: ignore[arg-type]  # Reading.t_s
    out.readings_inside = cov.readings_inside
    if cov.read_errors or cov.stale or cov.max_gap_s > cov.gap_limit_s:
        out.reason = f"{spec.source_id}: {cov.reason}"
        return out
    short = ([cov.reason] if not cov.ok else []) + _rate_shortfalls(spec, period, window_s, rules)
    if short:
        out.status, out.reason = "insufficient", f"{spec.source_id}: " + "; ".join(short)
        return out
    powers = [float(r.power_w) for r in inside]  # type: ignore[arg-type]
    return _polled_figure(out, spec, statistics.fmean(powers), len(powers), window_s, lambda: _stdev(powers))


def _rate_shortfalls(spec: MeterSpec, period: float | None, window_s: float, rules: RackRules) -> list[str]:
    """Why readings this long or this far apart give the window no figure (Green500 Level 2)."""
    short = []
    if spec.interval_s > rules.max_interval_fraction * window_s:
        short.append(f"each reading averages {spec.interval_s:g} s (> {rules.max_interval_fraction:.0%} of the {window_s:.3f} s window)")
    if period is not None and period > rules.max_period_s * (1 + rules.period_jitter_rel):
        short.append(f"one reading every {period:.3g} s (< {1 / rules.max_period_s:g} Hz)")
    return short


def _polled_figure(out: SourceEnergy, spec: MeterSpec, mean_w: float, n: int, window_s: float,
                   stdev_w: Callable[[], float]) -> SourceEnergy:
    """``out`` with its figure: ``mean_w``, the mean power of the ``n`` readings inside, × the
    window, and its uncertainty (``stdev_w()``: their standard deviation)."""
    out.energy_j = mean_w * window_s
    comps = {"accuracy": spec.accuracy_rel}
    if mean_w > 0:
        comps["sampling"] = stdev_w() / math.sqrt(n) / mean_w
        comps["resolution"] = spec.resolution_w / math.sqrt(12) / mean_w
    out.components_rel = comps
    out.u_energy_j = _combine_rel(out.energy_j, comps)
    out.status = "ok"
    return out


def _counter_energy(series: MeterSeries, t0: float, t1: float, rules: RackRules) -> SourceEnergy:
    spec = series.spec
    out = SourceEnergy(spec.source_id, spec.method, "missing")
    pts = sorted((PowerSample(t_s=r.t_mid_s, energy_j=r.energy_j) for r in series.readings
                  if r.ok and r.energy_j is not None), key=lambda s: s.t_s)
    failed = sum(1 for r in series.readings if not r.ok and t0 <= r.t_mid_s <= t1)
    times = [s.t_s for s in pts]
    period = _period_s(spec, times)
    near_s = rules.coverage.max_gap_s(period) if period is not None else math.inf
    e0, e1 = _counter_at(pts, t0, near_s), _counter_at(pts, t1, near_s)
    if e0 is None or e1 is None:
        edge = "begin" if e0 is None else "end"
        out.reason = (f"{spec.source_id}: no successful counter reads within {near_s:.3g} s on both sides "
                      f"of the window's {edge}")
        return out
    # the counter reads that bracket each edge, and every read between them
    lo = max(i for i, t in enumerate(times) if t <= t0)
    hi = min(i for i, t in enumerate(times) if t >= t1)
    used = pts[lo:hi + 1]
    out.readings_inside = sum(1 for s in used if t0 <= s.t_s <= t1)
    values = [float(s.energy_j) for s in used]  # type: ignore[arg-type]
    if any(b < a for a, b in zip(values, values[1:])):
        out.reason = f"{spec.source_id}: counter went backwards inside the window"
        return out
    if e1 <= e0:
        out.reason = f"{spec.source_id}: stale: counter frozen at {e0:g} J over the whole window"
        return out
    # the interpolation at an edge is exact for constant power between the reads around it
    edge_gaps = [min(s.t_s for s in used if s.t_s >= t) - max(s.t_s for s in used if s.t_s <= t) for t in (t0, t1)]
    out.energy_j = e1 - e0
    seg_w = [(b.energy_j - a.energy_j) / (b.t_s - a.t_s) for a, b in zip(used, used[1:]) if b.t_s > a.t_s]  # type: ignore[operator]
    spread_w = _stdev(seg_w) if len(seg_w) >= 2 else 0.0
    comps = {
        "accuracy": spec.accuracy_rel,
        # two reads, each quantised: variance 2 × q²/12
        "resolution": spec.resolution_j / math.sqrt(6) / out.energy_j,
        # power may vary inside the bracketing intervals: ± half the gap × the power's spread per edge
        "edges": math.hypot(*(0.5 * g * spread_w for g in edge_gaps)) / out.energy_j,
    }
    out.components_rel = comps
    out.u_energy_j = _combine_rel(out.energy_j, comps)
    out.status = "ok"
    if failed:
        out.reason = f"{spec.source_id}: {failed} failed read(s) inside the window (the counter bridges them)"
    return out


def source_energy(series: MeterSeries, t_begin_s: float, t_end_s: float, rules: RackRules = RULES) -> SourceEnergy:
    """Energy of one source over exactly ``[t_begin_s, t_end_s]``.

    * ``counter``: the counter interpolated linearly at each edge between the successful reads on
      both sides (both edges must be bracketed, and those reads ≤ 3 periods apart); the counter
      must advance and never go backwards. Failed reads between the edges do not matter.
      Uncertainty: stated accuracy ⊕ quantisation of two reads (resolution_j/√6) ⊕ per edge half
      the bracketing gap × the spread of the counter-derived power.
    * ``polled`` / ``meter-log`` (readings that are samples or interval averages): only readings
      wholly inside the window count; those straddling an edge are dropped and counted. Energy =
      mean power of the inside readings × window length. Each reading is the average over its own
      interval (or a sample of the load): their mean estimates the window's mean power without
      any value outside the window. A trapezoid would treat interval averages as point values at
      their midpoints and need the power at the edges, which is a held or extrapolated value — what
      the methodology forbids. Needs ≥ 10 readings inside, each interval ≤ 10 % of the window and
      ≥ 1 Hz (else ``insufficient``); a failed read inside, a gap > 3 periods (edges included) or
      a value (or source timestamp) frozen over the whole window is ``missing`` -- judged by
      :func:`~icb_bench.bench.power.coverage.judge`, the node sampler's own rule. Uncertainty: stated accuracy (taken as a
      standard uncertainty: conservative, a maximum-error bound would be a/√3) ⊕ the standard
      error of the mean of the readings (an underestimate when readings are correlated, small
      beside the accuracy under a steady GEMM load) ⊕ resolution_w/√12.
    """
    if series.spec.method == "counter":
        return _counter_energy(series, t_begin_s, t_end_s, rules)
    return _polled_energy(series, t_begin_s, t_end_s, rules)


# -- the same figure from columns ----------------------------------------------------------------
@dataclass(frozen=True)
class ReadingColumns:
    """One source's readings as numpy arrays, row for row what :class:`Reading` holds: ``float64``
    times, ``float64`` power and energy with NaN for a missing value, ``bool`` ok, and the source's
    own timestamps (an object array of str/None; None: the source gives none). Sorted by
    ``t_begin_s``, equal times in recorded order, no NaN ``t_begin_s``: :meth:`of` sorts them.
    ``accepted``/``good``/``instant`` (per reading: a value :class:`Reading` accepts, a successful
    read with a power, an instantaneous reading) are derived when not given, and a :meth:`span`
    carries them. The arrays are the caller's: this module never imports numpy on its own."""

    t_begin_s: Any
    t_end_s: Any
    power_w: Any
    energy_j: Any
    ok: Any
    source_time: Any = None
    accepted: Any = None
    good: Any = None
    instant: Any = None

    def __post_init__(self) -> None:
        if self.accepted is None:
            import numpy as np

            tb, te, pw, ej = self.t_begin_s, self.t_end_s, self.power_w, self.energy_j
            # finite times in order, finite or missing values; and times whose midpoint cannot overflow
            accepted = (np.abs(tb) < 1e300) & (np.abs(te) < 1e300) & (te >= tb) & ~np.isinf(pw) & ~np.isinf(ej)
            object.__setattr__(self, "accepted", accepted)
            object.__setattr__(self, "good", self.ok & ~np.isnan(pw))
            object.__setattr__(self, "instant", te == tb)

    @classmethod
    def of(cls, t_begin_s: Any, t_end_s: Any, power_w: Any, energy_j: Any, ok: Any,
           source_time: Any = None) -> ReadingColumns:
        """Readings in recorded order, sorted; those without a t_begin_s (NaN) left out, as the
        cut at the start of the load leaves them out (they are never after it)."""
        import numpy as np

        order = np.argsort(t_begin_s, kind="stable")
        order = order[~np.isnan(t_begin_s[order])]
        st = None if source_time is None else source_time[order]
        return cls(t_begin_s[order], t_end_s[order], power_w[order], energy_j[order], ok[order], st)

    def span(self, start: int, stop: int) -> ReadingColumns:
        """The readings ``start:stop`` (views, derived arrays included)."""
        cut = slice(start, stop)
        return ReadingColumns(*(None if a is None else a[cut] for a in (
            self.t_begin_s, self.t_end_s, self.power_w, self.energy_j, self.ok, self.source_time, self.accepted,
            self.good, self.instant)))


def source_energy_columns(spec: MeterSpec, cols: ReadingColumns, t_begin_s: float, t_end_s: float,
                          since_s: float = -math.inf, rules: RackRules = RULES) -> SourceEnergy | None:
    """:func:`source_energy` of the readings in ``cols`` from ``since_s`` on (``t_begin_s ≥
    since_s``), vectorised, where they give the window a figure: the same :class:`SourceEnergy`
    (``energy_j`` bit for bit; ``u_energy_j`` to float rounding). None wherever they may not (a
    counter source, a value :class:`Reading` refuses, a failed read inside, too few or stale
    readings, a gap, a slow rate): the caller then builds the readings and asks
    :func:`source_energy`, whose verdict and reason stand -- every refusal is judged, and worded,
    in one place."""
    import numpy as np  # lazily: the module stays importable without numpy (verify's purity)

    lo = int(cols.t_begin_s.searchsorted(since_s, side="left"))
    if spec.method == "counter" or lo == len(cols.t_begin_s) or not cols.accepted[lo:].all():
        return None
    c = cols.span(lo, len(cols.t_begin_s)) if lo else cols
    t0, t1 = t_begin_s, t_end_s
    tb, pw = c.t_begin_s, c.power_w
    period = spec.period_s
    if period is None:  # meter logs: the median spacing of the successful readings
        period = _period_s(spec, np.sort((0.5 * (tb + c.t_end_s))[c.good]).tolist())
    if c.instant.all():  # instantaneous readings: those inside are one run, their times the midpoints
        i0, i1 = int(tb.searchsorted(t0, side="left")), int(tb.searchsorted(t1, side="right"))
        if not c.good[i0:i1].all():
            return None  # a failed read inside the window: missing
        polls, dropped = slice(i0, i1), 0
        polls_t = tb[polls]
    else:
        polls, dropped = _inside_polls(c, t0, t1)
        if polls is None:
            return None
        polls_t = (0.5 * (tb + c.t_end_s))[polls]
    interval_s = max(period or rules.max_period_s, spec.interval_s)
    values = pw[polls]
    fresh = _covered_fresh(polls_t, values, None if c.source_time is None else c.source_time[polls], (t0, t1),
                           interval_s, rules.coverage)
    if fresh is None or _rate_shortfalls(spec, period, t1 - t0, rules):
        return None
    out = SourceEnergy(spec.source_id, spec.method, "missing", readings_inside=fresh, readings_dropped_at_edges=dropped)
    mean_w = math.fsum(values.tolist()) / values.size  # statistics.fmean, as _polled_figure takes it
    return _polled_figure(out, spec, mean_w, values.size, t1 - t0,
                          lambda: math.sqrt(math.fsum(((values - mean_w) ** 2).tolist()) / (values.size - 1)))


def _inside_polls(c: ReadingColumns, t0: float, t1: float) -> tuple[Any, int]:
    """(the readings wholly inside ``[t0, t1]`` in judge's order, those straddling an edge):
    _polled_energy's edge rule on intervals; (None, 0) where the columns cannot say it exactly."""
    import numpy as np

    tb, te = c.t_begin_s, c.t_end_s
    # wholly outside (an interval only touching an edge is outside), straddling, inside
    outside = (te < t0) | (tb > t1) | ((te > tb) & ((te <= t0) | (tb >= t1)))
    inside = ~outside & (tb >= t0) & (te <= t1)
    if (inside & ~c.good).any():
        return None, 0  # a failed read inside the window: missing
    mid = 0.5 * (tb + te)
    polls = np.flatnonzero(inside & (mid >= t0) & (mid <= t1))
    polls = polls[np.argsort(mid[polls], kind="stable")]  # judge sorts the polls stably by t_s
    n_inside = int(inside.sum())
    if polls.size != n_inside:
        return None, 0  # a midpoint rounded out of the window: judge would not count that reading
    if _stamped(None if c.source_time is None else c.source_time[polls]) and (np.diff(mid[polls]) == 0).any():
        return None, 0  # equal midpoints of stamped readings: judge keeps their recorded order
    return polls, int((~outside).sum()) - n_inside


def _stamped(stamps: Any) -> bool:
    """Whether any of these readings carries the source's own timestamp (a trace has the column
    for every source once one source stamps its readings; the others' cells are None)."""
    return stamps is not None and any(stamps)


def _covered_fresh(polls_t: Any, values: Any, stamps: Any, window: tuple[float, float], interval_s: float,
                   rule: CoverageRule) -> int | None:
    """How many new readings the polls (``polls_t`` in order, none a failed read) hold where
    :func:`~icb_bench.bench.power.coverage.judge` finds that they cover the window: enough of
    them, no gap over the limit, not stale; None where it would not."""
    import numpy as np

    t0, t1 = window
    stamped = _stamped(stamps)
    fresh_t = polls_t
    if stamped:
        new = np.ones(polls_t.size, dtype=bool)
        # a poll repeating the previous one's timestamp and value is that reading polled again
        new[1:] = (stamps[1:] != stamps[:-1]) | (values[1:] != values[:-1])
        fresh_t = polls_t[new]
    window_s, limit_s, n = t1 - t0, rule.max_gap_s(interval_s), fresh_t.size
    if n == 0 or n < rule.min_inside(window_s, interval_s):
        return None
    inner_s = float((fresh_t[1:] - fresh_t[:-1]).max()) if n > 1 else 0.0
    if max(float(fresh_t[0]) - t0, t1 - float(fresh_t[-1]), inner_s) > limit_s:
        return None
    if stamped and n <= 1 and window_s > limit_s:
        return None
    if not stamped and polls_t.size >= 2 and window_s >= rule.stale_after_s and values.min() == values.max():
        return None
    return int(n)


def meter_spec(entry: Mapping[str, Any], reader: Mapping[str, Any], poll_hz: float) -> MeterSpec:
    """The :class:`MeterSpec` of a manifest ``power`` entry and its reader's self-description, polled
    at ``poll_hz`` (meter logs: their own spacing): how the run judged the source's readings, and
    how `bench verify` judges them again (ValueError/TypeError for a malformed entry)."""
    kind = entry["kind"]
    method = "meter-log" if kind == "meter-log" else ("counter" if reader.get("method") == "counter" else "polled")
    return MeterSpec(entry["source_id"], entry["scope"], method, float(entry.get("accuracy_rel") or 0.0),
                     resolution_w=float(reader.get("resolution_w") or 0.0),
                     interval_s=float(reader.get("statistics_period_s") or 0.0) if kind == "dcmi" else 0.0,
                     period_s=None if kind == "meter-log" else 1.0 / poll_hz,
                     resolution_j=float(reader.get("resolution_j") or 0.0))
