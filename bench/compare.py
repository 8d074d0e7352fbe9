"""`bench compare BASELINE NEW`: has throughput or efficiency regressed?

The headline per device model and precision is the **median over devices** of each device's
sustained throughput (its median per-batch TFLOPS) and of its GFLOPS/W; only correct, finished
measurements count. Both figures are better when higher (directions are data: :data:`METRICS`).
A figure that fell by more than the threshold is a regression (exit 1); so is a model and
precision the baseline has and the new records lack (a gate must not pass because a dtype
vanished). Efficiency measured at different power scopes (device counters against a node meter)
is shown but not compared. Used by CI against ``results/reference/`` and for the annual review
(年审): this year's records against the certifying year's.
"""

from __future__ import annotations

import json
import math
import statistics
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from . import record

#: metric -> +1 when higher is better, -1 when lower is better
METRICS: dict[str, int] = {"tflops": +1, "gflops_per_w": +1}
UNITS = {"tflops": "TFLOPS", "gflops_per_w": "GFLOPS/W"}
DEFAULT_THRESHOLD = 0.05
#: statuses that fail the comparison (exit 1)
FAILING = ("regression", "missing")


class CompareError(Exception):
    """Bad input to a comparison (exit 2)."""


def parse_threshold(text: str | float) -> float:
    """``5%``, ``5 %`` or ``0.05`` → 0.05; CompareError unless 0 ≤ t < 1."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1].strip()) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value < 1):
        raise CompareError(f"--fail-under: {text!r} is not a fraction; expected a percentage like 5% or a number like 0.05 (0 to <1)")
    return value


@dataclass(frozen=True)
class Headline:
    """The headline figures of one device model and precision in a set of records."""

    model: str
    dtype: str
    devices: int
    tflops: float | None
    gflops_per_w: float | None
    power_scopes: tuple[str, ...]
    shapes: tuple[str, ...]
    grades: tuple[str, ...]


def _counts(m: dict[str, Any]) -> bool:
    return m.get("status", "ok") == "ok" and m.get("valid") is not False and isinstance(m.get("tflops"), (int, float))


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def headlines(records: Iterable[record.RunRecord]) -> dict[tuple[str, str], Headline]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        for m in rec.measurements:
            if _counts(m):
                key = (str((m.get("device_info") or {}).get("model") or "?"), str(m.get("dtype")))
                groups.setdefault(key, []).append(m)
    out = {}
    for (model, dtype), ms in sorted(groups.items()):
        effs = [float(m["gflops_per_w"]) for m in ms if isinstance(m.get("gflops_per_w"), (int, float))]
        out[(model, dtype)] = Headline(
            model, dtype, len(ms), _median([float(m["tflops"]) for m in ms]), _median(effs),
            tuple(sorted({str(m.get("power_scope")) for m in ms if isinstance(m.get("gflops_per_w"), (int, float))})),
            tuple(sorted({f"{m.get('m')}x{m.get('n')}x{m.get('k')}" for m in ms})),
            tuple(sorted({str(m.get("grade")) for m in ms})))
    return out


@dataclass(frozen=True)
class Row:
    model: str
    dtype: str
    metric: str
    unit: str
    baseline: float | None
    new: float | None
    change_rel: float | None
    status: str  # ok | improved | regression | missing | new | not-comparable | not-measured
    devices_baseline: int
    devices_new: int
    shapes_baseline: tuple[str, ...]
    shapes_new: tuple[str, ...]
    note: str = ""


@dataclass
class Comparison:
    threshold: float
    baseline_runs: list[str]
    new_runs: list[str]
    rows: list[Row] = field(default_factory=list)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status in FAILING]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def _row(metric: str, b: Headline | None, n: Headline | None, threshold: float) -> Row:
    ref = b or n
    assert ref is not None
    bv = getattr(b, metric) if b else None
    nv = getattr(n, metric) if n else None
    common = dict(model=ref.model, dtype=ref.dtype, metric=metric, unit=UNITS[metric], baseline=bv, new=nv,
                  devices_baseline=b.devices if b else 0, devices_new=n.devices if n else 0,
                  shapes_baseline=b.shapes if b else (), shapes_new=n.shapes if n else ())
    if b is None:
        return Row(**common, change_rel=None, status="new", note="not in the baseline")
    if n is None:
        return Row(**common, change_rel=None, status="missing", note="in the baseline, not in the new records")
    if bv is None or nv is None:
        return Row(**common, change_rel=None, status="not-measured",
                   note="not measured in " + ("both" if bv is None and nv is None else "the baseline" if bv is None else "the new records"))
    if metric == "gflops_per_w" and b.power_scopes != n.power_scopes:
        return Row(**common, change_rel=None, status="not-comparable",
                   note=f"power scope {'/'.join(b.power_scopes)} vs {'/'.join(n.power_scopes)}")
    change = (nv - bv) / bv if bv else None
    signed = None if change is None else change * METRICS[metric]  # > 0: better
    status = "ok" if signed is None else "regression" if signed < -threshold else "improved" if signed > threshold else "ok"
    notes = []
    if b.shapes != n.shapes:
        notes.append("shapes differ")
    if b.grades != n.grades:
        notes.append(f"grade {'/'.join(b.grades)} vs {'/'.join(n.grades)}")
    return Row(**common, change_rel=change, status=status, note="; ".join(notes))


def compare(baseline: list[record.RunRecord], new: list[record.RunRecord], threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Headline figures of ``new`` against ``baseline``; CompareError when they share no model and precision."""
    hb, hn = headlines(baseline), headlines(new)
    if not hb:
        raise CompareError("BASELINE: no correct, finished measurement in it")
    if not hn:
        raise CompareError("NEW: no correct, finished measurement in it")
    if not set(hb) & set(hn):
        raise CompareError("BASELINE and NEW share no device model and precision: "
                           f"{', '.join(f'{m} {d}' for m, d in hb)} vs {', '.join(f'{m} {d}' for m, d in hn)}")
    cmp = Comparison(threshold, [r.run_id for r in baseline], [r.run_id for r in new])
    for key in sorted(set(hb) | set(hn)):
        for metric in METRICS:
            cmp.rows.append(_row(metric, hb.get(key), hn.get(key), threshold))
    return cmp


# ------------------------------------------------------------------------------ rendering


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    return f"{x:.3g}" if abs(x) < 0.1 else f"{x:,.{digits}f}"


def _change(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f}%"


def to_dict(cmp: Comparison) -> dict[str, Any]:
    """``schema: icb-bench/compare/1``: threshold, runs, rows (every field of :class:`Row`), failures, exit_code."""
    return {"schema": "icb-bench/compare/1", "threshold": cmp.threshold, "baseline_runs": cmp.baseline_runs,
            "new_runs": cmp.new_runs, "rows": [asdict(r) for r in cmp.rows],
            "failures": len(cmp.failures), "exit_code": cmp.exit_code}


def to_table(cmp: Comparison) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"bench compare — fail under −{cmp.threshold * 100:g}% (higher is better)")
    for col in ("model", "precision", "metric", "baseline", "new", "change", "status", "shapes (baseline → new)", "note"):
        t.add_column(col, overflow="fold")
    style = {"regression": "red", "missing": "red", "improved": "green", "ok": "green"}
    for r in cmp.rows:
        shapes = ",".join(r.shapes_baseline) + (" → " + ",".join(r.shapes_new) if r.shapes_new != r.shapes_baseline else "")
        t.add_row(r.model, r.dtype.upper(), r.metric, f"{_fmt(r.baseline)} {r.unit}", f"{_fmt(r.new)} {r.unit}",
                  _change(r.change_rel), f"[{style.get(r.status, 'yellow')}]{r.status}[/]", shapes, r.note)
    console = Console(file=io.StringIO(), width=180, force_terminal=False, color_system=None)
    console.print(t)
    verdict = f"{len(cmp.failures)} failing figure(s)" if cmp.failures else "no regression"
    console.print(f"{verdict}; baseline {', '.join(cmp.baseline_runs)}; new {', '.join(cmp.new_runs)}")
    return console.file.getvalue()  # type: ignore[attr-defined]


def to_junit(cmp: Comparison) -> str:
    suites = ET.Element("testsuites", name="icb-bench compare")
    suite = ET.SubElement(suites, "testsuite", name="compare", tests=str(len(cmp.rows)), failures=str(len(cmp.failures)))
    for r in cmp.rows:
        tc = ET.SubElement(suite, "testcase", classname=f"compare.{r.model}.{r.dtype}", name=r.metric)
        msg = f"{_fmt(r.baseline)} → {_fmt(r.new)} {r.unit} ({_change(r.change_rel)}); {r.note}".rstrip("; ")
        if r.status in FAILING:
            ET.SubElement(tc, "failure", type=r.status, message=msg)
        elif r.status not in ("ok", "improved"):
            ET.SubElement(tc, "skipped", message=f"{r.status}: {msg}")
        else:
            ET.SubElement(tc, "system-out").text = msg
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def render(cmp: Comparison, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(to_dict(cmp), ensure_ascii=False, indent=2) + "\n"
    if fmt == "junit":
        return to_junit(cmp)
    if fmt == "table":
        return to_table(cmp)
    raise CompareError(f"--format: {fmt!r} is not a format; expected table, json or junit")
