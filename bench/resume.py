"""`bench run --resume RUN_DIR`: measure what an interrupted (or write-failed) single-node run left
out, into the same record, and close it as the uninterrupted run would have been.

What may be resumed, and why (a record is evidence a site gains from; a resume must not become a
way to measure other hardware, other inputs, or to retry a result it did not like):

* a single-node record (no ``kind: fleet``, not a node's shard), closed ``interrupted`` or
  ``failed`` with pairs ``missing``, whose file index still matches the disk (an edited record is
  refused), measured without node/rack meters (a dtype's node energy window cannot be split);
* on the same host (hostname) with the same harness version, every device of the plan the record
  knows matching its recorded identity (model, vendor, UUID, serial, PCI bus, driver, runtime,
  compute units); the plan, and so the challenge nonce and seed, come from the record;
* only pairs no measurement file exists for: a measurement that finished -- valid, invalid or
  failed -- is on disk and stays (an interrupted one never reaches the disk, writes are atomic);
  the pairs of a device in ``failed_devices`` are a genuine failure and are never measured again.

A record that is already ``complete`` has nothing to resume (:class:`NothingToResume`, exit 0).
Resuming with ``--sign`` needs the record signed, as it stopped, by that same key (the new
signature must not cover an edit made while the record was unsigned); the old signature's key
and digest, and what was missing, stay in the ``resumes`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import record
from .inventory import hostname, real_hostname, utc_now
from .plan import RunPlan

#: what names a device: a resume on a device that differs in any of these is refused
IDENTITY_FIELDS = ("model", "vendor", "uuid", "serial", "pci_bus_id", "driver_version", "runtime_version",
                   "compute_units")
#: statuses a resume continues from
RESUMABLE = ("interrupted", "failed")


class ResumeError(Exception):
    """The record cannot be resumed here: one line, exit 2."""


class NothingToResume(Exception):
    """The record is complete already: one line, exit 0."""


@dataclass
class Resume:
    """A record checked for resuming: its plan and, per device, the dtypes still to measure."""

    run_dir: Path
    manifest: dict[str, Any]
    plan: RunPlan
    only: dict[int, tuple[str, ...]]
    known_devices: dict[int, dict[str, Any]]
    #: the key fingerprint of the signature the record carried when checked (None: unsigned)
    signed_by: str | None = None

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return [{"device": d, "dtype": t} for d, ts in self.only.items() for t in ts]


def prepare(run_dir: Path, nonce_text: str | None = None, seed: int | None = None,
            sign_key: Any = None) -> Resume:
    """Check the record at ``run_dir`` (see the module docstring) and what is left to measure.
    ``nonce_text``/``seed``: what the caller restated with --challenge/--seed; must be the record's.
    ``sign_key``: the key the resumed record will be signed with; the record must then carry a
    valid signature by that same key, so a new signature never covers an edit made while it was
    unsigned (a deleted signature.json leaves the manifest's own index unguarded)."""
    from .orchestrate import missing_pairs
    from .sign import check_record_integrity

    run_dir = Path(run_dir)
    try:
        rec = record.load_run(run_dir)
    except record.RecordError as exc:
        raise ResumeError(f"--resume: {exc}") from None
    m = rec.manifest
    if rec.kind != "node" or m.get("fleet"):
        raise ResumeError(f"--resume: {run_dir} is a multi-node record ({'a node shard' if m.get('fleet') else rec.kind}); "
                          "only a single-node record can be resumed")
    if rec.status == "complete":
        raise NothingToResume(f"{run_dir} is complete: nothing to resume")
    if rec.status not in RESUMABLE:
        raise ResumeError(f"--resume: {run_dir} has status {rec.status!r}; expected one of {', '.join(RESUMABLE)} "
                          "(a 'running' record is still being written, or its run was killed before it could close)")
    if m.get("scope_readers"):
        raise ResumeError(f"--resume: {run_dir} was measured with node/rack meters; their per-dtype energy window "
                          "cannot be split across a resume")
    trusted = [_fingerprint(sign_key)] if sign_key is not None else None
    integrity = check_record_integrity(run_dir, require_signature=sign_key is not None, trusted=trusted)
    if not integrity.ok:
        if sign_key is not None and not integrity.signed:
            raise ResumeError(f"--resume --sign: {run_dir} is unsigned; a resumed record is signed only when the "
                              "same key signed it as it stopped (bench run --sign KEY), so its signature covers no "
                              "edit made in between; resume without --sign")
        raise ResumeError(f"--resume: {integrity.summary()}; a record edited after it closed cannot be resumed")
    try:
        plan = RunPlan.from_dict(m.get("plan") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise ResumeError(f"--resume: {run_dir}: the record's plan is unreadable ({exc})") from None
    _check_host(run_dir, m)
    _check_inputs(plan, nonce_text, seed)
    failed = _failed_devices(run_dir, m, plan)
    if not isinstance(m.get("resumes", []), list) or not all(isinstance(r, dict) for r in m.get("resumes", [])):
        raise ResumeError(f"--resume: {run_dir}: resumes: {record.short_repr(m.get('resumes'))} — expected a list of objects")
    missing = missing_pairs(plan, rec.measurements, failed)
    if not missing:
        raise ResumeError(f"--resume: {run_dir} ({rec.status}) has nothing missing: every measurement finished or "
                          "its device failed, and a genuine failure is not measured again")
    only: dict[int, tuple[str, ...]] = {}
    for p in missing:
        only[p["device"]] = only.get(p["device"], ()) + (p["dtype"],)
    known = {d["index"]: d for d in m.get("inventory") or [] if isinstance(d, dict) and isinstance(d.get("index"), int)}
    for meas in rec.measurements:  # a device whose inventory entry never reached the manifest
        if isinstance(meas.get("device_info"), dict):
            known.setdefault(meas["device"], meas["device_info"])
    return Resume(run_dir, m, plan, only, known, integrity.key_fingerprint if integrity.signed else None)


def _fingerprint(private_key: Any) -> str:
    from .sign import _raw_public, fingerprint

    return fingerprint(_raw_public(private_key.public_key()))


def _failed_devices(run_dir: Path, m: dict[str, Any], plan: RunPlan) -> dict[int, str]:
    """The record's ``failed_devices`` (device index as text → why), each a device of its plan."""
    out: dict[int, str] = {}
    for k, v in (m.get("failed_devices") or {}).items():  # an object: the record reader checked it
        if not (isinstance(k, str) and k.isdigit() and len(k) <= 6 and int(k) in plan.devices):
            raise ResumeError(f"--resume: {run_dir}: failed_devices: key {record.short_repr(k)} — expected a device index of "
                              f"the plan ({', '.join(map(str, plan.devices))})")
        out[int(k)] = str(v)
    return out


def _check_host(run_dir: Path, m: dict[str, Any]) -> None:
    from . import __version__

    host = m.get("host") if isinstance(m.get("host"), dict) else {}
    for key, here in (("hostname", hostname()), ("real_hostname", real_hostname())):
        if host.get(key) is not None and host.get(key) != here:
            raise ResumeError(f"--resume: {run_dir} was measured on host {host.get(key)!r}, this is {here!r}; "
                              "a record is resumed on the host that began it")
    version = (m.get("tool") or {}).get("version") if isinstance(m.get("tool"), dict) else None
    if version != __version__:
        raise ResumeError(f"--resume: {run_dir} was measured with icb-bench {version}, this is {__version__}; "
                          "a record is resumed by the harness version that began it")


def _check_inputs(plan: RunPlan, nonce_text: str | None, seed: int | None) -> None:
    """--challenge/--seed given with --resume must restate the record's own (the plan has them)."""
    from . import challenge

    recorded = challenge.from_plan(plan.extra, plan.seed)
    if nonce_text is not None:
        try:
            given = challenge.parse_nonce(nonce_text)
        except challenge.ChallengeError as exc:
            raise ResumeError(str(exc)) from None
        if recorded.mode != "challenge" or given != recorded.nonce:
            raise ResumeError("--challenge: not the nonce the record was measured with; a resume uses the record's own")
    if seed is not None and (recorded.mode != "seed" or seed != recorded.seed):
        raise ResumeError(f"--seed: {seed} is not the seed the record was measured with; a resume uses the record's own")


def check_devices(res: Resume, backend: Any) -> None:
    """Every device of the plan the record knows is the one here (same :data:`IDENTITY_FIELDS`);
    measuring other devices into a record is refused. ``backend``: the plan's backend, opened."""
    from .runner import device_record

    count = backend.device_count()
    if max(res.plan.devices) >= count:
        raise ResumeError(f"--resume: the record measured device {max(res.plan.devices)}; this host's "
                          f"{res.plan.backend} backend sees {count} device(s)")
    for index in res.plan.devices:
        recorded = res.known_devices.get(index)
        if recorded is None:
            continue  # it never reported: nothing of it is in the record to be consistent with
        here = device_record(backend.device_info(index))
        for key in IDENTITY_FIELDS:
            if recorded.get(key) != here.get(key):
                raise ResumeError(f"--resume: device {index}'s {key} is {here.get(key)!r} here, {recorded.get(key)!r} "
                                  f"in the record; a record is resumed on the devices that began it")


def reopen(res: Resume, argv: list[str]) -> record.RecordWriter:
    """Take the record's writer lease (a RecordError if another writer holds it or the disk has no
    room for the reserve), mark it running again with an open ``resumes`` entry (why it stopped,
    what is to be measured), then remove its old signature: it covered files that change now, and
    must not be left looking valid. Returns the open writer :func:`orchestrate.continue_run` continues."""
    manifest = dict(res.manifest)
    # why it stopped and what it lacked then (a pair cut off mid-measurement stays visible as
    # such), and the signature it carried, which the new one replaces
    previous = {k: manifest.get(k) for k in ("status", "failure_reason", "interrupted_at", "interrupt_signal", "finished_at",
                                             "missing")
                if manifest.get(k) is not None}
    if res.signed_by is not None:
        previous["signature"] = {"key_fingerprint": res.signed_by,
                                 "sha256": record.sha256_file(res.run_dir / record.SIGNATURE)}
    for key in ("files", "finished_at"):
        manifest.pop(key, None)
    manifest["status"] = "running"
    manifest["resumes"] = list(manifest.get("resumes") or []) + [
        {"started_at": utc_now(), "argv": argv, "previous": previous, "measuring": res.pairs}]
    writer = record.RecordWriter(res.run_dir, manifest)
    writer.open()
    try:
        # another resume may have run between the checks and this lease: continue only the record checked
        if record.load_run(res.run_dir).manifest != res.manifest:
            raise ResumeError(f"--resume: {res.run_dir} changed since it was checked (another resume ran); "
                              "run --resume again")
        writer.write_manifest()
    except BaseException:
        writer.release()
        raise
    sig = res.run_dir / record.SIGNATURE
    if sig.exists() or sig.is_symlink():
        sig.unlink()
    return writer


def run(res: Resume, on_event: Any, argv: list[str]) -> Any:
    """Reopen the record and measure what is missing; the :class:`orchestrate.RunOutcome`."""
    from .orchestrate import continue_run

    return continue_run(res.plan, reopen(res, argv), on_event, res.only)


__all__ = ["IDENTITY_FIELDS", "NothingToResume", "Resume", "ResumeError", "check_devices", "prepare", "reopen", "run"]
