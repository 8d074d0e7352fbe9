"""The `bench` command line: `run`, `show`, and (from verify/) `score` and `verify`.

Exit codes are a contract for scripts and CI: 0 all valid, 1 a measurement invalid or a device
failed, 2 a usage or input error (one clear line on stderr, never a traceback); `bench run` also
3 interrupted by SIGINT/SIGTERM (the record closed ``interrupted``: `bench run --resume` continues
it) and 4 a record file could not be written (disk full, read-only: the run stopped at once).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import record
from .plan import MIN_ASSESSMENT_S

app = typer.Typer(
    add_completion=True,  # `bench --install-completion` / `--show-completion` (bash, zsh, fish, PowerShell)
    no_args_is_help=True,
    help="icb-bench: measured GEMM throughput, power and GFLOPS/W for 工业智算基地 assessment.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


def fail(message: str) -> "typer.Exit":
    # the message quotes user input and URL templates: never let Rich read them as markup;
    # a message of several problems (a site file's) is one `error:` line each
    for line in message.splitlines() or [message]:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def parse_devices(text: str | None, count: int) -> tuple[int, ...]:
    """`0,2` or `all` (None) → device indices, each checked against the backend's device count."""
    if text is None or text.strip().lower() == "all":
        return tuple(range(count))
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):
            raise UsageError(f"--devices: {part!r} is not a device index; expected comma-separated integers like 0,2 or 'all'")
        i = int(part)
        if i >= count:
            raise UsageError(f"--devices: device {i} does not exist; this backend sees {count} device(s) (0..{count - 1})")
        if i not in out:
            out.append(i)
    if not out:
        raise UsageError("--devices: empty list; expected comma-separated integers like 0,2 or 'all'")
    return tuple(out)


def parse_dtypes(text: str | None) -> tuple[str, ...] | None:
    """Dtype names, or None for `all` (every dtype the device supports)."""
    from icb_bench.kernels.dtypes import DEFAULT_DTYPES, DTYPES

    if text is None:
        return tuple(DEFAULT_DTYPES)
    if text.strip().lower() == "all":
        return None
    out = []
    for part in text.split(","):
        name = part.strip().lower()
        if name not in DTYPES:
            raise UsageError(f"--dtypes: {part.strip()!r} is not a GEMM dtype; expected a comma-separated subset of {', '.join(DTYPES)} or 'all'")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError(f"--dtypes: empty list; expected a comma-separated subset of {', '.join(DTYPES)}")
    return tuple(out)


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.lower().replace("×", "x").split("x")]
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and 0 < int(p) <= MAX_DIM for p in parts):
        raise UsageError(f"--shape: {text!r} is not MxNxK; expected three positive integers up to {MAX_DIM} "
                         "like 8192x8192x8192")
    m, n, k = (int(p) for p in parts)
    return (m, n, k)


#: largest GEMM dimension --shape accepts (a sanity bound; device memory is checked separately)
MAX_DIM = 1 << 20
#: --seed must fit the generators' signed 64-bit seed
MAX_SEED = (1 << 63) - 1


def check_shape_fits(shape: tuple[int, int, int], dtypes: tuple[str, ...], free_bytes: int) -> None:
    """A fixed --shape must fit the device's free memory for every dtype asked for."""
    from icb_bench.kernels.gemm import GemmShape, shape_bytes

    need = max(shape_bytes(d, GemmShape(*shape)) for d in dtypes)
    if need > free_bytes:
        raise UsageError(f"--shape: {shape[0]}x{shape[1]}x{shape[2]} needs {need / 2**30:.1f} GiB for A, B and C; "
                         f"the device has {free_bytes / 2**30:.1f} GiB free")


#: free space an output directory needs before a run starts (a measurement with its trace is ~1 MiB)
MIN_FREE_BYTES = 64 << 20


def check_out_writable(run_dir: Path, option: str = "--out") -> None:
    """Known before anything is measured: ``--out`` (``option``) can be created and written, with
    room to spare (a read-only or full disk would otherwise lose the run's first measurement)."""
    import shutil
    import tempfile

    existing = next((p for p in [run_dir, *run_dir.resolve().parents] if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UsageError(f"{option}: {run_dir}: no existing directory above it to create it in")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".icb-bench-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{option}: {run_dir} is not writable ({exc.strerror or exc}); expected a directory this user can write") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise UsageError(f"{option}: {run_dir} has {free / 2**20:.0f} MiB free; expected at least {MIN_FREE_BYTES >> 20} MiB")


#: `bench run` options that describe what is measured: a resume takes them from the record instead
#: (--challenge and --seed may restate the record's own)
_MEASUREMENT_OPTIONS = ("backend", "devices", "dtypes", "quick", "duration", "shape", "outlier_tolerance", "sample_hz",
                        "node_power", "node_name", "site", "fleet_timeout", "node_timeout", "out")


@app.command()
def run(
    ctx: typer.Context,
    backend: Optional[str] = typer.Option(None, "--backend", help="cpu, cuda, npu, mlu, musa, xpu (default: detect)"),
    devices: Optional[str] = typer.Option(None, "--devices", help="device indices, e.g. 0,2 (default: all)"),
    dtypes: Optional[str] = typer.Option(None, "--dtypes", help="fp16,bf16,fp32,tf32,fp8,int8 or 'all' (default: fp16,fp32)"),
    quick: bool = typer.Option(False, "--quick", help="smoke profile: short phases; results graded 'smoke'"),
    duration: Optional[float] = typer.Option(None, "--duration", help=f"core phase per dtype in seconds (default {MIN_ASSESSMENT_S:g}; below {MIN_ASSESSMENT_S:g} the result is graded 'smoke')"),
    seed: Optional[int] = typer.Option(None, "--seed", help="fixed seed of the random inputs instead of a challenge nonce (recorded; default: a nonce is drawn)"),
    challenge: Optional[str] = typer.Option(None, "--challenge", help="the assessor's nonce (16-64 bytes as hex): every input derives from it (default: drawn and recorded)"),
    sign: Optional[Path] = typer.Option(None, "--sign", help="Ed25519 key from `bench keygen`: sign the finished record (signature.json)"),
    out: Optional[Path] = typer.Option(None, "--out", help="record directory (default results/<run-id>)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress and no tables: errors only, and the exit code (the record and its run.log are written as ever)"),
    shape: Optional[str] = typer.Option(None, "--shape", help="fixed MxNxK, skipping the shape search"),
    outlier_tolerance: float = typer.Option(0.10, "--outlier-tolerance", help="flag devices below (1 − tol) × the median"),
    sample_hz: float = typer.Option(20.0, "--sample-hz", help="power polling rate (≥ 10 Hz)"),
    node_power: Optional[str] = typer.Option(None, "--node-power", help="the node's BMC, e.g. redfish+https://admin@bmc/redfish/v1/Chassis/1/Power?delay_s=7.5 (password in $ICB_NODE_POWER_PASSWORD)"),
    node_name: Optional[str] = typer.Option(None, "--node-name", help="this node's name in a multi-node run (default: the hostname)"),
    site: Optional[Path] = typer.Option(None, "--site", help="site file (racks, nodes, PDUs, BMCs): rank 0 polls the meters of the racks under test"),
    fleet_timeout: float = typer.Option(900.0, "--fleet-timeout", help="multi-node: seconds a common start waits for a node that does not arrive"),
    node_timeout: float = typer.Option(30.0, "--node-timeout", help="multi-node: a node silent this many seconds is dead"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="an interrupted record (exit 3) or one a full disk stopped (exit 4): measure only what it misses, into it, with its own plan"),
) -> None:
    """Measure sustained GEMM throughput and energy on every selected device, all at once.

    Started by torchrun (`--nproc-per-node 1 --no-python bench run …`), `srun bench run …` or a
    Kubernetes operator, every node of the job measures at once, with common starts across the job;
    rank 0 writes the whole run (every node's shard below `nodes/`)."""
    from icb_bench.kernels.backends import backend_names, detect_backend, get_backend
    from icb_bench.kernels.errors import BackendUnavailable

    from .orchestrate import execute, new_run_id
    from .plan import RunPlan
    from .progress import RunDisplay

    if resume is not None:
        given = [f"--{name.replace('_', '-')}" for name in _MEASUREMENT_OPTIONS  # typed, not defaults
                 if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") in ("COMMANDLINE", "ENVIRONMENT")]
        _resume_run(resume, given, ResumeArgs(challenge, seed, sign, json_out, quiet))
    try:
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise UsageError(f"--duration: {duration:g} is not a positive, finite number of seconds")
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise UsageError(f"--seed: {seed} is out of range; expected 0 to {MAX_SEED}")
        if not 0 < outlier_tolerance < 1:
            raise UsageError(f"--outlier-tolerance: {outlier_tolerance:g} is not in (0, 1); expected e.g. 0.10")
        if not math.isfinite(sample_hz) or sample_hz < 10:
            raise UsageError(f"--sample-hz: {sample_hz:g} is below 10 Hz, the slowest rate that gives a usable power trace")
        # every check that needs no device comes first: the backends below import torch (seconds)
        from . import cli_fleet

        for opt, val in (("--fleet-timeout", fleet_timeout), ("--node-timeout", node_timeout)):
            if not (math.isfinite(val) and val > 0):
                raise UsageError(f"{opt}: {val:g} is not a positive, finite number of seconds")
        if site is not None and not site.exists():
            raise UsageError(f"--site: {site}: no such file; expected a site file (see `bench example site`)")
        try:
            cli_fleet.check_node_name(node_name)
            launch = cli_fleet.detect()
        except cli_fleet.FleetUsageError as exc:
            raise UsageError(str(exc)) from exc
        if site is not None and launch is None:
            raise UsageError("--site: rack meters need a multi-node run (torchrun, srun or an operator); "
                             "for one node use --node-power")
        # every problem of the site file, before the display starts and anything is measured
        try:
            loaded_site = cli_fleet.load_site_file(site) if site is not None else None
        except cli_fleet.FleetUsageError as exc:
            raise UsageError(str(exc)) from exc
        if node_name is not None and launch is None:
            os.environ["ICB_BENCH_NODE_NAME"] = node_name
        wanted = parse_dtypes(dtypes)
        fixed = parse_shape(shape)
        from . import cli_trust

        try:
            trust_extra, sign_key = cli_trust.run_challenge(challenge, seed), cli_trust.load_sign_key(sign)
        except cli_trust.TrustUsageError as exc:
            raise UsageError(str(exc)) from exc
        run_dir = out or Path("results") / new_run_id()
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out: {run_dir} exists and is not a directory")
        if (run_dir / record.MANIFEST).exists():
            raise UsageError(f"--out: {run_dir} already holds a record; choose a new directory")
        check_out_writable(run_dir)
        name = (backend or detect_backend()).lower()
        try:
            names = backend_names()
            if name not in names:
                raise UsageError(f"--backend: {name!r} is not a backend; expected one of {', '.join(names)}")
            be = get_backend(name)
            count = be.device_count()
        except BackendUnavailable as exc:
            raise UsageError(f"--backend: {name}: {exc}") from exc
        dev = parse_devices(devices, count)
        if wanted is None:  # 'all': what every selected device supports
            supported = [set(be.supported_dtypes(i)) for i in dev]
            from icb_bench.kernels.dtypes import DTYPES

            wanted = tuple(d for d in DTYPES if all(d in s for s in supported))
        if fixed:
            check_shape_fits(fixed, wanted, min(be.memory_info(i)[0] for i in dev))
        scope_readers = []
        if node_power:
            from .power import PowerError, scope_reader

            try:
                scope_readers.append(scope_reader(node_power, "node"))
            except PowerError as exc:
                raise UsageError(f"--node-power: {exc}") from exc
        plan = RunPlan.build(name, dev, wanted, quick=quick, duration_s=duration, seed=seed or 0, shape=fixed,
                             extra=trust_extra,
                             outlier_tolerance=outlier_tolerance, sample_hz=sample_hz)
    except UsageError as exc:
        raise fail(str(exc))

    display = RunDisplay(plan, enabled=not (json_out or quiet))
    if launch is not None:
        fargs = cli_fleet.FleetArgs(node_name, site, fleet_timeout, node_timeout, loaded_site)
        try:
            with display:
                shown_dir, code, is_root = cli_fleet.run_fleet(launch, plan, out, fargs, display.on_event, scope_readers)
        except cli_fleet.FleetUsageError as exc:
            raise fail(str(exc))
    else:
        try:
            with display:
                outcome = execute(plan, run_dir, display.on_event, scope_readers=scope_readers)
        except record.RecordWriteError as exc:  # the record could not even be started: nothing measured
            from .orchestrate import write_failure

            raise fail(f"--out: {run_dir}: {write_failure(exc, run_dir)}")
        except record.RecordError as exc:  # no room for the writer's reserve, or another writer holds it
            raise fail(f"--out: {exc}")
        code = _report_stop(outcome)
        shown_dir, is_root = run_dir, True
        if outcome.error or outcome.close_error:  # its disk failed: a signature would not fit either
            sign_key = None
    _finish_run(shown_dir, code, sign_key if is_root else None, json_out, quiet)


def _finish_run(shown_dir: Path, code: int, sign_key: Any, json_out: bool, quiet: bool) -> None:
    """Sign the record (rank 0 signs the whole run), print it, and exit with ``code``."""
    from . import cli_trust

    sign_error = cli_trust.sign_run(shown_dir, sign_key)
    if sign_error:
        err.print(f"[bold red]error:[/] {escape(sign_error)}", highlight=False, soft_wrap=True)
        code = 2
    payload = run_payload(record.load_run(shown_dir))
    payload["exit_code"] = code
    if json_out or not quiet:
        _print_payload(payload, json_out)
    raise typer.Exit(code)


def _report_stop(outcome: Any) -> int:
    """One line on stderr for a run that stopped early (interrupted, a failed write, a record that
    could not be closed); the run's exit code."""
    where = outcome.run_dir
    if outcome.close_error:
        why = f"the run stopped: {outcome.error}; " if outcome.error else ""
        err.print(f"[bold red]error:[/] {escape(why + outcome.close_error)}", highlight=False, soft_wrap=True)
    elif outcome.error:
        err.print(f"[bold red]error:[/] {escape(f'the run stopped: {outcome.error}; the record at {where} is closed as failed')}",
                  highlight=False, soft_wrap=True)
    elif outcome.status == "interrupted":
        err.print(escape(f"interrupted: the record at {where} is closed as interrupted with {len(outcome.missing)} "
                         f"measurement(s) missing; `bench run --resume {where}` measures them"),
                  highlight=False, soft_wrap=True)
    return outcome.exit_code


@dataclass
class ResumeArgs:
    """The `bench run` options a resume takes besides the record."""

    challenge: Optional[str]
    seed: Optional[int]
    sign: Optional[Path]
    json_out: bool
    quiet: bool


def _resume_run(run_dir: Path, given: list[str], args: ResumeArgs) -> None:
    """`bench run --resume RUN_DIR`: checks (bench/resume.py), then measure what is missing; exits."""
    from icb_bench.kernels.backends import get_backend
    from icb_bench.kernels.errors import BackendUnavailable

    from . import cli_fleet, cli_trust
    from . import resume as rs
    from .progress import RunDisplay

    try:
        if given:
            raise UsageError(f"--resume: {', '.join(given)} cannot be given with --resume; the record's own plan "
                             "is measured (only --challenge/--seed restating it, --sign, --json, --quiet)")
        try:
            if cli_fleet.detect() is not None:
                raise UsageError("--resume: this process is part of a multi-node job; only a single-node record "
                                 "can be resumed, by a plain `bench run --resume`")
        except cli_fleet.FleetUsageError as exc:
            raise UsageError(str(exc)) from exc
        try:
            sign_key = cli_trust.load_sign_key(args.sign)
        except cli_trust.TrustUsageError as exc:
            raise UsageError(str(exc)) from exc
        try:
            res = rs.prepare(run_dir, args.challenge, args.seed, sign_key)
        except rs.NothingToResume as exc:
            err.print(escape(str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(0)
        check_out_writable(run_dir, "--resume")
        try:
            rs.check_devices(res, get_backend(res.plan.backend))
        except BackendUnavailable as exc:
            raise UsageError(f"--resume: the record's backend {res.plan.backend}: {exc}") from exc
    except (UsageError, rs.ResumeError) as exc:
        raise fail(str(exc))
    display = RunDisplay(res.plan, enabled=not (args.json_out or args.quiet))
    try:
        with display:
            outcome = rs.run(res, display.on_event, sys.argv)
    except record.RecordWriteError as exc:  # the record could not even be reopened: it is as it was
        from .orchestrate import write_failure

        raise fail(f"--resume: {run_dir}: {write_failure(exc, run_dir)}; the record is unchanged")
    except record.RecordError as exc:  # another writer holds it, or no room for the writer's reserve
        raise fail(f"--resume: {exc}")
    except rs.ResumeError as exc:  # it changed between the checks and the lease
        raise fail(str(exc))
    code = _report_stop(outcome)
    _finish_run(run_dir, code, None if outcome.error or outcome.close_error else sign_key, args.json_out, args.quiet)


def run_payload(rec: record.RunRecord) -> dict[str, Any]:
    """The `--json` object of `bench run` and `bench show`."""
    from . import liveness
    from .orchestrate import node_aggregates
    from .runner import summarize

    m = rec.manifest
    return {
        "schema": m.get("schema"),
        "run_id": rec.run_id,
        "run_dir": str(rec.path),
        "status": rec.status,
        "created_at": m.get("created_at"),
        "finished_at": m.get("finished_at"),
        "plan": m.get("plan"),
        "host": (m.get("host") or {}).get("hostname"),
        "measurements": [summarize(x) for x in rec.measurements],
        # a partial record (killed run) has no aggregates yet: compute them from what is on disk
        "aggregates": (rec.aggregates or [a for p in rec.parts for a in p.aggregates]
                       or node_aggregates(rec.measurements, _tolerance(m.get("plan") or {}))),
        "failed_devices": m.get("failed_devices", {}),
        "kind": rec.kind,
        "nodes": m.get("nodes") or [],
        "missing_nodes": m.get("missing_nodes") or [],
        "core_phase_skew": m.get("core_phase_skew") or [],
        "runs": m.get("runs") or [],
        "writer": liveness.writer_state(rec.path, rec.status),  # a running record: its writer alive or gone
    }


def _tolerance(plan: dict[str, Any]) -> float:
    """The run's outlier tolerance, or the default when the record does not hold a usable one."""
    tol = plan.get("outlier_tolerance")
    return float(tol) if isinstance(tol, (int, float)) and not isinstance(tol, bool) and 0 < tol < 1 else 0.10


@app.command()
def show(
    run_dir: Path = typer.Argument(..., help="a record directory written by `bench run` (also a partial one)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Print a run record."""
    if not run_dir.is_dir():
        raise fail(f"{run_dir}: no such directory; expected a record directory written by `bench run`"
                   if not run_dir.exists() else f"{run_dir}: is a file; expected a record directory written by `bench run`")
    try:
        rec = record.load_run(run_dir)
    except record.RecordError as exc:
        raise fail(str(exc))
    from .cli_trust import integrity_problem

    tampered = integrity_problem(run_dir)  # digests and signature: an edited record is refused
    if tampered:
        raise fail(tampered)
    _print_payload(run_payload(rec), json_out)


def _print_payload(payload: dict[str, Any], json_out: bool) -> None:
    """A record's payload as strict JSON (--json) or as the Rich tables."""
    if json_out:
        sys.stdout.write(record.strict_json_dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        from .report import print_run

        print_run(payload)


@app.command()
def merge(
    out: Path = typer.Argument(..., help="the site record to write (a new directory)"),
    runs: list[Path] = typer.Argument(..., help="records of `bench run` (single-node or multi-node) to put in it"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Merge runs measured separately (other days, other jobs) into one site record.

    Each run is copied whole and stays its own run (its windows and meters belong to it);
    `bench show`, `bench verify` and `bench report` read all their measurements through OUT."""
    from . import cli_fleet

    try:
        cli_fleet.merge_runs(out, runs)
        rec = record.load_run(out)
    except (cli_fleet.FleetUsageError, record.RecordError) as exc:
        raise fail(str(exc))
    _print_payload(run_payload(rec), json_out)


@app.command()
def racks(
    run_dir: Path = typer.Argument(..., help="a multi-node record (rank 0's --out)"),
    site: Path = typer.Option(..., "--site", help="the site file: racks, nodes, meters (meter logs relative to it)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """(Re)compute every rack's GFLOPS/W of a multi-node record: for meter logs that arrive after
    the run, or a run made without --site. Only what the record holds and the logs count."""
    from . import cli_fleet

    if not site.is_file():
        raise fail(f"--site: {site}: no such file; expected a site file")
    try:
        cli_fleet.recompute_racks(run_dir, site)
        rec = record.load_run(run_dir)
    except (cli_fleet.FleetUsageError, record.RecordError) as exc:
        raise fail(str(exc))
    _print_payload(run_payload(rec), json_out)


def _register_subcommands() -> None:
    from icb_bench.verify.cli import register

    from . import cli_example

    register(app)
    cli_example.register(app)


_register_subcommands()
from .cli_sample import register as _reg_sample; _reg_sample(app)  # noqa: E402,E702
from .cli_report import register as _reg_report; _reg_report(app)  # noqa: E402,E702
from .cli_trust import register as _reg_trust; _reg_trust(app)  # noqa: E402,E702
from .cli_peaks import register as _reg_peaks; _reg_peaks(app)  # noqa: E402,E702


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
