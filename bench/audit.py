"""`bench audit RUN_DIR [--challenge NONCE]`: is this record what the harness measured, today, on
these devices, for this challenge — recomputed on the assessor's CPU.

For every measurement with figures:

1. **Outputs.** The inputs are regenerated from the nonce (or seed) exactly as the run drew them
   (:mod:`icb_bench.kernels.inputs`), and the recorded output samples are recomputed in FP64 and
   compared within the dtype's tolerance. The positions and the digest are re-derived from the
   nonce, the device, the shape and the raw samples (:mod:`.challenge`): a record replayed under
   another nonce, on another device or shape, or with edited batch times or energy, fails here.
2. **Figures.** TFLOPS (median of the batch times), statistics, FLOPs, energy from the trace,
   power and GFLOPS/W are recomputed from the raw samples (:mod:`.audit_figures`).
3. **Consistency.** Sample counts, timestamps inside the window, power within the device's
   limits, a growing counter, ``valid`` following from the correctness results.

Record-wide: the integrity check (:func:`.sign.check_record_integrity`: file digests and the
signature), a closed status, and the node aggregates recomputed. Fleet and site records are
audited part by part, each against its own manifest's challenge.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import audit_figures as figures
from . import challenge as chal
from . import record
from .liveness import dead_writer_reason
from .sign import IntegrityReport, check_record_integrity


class AuditInputError(Exception):
    """Bad input to the audit (not a record, a malformed nonce): exit 2."""


@dataclass
class MeasurementAudit:
    id: str
    part: str
    dtype: str | None
    device: Any
    status: str  # "pass" | "fail" | "skipped"
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    recomputed: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditReport:
    run_dir: str
    ok: bool
    integrity: IntegrityReport
    measurements: list[MeasurementAudit] = field(default_factory=list)
    #: record-wide problems (status, integrity, aggregates), each naming what failed
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def failures(self) -> list[str]:
        """One line per failure: the record's, then each failing measurement's first reason."""
        out = list(self.problems)
        out += [f"{m.id}: {m.problems[0]}" + (f" (+{len(m.problems) - 1} more)" if len(m.problems) > 1 else "")
                for m in self.measurements if m.status == "fail"]
        return out

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["integrity"] = self.integrity.as_dict()
        d["exit_code"] = self.exit_code
        return d


def _recompute_outputs(m: dict[str, Any], ch: chal.Challenge, ctx: chal.SampleContext, seed: int,
                       samples: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The recorded output values against an FP64 reference from the regenerated inputs."""
    import torch

    from icb_bench.kernels import inputs
    from icb_bench.kernels.check import relative_errors
    from icb_bench.kernels.dtypes import get_dtype
    from icb_bench.kernels.shapes import GemmShape

    spec = get_dtype(str(m.get("dtype")))
    shape = GemmShape(*ctx.shape)
    rows, cols = samples.get("rows"), samples.get("cols")
    values = chal.decode_values(samples.get("values") or [], spec.exact)
    if not (isinstance(rows, list) and isinstance(cols, list) and len(rows) == len(cols) == len(values) > 0):
        return ["output_samples: rows, cols and values are not lists of one length"], {}
    try:
        a_rows = inputs.host_rows(spec, shape, seed, "A", rows)
        b_cols = inputs.host_rows(spec, shape, seed, "Bt", cols)
    except (IndexError, TypeError, ValueError) as exc:
        return [f"output_samples: {exc}"], {}
    out64 = torch.tensor(values, dtype=torch.float64)
    _ref, rel, _cs, zero = relative_errors(out64, a_rows, b_cols, shape.k)
    rel = torch.where(torch.isfinite(out64), rel, torch.full_like(rel, float("inf")))
    tol = spec.tolerance_for(shape.k)
    worst = int(rel.argmax())
    max_rel = float(rel[worst])
    found = {"output_max_rel_err": max_rel, "output_tolerance": tol, "output_samples": len(values)}
    if max_rel > tol or bool(zero.any()):
        bad = int((rel > tol).sum())
        return [f"output samples do not match the FP64 reference for {'this challenge' if ch.mode == 'challenge' else 'this seed'}: "
                f"{bad} of {len(values)} off, worst at ({rows[worst]}, {cols[worst]}) with error {max_rel:.3g} "
                f"> {tol:.3g} (replayed from another nonce, device or shape, or fabricated)"], found
    return [], found


def check_outputs(m: dict[str, Any], plan_challenge: chal.Challenge, assessor: bytes | None
                  ) -> tuple[list[str], list[str], dict[str, Any]]:
    """(problems, warnings, recomputed) of the challenge binding and the output samples."""
    problems: list[str] = []
    warnings: list[str] = []
    try:
        ch = chal.Challenge.from_dict(m.get("challenge"))
    except chal.ChallengeError as exc:
        return [f"no usable challenge in the measurement ({exc})"], warnings, {}
    if (ch.mode, ch.key) != (plan_challenge.mode, plan_challenge.key):
        problems.append("the measurement's challenge differs from its manifest's plan")
    if assessor is not None and (ch.mode != "challenge" or ch.nonce != assessor):
        what = f"nonce {ch.nonce.hex()[:16]}…" if ch.mode == "challenge" else f"seed {ch.seed} (no challenge)"
        problems.append(f"recorded under {what}, not the assessor's nonce {assessor.hex()[:16]}… (replayed record)")
        return problems, warnings, {}
    if ch.mode == "seed":
        warnings.append("inputs from a fixed seed, not a challenge nonce: freshness not established")
    elif ch.source != "assessor" and assessor is None:
        warnings.append("nonce drawn by the harness, not given by the assessor: pass --challenge to bind it")
    raw = figures.raw_fields(m)
    if isinstance(raw, str):
        return problems + [raw], warnings, {}
    times_ms, iters = raw
    shape = tuple(int(m.get(x) or 0) for x in ("m", "n", "k"))
    device_id = chal.device_identity(m.get("device_info"), str(m.get("host")), int(m.get("device") or 0))
    recorded = m.get("challenge") or {}
    if recorded.get("device_id") != device_id:
        problems.append(f"challenge.device_id {recorded.get('device_id')!r} is not this device ({device_id!r})")
    seed = chal.input_seed(ch, str(m.get("dtype")), device_id, shape)  # type: ignore[arg-type]
    if recorded.get("input_seed") != seed:
        problems.append("challenge.input_seed is not the seed the nonce gives for this dtype, device and shape")
    samples = m.get("output_samples")
    if not isinstance(samples, dict):
        return problems + ["no output samples (output_samples)"], warnings, {}
    energy = m.get("energy_j")
    raw_sha = chal.raw_digest(times_ms, iters, float(m.get("core_phase_s") or 0.0), energy)
    ctx = chal.SampleContext(ch, str(m.get("dtype")), device_id, shape, raw_sha)  # type: ignore[arg-type]
    if samples.get("raw_sha256") != raw_sha:
        problems.append("output samples were drawn for other raw samples: the batch times, core phase or "
                        "energy were edited after the run")
    rows, cols = chal.positions(ctx, len(samples.get("rows") or []) or chal.OUTPUT_SAMPLES)
    if samples.get("rows") != rows or samples.get("cols") != cols:
        problems.append("output sample positions are not the ones the nonce and the raw samples draw")
    try:
        digest = chal.samples_digest(ctx, seed, samples.get("rows") or [], samples.get("cols") or [],
                                     samples.get("values") or [])
    except (TypeError, ValueError):
        digest = None
    if samples.get("sha256") != digest:
        problems.append("output_samples.sha256 does not match the samples")
    try:
        more, found = _recompute_outputs(m, ch, ctx, seed, samples)
    except chal.ChallengeError as exc:
        more, found = [str(exc)], {}
    return problems + more, warnings, found


def audit_measurement(m: dict[str, Any], part: record.RunRecord, plan_challenge: chal.Challenge,
                      assessor: bytes | None) -> MeasurementAudit:
    res = MeasurementAudit(id=str(m.get("id")), part=str(m.get("_part") or "."), dtype=m.get("dtype"),
                           device=m.get("device"), status="pass")
    if m.get("tflops") is None:
        res.status = "skipped"
        res.warnings.append(f"no figures ({m.get('status')}): nothing to audit")
        return res
    raw = figures.raw_fields(m)
    if isinstance(raw, str):
        res.problems.append(raw)
    else:
        times_ms, iters = raw
        p, found = figures.check_throughput(m, times_ms, iters)
        res.problems += p
        res.recomputed.update(found)
        res.problems += figures.check_window(m, times_ms, part.manifest)
        if "flops_total" in found:
            p, found = figures.check_energy(m, part.path, found["flops_total"])
            res.problems += p
            res.recomputed.update(found)
    res.problems += figures.check_validity(m)
    p, w, found = check_outputs(m, plan_challenge, assessor)
    res.problems += p
    res.warnings += w
    res.recomputed.update(found)
    res.status = "fail" if res.problems else "pass"
    return res


def _leaf_parts(rec: record.RunRecord) -> list[record.RunRecord]:
    """The single-node records a record is made of (itself when it is one)."""
    if not rec.parts:
        return [rec]
    return [leaf for p in rec.parts for leaf in _leaf_parts(p)]


def _check_aggregates(part: record.RunRecord) -> list[str]:
    """The node aggregates of a single-node manifest against the ones its measurements give."""
    from .orchestrate import node_aggregates

    plan = part.manifest.get("plan") if isinstance(part.manifest.get("plan"), dict) else {}
    tol = plan.get("outlier_tolerance") if isinstance(plan.get("outlier_tolerance"), float) else 0.10
    fresh = {a["dtype"]: a for a in node_aggregates(part.measurements, tol)}
    problems = []
    for a in part.aggregates:
        if not isinstance(a, dict) or a.get("scope") != "node":
            continue
        mine = fresh.get(a.get("dtype"))
        for key in ("tflops", "energy_j", "gflops_per_w", "devices"):
            if mine is None or not figures._close(a.get(key), mine.get(key)):
                problems.append(f"{part.path.name}/manifest.json: node aggregate {a.get('dtype')} {key} "
                                f"{a.get(key)} is not {None if mine is None else mine.get(key)} from its measurements")
                break
    return problems


def audit_record(run_dir: Path | str, challenge_text: str | None = None, *,
                 trusted: Iterable[str] | None = None) -> AuditReport:
    """Audit the record at ``run_dir`` (see the module docstring). ``challenge_text``: the
    assessor's nonce (hex); ``trusted``: signing-key fingerprints the assessor accepts.
    AuditInputError for bad input; otherwise the report (``ok``, ``exit_code``)."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuditInputError(f"{run_dir}: no such record directory")
    try:
        assessor = chal.parse_nonce(challenge_text) if challenge_text is not None else None
    except chal.ChallengeError as exc:
        raise AuditInputError(str(exc)) from None
    try:
        rec = record.load_run(run_dir)
    except record.RecordError as exc:
        raise AuditInputError(str(exc)) from None
    integrity = check_record_integrity(run_dir, trusted=trusted)
    report = AuditReport(run_dir=str(run_dir), ok=False, integrity=integrity)
    report.problems += [f"integrity: {p}" for p in integrity.problems]
    if not integrity.signed:
        report.warnings.append("unsigned record: anyone could have written it")
    if rec.status != "complete":
        dead = dead_writer_reason(rec)  # a running record whose writer is gone: a dead run
        report.problems.append(f"manifest.json: status {rec.status!r}, not 'complete'" + (f" ({dead})" if dead else ""))
    for part in _leaf_parts(rec):
        plan = part.manifest.get("plan") if isinstance(part.manifest.get("plan"), dict) else {}
        try:
            plan_ch = chal.from_plan(plan.get("extra") if isinstance(plan.get("extra"), dict) else None,
                                     int(plan.get("seed") or 0))
        except (chal.ChallengeError, TypeError, ValueError) as exc:
            report.problems.append(f"{part.path.name}/manifest.json: plan challenge unusable ({exc})")
            continue
        report.problems += _check_aggregates(part)
        for m in part.measurements:
            report.measurements.append(audit_measurement(m, part, plan_ch, assessor))
    if not any(m.status != "skipped" for m in report.measurements):
        report.problems.append("no measurement with figures to audit")
    report.ok = not report.problems and all(m.status != "fail" for m in report.measurements)
    report.elapsed_s = time.perf_counter() - t0
    return report


__all__ = ["AuditInputError", "AuditReport", "MeasurementAudit", "audit_record", "check_outputs"]
