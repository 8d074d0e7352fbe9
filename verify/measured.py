"""Declared against measured: `bench run` records replace declared figures, claim by claim.

The public facade of the measured checks (:func:`verify` and the result dataclasses); the work is
done by modules of one concern each:

* :mod:`.collect` — records to one sample per device (failed devices as zero) and rack figures;
* :mod:`.plan_check` — the measured racks against a `bench sample` plan (``--sample-plan``);
* :mod:`.fp16` with :mod:`.extrapolate` — **A2.7 FP16 peak**: per model, mean per-device
  throughput × declared count with a t interval (finite-population corrected) from the
  device-to-device spread; *nominal* 标称算力 credited only when the sampling rule
  (:func:`.sampling.devices_required`) is met and every sampled device was correct and efficient;
* **A2.14 domestic share** — recomputed from the inventory's nominal FP16 compute by vendor;
* :mod:`.efficiency` — **A1.7 per-rack GFLOPS/W**: the median rack from rack- or node-meter
  figures, with each rack's stated uncertainty;
* :mod:`.claims` — CONFIRMED / NOT CONFIRMED / INCONCLUSIVE with the reason.

A claim is CONFIRMED only when the lower bound of what may count clears declared × (1 − tolerance).
Only ``grade: assessment`` measurements and aggregates count; the others are listed in ``smoke``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Literal

from . import results as _results
from .claims import ClaimInput, exact, make_claim
from .collect import DeviceSample, collect, load_records
from .declaration import Declaration
from .efficiency import RackClaimInput, rack_claim
from .extrapolate import median_ci, quantile
from .fp16 import Fp16Rule, model_figure, nominal_gaps, nominal_pflops_exact, site_figures
from .inventory import resolve_inventory
from .operating_point import mismatches
from .plan_check import apply_plan, fp16_blockers, plan_notes, rack_blockers
from .results import *  # noqa: F403  (the result types are this facade's public API)
from .results import ModelFigure, ScopeSummary, Verification
from .rules import PeakTable, Ruleset, load_peaks, load_rules
from .sample_plan import SamplePlan
from .sampling import SamplingRules, load_sampling_rules, rack_figures_required
from .scoring import Override, score

__all__ = [*_results.__all__, "LevelError", "verify", "load_records", "median_ci"]

Basis = Literal["nominal", "measured"]


def _fraction(x: Fraction | float, name: str, lo: Fraction, hi: Fraction, hi_open: bool) -> Fraction:
    f = Fraction(str(x)) if isinstance(x, float) else Fraction(x)
    if not (lo <= f and (f < hi if hi_open else f <= hi)):
        raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, not {x}")
    return f


class LevelError(ValueError):
    """A sampling level the rules do not know, or not the one the sample plan was drawn at."""


def _level(level: int | None, plan: SamplePlan | None, sampling: SamplingRules) -> int:
    """--level, else the plan's, else the rules' default; a plan drawn at another level is an error."""
    if plan is not None and level is not None and level != plan.level:
        raise LevelError(f"level {level} differs from the sample plan's level {plan.level}")
    chosen = level if level is not None else plan.level if plan is not None else sampling.default_level
    try:
        sampling.level(chosen)
    except ValueError as exc:
        raise LevelError(str(exc)) from None
    return chosen


def verify(
    decl: Declaration,
    records: Iterable[Any],
    *,
    rules: Ruleset | None = None,
    basis: Basis = "nominal",
    tolerance: Fraction | float = Fraction(5, 100),
    min_efficiency: Fraction | float = Fraction(1, 2),
    mandatory_block: bool = True,
    peaks: PeakTable | None = None,
    certified_on: Any = None,
    level: int | None = None,
    sample_plan: SamplePlan | None = None,
    sample_plan_path: str | Path | None = None,
    sampling: SamplingRules | None = None,
    site_file: Any = None,
) -> Verification:
    """Replace declared FP16 peak, domestic share and rack efficiency by figures from ``records``
    (`bench run` records as read by :func:`load_records`) and score; each claim is checked.

    ``level`` is the sampling level (default: the plan's, else ``rules/sampling.yaml``'s);
    ``sample_plan`` restricts what counts to the racks it drew; ``site_file`` (a ``bench.site.Site``) is
    what each rack figure's nodes and devices are checked against — without it A1.7 is not
    confirmed (a figure that leaves out a node of its rack cannot be told from the rack's).
    ValueError for bad arguments."""
    if basis not in ("nominal", "measured"):
        raise ValueError(f"basis must be nominal or measured, not {basis!r}")
    tol = _fraction(tolerance, "tolerance", Fraction(0), Fraction(1), True)
    min_eff = _fraction(min_efficiency, "min_efficiency", Fraction(0), Fraction(1), False)
    sampling = sampling or load_sampling_rules()
    lv = _level(level, sample_plan, sampling)
    rules = rules or load_rules(decl.spec)
    peaks = peaks or load_peaks()
    items = resolve_inventory(decl, peaks)
    got = collect(records, peaks, site_file)
    samples, racks = got.samples, got.racks
    plan = None
    if sample_plan is not None:
        plan, samples, racks = apply_plan(sample_plan, sample_plan_path or "(sample plan)", samples, racks)
    lower = []
    for scope_name, effs in sorted(got.lower.items()):
        effs.sort()
        lower.append(ScopeSummary(scope_name, len(effs), quantile(effs, 0.5), quantile(effs, 0.25),
                                  quantile(effs, 0.75), effs[0], effs[-1]))

    # ---- per model
    by_key: dict[str, list[DeviceSample]] = {}
    for s in samples.values():
        by_key.setdefault(s.model, []).append(s)
    inv_keys = {it.key for it in items}
    unmatched = {v[0].raw_model: len(v) for k, v in by_key.items() if k not in inv_keys}
    rule = Fp16Rule(min_eff, lv, sampling)
    models = [model_figure(it, by_key.get(it.key, []), rule) for it in items]
    notes = list(got.notes) + plan_notes(plan)
    notes += [f"{n} measured device(s) of model {m!r} match no declared inventory line; not counted" for m, n in unmatched.items()]

    # ---- one operating point for what feeds A2.7 and A1.7
    operating = mismatches([op for s in samples.values() for op in s.ops] + [op for r in racks if r.scored for op in r.ops])

    # ---- A2.7 site FP16 figures
    blockers = fp16_blockers(plan) + operating
    site = site_figures(decl.technical.fp16_peak, models, lv, blockers)
    any_sampled = any(mf.sampled for mf in models)
    overrides: dict[str, Override] = {}
    claims: list[Claim] = []
    ind = _indicator(rules, "A2.7")
    if basis == "nominal":
        figure: float | None = site.nominal
        low = high = figure
        gaps = nominal_gaps(models)
        scored = nominal_pflops_exact(models)
    else:
        figure, low, high, gaps = site.measured, site.measured_low, site.measured_high, site.gaps
        scored = exact(site.measured)  # type: ignore[assignment]
    if any_sampled:
        note = "not counted: " + "; ".join(gaps) if gaps else None
        overrides["technical.fp16_peak"] = Override(scored, basis, note)
    else:
        figure = low = high = None
    claims.append(make_claim(ClaimInput("A2.7", "technical.fp16_peak", ind, "compute", decl.technical.fp16_peak,
                                        figure, low, high, basis, blockers, gaps), tol))
    for mf in models:
        if mf.above_datasheet:
            notes.append(
                f"{mf.model}: declared {float(mf.declared_tflops or 0):g} TFLOPS per device is above the datasheet dense FP16 "
                f"peak {mf.datasheet_tflops:g} TFLOPS ({mf.datasheet_kind}: {mf.datasheet_source}) — sparse or FP8 passed off as FP16?"
            )

    # ---- A2.14 domestic share, from the inventory's nominal compute by vendor
    share = _domestic_share(models)
    if share is not None:
        overrides["technical.domestic_compute_share"] = Override(share, "nominal")
    if decl.technical.domestic_compute_share is not None or share is not None:
        sh = float(share) if share is not None else None
        claim = make_claim(ClaimInput("A2.14", "technical.domestic_compute_share", _indicator(rules, "A2.14"), "share",
                                      decl.technical.domestic_compute_share, sh, sh, sh, "nominal"), tol)
        if share is None:
            claim.reason = "cannot recompute: no inventory, or a model with neither a datasheet nor a declared per-device figure"
        claims.append(claim)
    notes += [f"{it.model}: vendor unknown to the datasheet table and no `domestic` flag; counted as not domestic"
              for it in items if it.domestic_source == "assumed"]

    # ---- A1.7 per-rack efficiency, with the sampling rule for racks as for devices
    rc, override = rack_claim(RackClaimInput(racks, lower, _indicator(rules, "A1.7"), decl.industrial_value.rack_efficiency,
                                             sampling.level(lv).meter_accuracy,
                                             rack_blockers(plan) + operating + _rack_rule(decl, racks, lv, sampling, sample_plan)
                                             + _membership_rule(racks, site_file)),
                              tol)
    claims.append(rc)
    if override is not None:
        overrides["industrial_value.rack_efficiency"] = override

    card = score(decl, rules, mandatory_block=mandatory_block, overrides=overrides, certified_on=certified_on)
    return Verification(
        scorecard=card, claims=claims, models=models, site=site, basis=basis, tolerance=tol, min_efficiency=min_eff,
        domestic_share=share, racks=racks, lower_scopes=lower, smoke=got.smoke, excluded=got.excluded,
        unmatched=unmatched, notes=notes, runs=got.runs, level=lv, plan=plan, not_counted=got.not_counted,
        repeats=got.repeats, operating_point=operating,
    )


def _indicator(rules: Ruleset, ind_id: str) -> Any:
    return next((i for i in rules.indicators if i.id == ind_id), None)


def _domestic_share(models: list[ModelFigure]) -> Fraction | None:
    """Domestic part of the inventory's nominal FP16 compute (datasheet × count; declared where no datasheet)."""
    total = dom = Fraction(0)
    for mf in models:
        per = exact(mf.datasheet_tflops) if mf.datasheet_tflops is not None else mf.declared_tflops
        if per is None:
            return None
        total += per * mf.count
        if mf.domestic:
            dom += per * mf.count
    return dom / total if total else None


def _membership_rule(racks: list[EfficiencyFigure], site_file: Any) -> list[str]:
    """Why A1.7 may not be confirmed without a site file: a rack's membership is unchecked."""
    if site_file is not None or not any(f.scored for f in racks):
        return []
    return ["rack membership not checked against a site file (bench verify --site SITE): a rack figure that "
            "leaves out a node of its rack cannot be told from the whole rack's"]


def _rack_rule(decl: Declaration, racks: list[EfficiencyFigure], level: int, sampling: SamplingRules,
               sample_plan: SamplePlan | None) -> list[str]:
    """Why A1.7 may not be confirmed from these racks: fewer scored rack figures than the sampling
    rule asks of the racks in use (a sample plan's own requirement, where larger, counts)."""
    need = rack_figures_required(decl.technical.racks_in_use, level, sampling)
    planned = getattr(sample_plan, "racks_required", None) if sample_plan is not None else None
    if isinstance(planned, int) and not isinstance(planned, bool):
        need = max(need, planned)
    have = len({f.rack_id or f.label for f in racks if f.scored})
    if not have or have >= need:
        return []
    return [f"{have} of {decl.technical.racks_in_use} racks in use measured with a rack or node meter; "
            f"the rule asks for {need} (level {level})"]
