"""`bench keygen` and `bench audit`, and the helpers `bench run --challenge/--sign` and `bench show` use.

Exit codes: `keygen` 0 written, 2 bad input; `audit` 0 pass, 1 fail, 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import challenge as chal
from . import record

err = Console(stderr=True)
out = Console()


class TrustUsageError(Exception):
    """Bad input to one of these commands: one line, exit 2."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


# -- helpers for `bench run` and `bench show` (bench/cli.py) -------------------------------------

def run_challenge(nonce_text: Optional[str], seed: Optional[int]) -> dict[str, Any]:
    """The plan's ``extra`` for a run: the assessor's nonce, else ``--seed`` alone (seed mode), else
    a nonce drawn now. TrustUsageError naming --challenge when the nonce is malformed."""
    try:
        return {"challenge": chal.resolve(nonce_text, seed).to_dict()}
    except chal.ChallengeError as exc:
        raise TrustUsageError(str(exc)) from None


def load_sign_key(path: Optional[Path]) -> Any:
    """The signing key of `bench run --sign` (None without one), loaded before the run starts."""
    if path is None:
        return None
    from .sign import SignError, load_private_key

    try:
        return load_private_key(path)
    except SignError as exc:
        raise TrustUsageError(str(exc)) from None


def sign_run(run_dir: Path, key: Any) -> Optional[str]:
    """Sign a finished record; returns an error line instead of raising (the run is already on disk)."""
    if key is None:
        return None
    from .sign import SignError, sign_record

    try:
        sign_record(run_dir, key)
    except SignError as exc:
        return str(exc)
    return None


def integrity_problem(run_dir: Path) -> Optional[str]:
    """For `bench show`: None when the record's digests and signature hold (or it is still open
    and unsigned), else one line naming the file that fails."""
    from .sign import check_record_integrity

    report = check_record_integrity(run_dir)
    return None if report.ok else report.summary()


# -- commands ------------------------------------------------------------------------------------

def keygen(
    out_path: Path = typer.Option(..., "--out", help="private key file to create (mode 0600); the public key goes to OUT.pub"),
) -> None:
    """Create an Ed25519 signing key for `bench run --sign`."""
    from .sign import SignError, keygen as make_key

    try:
        keys = make_key(out_path)
    except SignError as exc:
        raise _fail(str(exc))
    out.print(f"private key {escape(str(keys.private_path))} (0600), public key {escape(str(keys.public_path))}\n"
              f"fingerprint {keys.fingerprint}", highlight=False, soft_wrap=True)


def audit(
    run_dir: Path = typer.Argument(..., help="a record directory written by `bench run`"),
    challenge: Optional[str] = typer.Option(None, "--challenge", help="the nonce the assessor gave the run (hex)"),
    trusted_key: Optional[list[str]] = typer.Option(None, "--trusted-key", help="fingerprint (sha256:…) of a signing key the assessor accepts; repeatable"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Recompute a record on this CPU: output samples in FP64 from the nonce, every figure from the
    raw samples, the record's consistency, file digests and signature. Exit 0 pass, 1 fail, 2 bad input."""
    from .audit import AuditInputError, audit_record

    try:
        report = audit_record(run_dir, challenge, trusted=trusted_key)
    except AuditInputError as exc:
        raise _fail(str(exc))
    if json_out:
        sys.stdout.write(record.strict_json_dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_report(report)
    raise typer.Exit(report.exit_code)


def _print_report(report: Any) -> None:
    counts = {s: sum(1 for m in report.measurements if m.status == s) for s in ("pass", "fail", "skipped")}
    verdict = "PASS" if report.ok else "FAIL"
    out.print(f"audit {escape(report.run_dir)}: {verdict} — {counts['pass']} passed, {counts['fail']} failed, "
              f"{counts['skipped']} without figures ({report.elapsed_s:.2f} s)", highlight=False, soft_wrap=True)
    out.print(escape(report.integrity.summary()), highlight=False, soft_wrap=True)
    for line in report.failures():
        out.print(f"  FAIL {escape(line)}", highlight=False, soft_wrap=True)
    for w in dict.fromkeys(report.warnings + [w for m in report.measurements for w in m.warnings]):
        out.print(f"  note: {escape(w)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `keygen` and `audit` to the `bench` command line."""
    app.command("keygen")(keygen)
    app.command("audit")(audit)


__all__ = ["TrustUsageError", "integrity_problem", "load_sign_key", "register", "run_challenge", "sign_run"]
