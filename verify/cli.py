"""`bench score` and `bench verify`: registered onto the lead's Typer app by :func:`register`.

Exit codes: 0 certified (score) / every claim confirmed (verify), 1 not, 2 input error. Input
errors are printed as messages (field path, value, what was expected), never as a traceback.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

__all__ = ["register"]


class Format(str, Enum):
    table = "table"
    json = "json"
    junit = "junit"


class Lang(str, Enum):
    zh = "zh"
    en = "en"


class BasisOpt(str, Enum):
    nominal = "nominal"
    measured = "measured"


def _fail(message: str) -> None:
    """Report an input error as the bench CLI does (``error: …`` on stderr) and exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _emit(text: str, out: Optional[Path]) -> None:
    if not text.endswith("\n"):
        text += "\n"  # a shell prompt or the next output must not run into the last line
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"--out {out}: cannot write ({exc})")


def _load(decl_path: Path):
    from .declaration import DeclarationError, load_declaration
    from .rules import RulesError, load_rules

    if not decl_path.is_file():
        what = "is a directory" if decl_path.is_dir() else "not a regular file" if decl_path.exists() else "no such file"
        _fail(f"{decl_path}: {what}; expected a site declaration (YAML), e.g. from `bench example declaration`")
    try:
        decl = load_declaration(decl_path)
        rules = load_rules(decl.spec)
    except DeclarationError as exc:
        # one problem (the usual case) on one line; several as a list under the first line
        _fail(f"{exc.source}: {exc.issues[0]}" if len(exc.issues) == 1 else exc.render())
    except RulesError as exc:
        _fail(f"rules: {exc}")
    return decl, rules


def score_cmd(
    decl_path: Path = typer.Argument(..., metavar="DECL", help="Site declaration (YAML)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json or junit."),
    lang: Lang = typer.Option(Lang.zh, "--lang", help="zh: Chinese labels with English beside; en: English."),
    no_mandatory_block: bool = typer.Option(
        False, "--no-mandatory-block", help="Do not let an unmet mandatory indicator (A1.4, A1.6, A2.7) block certification."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the report to FILE instead of stdout."),
) -> None:
    """Score a site declaration as declared (A1, A2, A3, total, certification).

    Start from the shipped example: `bench example declaration > site.yaml`, then edit. Values may carry units ("600 Gbps", "12 PB", "1200 PFLOPS", "120 GFLOPS/W", "600万", "45%"); a bare number is in the field's canonical unit. The rules are data (verify/rules/), chosen by the declaration's `spec:`.

    Exit codes: 0 certified, 1 not certified, 2 input error (each problem names the field, the value and what was expected).

    --format json prints one object: a1, a2, a3, total, certified, blocking, indicators (id, met, points, max, value, source), warnings, certified_name, review_dates; the full contract is in the repository's verify/README.md.
    """
    from .report import render
    from .scoring import score

    decl, rules = _load(decl_path)
    card = score(decl, rules, mandatory_block=not no_mandatory_block)
    _emit(render(card, fmt.value, lang.value), out)
    raise typer.Exit(0 if card.certified else 1)


def verify_cmd(
    decl_path: Path = typer.Argument(..., metavar="DECL", help="Site declaration (YAML)."),
    results: List[Path] = typer.Argument(..., metavar="RESULTS...", help="`bench run` record directories (or folders holding them)."),
    basis: BasisOpt = typer.Option(BasisOpt.nominal, "--basis", help="Site FP16 figure scored: nominal (标称) or measured (实测)."),
    tolerance: float = typer.Option(0.05, "--tolerance", min=0.0, max=0.999, help="Confirm when lower bound ≥ declared × (1 − tolerance)."),
    min_efficiency: float = typer.Option(
        0.5, "--min-efficiency", min=0.0, max=1.0, help="A model's nominal counts when its sampled devices reach this fraction of datasheet."
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json or junit."),
    lang: Lang = typer.Option(Lang.zh, "--lang", help="zh: Chinese labels with English beside; en: English."),
    no_mandatory_block: bool = typer.Option(False, "--no-mandatory-block", help="Unmet mandatory indicators do not block certification."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the report to FILE instead of stdout."),
    level: Optional[int] = typer.Option(
        None, "--level", min=1, help="Sampling level (1, 2 or 3; default: the sample plan's, else rules/sampling.yaml's)."
    ),
    sample_plan: Optional[Path] = typer.Option(
        None, "--sample-plan", metavar="PLAN.json", help="`bench sample` plan: only the racks it drew count, and all must be measured."
    ),
    allow_unsigned: bool = typer.Option(
        False, "--allow-unsigned", help="Accept records without a signature (`bench run --sign KEY`); their file digests are still checked."
    ),
    trusted_key: Optional[List[str]] = typer.Option(
        None, "--trusted-key", metavar="sha256:…", help="Accept only signatures by this key (repeatable; `bench keygen` prints the fingerprint)."
    ),
    site: Optional[Path] = typer.Option(
        None, "--site", metavar="SITE.yaml", help="Site file: each rack figure must hold every node and device of its rack (without it A1.7 is not confirmed)."
    ),
) -> None:
    """Score with measured figures from `bench run` records and check each declared claim.

    Exit codes: 0 every claim CONFIRMED, 1 not, 2 input error. Only `assessment`-grade measurements count (`smoke` ones are listed and ignored). --format json adds claims, fp16, domestic_share, efficiency, excluded and all_confirmed to the `bench score` object.
    """
    from icb_bench.bench.record import RecordError

    from .measured import LevelError, load_records, verify
    from .report import render

    decl, rules = _load(decl_path)
    plan = _load_plan(sample_plan) if sample_plan is not None else None
    site_file = _load_site(site) if site is not None else None
    try:
        records = load_records(results)
    except RecordError as exc:
        _fail(f"results: {exc}")
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # a manifest that is JSON but not a record
        _fail(f"results: unreadable record ({type(exc).__name__}: {exc})")
    signatures = _check_signatures(records, allow_unsigned, trusted_key)
    try:
        v = verify(
            decl,
            records,
            rules=rules,
            basis=basis.value,  # type: ignore[arg-type]
            tolerance=tolerance,
            min_efficiency=min_efficiency,
            mandatory_block=not no_mandatory_block,
            level=level,
            sample_plan=plan,
            sample_plan_path=sample_plan,
            site_file=site_file,
        )
    except LevelError as exc:  # a --level the rules do not know, or one the plan was not drawn at
        _fail(f"--level: {exc}")
    v.notes[:0] = signatures
    _emit(render(v, fmt.value, lang.value), out)
    raise typer.Exit(0 if v.all_confirmed else 1)


def _check_signatures(records: list, allow_unsigned: bool, trusted: Optional[List[str]]) -> list[str]:
    """Every record's file digests and signature (`bench.sign`): a record edited since the run, or
    (without --allow-unsigned) an unsigned one, is refused; returns who signed each, for the report."""
    from icb_bench.bench.sign import check_record_integrity

    out = []
    for rec in records:
        rep = check_record_integrity(rec.path, require_signature=not allow_unsigned, trusted=trusted or None)
        if not rep.ok:
            hint = "; pass --allow-unsigned to accept unsigned records" if not rep.signed and not allow_unsigned else ""
            _fail(f"results: {rec.path}: {rep.first_problem}{hint}")
        if rep.signed:
            out.append(f"{rec.run_id}: signed by {rep.signer} (key {rep.key_fingerprint}); signature and "
                       f"{rep.files_checked} file digest(s) hold")
        else:
            out.append(f"{rec.run_id}: unsigned, accepted with --allow-unsigned"
                       + ("; file digests hold" if rep.closed else "; not closed, no file index to check"))
    return out


def _load_plan(path: Path):
    from .sample_plan import SamplePlanError, load_sample_plan

    try:
        return load_sample_plan(path)
    except SamplePlanError as exc:
        _fail(f"--sample-plan: {exc}")


def _load_site(path: Path):
    from icb_bench.bench.site import SiteError, load_site

    try:
        return load_site(path)
    except SiteError as exc:
        _fail("--site: " + "; ".join(exc.render().splitlines()))


def register(app: typer.Typer) -> None:
    """Add `score` and `verify` to ``app``."""
    app.command("score")(score_cmd)
    app.command("verify")(verify_cmd)
