"""The measured racks against the racks a sample plan drew.

A sample stands for the site only if it is the one drawn at random: measurements from racks the
plan did not draw (or with no rack at all) do not count, and a drawn rack left unmeasured makes
the claim INCONCLUSIVE (the measured part may have been chosen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .collect import DeviceSample
from .results import EfficiencyFigure, PlanCheck
from .sample_plan import SamplePlan

__all__ = ["apply_plan", "fp16_blockers", "rack_blockers", "plan_notes"]


def apply_plan(
    plan: SamplePlan, path: str | Path, samples: dict[tuple[Any, ...], DeviceSample], racks: list[EfficiencyFigure]
) -> tuple[PlanCheck, dict[tuple[Any, ...], DeviceSample], list[EfficiencyFigure]]:
    """The check, and the device samples and rack figures that count under it."""
    drawn = set(plan.racks)
    check = PlanCheck(str(path), plan.level, list(plan.racks), plan.plan_sha256, plan.nonce_sha256)
    outside: set[str] = set()
    kept: dict[tuple[Any, ...], DeviceSample] = {}
    for dev, s in samples.items():
        if s.rack_id is None:
            check.unplaced += 1
        elif s.rack_id not in drawn:
            outside.add(s.rack_id)
        else:
            kept[dev] = s
    kept_racks = []
    for r in racks:
        if r.rack_id in drawn:
            kept_racks.append(r)
        elif r.rack_id is not None:
            outside.add(r.rack_id)
    measured = {s.rack_id for s in kept.values()}
    with_figure = {r.rack_id for r in kept_racks if r.scored}
    check.outside = sorted(outside)
    check.not_measured = [r for r in plan.racks if r not in measured]
    check.no_rack_efficiency = [r for r in plan.racks if r not in with_figure]
    return check, kept, kept_racks


def _names(racks: list[str], limit: int = 10) -> str:
    return ", ".join(racks[:limit]) + (f" … (+{len(racks) - limit})" if len(racks) > limit else "")


def fp16_blockers(check: PlanCheck | None) -> list[str]:
    if check is None or not check.not_measured:
        return []
    return [f"{len(check.not_measured)} of {len(check.racks)} drawn rack(s) not measured: {_names(check.not_measured)}"]


def rack_blockers(check: PlanCheck | None) -> list[str]:
    if check is None or not check.no_rack_efficiency:
        return []
    return [f"{len(check.no_rack_efficiency)} of {len(check.racks)} drawn rack(s) without a rack- or node-meter "
            f"figure: {_names(check.no_rack_efficiency)}"]


def plan_notes(check: PlanCheck | None) -> list[str]:
    if check is None:
        return ["no sample plan (--sample-plan): the measured racks are not checked against a random draw"]
    out = []
    if check.outside:
        out.append(f"measured rack(s) outside the sample plan, not counted: {_names(check.outside)}")
    if check.unplaced:
        out.append(f"{check.unplaced} measured device(s) with no rack_id cannot be matched to the sample plan; not counted")
    return out
