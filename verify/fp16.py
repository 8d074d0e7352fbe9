"""A2.7 site FP16 peak: per inventory line, the measured devices extrapolated to the declared count.

* *Nominal* 标称算力 = datasheet peak × declared count, credited for a model only when the
  sampling rule is met (``devices_required``) AND every sampled device was correct and reached
  ``min_efficiency`` of the datasheet.
* *Measured* 实测算力 = Σ over models of mean per-device throughput (failed devices as zero) ×
  declared count, with the t interval of :mod:`.extrapolate`. A model may count towards
  confirming only when the rule is met and its interval exists (two or more devices, or all).

Cards and devices: declared counts are CARDS, samples are the DEVICES a backend enumerates. For a
model whose card shows up as ``dies_per_card`` devices (the datasheet entry says), the sampling
rule counts devices (cards × dies), each device is compared with the per-die peak (card peak ÷
dies), and the statistics are reported per card (device figures × dies), so measured = mean per
card × cards and nominal = card peak × cards: 200 dies of 100 two-die cards are "all measured",
nominal 100 × card peak (never 200 × card peak, never 100 × die peak).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from .claims import exact
from .collect import DeviceSample
from .extrapolate import mean_interval, quantile
from .inventory import ResolvedItem
from .results import ModelFigure, SiteFigures
from .sampling import SamplingRules, devices_required

__all__ = ["Fp16Rule", "model_figure", "site_figures", "nominal_pflops_exact", "nominal_gaps"]


@dataclass(frozen=True)
class Fp16Rule:
    """What a model's sample is held to."""

    min_efficiency: Fraction
    level: int
    rules: SamplingRules


def _datasheet(it: ResolvedItem) -> tuple[float | None, str | None, str | None]:
    """The inventory model's entry in verify's datasheet table; a record's own ``peak`` never counts."""
    if it.datasheet is not None:
        return float(it.datasheet.fp16_tflops), it.datasheet.source, it.datasheet.kind
    return None, None, None


def model_figure(it: ResolvedItem, samples: Sequence[DeviceSample], rule: Fp16Rule) -> ModelFigure:
    """Statistics of one inventory line's sampled devices, its extrapolation, whether it is credited."""
    ds, ds_src, ds_kind = _datasheet(it)
    domestic = it.domestic
    if it.domestic_source == "assumed":
        flags = {s.domestic for s in samples if s.domestic is not None}
        if len(flags) == 1:
            domestic = flags.pop()
    ceiling = it.datasheet.ceiling_tflops if it.datasheet else None
    above = it.declared_tflops is not None and ceiling is not None and it.declared_tflops > ceiling
    dies = it.dies_per_card
    mf = ModelFigure(
        model=it.model, key=it.key, count=it.count, declared_tflops=it.declared_tflops,
        datasheet_tflops=ds, datasheet_source=ds_src, datasheet_kind=ds_kind, domestic=domestic,
        above_datasheet=bool(above), required=devices_required(it.devices, rule.level, rule.rules),
    )
    mf.sampled = len(samples)
    mf.rule_met = mf.sampled >= mf.required and mf.sampled > 0
    shortfall = (f"{mf.sampled} of {_population(it)} measured; the rule asks for {mf.required} "
                 f"(level {rule.level})")
    if not samples:
        mf.reason = mf.measured_reason = shortfall
        return mf
    good = sorted(s.tflops for s in samples if s.valid)
    mf.invalid = mf.sampled - len(good)
    if ds:  # each device against the peak of what it is (a die: the card's figure ÷ dies)
        mf.below_efficiency = sum(1 for v in good if v < float(rule.min_efficiency) * ds / dies)
    if good:  # per card: a device's figure × dies (one die stands for 1/dies of a card)
        mf.median_tflops = quantile(good, 0.5) * dies
        mf.q1_tflops, mf.q3_tflops = quantile(good, 0.25) * dies, quantile(good, 0.75) * dies
        mf.min_tflops, mf.max_tflops = good[0] * dies, good[-1] * dies
    mi = mean_interval([s.tflops for s in samples], it.devices)  # the population is the devices
    mf.mean_tflops, mf.interval = _per_card(mi.mean, dies), mi.method
    mf.stdev_tflops = _per_card(mi.stdev, dies)
    mf.ci_low_tflops, mf.ci_high_tflops = _per_card(mi.low, dies), _per_card(mi.high, dies)
    if not mf.rule_met:
        mf.measured_reason = shortfall
    elif mi.method == "single":
        mf.measured_reason = f"1 of {_population(it)} measured: no device-to-device spread, so no interval"

    why = []
    if ds is None:
        why.append("no datasheet peak for this model")
    if not mf.rule_met:
        why.append(shortfall)
    if mf.invalid:
        why.append(f"{mf.invalid} of {mf.sampled} sampled device(s) failed correctness (counted as zero)")
    if mf.below_efficiency:
        why.append(f"{mf.below_efficiency} of {mf.sampled} sampled device(s) below {float(rule.min_efficiency):.0%} of the datasheet peak")
    if why:
        mf.reason = "; ".join(why)
    else:
        mf.credited = True
    return mf


def _per_card(per_device: float | None, dies: int) -> float | None:
    """A per-device statistic as the per-card figure it stands for."""
    return None if per_device is None else per_device * dies


def _population(it: ResolvedItem) -> str:
    """The line's devices in words, with cards × dies where a card shows up as several devices."""
    if it.dies_per_card == 1:
        return f"{it.count} {it.model}"
    return f"{it.devices} {it.model} devices ({it.count} cards × {it.dies_per_card} dies)"


def nominal_pflops_exact(models: Sequence[ModelFigure]) -> Fraction:
    """标称算力 of the credited models, exact."""
    return sum((exact(mf.datasheet_tflops) * mf.count for mf in models if mf.credited and mf.datasheet_tflops),
               Fraction(0)) / 1000


def nominal_gaps(models: Sequence[ModelFigure]) -> list[str]:
    """Models whose nominal figure is unknown rather than withdrawn: the sampling rule is not met."""
    return [mf.measured_reason for mf in models if not mf.rule_met and mf.measured_reason]


def site_figures(declared: Fraction | None, models: Sequence[ModelFigure], level: int, blockers: Sequence[str]) -> SiteFigures:
    """Site FP16 figures: the measured one sums the models that may confirm (the others are gaps)."""
    counted = [mf for mf in models if mf.confirmable]
    gaps = [mf.measured_reason for mf in models if mf.measured_reason]
    with_ds = [mf for mf in models if mf.mean_tflops is not None and mf.datasheet_tflops]
    att_den = sum(mf.datasheet_tflops * mf.count / 1000 for mf in with_ds)  # type: ignore[operator]
    return SiteFigures(
        declared=declared,
        nominal=float(nominal_pflops_exact(models)),
        measured=sum(mf.measured_pflops or 0.0 for mf in counted),
        measured_low=sum(mf.measured_low_pflops or 0.0 for mf in counted),
        measured_high=sum(mf.measured_high_pflops or 0.0 for mf in counted),
        attainment=sum(mf.measured_pflops or 0.0 for mf in with_ds) / att_den if att_den else None,
        complete=bool(models) and not gaps and not blockers,
        level=level,
        gaps=gaps,  # type: ignore[arg-type]
    )
