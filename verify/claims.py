"""A declared figure against a measured one: CONFIRMED, NOT CONFIRMED or INCONCLUSIVE, with the reason.

CONFIRMED only when the lower bound of what may count clears declared × (1 − tolerance) and
nothing blocks confirmation (a drawn rack not measured: the sample may have been chosen);
NOT CONFIRMED only when the figure is complete (no gaps) and even its upper bound is short.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from .results import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, Claim

__all__ = ["exact", "claim_status", "make_claim", "names", "ClaimInput"]


def exact(x: float | None) -> Fraction | None:
    """A float as the exact decimal it prints as (989.0 -> 989, 196.5 -> 393/2)."""
    return None if x is None else Fraction(repr(float(x)))


def claim_status(
    declared: Fraction, low: float | None, high: float | None, tol: Fraction,
    blockers: Sequence[str] = (), gaps: Sequence[str] = (),
) -> tuple[str, str]:
    """Status and reason. ``blockers`` forbid CONFIRMED; ``gaps`` (parts of the figure that could not
    count) forbid NOT CONFIRMED and are named in the reason."""
    required = declared * (1 - tol)
    if low is None:
        return INCONCLUSIVE, "; ".join(gaps) if gaps else "no assessment-grade measurement"
    if blockers:
        return INCONCLUSIVE, "; ".join(blockers)
    cleared = exact(low) >= required  # type: ignore[operator]
    if cleared:
        reason = "lower bound clears declared × (1 − tolerance)"
        return CONFIRMED, reason + (" without the parts that could not count (" + "; ".join(gaps) + ")" if gaps else "")
    if gaps:
        return INCONCLUSIVE, "; ".join(gaps) + "; what could count does not confirm the declaration"
    if high is not None and exact(high) < required:  # type: ignore[operator]
        return NOT_CONFIRMED, "upper bound is below declared × (1 − tolerance)"
    return INCONCLUSIVE, "the measurement's uncertainty straddles declared × (1 − tolerance)"


def names(ind: Any) -> tuple[str, str]:
    return (ind.zh, ind.en) if ind is not None else ("", "")


@dataclass
class ClaimInput:
    """What one claim is made of: the indicator, the figure and its bounds, and what limits it."""

    ind_id: str
    field: str
    ind: Any
    unit: str
    declared: Fraction | None
    figure: float | None
    low: float | None
    high: float | None
    source: str
    blockers: Sequence[str] = ()
    gaps: Sequence[str] = ()


def make_claim(c: ClaimInput, tol: Fraction) -> Claim:
    """The claim of ``c`` at tolerance ``tol``."""
    zh, en = names(c.ind)
    precision = getattr(c.ind, "precision", None)
    if c.declared is None:
        status, reason, required = INCONCLUSIVE, "nothing declared to confirm; the figure found is scored", None
    else:
        status, reason = claim_status(c.declared, c.low, c.high, tol, c.blockers, c.gaps)
        required = float(c.declared * (1 - tol))
    return Claim(c.ind_id, c.field, zh, en, c.unit, precision, c.declared, c.figure, c.low, c.high, c.source,
                 required, status, reason)
