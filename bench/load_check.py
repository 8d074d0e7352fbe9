"""The operating point of a core phase: at the power limit or not, fully loaded or not, throttled
or not. Pure: figures in, a dict out.

- ``at_power_limit``: the reader reported its power-cap reason (NVML ``SwPowerCap``) in at least
  ``LoadRule.cap_share_min`` of the window's samples (a cap seen once, e.g. at the window's edge,
  is not the operating point), or the window's median power is within
  ``LoadRule.at_limit_band_rel`` of the limit. This
  is the normal operating point of a sustained GEMM, recorded with the limit, its default and its
  allowed range -- never counted as throttling.
- ``fully_loaded`` (DCGM-style): the window's average power reached ``fully_loaded_rel`` × the
  limit in force; ``None`` where no limit or no power is known.
- ``throttled``: thermal or hardware slowdown reasons (the reader's ``decode_throttle``), or an
  SM clock below the device's base clock while *not* at the power limit (at the limit the
  clock is whatever fits under it). The base clock is judged only where one is known.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

#: the name recorded among ``throttle_reasons`` when the clock sat below base off the power limit
CLOCK_BELOW_BASE = "ClockBelowBase"


@dataclass(frozen=True)
class LoadRule:
    """Thresholds of the operating-point judgement."""

    at_limit_band_rel: float = 0.05
    fully_loaded_rel: float = 0.75
    #: share of the window's samples that must report the power-cap reason for it to count
    cap_share_min: float = 0.5


DEFAULT_LOAD_RULE = LoadRule()


@dataclass(frozen=True)
class WindowLoad:
    """What :func:`operating_point` judges: the window's figures and the reader's answers."""

    power_w: float | None  # average power of the window (energy / time)
    power_samples_w: Sequence[float]  # polled power inside the window
    limits: dict[str, float | None]  # limit_w, default_w, min_w, max_w (… the reader knows)
    cap_reasons: Sequence[str]  # operating-point reasons seen (SwPowerCap)
    throttle_reasons: Sequence[str]  # thermal / hardware slowdown reasons seen
    sm_clock_mhz_median: float | None = None
    base_sm_clock_mhz: float | None = None
    #: share of the window's samples reporting a cap reason (None: unknown, any report counts)
    cap_share: float | None = None


def operating_point(load: WindowLoad, rule: LoadRule = DEFAULT_LOAD_RULE) -> dict[str, Any]:
    """The record's ``operating_point`` object and the measurement's ``throttled`` verdict."""
    limit_w = load.limits.get("limit_w")
    median_w = statistics.median(load.power_samples_w) if load.power_samples_w else None
    at_limit: bool | None
    capped = bool(load.cap_reasons) and (load.cap_share is None or load.cap_share >= rule.cap_share_min)
    if capped:
        at_limit = True
    elif limit_w and median_w is not None:
        at_limit = median_w >= (1.0 - rule.at_limit_band_rel) * limit_w
    else:
        at_limit = None
    power_w = load.power_w if load.power_w is not None else median_w
    load_rel = (power_w / limit_w) if (limit_w and power_w is not None) else None
    fully_loaded = None if load_rel is None else load_rel >= rule.fully_loaded_rel
    reasons = list(dict.fromkeys(load.throttle_reasons))
    below_base = None
    if load.base_sm_clock_mhz and load.sm_clock_mhz_median is not None:
        below_base = load.sm_clock_mhz_median < load.base_sm_clock_mhz
        if below_base and not at_limit:
            reasons.append(CLOCK_BELOW_BASE)
    return {
        "at_power_limit": at_limit,
        "power_cap_reasons": list(dict.fromkeys(load.cap_reasons)),
        "power_cap_share": load.cap_share,
        "power_limit": dict(load.limits),
        "power_w_median": median_w,
        "load_rel": load_rel,
        "fully_loaded": fully_loaded,
        "fully_loaded_rule": f"window power >= {rule.fully_loaded_rel:g} x the power limit",
        "not_fully_loaded_reason": (f"window power {power_w:.1f} W is {load_rel:.0%} of the {limit_w:.0f} W limit "
                                    f"(< {rule.fully_loaded_rel:.0%})" if fully_loaded is False else None),
        "sm_clock_mhz_median": load.sm_clock_mhz_median,
        "base_sm_clock_mhz": load.base_sm_clock_mhz,
        "clock_below_base": below_base,
        "throttled": bool(reasons),
        "throttle_reasons": reasons,
    }


def cap_reasons_of(reader: Any, masks: Iterable[int | None]) -> list[str]:
    """Operating-point reasons a reader decodes from the raw masks of a trace (none if it cannot)."""
    return cap_summary(reader, masks)[0]


def cap_summary(reader: Any, masks: Iterable[int | None]) -> tuple[list[str], float | None]:
    """(operating-point reasons seen, share of the masks reporting one) from a window's raw
    masks; ([], None) when the reader cannot decode them or no mask was read."""
    decode = getattr(reader, "decode_operating_point", None)
    read = [m for m in masks if m is not None]
    if decode is None or not read:
        return [], None
    seen: dict[str, None] = {}
    capped = 0
    for mask in read:
        names = decode(mask)
        capped += bool(names)
        seen.update(dict.fromkeys(names))
    return list(seen), capped / len(read)


__all__ = ["CLOCK_BELOW_BASE", "DEFAULT_LOAD_RULE", "LoadRule", "WindowLoad", "cap_reasons_of", "cap_summary", "operating_point"]
