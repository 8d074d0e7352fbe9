"""Sections built from `bench verify`'s result (``verify.report.to_dict``): verdict, scores, claims,
and the evidence rows 7 and 9 of the specification's materials list (Table 1)."""

from __future__ import annotations

from typing import Any

from .labels import Words
from .model import Cell, Section, Table, Verdict, interval, num, pct, tflops
from .plots import Plotter

#: how verify's claim statuses read: (label key, tone)
STATUS_TONE = {"CONFIRMED": "ok", "NOT CONFIRMED": "bad", "INCONCLUSIVE": "warn"}
_OP = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def verdict_of(vd: dict[str, Any] | None, w: Words) -> Verdict:
    """The headline: certified or not, the total, whether every claim was confirmed, what blocks."""
    if vd is None:
        return Verdict(None, w("no_declaration"))
    certified = bool(vd.get("certified"))
    head = f"{w('certified')}：{w('certified_yes') if certified else w('certified_no')} · A = {num(vd.get('total'), 2)}"
    lines = [w("all_confirmed") if vd.get("all_confirmed") else w("not_all_confirmed")]
    if vd.get("verdict") is not None:  # verify's own overall verdict, where that version writes one
        lines.append(f"{w('verdict')}: {vd['verdict'] if isinstance(vd['verdict'], str) else vd['verdict'].get('status', vd['verdict'])}")
    if vd.get("blocking") and vd.get("mandatory_block"):
        lines.append(f"{w('blocking')}: {w('no')} — " + ", ".join(vd["blocking"]))
    if vd.get("certified_name"):
        lines.append(f"{w('name')}: {vd['certified_name']}")
    return Verdict(certified, head, tuple(lines))


def score_section(vd: dict[str, Any], w: Words) -> Section:
    s = Section("scores", w("scores"))
    t = Table([w("score_part"), w("score"), w("requirement"), w("result")])
    for c in vd.get("checks") or []:
        label = "A = 0.5·A1 + 0.3·A2 + 0.2·A3" if c["of"] == "total" else c["of"]
        t.add(label, num(c["value"], 2), f"{_OP.get(c['op'], c['op'])} {c['required']}", _yes(c["met"], w))
    if vd.get("mandatory_block"):
        t.add(w("blocking"), ", ".join(vd.get("blocking") or []) or "—", "—", _yes(not vd.get("blocking"), w))
    t.add(w("certified"), "", "", _yes(bool(vd.get("certified")), w))
    s.tables.append(t)
    ind = Table([w("id"), w("indicator"), w("requirement"), w("value"), w("source"), w("points"), w("result")],
                caption=w("indicators"))
    for i in vd.get("indicators") or []:
        name = (i["zh"] if w.lang == "zh" else i["en"]) + (" *" if i.get("mandatory") else "")
        ind.add(i["id"], name, i.get("requirement") or "—", i.get("value_text") or "—", w.source(i.get("source")),
                f"{i['points']}/{i['max']}", Cell(w("met") if i["met"] else w("unmet"), "ok" if i["met"] else "bad"))
    s.tables.append(ind)
    s.notes += list(vd.get("warnings") or [])
    return s


def claims_section(vd: dict[str, Any], w: Words, plot: Plotter) -> Section:
    s = Section("claims", w("declared_vs_measured"))
    t = Table([w("claim"), w("declared"), w("figure"), w("uncertainty"), w("needed"), w("source"), w("status"), w("reason")])
    for c in vd.get("claims") or []:
        show = _claim_value(c)
        t.add(f"{c['id']} {c['zh'] if w.lang == 'zh' else c['en']}", show(c.get("declared")), show(c.get("figure")),
              _claim_interval(c), show(c.get("required")), w.source(c.get("source")),
              Cell(w(c["status"]), STATUS_TONE.get(c["status"], "")), c.get("reason") or "")
    s.tables.append(t)
    png = plot.claims(vd.get("claims") or [])
    if png:
        from .model import Figure

        s.figures.append(Figure("claims", w("claims_chart"), png))
    s.paragraphs.append(f"tolerance {pct(vd.get('tolerance'), 1)} · min-efficiency {pct(vd.get('min_efficiency'), 0)} · "
                        f"basis {vd.get('basis')} · {w('level')} {vd.get('level')}")
    s.notes += list(vd.get("notes") or [])
    return s


def materials7(vd: dict[str, Any], storage_pb: Any, w: Words) -> Section:
    """Table 1 row 7: storage capacity (declared only) and the FP16 compute peak, declared / nominal / measured."""
    s = Section("materials7", w("materials7"))
    fp = vd.get("fp16") or {}
    site = Table([w("site_fp16"), "PFLOPS (FP16)", w("uncertainty"), w("scored")])
    site.add(w("declared"), num(fp.get("declared"), 2), "—", "")
    site.add(w("nominal"), num(fp.get("nominal"), 2), "—", "◀" if fp.get("scored") == "nominal" else "")
    site.add(w("measured"), num(fp.get("measured"), 2), interval(fp.get("measured_low"), fp.get("measured_high"), 2),
             "◀" if fp.get("scored") == "measured" else "")
    site.add(w("attainment"), pct(fp.get("attainment")), "—", "")
    s.tables.append(site)
    mt = Table([w("model"), w("count"), w("sampled"), w("datasheet"), w("per_device"), w("interval"), w("extrapolated"),
                w("attainment"), w("credited"), w("reason")], caption=w("model_table"))
    for m in fp.get("models") or []:
        mt.add(m["model"] + (f" [{w('domestic')}]" if m.get("domestic") else ""), m["count"],
               Cell(f"{m['sampled']}/{m['required']}", "" if m.get("rule_met") else "bad"),
               tflops(m.get("datasheet_tflops"), "fp16"), tflops(m.get("mean_tflops"), "fp16"),
               interval(m.get("ci_low_tflops"), m.get("ci_high_tflops")), _pflops(m),
               pct(m.get("attainment")), _yes(bool(m.get("credited")), w), m.get("reason") or "")
    s.tables.append(mt)
    st = Table([w("storage"), w("value"), w("source")])
    st.add(w("storage"), "—" if storage_pb is None else f"{num(storage_pb, 2)} PB", w("declared"))
    s.tables.append(st)
    s.notes += [w("storage_note")] + list(fp.get("gaps") or [])
    return s


def materials9(vd: dict[str, Any], w: Words) -> Section:
    """Table 1 row 9: the domestic share, declared against the share recomputed from the inventory."""
    s = Section("materials9", w("materials9"))
    claim = next((c for c in vd.get("claims") or [] if c["id"] == "A2.14"), None)
    t = Table([w("domestic_share"), w("value"), w("source")])
    t.add(w("declared"), pct(claim.get("declared")) if claim else "—", w("declared"))
    t.add(w("figure"), pct(vd.get("domestic_share")), w("nominal_src"))
    if claim:
        t.add(w("status"), Cell(w(claim["status"]), STATUS_TONE.get(claim["status"], "")), claim.get("reason") or "")
    s.tables.append(t)
    mt = Table([w("model"), w("count"), w("domestic"), w("datasheet"), w("nominal")])
    for m in (vd.get("fp16") or {}).get("models") or []:
        per = m.get("datasheet_tflops") if m.get("datasheet_tflops") is not None else m.get("declared_tflops")
        total = None if per is None else float(per) * m["count"] / 1000
        mt.add(m["model"], m["count"], w("yes") if m.get("domestic") else w("no"), tflops(per, "fp16"),
               "—" if total is None else f"{num(total, 2)} PFLOPS (FP16)")
    s.tables.append(mt)
    s.paragraphs.append(w("domestic_basis"))
    return s


def _pflops(m: dict[str, Any]) -> str:
    """A model's extrapolated site figure with its interval, or — when nothing was measured."""
    if m.get("measured_pflops") is None:
        return "—"
    iv = interval(m.get("measured_low_pflops"), m.get("measured_high_pflops"), 2)
    return f"{num(m['measured_pflops'], 2)} PFLOPS (FP16)" + ("" if iv == "—" else f" {iv}")


def _yes(ok: bool, w: Words) -> Cell:
    return Cell(w("yes") if ok else w("no"), "ok" if ok else "bad")


def _claim_value(c: dict[str, Any]):
    def show(x: Any) -> str:
        if x is None:
            return "—"
        if c.get("unit") == "share":
            return pct(x)
        return f"{num(x, 2)} {c.get('unit') or ''} ({(c.get('precision') or '?').upper()})"
    return show


def _claim_interval(c: dict[str, Any]) -> str:
    if c.get("low") is None or c.get("high") is None or c.get("low") == c.get("high"):
        return "—"
    if c.get("unit") == "share":
        return f"[{pct(c['low'])}, {pct(c['high'])}]"
    return interval(c["low"], c["high"], 2)
