"""`bench report`, `bench compare`, `bench export compute-info`, `bench info` and `bench --version`,
registered onto the lead's Typer app by :func:`register`.

Exit codes as everywhere in `bench`: 0 fine, 1 the result says no (a regression in `compare`),
2 bad input (one ``error:`` line, never a traceback).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from icb_bench.verify.cli import Format as OutFormat, Lang  # the same choices as `bench verify`

__all__ = ["register"]


class ReportFormat(str, Enum):
    html = "html"
    md = "md"
    pdf = "pdf"


def _fail(message: str) -> typer.Exit:
    from .cli import fail

    return fail(message)


def report_cmd(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="`bench run` records (or folders holding them)."),
    declared: Optional[Path] = typer.Option(None, "--declared", metavar="DECL", help="Site declaration (YAML): adds the verdict, the scores and declared vs measured."),
    lang: Lang = typer.Option(Lang.zh, "--lang", help="zh (default) or en."),
    fmt: ReportFormat = typer.Option(ReportFormat.html, "--format", help="html (one self-contained file), md (images beside it) or pdf (printed by headless chromium)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output file (default report.<format>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Write the assessor's report: verdict first, then the evidence (declared vs measured with
    uncertainty, 算力达成率 per device and precision, nodes and racks, power traces, environment).

    No network is needed to read it: styles and images are inside the file."""
    from .reportdoc import ReportError, ReportInput, build_report, write_report

    target = out or Path(f"report.{fmt.value}")
    try:
        rep = build_report(ReportInput(runs=list(runs), declared=declared, lang=lang.value))
        files = write_report(rep, target, fmt.value)
    except ReportError as exc:
        raise _fail(str(exc))
    if not quiet:
        for w in rep.warnings:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(f"{rep.verdict.headline}\nwrote {', '.join(map(str, files[:1]))}" + (f" (+{len(files) - 1} images)" if len(files) > 1 else ""))


def compare_cmd(
    baseline: Path = typer.Argument(..., metavar="BASELINE", help="Reference records (e.g. results/reference/…, or the certifying year's)."),
    new: Path = typer.Argument(..., metavar="NEW", help="Records to check against it."),
    fail_under: str = typer.Option("5%", "--fail-under", help="A figure more than this below the baseline is a regression (5% or 0.05)."),
    fmt: OutFormat = typer.Option(OutFormat.table, "--format", help="table, json or junit."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to FILE instead of stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No output; the exit code says it."),
) -> None:
    """Compare headline figures per device model and precision: median over devices of sustained
    TFLOPS and of GFLOPS/W, both higher-is-better; shapes shown beside them.

    Exit codes: 0 no regression, 1 a figure fell by more than --fail-under (or a model and
    precision of the baseline is missing from NEW), 2 bad input. JSON: schema icb-bench/compare/1."""
    from . import record
    from .compare import CompareError, compare, parse_threshold, render

    try:
        threshold = parse_threshold(fail_under)
        base_recs = record.find_runs([baseline])
        new_recs = record.find_runs([new])
        cmp = compare(base_recs, new_recs, threshold)
        text = render(cmp, fmt.value)
    except (CompareError, record.RecordError) as exc:
        raise _fail(str(exc))
    _emit(text, out, quiet)
    raise typer.Exit(cmp.exit_code)


def _emit(text: str, out: Optional[Path], quiet: bool) -> None:
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"--out {out}: cannot write ({exc.strerror or exc})")
    elif not quiet:
        sys.stdout.write(text)


export_app = typer.Typer(no_args_is_help=True, help="Export figures for other systems (A3: 基地算力信息).")


@export_app.command("compute-info")
def compute_info_cmd(
    runs: List[Path] = typer.Argument(None, metavar="[RUN...]", help="`bench run` records: measured per-device FP16/FP32 throughput."),
    site: Optional[Path] = typer.Option(None, "--site", metavar="SITE.yaml", help="Site file: the whole inventory (racks, nodes, devices)."),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="Read this host now (memory, CPU load, NVML utilisation); default: only without RUN and --site."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to FILE instead of stdout."),
) -> None:
    """The specification's 基地算力信息 fields (附录C) a harness can know, as JSON keyed by the
    Chinese field names, each with value, unit, source, estimated and note, plus a timestamp:
    what the cloud-management platform pushes in one of the daily windows (07:00–08:00,
    12:00–13:00, 19:00–20:00). Fields no benchmark can observe (network, storage) are null."""
    from .export import ExportError, ExportInput, compute_info

    if site is not None and not site.is_file():
        raise _fail(f"--site: {site}: no such file; expected a site file (icb-bench/site/1)")
    try:
        doc = compute_info(ExportInput(runs=list(runs or []), site=site, live=live))
    except ExportError as exc:
        raise _fail(str(exc))
    _emit(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", out, False)


def info_cmd(
    json_out: bool = typer.Option(False, "--json", help="One JSON object (schema icb-bench/info/1)."),
    no_power: bool = typer.Option(False, "--no-power", help="Skip opening the power readers."),
) -> None:
    """Inventory of this host: backends and their devices, device power sources, and for each
    one that is not usable, why."""
    from .info import gather, to_dict, to_text

    info = gather(with_power=not no_power)
    sys.stdout.write(json.dumps(to_dict(info), ensure_ascii=False, indent=2, default=str) + "\n" if json_out else to_text(info))


def _version_callback(value: bool) -> None:
    if value:
        from .info import version

        typer.echo(f"icb-bench {version()}")
        raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    """Add report, compare, export, info and the app-wide --version to ``app``."""
    app.command("report")(report_cmd)
    app.command("compare")(compare_cmd)
    app.add_typer(export_app, name="export")
    app.command("info")(info_cmd)
    if app.registered_callback is None:  # --version is app-wide: a Typer app has one callback

        @app.callback()
        def _root(
            version: bool = typer.Option(False, "--version", is_eager=True, callback=_version_callback,
                                         help="Print the icb-bench version and exit."),
        ) -> None:
            """icb-bench: measured GEMM throughput, power and GFLOPS/W for 工业智算基地 assessment."""
