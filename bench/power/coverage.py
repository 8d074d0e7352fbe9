"""Whether polled readings cover a window well enough to give it a figure.

The rule (methodology: every figure must be one an assessor can defend): only readings inside
the window count, and a dead, slow or frozen source gives no figure -- never a value held across
the window from a reading taken before it.

A polled window gets a figure only when all of these hold (thresholds: :class:`CoverageRule`):

1. no read error of the source inside the window (nor at its bracketing polls);
2. enough readings inside: at least ``min_fraction`` of the readings that a poller at the
   expected interval is sure to take inside the window, ``floor(min_fraction * (W / I - 1))``
   for a window of ``W`` s and an interval of ``I`` s (or ``min_samples`` when given);
3. no gap longer than ``max(max_gap_intervals * I, max_gap_floor_s)`` between the window's begin,
   the readings inside it, and its end;
4. not stale: a reading is *new* only when its value or the source's own timestamp
   (``PowerSample.source_time``, e.g. a Redfish sensor's ``ReadingTime``) differs from the
   previous one's, where the source gives a timestamp. With timestamps, rules 2 and 3 count only
   new readings (a timestamp that stays put is one reading, however often it is polled). Without
   them, a value that never changes over a window of at least ``stale_after_s`` (a window under
   load: a live meter's last digits move) is a stale source.

``I`` is the longest of the sampler's period, the interval the reader declares
(``expected_interval_s``, e.g. a Redfish sensor's ``SensingInterval``) and the median time one
poll of that reader takes (a BMC answering in 300 ms cannot be polled at 20 Hz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .base import PowerSample


@dataclass(frozen=True)
class CoverageRule:
    """Thresholds of the coverage rule, in one place."""

    #: share of the readings a poller at the expected interval is sure to take inside the window
    min_fraction: float = 0.5
    #: overrides the rate-based minimum number of readings inside the window
    min_samples: int | None = None
    #: the longest gap allowed, in expected intervals ...
    max_gap_intervals: float = 4.0
    #: ... or in seconds, whichever is longer (a reading every second is always enough: Green500 asks ≥ 1 Hz)
    max_gap_floor_s: float = 1.0
    #: a value unchanged (and no source timestamp) over a window this long means a stale source
    stale_after_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], got {self.min_fraction}")
        if self.max_gap_intervals <= 0 or self.max_gap_floor_s <= 0 or self.stale_after_s <= 0:
            raise ValueError("max_gap_intervals, max_gap_floor_s and stale_after_s must be positive")
        if self.min_samples is not None and self.min_samples < 0:
            raise ValueError(f"min_samples must be >= 0, got {self.min_samples}")

    def min_inside(self, window_s: float, interval_s: float) -> int:
        """Readings required inside a window of ``window_s`` at one per ``interval_s``."""
        if self.min_samples is not None:
            return self.min_samples
        return max(0, math.floor(self.min_fraction * (window_s / interval_s - 1.0)))

    def max_gap_s(self, interval_s: float) -> float:
        return max(self.max_gap_intervals * interval_s, self.max_gap_floor_s)


DEFAULT_RULE = CoverageRule()


@dataclass
class Coverage:
    """The verdict on one window: ``ok`` or the reason (``reason``) it gets no figure."""

    ok: bool
    reason: str | None
    readings_inside: int  # new readings inside the window (polls of an unchanged timestamp count once)
    polls_inside: int
    readings_required: int
    interval_s: float
    max_gap_s: float  # the longest gap found
    gap_limit_s: float
    read_errors: int
    stale: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "ok", "reason", "readings_inside", "polls_inside", "readings_required", "interval_s", "max_gap_s",
            "gap_limit_s", "read_errors", "stale")}


@dataclass(frozen=True)
class ReadError:
    """One failed poll of a source: when (``time.monotonic()``) and why."""

    t_s: float
    message: str


def _new_readings(pts: Sequence[PowerSample]) -> list[PowerSample]:
    """The polls that carry a new reading: with source timestamps, a repeated timestamp is the
    same reading polled again; without them every poll counts."""
    if not any(p.source_time for p in pts):
        return list(pts)
    out: list[PowerSample] = []
    for p in pts:
        if not out or p.source_time != out[-1].source_time or p.power_w != out[-1].power_w:
            out.append(p)
    return out


def judge(
    samples: Sequence[PowerSample],
    t_begin_s: float,
    t_end_s: float,
    interval_s: float,
    errors: Sequence[ReadError] = (),
    rule: CoverageRule = DEFAULT_RULE,
) -> Coverage:
    """Judge the polled ``samples`` of one reader over ``[t_begin_s, t_end_s]``.

    ``errors``: the reader's failed polls (only those inside the window, or at its edge polls,
    should be passed). Times are ``time.monotonic()``.
    """
    window_s = t_end_s - t_begin_s
    polls = sorted((s for s in samples if s.power_w is not None and t_begin_s <= s.t_s <= t_end_s), key=lambda s: s.t_s)
    fresh = _new_readings(polls)
    required = rule.min_inside(window_s, interval_s)
    limit_s = rule.max_gap_s(interval_s)
    knots = [t_begin_s] + [p.t_s for p in fresh] + [t_end_s]
    gaps = [(b - a, a) for a, b in zip(knots, knots[1:])]
    worst_gap, worst_at = max(gaps) if gaps else (0.0, t_begin_s)
    has_stamp = any(p.source_time for p in polls)
    values = {p.power_w for p in polls}
    stale_value = (not has_stamp) and len(polls) >= 2 and len(values) == 1 and window_s >= rule.stale_after_s
    cov = Coverage(
        ok=True, reason=None, readings_inside=len(fresh), polls_inside=len(polls), readings_required=required,
        interval_s=interval_s, max_gap_s=worst_gap, gap_limit_s=limit_s, read_errors=len(errors), stale=stale_value,
    )
    rel = lambda t: f"t={t - t_begin_s:+.1f} s"  # noqa: E731 - times in the window's frame
    why: list[str] = []
    if errors:
        first = min(errors, key=lambda e: e.t_s)
        after = [p for p in polls if p.t_s > first.t_s]
        if after:
            why.append(f"{len(errors)} read error(s) inside the window, the first at {rel(first.t_s)} ({first.message})")
        else:
            last = max((s.t_s for s in samples if s.power_w is not None and s.t_s <= first.t_s), default=None)
            since = f"; its last reading was at {rel(last)}" if last is not None else ""
            why.append(f"source stopped answering at {rel(first.t_s)} ({first.message}; {len(errors)} failed reads{since})")
    if stale_value:
        why.append(
            f"stale source: every one of the {len(polls)} readings inside the {window_s:.1f} s window is "
            f"{polls[0].power_w:g} W and the source gives no timestamp (a live meter's reading moves under load)"
        )
    elif has_stamp and len(fresh) <= 1 and window_s > limit_s:
        why.append(f"stale source: its reading time stayed {polls[0].source_time!r} for the whole {window_s:.1f} s window")
    if len(fresh) < required:
        why.append(
            f"{len(fresh)} readings inside the {window_s:.1f} s window (at least {required} required at one per "
            f"{interval_s:.3g} s)"
        )
    if worst_gap > limit_s:
        where = "before the first reading" if worst_at == t_begin_s else f"after the reading at {rel(worst_at)}"
        why.append(f"a {worst_gap:.1f} s gap without a new reading {where} (limit {limit_s:.3g} s)")
    if why:
        cov.ok, cov.reason = False, "; ".join(why)
    return cov
