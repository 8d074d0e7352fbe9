"""Rendering a scorecard or a verification: Rich table, JSON, JUnit XML.

Labels are Chinese with English beside them (``lang="zh"``) or English only (``lang="en"``), in
the vocabulary assessors use: 标称算力 (nominal), 实测算力 (measured), 算力达成率 (measured ÷
nominal), 理论算效 / 实测算效 (nominal / measured FLOPS per watt). Every compute figure states its
precision (智能算力 is counted in FP16).

JSON (``schema: icb-bench/score/1``; ``bench verify`` writes ``icb-bench/verify/1``)::

    {spec, base: {name, tier, tier_zh}, a1, a2, a3, total, total_exact ("161/2"), certified,
     blocking: [ids of unmet mandatory indicators], mandatory_block, checks: [{of, op, value, required, met}],
     certified_name, review_dates: [ISO dates], warnings: [...],
     indicators: [{id, zh, en, section, group_zh, group_en, met, points, max, mandatory, unit, precision,
                   value (what was scored, canonical unit), value_unit, value_text, requirement,
                   source (declared | measured | nominal), conditions: [...], note}],
     # bench verify only:
     basis, tolerance, min_efficiency, all_confirmed, level (sampling level),
     sample_plan: null | {path, level, racks, plan_sha256, nonce_sha256, outside, not_measured,
                          no_rack_efficiency, unplaced},
     claims: [{id, field, zh, en, unit, precision, declared, figure, low, high, source, required, status, reason}],
     fp16: {precision, unit: PFLOPS, declared, nominal, measured, measured_low, measured_high, attainment,
            complete, scored, level, gaps: [why a model's measured figure cannot count],
            models: [{model, key, count, sampled, required, rule_met, invalid, datasheet_tflops,
            mean_tflops (failed devices as zero), stdev_tflops, ci_low/ci_high_tflops (interval of the mean),
            interval (t+fpc | census | single), median_tflops, q1/q3/min/max (correct devices),
            measured_pflops, measured_low/high_pflops, confirmable, measured_reason, attainment,
            credited, reason, ...}]},
     domestic_share, efficiency: [rack-scope figures: gflops_per_w, low, high, assurance, status, reason, scored],
     efficiency_lower_scopes: [node/device summaries],
     smoke_ignored (not assessment-grade), excluded (assessment-grade but not trusted, with the reason),
     unmatched_models, notes, runs}
"""

from __future__ import annotations

import dataclasses
import io
import xml.etree.ElementTree as ET
from fractions import Fraction
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import units
from .measured import CONFIRMED, INCONCLUSIVE, Verification
from .scoring import IndicatorResult, Scorecard

__all__ = ["to_json", "to_dict", "to_junit", "to_table", "render", "LABELS"]

LABELS: dict[str, tuple[str, str]] = {
    "title_score": ("评估结果", "Assessment"),
    "title_verify": ("核验结果", "Verification"),
    "id": ("编号", "ID"),
    "indicator": ("指标", "Indicator"),
    "requirement": ("要求", "Requirement"),
    "value": ("取值", "Value"),
    "source": ("来源", "Source"),
    "points": ("得分", "Points"),
    "result": ("结果", "Result"),
    "met": ("达标", "met"),
    "unmet": ("未达标", "unmet"),
    "declared": ("申报", "declared"),
    "nominal": ("标称算力", "nominal"),
    "measured": ("实测算力", "measured"),
    "nominal_src": ("标称", "nominal"),
    "measured_src": ("实测", "measured"),
    "attainment": ("算力达成率", "attainment"),
    "nominal_eff": ("理论算效", "nominal efficiency"),
    "measured_eff": ("实测算效", "measured efficiency"),
    "rack_eff": ("单机架算效", "per-rack efficiency"),
    "total": ("总分", "Total"),
    "certified": ("达标认定", "Certified"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "blocking": ("必备项均满足", "mandatory indicators met"),
    "name": ("认定名称", "Certified name"),
    "reviews": ("年审日期", "Annual reviews"),
    "warnings": ("提示", "Warnings"),
    "model": ("型号", "Model"),
    "count": ("数量", "Count"),
    "sampled": ("抽测/应抽", "Sampled/required"),
    "interval": ("95% 区间", "95% interval"),
    "extrapolated": ("外推", "Extrapolated"),
    "assurance": ("计量来源", "Assurance"),
    "level": ("抽样等级", "sampling level"),
    "plan": ("抽样方案", "Sample plan"),
    "datasheet": ("规格峰值", "Datasheet peak"),
    "per_device": ("单卡实测（均值）", "Per device (mean)"),
    "spread": ("四分位（合格卡）", "IQR (correct devices)"),
    "credited": ("计入标称", "Credited"),
    "claims": ("申报核验", "Claims"),
    "claim": ("核验项", "Claim"),
    "figure": ("核验值", "Figure"),
    "lower": ("下限", "Lower bound"),
    "needed": ("需达到", "Needed"),
    "status": ("结论", "Status"),
    "site_fp16": ("FP16 算力规模", "Site FP16 compute"),
    "scored": ("计分", "scored"),
    "scope": ("功率范围", "Power scope"),
    "smoke": ("冒烟测试（不计）", "Smoke measurements (ignored)"),
    "excluded": ("剔除（不计或计零）", "Excluded (ignored, or counted as zero)"),
    "notes": ("说明", "Notes"),
    "domestic": ("国产", "domestic"),
    "section": ("分项", "Section"),
    "check": ("认定条件", "Condition"),
    "verdict": ("核验结论", "Verdict"),
    "not_measured": ("未实测", "not measured"),
    "not_verified": ("未核实", "not verified"),
    "inconclusive_ids": ("无法判定", "inconclusive"),
    "not_counted": ("未计入（运行未结束或中断）", "Not counted (runs not closed)"),
    "repeats": ("同一设备多次测量（取中位数）", "Devices measured several times (median counted)"),
    CONFIRMED: ("已确认", "CONFIRMED"),
    "NOT CONFIRMED": ("未确认", "NOT CONFIRMED"),
    INCONCLUSIVE: ("无法判定", "INCONCLUSIVE"),
}

_OP_SYMBOL = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
_TRUE = {"zh": "是 yes", "en": "yes"}


def L(key: str, lang: str) -> str:
    """A label: "中文 English" for zh, "English" for en."""
    zh, en = LABELS.get(key, (key, key))
    return f"{zh} {en}" if lang == "zh" else en


# ------------------------------------------------------------------------------------ JSON


def _num(v: Any) -> Any:
    """A JSON number for exact values: int when whole, else float; other values unchanged."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, Fraction):
        if v.denominator == 1:
            return int(v)
        try:
            return float(v)
        except OverflowError:
            return str(v)
    if isinstance(v, (frozenset, set)):
        return sorted(v)
    return v


def _kind(unit: str | None) -> str | None:
    return {"level": None, "count": "count"}.get(unit or "", unit)


def _fmt(unit: str | None, value: Any, precision: str | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = units.fmt_quantity(_kind(unit), value)
    if precision and unit in ("compute", "efficiency") and value is not None:
        text += f" ({precision.upper()})"
    return text


def _requirement(ind: IndicatorResult, lang: str) -> str:
    parts = []
    for c in ind.conditions:
        if not c.applies:
            continue
        name = c.field.split(".")[-1]
        if c.op == "is_true":
            parts.append(f"{name} = true")
        elif c.op == "at_least_level":
            parts.append(f"≥ {c.threshold}" + (" 级" if lang == "zh" and c.field.endswith("grade") else ""))
        elif c.op == "one_of":
            parts.append("∈ {" + ", ".join(sorted(c.threshold)) + "}")
        else:
            unit = ind.unit if c is ind.conditions[0] else ("count" if isinstance(c.threshold, int) else ind.unit)
            parts.append(f"{_OP_SYMBOL[c.op]} {_fmt(unit, c.threshold, ind.precision)}")
    return " & ".join(parts)


def _value_text(ind: IndicatorResult) -> str:
    vals = []
    for k, c in enumerate(ind.conditions):
        if not c.applies:
            continue
        unit = ind.unit if k == 0 else None
        vals.append("—" if c.value is None else _fmt(unit, c.value, ind.precision if k == 0 else None))
    return " & ".join(vals)


def _indicator_dict(ind: IndicatorResult, lang: str = "en") -> dict[str, Any]:
    return {
        "id": ind.id,
        "zh": ind.zh,
        "en": ind.en,
        "section": ind.section,
        "group_zh": ind.group_zh,
        "group_en": ind.group_en,
        "met": ind.met,
        "points": ind.points,
        "max": ind.max,
        "mandatory": ind.mandatory,
        "unit": ind.unit,
        "precision": ind.precision,
        "value": _num(ind.value),
        "value_unit": units.CANONICAL.get(ind.unit or "") or None,
        "value_text": _value_text(ind),
        "requirement": _requirement(ind, "en"),
        "source": ind.source,
        "conditions": [
            {
                "field": c.field,
                "op": c.op,
                "threshold": _num(c.threshold),
                "value": _num(c.value),
                "applies": c.applies,
                "met": c.met,
                "source": c.source,
            }
            for c in ind.conditions
        ],
        "note": ind.note,
    }


def _card_dict(card: Scorecard) -> dict[str, Any]:
    rules = card.rules
    tier = rules.tiers[card.tier] if rules else None
    return {
        "schema": "icb-bench/score/1",
        "spec": card.spec,
        "base": {"name": card.base_name, "tier": card.tier, "tier_zh": tier.zh if tier else None},
        "a1": _num(card.sections.get("A1")),
        "a2": _num(card.sections.get("A2")),
        "a3": _num(card.sections.get("A3")),
        "total": _num(card.total),
        "total_exact": str(card.total),
        "certified": card.certified,
        "blocking": list(card.blocking),
        "mandatory_block": card.mandatory_block,
        "checks": [
            {"of": c.of, "op": c.op, "value": _num(c.value), "required": c.required, "met": c.met} for c in card.checks
        ],
        "certified_name": card.certified_name,
        "review_dates": [d.isoformat() for d in card.review_dates],
        "indicators": [_indicator_dict(i) for i in card.indicators],
        "warnings": list(card.warnings),
    }


def _f(x: Any) -> Any:
    return None if x is None else _num(x) if isinstance(x, Fraction) else x


def to_dict(result: Scorecard | Verification) -> dict[str, Any]:
    """The JSON contract as a plain dict (see the package docs)."""
    if isinstance(result, Scorecard):
        return _card_dict(result)
    v = result
    out = _card_dict(v.scorecard)
    out["schema"] = "icb-bench/verify/1"
    out["basis"] = v.basis
    out["tolerance"] = _num(v.tolerance)
    out["min_efficiency"] = _num(v.min_efficiency)
    out["all_confirmed"] = v.all_confirmed
    out["verdict"] = v.verdict
    out["certification"] = {"status": v.certification, "inconclusive": v.unverified,
                            "text": _certification_text(v, "en"), "scorecard_certified": v.scorecard.certified}
    out["certified"] = v.certification == "yes"  # on measured figures only; the scorecard's own: certification
    if v.certification != "yes":
        out["certified_name"], out["review_dates"] = None, []
    out["level"] = v.level
    out["sample_plan"] = None if v.plan is None else dataclasses.asdict(v.plan)
    out["claims"] = [
        {
            "id": c.id,
            "field": c.field,
            "zh": c.zh,
            "en": c.en,
            "unit": units.CANONICAL.get(c.unit, c.unit) or c.unit,
            "precision": c.precision,
            "declared": _f(c.declared),
            "figure": c.figure,
            "low": c.low,
            "high": c.high,
            "source": c.source,
            "required": c.required,
            "status": c.status,
            "reason": c.reason,
        }
        for c in v.claims
    ]
    out["fp16"] = {
        "precision": "fp16",
        "unit": "PFLOPS",
        "declared": _f(v.site.declared),
        "nominal": v.site.nominal,
        "measured": v.site.measured,
        "measured_low": v.site.measured_low,
        "measured_high": v.site.measured_high,
        "attainment": v.site.attainment,
        "complete": v.site.complete,
        "scored": v.basis,
        "level": v.site.level,
        "gaps": list(v.site.gaps),
        "models": [
            {
                "model": m.model,
                "key": m.key,
                "count": m.count,
                "domestic": m.domestic,
                "declared_tflops": _f(m.declared_tflops),
                "datasheet_tflops": m.datasheet_tflops,
                "datasheet_source": m.datasheet_source,
                "datasheet_kind": m.datasheet_kind,
                "above_datasheet": m.above_datasheet,
                "sampled": m.sampled,
                "required": m.required,
                "rule_met": m.rule_met,
                "invalid": m.invalid,
                "below_efficiency": m.below_efficiency,
                "mean_tflops": m.mean_tflops,
                "stdev_tflops": m.stdev_tflops,
                "interval": m.interval,
                "median_tflops": m.median_tflops,
                "q1_tflops": m.q1_tflops,
                "q3_tflops": m.q3_tflops,
                "min_tflops": m.min_tflops,
                "max_tflops": m.max_tflops,
                "ci_low_tflops": m.ci_low_tflops,
                "ci_high_tflops": m.ci_high_tflops,
                "attainment": m.attainment,
                "credited": m.credited,
                "nominal_pflops": m.nominal_pflops,
                "measured_pflops": m.measured_pflops,
                "measured_low_pflops": m.measured_low_pflops,
                "measured_high_pflops": m.measured_high_pflops,
                "confirmable": m.confirmable,
                "measured_reason": m.measured_reason,
                "reason": m.reason,
            }
            for m in v.models
        ],
    }
    out["domestic_share"] = _f(v.domestic_share)
    out["efficiency"] = [
        {
            "scope": e.scope,
            "run_id": e.run_id,
            "label": e.label,
            "rack_id": e.rack_id,
            "gflops_per_w": e.gflops_per_w,
            "gflops_per_w_low": e.low,
            "gflops_per_w_high": e.high,
            "nominal_gflops_per_w": e.nominal_gflops_per_w,
            "tflops": e.tflops,
            "power_w": e.power_w,
            "assurance": e.assurance,
            "status": e.status,
            "reason": e.reason,
            "precision": "fp16",
            "scored": e.scored,
        }
        for e in v.racks
    ]
    out["efficiency_lower_scopes"] = [
        {"scope": x.scope, "n": x.n, "median_gflops_per_w": x.median, "q1": x.q1, "q3": x.q3, "min": x.min, "max": x.max,
         "precision": "fp16", "scored": False}
        for x in v.lower_scopes
    ]
    out["smoke_ignored"] = list(v.smoke)
    out["excluded"] = list(v.excluded)
    out["unmatched_models"] = dict(v.unmatched)
    out["notes"] = list(v.notes)
    out["runs"] = list(v.runs)
    out["not_counted"] = list(v.not_counted)
    out["repeats"] = list(v.repeats)
    out["operating_point"] = list(v.operating_point)
    return out


def _certification_text(v: Verification, lang: str) -> str:
    """The certification line of a verification: yes / no, or which measured indicators are inconclusive."""
    if v.certification == "not verified":
        if lang == "zh":
            return f"未核实 not verified：{'、'.join(v.unverified)} 无法判定 inconclusive"
        return f"not verified: {', '.join(v.unverified)} inconclusive"
    return L("yes" if v.certification == "yes" else "no", lang)


def to_json(result: Scorecard | Verification) -> str:
    from icb_bench.bench.record import strict_json_dumps  # non-finite floats (absurd inputs overflowing) as null

    return strict_json_dumps(to_dict(result), ensure_ascii=False, indent=2) + "\n"


# ----------------------------------------------------------------------------------- JUnit


def to_junit(result: Scorecard | Verification) -> str:
    """JUnit XML: one test case per indicator, one for certification, one per claim."""
    card = result if isinstance(result, Scorecard) else result.scorecard
    suites = ET.Element("testsuites", name="icb-bench")
    suite = ET.SubElement(suites, "testsuite", name=f"score {card.spec} {card.tier}")
    failures = 0
    for ind in card.indicators:
        tc = ET.SubElement(suite, "testcase", classname=f"{card.spec}.{ind.section}", name=f"{ind.id} {ind.en}")
        if not ind.met:
            failures += 1
            ET.SubElement(tc, "failure", message=f"{ind.id} unmet: {_value_text(ind)} (required {_requirement(ind, 'en')})", type="unmet")
    tc = ET.SubElement(suite, "testcase", classname=f"{card.spec}.certification", name="certified")
    if not card.certified:
        failures += 1
        why = [f"{c.of} {_num(c.value)} not {_OP_SYMBOL[c.op]} {c.required}" for c in card.checks if not c.met]
        if card.mandatory_block and card.blocking:
            why.append("unmet mandatory " + ", ".join(card.blocking))
        ET.SubElement(tc, "failure", message="; ".join(why), type="not certified")
    suite.set("tests", str(len(card.indicators) + 1))
    suite.set("failures", str(failures))
    if isinstance(result, Verification):
        cs = ET.SubElement(suites, "testsuite", name="claims")
        vt = ET.SubElement(cs, "testcase", classname="claims", name="verdict")
        fails = 0
        if result.verdict != CONFIRMED:
            fails += 1
            ET.SubElement(vt, "failure", message=f"{result.verdict}: " + "; ".join(
                f"{c.id} {c.status}" for c in result.claims if c.status != CONFIRMED) or result.verdict, type=result.verdict)
        ct = ET.SubElement(cs, "testcase", classname="claims", name="certified on measured figures")
        if result.certification != "yes":
            fails += 1
            ET.SubElement(ct, "failure", message=_certification_text(result, "en"), type=result.certification)
        for c in result.claims:
            tc = ET.SubElement(cs, "testcase", classname="claims", name=f"{c.id} {c.en}")
            if c.status != CONFIRMED:
                fails += 1
                ET.SubElement(tc, "failure", message=f"{c.status}: {c.reason}", type=c.status)
        cs.set("tests", str(len(result.claims) + 2))
        cs.set("failures", str(fails))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


# ----------------------------------------------------------------------------------- table


def _src(source: str, lang: str) -> str:
    return L({"declared": "declared", "nominal": "nominal_src", "measured": "measured_src"}.get(source, source), lang)


def _yes(ok: bool, lang: str) -> Text:
    return Text(L("yes" if ok else "no", lang), style="green" if ok else "red")


def _name(zh: str, en: str, lang: str) -> str:
    return f"{zh} {en}" if lang == "zh" else en


def _pf(x: float | None) -> str:
    return "—" if x is None else f"{units.fmt_number(x, 2)} PFLOPS (FP16)"


def _tf(x: float | Fraction | None) -> str:
    return "—" if x is None else f"{units.fmt_number(x, 1)} TFLOPS"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def _scorecard_tables(card: Scorecard, lang: str, verified: Verification | None = None) -> list[Any]:
    rules = card.rules
    tier = rules.tiers[card.tier] if rules else None
    title = f"{L('title_score', lang)} — {card.base_name} · {tier.zh + ' ' if tier and lang == 'zh' else ''}{card.tier} · {card.spec}"
    t = Table(title=title, box=box.SIMPLE_HEAVY, show_lines=False)
    for key in ("id", "indicator", "requirement", "value", "source", "points", "result"):
        t.add_column(L(key, lang), overflow="fold", justify="right" if key == "points" else "left")
    for ind in card.indicators:
        name = _name(ind.zh, ind.en, lang) + (" *" if ind.mandatory else "")
        t.add_row(
            ind.id,
            name,
            _requirement(ind, lang),
            _value_text(ind),
            _src(ind.source, lang),
            f"{ind.points}/{ind.max}",
            Text(L("met" if ind.met else "unmet", lang), style="green" if ind.met else "red"),
        )
    s = Table(box=box.SIMPLE, title=L("certified", lang))
    for key in ("check", "value", "requirement", "result"):
        s.add_column(L(key, lang))
    for c in card.checks:
        label = c.of if c.of != "total" else "A = 0.5·A1 + 0.3·A2 + 0.2·A3"
        s.add_row(label, units.fmt_number(c.value, 2), f"{_OP_SYMBOL[c.op]} {c.required}", _yes(c.met, lang))
    if card.mandatory_block:
        s.add_row(L("blocking", lang), ", ".join(card.blocking) or "—", "—", _yes(not card.blocking, lang))
    else:
        s.add_row(L("blocking", lang), ", ".join(card.blocking) or "—", "(--no-mandatory-block)", Text("—"))
    if verified is None:
        s.add_row(Text(L("certified", lang), style="bold"), "", "", _yes(card.certified, lang))
    else:  # bench verify: certified only on measured figures
        style = {"yes": "green", "no": "red"}.get(verified.certification, "yellow")
        s.add_row(Text(L("certified", lang), style="bold"), "", "", Text(_certification_text(verified, lang), style=style))
    out: list[Any] = [t, s]
    if card.certified_name and (verified is None or verified.certification == "yes"):
        out.append(Text(f"{L('name', lang)}: {card.certified_name}"))
        out.append(Text(f"{L('reviews', lang)}: " + ", ".join(d.isoformat() for d in card.review_dates)))
    for w in card.warnings:
        out.append(Text(f"! {w}", style="yellow"))
    return out


def _range(lo: float | None, hi: float | None, digits: int) -> str:
    return "—" if lo is None or hi is None else f"[{units.fmt_number(lo, digits)}, {units.fmt_number(hi, digits)}]"


def _model_table(v: Verification, lang: str) -> list[Any]:
    m = Table(title=f"{L('site_fp16', lang)} — FP16 dense · {L('level', lang)} {v.level}", box=box.SIMPLE_HEAVY)
    for key in ("model", "count", "sampled", "datasheet", "per_device", "spread", "extrapolated", "attainment", "credited"):
        m.add_column(L(key, lang), overflow="fold")
    reasons: list[Any] = []
    for mf in v.models:
        spread = "—" if mf.q1_tflops is None else f"{units.fmt_number(mf.q1_tflops, 1)}–{units.fmt_number(mf.q3_tflops, 1)}"
        ds = _tf(mf.datasheet_tflops) + (f" ({mf.datasheet_kind})" if mf.datasheet_kind else "")
        per = _tf(mf.mean_tflops) + ("" if mf.mean_tflops is None else " " + _range(mf.ci_low_tflops, mf.ci_high_tflops, 1))
        extra = "—" if mf.measured_pflops is None else (
            f"{units.fmt_number(mf.measured_pflops, 2)} PFLOPS {_range(mf.measured_low_pflops, mf.measured_high_pflops, 2)}")
        m.add_row(
            mf.model + (f" [{L('domestic', lang)}]" if mf.domestic else ""),
            str(mf.count),
            Text(f"{mf.sampled}/{mf.required}" + (f" ({mf.invalid} ✗)" if mf.invalid else ""),
                 style="" if mf.rule_met else "red"),
            ds,
            per,
            spread,
            Text(extra, style="" if mf.confirmable else "yellow"),
            _pct(mf.attainment),
            _yes(mf.credited, lang),
        )
        parts = dict.fromkeys(part for x in (mf.measured_reason, mf.reason) if x for part in x.split("; "))
        if parts:
            reasons.append(Text(f"  {mf.model}: " + "; ".join(parts), style="dim"))
    return [m, *reasons]


def _rack_table(v: Verification, lang: str) -> Table:
    e = Table(title=f"{L('rack_eff', lang)} (FP16)", box=box.SIMPLE)
    for key in ("scope", "model", "measured_eff", "interval", "nominal_eff", "assurance", "scored"):
        e.add_column(L(key, lang) if key != "model" else "ID", overflow="fold")
    gpw = " GFLOPS/W"
    if len(v.racks) <= 30:
        for f in v.racks:
            eff = f"{f.status}: {f.reason}" if f.gflops_per_w is None else f"{units.fmt_number(f.gflops_per_w, 1)}{gpw}"
            e.add_row(
                f.scope,
                f"{f.run_id}/{f.label}",
                eff,
                _range(f.low, f.high, 1),
                "—" if f.nominal_gflops_per_w is None else f"{units.fmt_number(f.nominal_gflops_per_w, 1)}{gpw}",
                f.assurance or "—",
                _yes(f.scored, lang),
            )
    else:
        for scored in (True, False):
            effs = sorted(r.gflops_per_w for r in v.racks if r.scored == scored and r.gflops_per_w is not None)
            if effs:
                e.add_row("rack", f"{len(effs)} racks (median; min–max)",
                          f"{units.fmt_number(effs[len(effs) // 2], 1)}{gpw}; {units.fmt_number(effs[0], 1)}–{units.fmt_number(effs[-1], 1)}",
                          "", "", "", _yes(scored, lang))
        for f in v.racks:
            if f.gflops_per_w is None:
                e.add_row(f.scope, f"{f.run_id}/{f.label}", f"{f.status}: {f.reason}", "—", "—", f.assurance or "—", _yes(False, lang))
    for x in v.lower_scopes:
        e.add_row(x.scope, f"{x.n} × {x.scope} (median; min–max)",
                  f"{units.fmt_number(x.median, 1)}{gpw}; {units.fmt_number(x.min, 1)}–{units.fmt_number(x.max, 1)}",
                  "—", "—", "—", _yes(False, lang))
    return e


def _verdict_line(v: Verification, lang: str) -> Text:
    style = {CONFIRMED: "bold green", "NOT CONFIRMED": "bold red"}.get(v.verdict, "bold yellow")
    open_claims = ", ".join(f"{c.id} {L(c.status, lang)}" for c in v.claims if c.status != CONFIRMED)
    return Text(f"{L('verdict', lang)}: {L(v.verdict, lang)}" + (f" ({open_claims})" if open_claims else "")
                + f" · {L('certified', lang)}: {_certification_text(v, lang)}", style=style)


def _verification_tables(v: Verification, lang: str) -> list[Any]:
    out: list[Any] = [_verdict_line(v, lang), *_model_table(v, lang)]
    s = Table(box=box.SIMPLE)
    s.add_column(L("site_fp16", lang))
    s.add_column("PFLOPS (FP16)")
    s.add_column(L("scored", lang))
    s.add_row(L("declared", lang), _pf(float(v.site.declared) if v.site.declared is not None else None), "")
    if any(mf.sampled for mf in v.models):
        s.add_row(L("nominal", lang), _pf(v.site.nominal), "◀" if v.basis == "nominal" else "")
        meas = _pf(v.site.measured) + "  " + _range(v.site.measured_low, v.site.measured_high, 2)
        s.add_row(L("measured", lang), meas, "◀" if v.basis == "measured" else "")
    else:  # nothing measured: no figure, and the declared one is what the scorecard holds
        s.add_row(L("nominal", lang), L("not_measured", lang), "")
        s.add_row(L("measured", lang), L("not_measured", lang), "")
    s.add_row(L("attainment", lang), _pct(v.site.attainment), "")
    out.append(s)
    if v.plan is not None:
        pl = v.plan
        out.append(Text(f"{L('plan', lang)}: {pl.path} · {L('level', lang)} {pl.level} · {len(pl.racks)} racks · "
                        f"plan_sha256 {pl.plan_sha256[:12]}…", style="dim"))
    if v.racks or v.lower_scopes:
        out.append(_rack_table(v, lang))
    c = Table(title=L("claims", lang), box=box.SIMPLE_HEAVY)
    for key in ("claim", "declared", "figure", "lower", "needed", "source", "status"):
        c.add_column(L(key, lang), overflow="fold")
    for cl in v.claims:
        unit = units.CANONICAL.get(cl.unit, "")
        prec = f" ({cl.precision.upper()})" if cl.precision and cl.unit != "share" else ""

        def show(x: Any, missing: str = "—") -> str:
            if x is None:
                return missing
            if cl.unit == "share":
                return _pct(float(x))
            return f"{units.fmt_number(x, 2)} {unit}{prec}"

        style = {"CONFIRMED": "green", "NOT CONFIRMED": "red"}.get(cl.status, "yellow")
        c.add_row(
            f"{cl.id} " + _name(cl.zh, cl.en, lang),
            show(cl.declared),
            show(cl.figure, L("not_measured", lang)),
            show(cl.low, L("not_measured", lang)),
            show(cl.required),
            _src(cl.source, lang),
            Text(L(cl.status, lang), style=style),
        )
    out.append(c)
    for cl in v.claims:
        out.append(Text(f"  {cl.id}: {cl.reason}", style="dim"))
    out.append(Text(f"tolerance {units.fmt_number(v.tolerance * 100, 2)}% · min-efficiency {units.fmt_number(v.min_efficiency * 100, 2)}% · basis {v.basis} · level {v.level}", style="dim"))
    if v.smoke:
        shown = ", ".join(v.smoke[:10]) + (f" … (+{len(v.smoke) - 10})" if len(v.smoke) > 10 else "")
        out.append(Text(f"{L('smoke', lang)}: {shown}", style="yellow"))
    if v.excluded:
        shown = "; ".join(v.excluded[:10]) + (f" … (+{len(v.excluded) - 10})" if len(v.excluded) > 10 else "")
        out.append(Text(f"{L('excluded', lang)}: {shown}", style="yellow"))
    for key, items in (("not_counted", v.not_counted), ("repeats", v.repeats)):
        if items:
            shown = "; ".join(items[:10]) + (f" … (+{len(items) - 10})" if len(items) > 10 else "")
            out.append(Text(f"{L(key, lang)}: {shown}", style="yellow"))
    for n in v.notes:
        out.append(Text(f"! {n}", style="yellow"))
    return out


def to_table(result: Scorecard | Verification, lang: str = "zh", width: int = 160, color: bool = False) -> str:
    """The report as text (Rich tables)."""
    console = Console(file=io.StringIO(), width=width, force_terminal=color, color_system="standard" if color else None, record=False)
    if isinstance(result, Verification):
        for r in _verification_tables(result, lang):
            console.print(r)
        card = result.scorecard
    else:
        card = result
    for r in _scorecard_tables(card, lang, result if isinstance(result, Verification) else None):
        console.print(r)
    return console.file.getvalue()  # type: ignore[attr-defined]


def render(result: Scorecard | Verification, fmt: str = "table", lang: str = "zh", color: bool = False) -> str:
    """Render in ``fmt``: table, json or junit."""
    if fmt == "json":
        return to_json(result)
    if fmt == "junit":
        return to_junit(result)
    if fmt == "table":
        return to_table(result, lang, color=color)
    raise ValueError(f"unknown format {fmt!r} (table, json or junit)")
