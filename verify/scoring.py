"""Scoring a declaration against a ruleset: indicators, sections, total, certification.

Every comparison is driven by the rules file (operator, threshold per tier, field path); the code
has one evaluator per *operator*, none per indicator. Arithmetic is exact (:class:`Fraction`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

from . import units
from .declaration import Declaration, get_field, unknown_fields
from .inventory import domestic_share, resolve_inventory, site_pflops
from .rules import Condition, Indicator, Ruleset, load_rules, normalise_window

__all__ = [
    "Override",
    "ConditionResult",
    "IndicatorResult",
    "CertCheck",
    "Scorecard",
    "score",
    "review_dates",
    "consistency_warnings",
    "CONSISTENCY_TOLERANCE",
]

#: Relative difference above which two figures of one declaration are called contradictory.
CONSISTENCY_TOLERANCE = Fraction(1, 100)


@dataclass(frozen=True)
class Override:
    """A figure that replaces a declared field when scoring (``source``: measured or nominal)."""

    value: Any
    source: str
    note: str | None = None


@dataclass(frozen=True)
class ConditionResult:
    field: str
    value: Any
    op: str
    threshold: Any
    applies: bool
    met: bool
    source: str


@dataclass(frozen=True)
class IndicatorResult:
    """One indicator as scored."""

    id: str
    zh: str
    en: str
    section: str
    group_zh: str
    group_en: str
    points: int
    max: int
    met: bool
    mandatory: bool
    unit: str | None
    precision: str | None
    value: Any
    source: str
    conditions: list[ConditionResult]
    interpretation: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class CertCheck:
    of: str
    op: str
    value: Fraction
    required: int
    met: bool


@dataclass
class Scorecard:
    """The verdict on one declaration."""

    spec: str
    tier: str
    base_name: str
    sections: dict[str, Fraction]
    total: Fraction
    checks: list[CertCheck]
    blocking: list[str]
    mandatory_block: bool
    certified: bool
    indicators: list[IndicatorResult]
    certified_name: str | None = None
    review_dates: list[dt.date] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rules: Ruleset | None = field(default=None, repr=False)

    def indicator(self, ind_id: str) -> IndicatorResult:
        return next(i for i in self.indicators if i.id == ind_id)


# --------------------------------------------------------------------------- the operators


def _levels(rules: Ruleset, cond: Condition) -> list[str]:
    return rules.scales[cond.scale or ""]


_OPS: dict[str, Callable[[Any, Any, Ruleset, Condition], bool]] = {
    "ge": lambda v, t, r, c: v >= t,
    "gt": lambda v, t, r, c: v > t,
    "le": lambda v, t, r, c: v <= t,
    "lt": lambda v, t, r, c: v < t,
    "is_true": lambda v, t, r, c: v is True,
    "at_least_level": lambda v, t, r, c: v in _levels(r, c) and _levels(r, c).index(v) >= _levels(r, c).index(t),
    "one_of": lambda v, t, r, c: normalise_window(str(v)) in t,
}


def _value(decl: Declaration, cond: Condition, overrides: dict[str, Override]) -> tuple[Any, str]:
    """The value a condition compares, and where it came from."""
    if cond.field is not None:
        if cond.field in overrides:
            o = overrides[cond.field]
            return o.value, o.source
        return get_field(decl, cond.field), "declared"
    num_path, den_path = cond.ratio  # type: ignore[misc]
    num = overrides[num_path].value if num_path in overrides else get_field(decl, num_path)
    den = overrides[den_path].value if den_path in overrides else get_field(decl, den_path)
    src = "measured" if num_path in overrides or den_path in overrides else "declared"
    if num is None or den is None or den == 0:
        return None, src
    return Fraction(num) / Fraction(den), src


def _evaluate(decl: Declaration, rules: Ruleset, ind: Indicator, overrides: dict[str, Override]) -> IndicatorResult:
    tier = decl.base.tier
    results: list[ConditionResult] = []
    for k, cond in enumerate(ind.conditions):
        value, source = _value(decl, cond, overrides)
        threshold = rules.threshold(ind.id, k, tier)
        applies = cond.tiers is None or tier in cond.tiers
        met = True
        if applies:
            met = value is not None and bool(_OPS[cond.op](value, threshold, rules, cond))
        name = cond.field or "/".join(cond.ratio or ())
        results.append(ConditionResult(name, value, cond.op, threshold, applies, met, source))
    met = all(c.met for c in results)
    primary = results[0]
    group = rules.group(ind.group)
    notes = [overrides[f].note for f in ind.feeds if f in overrides and overrides[f].note]
    return IndicatorResult(
        id=ind.id,
        zh=ind.zh,
        en=ind.en,
        section=ind.section,
        group_zh=group.zh,
        group_en=group.en,
        points=ind.points if met else 0,
        max=ind.points,
        met=met,
        mandatory=ind.mandatory,
        unit=ind.unit,
        precision=ind.precision,
        value=primary.value,
        source=primary.source,
        conditions=results,
        interpretation=ind.interpretation,
        note="; ".join(notes) or None,
    )


# ------------------------------------------------------------------------------ the verdict


def review_dates(certified_on: dt.date, yearly_for_years: int, then_every_years: int, listed: int) -> list[dt.date]:
    """Annual-review dates: every year for ``yearly_for_years`` years, then every ``then_every_years``."""
    out: list[dt.date] = []
    year = 0
    while len(out) < listed:
        year += 1 if year < yearly_for_years else then_every_years
        try:
            out.append(certified_on.replace(year=certified_on.year + year))
        except ValueError:  # 29 February in a non-leap year
            out.append(certified_on.replace(year=certified_on.year + year, day=28))
    return out


def score(
    decl: Declaration,
    rules: Ruleset | None = None,
    *,
    mandatory_block: bool = True,
    overrides: dict[str, Override] | None = None,
    certified_on: dt.date | None = None,
) -> Scorecard:
    """Score ``decl`` (figures as declared, except fields named in ``overrides``)."""
    rules = rules or load_rules(decl.spec)
    overrides = overrides or {}
    results = [_evaluate(decl, rules, ind, overrides) for ind in rules.indicators]

    sections: dict[str, Fraction] = {}
    for sid, sec in rules.sections.items():
        mine = [r for r in results if r.section == sid]
        if sec.all_or_nothing:
            sections[sid] = Fraction(sec.max) if all(r.met for r in mine) else Fraction(0)
        else:
            sections[sid] = Fraction(sum(r.points for r in mine))
    if any(sec.all_or_nothing for sec in rules.sections.values()):
        results = [
            _zero_unless_section(r, sections, rules) for r in results
        ]
    total = sum((rules.sections[s].weight * v for s, v in sections.items()), Fraction(0))

    checks = []
    for req in rules.certification.requirements:
        value = total if req.of == "total" else sections[req.of]
        met = value >= req.value if req.op == "ge" else value > req.value
        checks.append(CertCheck(req.of, req.op, value, req.value, met))
    blocking = [r.id for r in results if r.mandatory and not r.met]
    block = mandatory_block and rules.certification.mandatory_blocks
    certified = all(c.met for c in checks) and not (block and blocking)

    card = Scorecard(
        spec=rules.id,
        tier=decl.base.tier,
        base_name=decl.base.name,
        sections=sections,
        total=total,
        checks=checks,
        blocking=blocking,
        mandatory_block=block,
        certified=certified,
        indicators=results,
        rules=rules,
    )
    if certified:
        tier = rules.tiers[decl.base.tier]
        card.certified_name = rules.certification.name_template.format(name=decl.base.name, suffix=tier.certified_suffix_zh)
        rv = rules.certification.review
        card.review_dates = review_dates(certified_on or dt.date.today(), rv.yearly_for_years, rv.then_every_years, rv.listed)
    card.warnings = [f"unknown field {p} (not in schema icb-declaration/1; ignored)" for p in unknown_fields(decl)]
    card.warnings += consistency_warnings(decl, rules, overrides=overrides)
    return card


def _zero_unless_section(r: IndicatorResult, sections: dict[str, Fraction], rules: Ruleset) -> IndicatorResult:
    """In an all-or-nothing section, a met indicator earns its share only when the section is met."""
    sec = rules.sections[r.section]
    if not sec.all_or_nothing or sections[r.section] == sec.max or not r.met:
        return r
    from dataclasses import replace

    return replace(r, points=0, note=f"{r.section} is all-or-nothing: another {r.section} indicator is unmet")


# -------------------------------------------------------------------------- contradictions


def _differs(a: Fraction, b: Fraction, tol: Fraction) -> bool:
    ref = max(abs(a), abs(b))
    return ref > 0 and abs(a - b) / ref > tol


def _verdict(decl: Declaration, rules: Ruleset, field_path: str, value: Fraction) -> bool | None:
    """Whether ``value`` in ``field_path`` would meet its indicator (first condition), or None."""
    for ind in rules.indicators:
        for k, cond in enumerate(ind.conditions):
            if cond.field == field_path:
                return bool(_OPS[cond.op](value, rules.threshold(ind.id, k, decl.base.tier), rules, cond))
    return None


def consistency_warnings(
    decl: Declaration,
    rules: Ruleset,
    tolerance: Fraction = CONSISTENCY_TOLERANCE,
    *,
    overrides: dict[str, Override] | None = None,
) -> list[str]:
    """Where the declaration contradicts itself: both figures named; nothing is substituted.

    Each warning ends with what is scored for that field: the declared figure, or (``bench
    verify``, a field in ``overrides``) the figure recomputed from measurements or datasheets,
    named by its source and value."""
    overrides = overrides or {}
    out: list[str] = []
    items = resolve_inventory(decl)
    for it in items:
        if it.above_datasheet:
            ds = it.datasheet
            assert ds is not None
            out.append(
                f"inventory[{it.index}] {it.model}: declared {units.fmt_number(it.declared_tflops)} TFLOPS per device (FP16) "
                f"is above the datasheet dense FP16 peak of {ds.name}, {units.fmt_number(ds.ceiling_tflops)} TFLOPS "
                f"({ds.kind}: {ds.source}) — a sparse or FP8 figure passed off as dense FP16?"
            )
    if not items:
        return out
    # (field, declared, recomputed from the inventory, how to print it, what the recomputed figure is)
    pairs = (
        ("technical.fp16_peak", decl.technical.fp16_peak, site_pflops(items, "declared"),
         lambda v: f"{units.fmt_number(v)} PFLOPS (FP16)", "the inventory's Σ count × fp16_tflops is {}", "A2.7"),
        ("technical.domestic_compute_share", decl.technical.domestic_compute_share, domestic_share(items, "declared"),
         lambda v: units.fmt_quantity("share", v), "the inventory's domestic part is {} of its FP16 compute", "A2.14"),
    )
    for field_path, declared, recomputed, fmt, what, indicator in pairs:
        if declared is None or recomputed is None:
            continue
        flips = _verdict(decl, rules, field_path, declared) != _verdict(decl, rules, field_path, recomputed)
        if _differs(declared, recomputed, tolerance) or flips:
            ov = overrides.get(field_path)
            scored = "; the declared figure is scored"
            if ov is not None:
                try:
                    shown = fmt(ov.value)
                except (TypeError, ValueError):
                    shown = str(ov.value)
                scored = f"; the {ov.source} figure, {shown}, is scored"
            out.append(
                f"{field_path} declares {fmt(declared)} but {what.format(fmt(recomputed))}"
                + (f" — the difference changes {indicator}" if flips else "")
                + scored
            )
    return out
