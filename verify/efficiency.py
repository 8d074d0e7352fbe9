"""A1.7 per-rack GFLOPS/W: the median rack, with each rack's own measurement uncertainty.

Only rack figures whose power came from a rack meter or from the rack's node meters are scored;
summed device counters leave out fans, CPUs, NICs and PSU losses, so they are shown, never
confirmed. ``insufficient`` and ``missing`` rack figures are listed with their reason. The lower
bound of the claim is the median of the racks' lower bounds (``gflops_per_w_low``): the median is
monotone, so if every rack is at least its lower bound, so is the median rack.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from .claims import ClaimInput, exact, make_claim
from .extrapolate import quantile
from .results import ASSURANCE_ORDER, INCONCLUSIVE, Claim, EfficiencyFigure, ScopeSummary
from .scoring import Override

__all__ = ["RackClaimInput", "rack_claim", "fill_uncertainty"]

FIELD = "industrial_value.rack_efficiency"


@dataclass
class RackClaimInput:
    racks: Sequence[EfficiencyFigure]
    lower: Sequence[ScopeSummary]
    ind: Any
    declared: Fraction | None
    meter_accuracy: Fraction  # the level's: taken as the uncertainty of a figure that states none
    blockers: Sequence[str] = ()


def fill_uncertainty(fig: EfficiencyFigure, accuracy: Fraction) -> None:
    """Bounds for a scored figure that states none: power off by ±``accuracy`` at most."""
    if fig.gflops_per_w is None or (fig.low is not None and fig.high is not None):
        return
    a = float(accuracy)
    fig.low, fig.high = fig.gflops_per_w / (1 + a), fig.gflops_per_w / (1 - a)
    fig.reason = f"no stated uncertainty: the level's meter accuracy ±{a:.0%} assumed"


def _assurance_text(figs: Sequence[EfficiencyFigure]) -> str:
    n = Counter(f.assurance for f in figs)
    return ", ".join(f"{a} {n[a]}" for a in ASSURANCE_ORDER if n[a])


def _shown_only(racks: Sequence[EfficiencyFigure], lower: Sequence[ScopeSummary]) -> list[str]:
    out = []
    counters = sorted(f.gflops_per_w for f in racks if f.status == "ok" and not f.scored and f.gflops_per_w is not None)
    if counters:
        out.append(f"{len(counters)} rack figure(s) from summed device counters (median {quantile(counters, 0.5):.1f} "
                   "GFLOPS/W) shown, not confirmable: they leave out fans, CPUs and PSUs")
    for f in racks:
        if f.status != "ok":
            out.append(f"{f.label} {f.status}: {f.reason}")
    if lower:
        shown = ", ".join(f"{x.n} {x.scope}-scope (median {x.median:.1f} GFLOPS/W)" for x in lower)
        out.append(f"{shown} shown, not scored as a rack figure")
    return out


def rack_claim(c: RackClaimInput, tol: Fraction) -> tuple[Claim, Override | None]:
    """The A1.7 claim and the score override (None: nothing may be scored)."""
    scored = [f for f in c.racks if f.scored]
    for f in scored:
        fill_uncertainty(f, c.meter_accuracy)
    shown = _shown_only(c.racks, c.lower)
    if not scored:
        claim = make_claim(ClaimInput("A1.7", FIELD, c.ind, "efficiency", c.declared, None, None, None, "declared"), tol)
        claim.status = INCONCLUSIVE
        claim.reason = "; ".join(["no rack figure from a rack or node meter", *shown])
        return claim, None
    med = quantile(sorted(f.gflops_per_w for f in scored), 0.5)  # type: ignore[type-var]
    low = quantile(sorted(f.low for f in scored), 0.5)  # type: ignore[type-var]
    high = quantile(sorted(f.high for f in scored), 0.5)  # type: ignore[type-var]
    claim = make_claim(ClaimInput("A1.7", FIELD, c.ind, "efficiency", c.declared, med, low, high, "measured",
                                  blockers=c.blockers), tol)
    claim.reason += f" (median of {len(scored)} rack(s); assurance: {_assurance_text(scored)}"
    claim.reason += "; " + "; ".join(shown) + ")" if shown else ")"
    note = f"median of {len(scored)} rack figure(s) ({_assurance_text(scored)})"
    return claim, Override(exact(med), "measured", note)
