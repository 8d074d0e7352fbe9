"""The assessor's report (`bench report`): one self-contained HTML (or Markdown, or PDF) file.

Chinese by default. The verdict comes first (from `bench verify` when a declaration is given),
then declared against measured for every claim, the evidence rows 7 and 9 of the specification's
materials list, per device / node / rack figures, the power traces and the environment.

Public API::

    report = build_report(ReportInput(runs=[Path("results/run")], declared=Path("decl.yaml"), lang="zh"))
    write_report(report, Path("report.html"), "html")   # or "md", "pdf"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .labels import Words
from .model import Report, Section

__all__ = ["ReportInput", "ReportError", "build_report", "write_report", "FORMATS"]

FORMATS = ("html", "md", "pdf")


class ReportError(Exception):
    """Bad input to the report (a record, a declaration, an output path): one line, exit 2."""


@dataclass
class ReportInput:
    runs: list[Path]
    declared: Path | None = None
    lang: str = "zh"
    #: `bench verify` options the verdict is computed with (its defaults otherwise)
    verify_options: dict[str, Any] = field(default_factory=dict)
    max_traces: int = 12


def _verification(decl_path: Path, paths: list[Path], options: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from icb_bench.verify.declaration import DeclarationError, load_declaration
    from icb_bench.verify.measured import LevelError, load_records, verify
    from icb_bench.verify.report import to_dict

    if not decl_path.is_file():
        raise ReportError(f"--declared: {decl_path}: no such file; expected a site declaration (YAML), e.g. from `bench example declaration`")
    try:
        decl = load_declaration(decl_path)
    except DeclarationError as exc:
        raise ReportError(f"--declared: {exc.source}: {exc.issues[0]}") from None
    try:
        v = verify(decl, load_records(paths), **options)
    except (LevelError, ValueError) as exc:
        raise ReportError(f"verify: {exc}") from None
    return to_dict(v), decl


def build_report(inp: ReportInput) -> Report:
    """Read the records (and the declaration), verify, and lay out every section."""
    from icb_bench.bench import record
    from icb_bench.bench.inventory import utc_now

    from . import evidence, verdict
    from .fonts import INSTALL_HINT, find_cjk_font
    from .plots import Plotter

    try:
        w = Words(inp.lang)
    except ValueError as exc:
        raise ReportError(f"--lang: {exc}") from None
    try:
        records = record.find_runs(inp.runs)
    except record.RecordError as exc:
        raise ReportError(str(exc)) from None
    warnings: list[str] = []
    cjk = find_cjk_font()
    plot_words = w
    if inp.lang == "zh" and cjk is None:
        plot_words = Words("en")
        warnings.append(w("font_fallback", hint=INSTALL_HINT))
    plot = Plotter(plot_words, cjk)

    vd = decl = None
    if inp.declared is not None:
        vd, decl = _verification(Path(inp.declared), list(inp.runs), inp.verify_options)
    sections: list[Section] = []
    if vd is not None:
        sections.append(verdict.score_section(vd, w))
        sections.append(verdict.claims_section(vd, w, plot))
        sections.append(verdict.materials7(vd, decl.technical.storage_capacity, w))
        sections.append(verdict.materials9(vd, w))
    else:
        sections.append(evidence.measured_models(records, w))
    sections.append(evidence.device_section(records, w, plot))
    required = _rack_requirement(vd)
    scopes = evidence.scope_section(records, w, plot, required)
    if scopes is not None:
        sections.append(scopes)
    sections.append(evidence.trace_section(records, w, plot, inp.max_traces))
    sections.append(evidence.environment_section(records, vd, w))
    title = w("report_title") + (f" — {vd['base']['name']}" if vd else "")
    return Report(title=title, lang=inp.lang, generated_at=utc_now(), runs=[r.run_id for r in records],
                  verdict=verdict.verdict_of(vd, w), sections=sections, warnings=warnings)


def _rack_requirement(vd: dict[str, Any] | None) -> float | None:
    """A1.7's threshold for the declared tier (drawn on the rack chart)."""
    for ind in (vd or {}).get("indicators") or []:
        if ind["id"] == "A1.7" and ind.get("conditions"):
            t = ind["conditions"][0].get("threshold")
            return float(t) if isinstance(t, (int, float)) else None
    return None


def write_report(report: Report, out: Path, fmt: str = "html") -> list[Path]:
    """Write ``report`` as ``fmt``; returns the files written (Markdown: the report and its images)."""
    from .render import render_html, write_markdown

    if fmt not in FORMATS:
        raise ReportError(f"--format: {fmt!r} is not a report format; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "md":
            return write_markdown(report, out)
        html = render_html(report)
        if fmt == "html":
            out.write_text(html, encoding="utf-8")
            return [out]
    except OSError as exc:
        raise ReportError(f"-o {out}: cannot write ({exc.strerror or exc})") from None
    from .pdf import PdfError, print_pdf

    try:
        print_pdf(html, out)
    except PdfError as exc:
        raise ReportError(f"--format pdf: {exc}") from None
    return [out]
