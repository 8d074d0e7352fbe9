"""`bench run` inside a multi-node job (torchrun, srun, a Kubernetes operator), and `bench merge`.

The launcher's environment decides: :func:`icb_bench.bench.launch_env.detect_launch` finds the
job; without one, `bench run` measures this node alone, as ever.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import record


class FleetUsageError(Exception):
    """A fleet option or the launcher's environment is wrong (one line, exit 2)."""


@dataclass(frozen=True)
class FleetArgs:
    node_name: str | None
    site: Path | None
    timeout_s: float
    dead_after_s: float
    #: the site file as loaded (and checked) by the CLI before anything started
    loaded_site: Any = None


def detect() -> Any:
    """The job this process belongs to, or None; a broken launcher environment is a usage error."""
    from .launch_env import LaunchError, detect_launch

    try:
        return detect_launch()
    except LaunchError as exc:
        raise FleetUsageError(f"launcher environment: {exc}") from exc


def check_node_name(name: str | None) -> str | None:
    from .fleet_job import NODE_NAME

    if name is None:
        return None
    if not NODE_NAME.fullmatch(name):
        raise FleetUsageError(f"--node-name: {name!r} is not a node name; expected 1-64 ASCII letters, digits, '-', '_' or '.'")
    return name


def run_fleet(launch: Any, plan: Any, out: Path | None, args: FleetArgs, on_event: Any,
              scope_readers: list[Any]) -> tuple[Path, int, bool]:
    """Join the job and measure this node; returns (run directory, exit code, is rank 0)."""
    from .fleet import FleetError
    from .fleet_job import join
    from .fleet_run import FleetOptions, run_node
    from .inventory import NODE_NAME_ENV, real_hostname

    monitor = None
    site = None
    if args.site is not None:
        site = args.loaded_site if args.loaded_site is not None else load_site_file(args.site)
    try:
        job = join(launch, args.node_name, real_hostname(), plan, args.timeout_s)
    except FleetError as exc:
        raise FleetUsageError(str(exc)) from exc
    os.environ[NODE_NAME_ENV] = job.node  # measurements and workers carry the node's name
    run_dir = Path(out) if out is not None else Path("results") / job.run_id
    if job.is_root and site is not None:
        from .fleet_power import SiteMonitor

        monitor = SiteMonitor(site, args.site.parent, [n["name"] for n in job.nodes], plan)
    opts = FleetOptions(timeout_s=args.timeout_s, dead_after_s=args.dead_after_s, site=site, extra_monitor=monitor)
    try:
        res = run_node(job, plan, run_dir, on_event, opts, scope_readers=scope_readers)
    except FleetError as exc:  # the store or a peer failed after the join: one line, not a traceback
        raise FleetUsageError(str(exc)) from exc
    finally:
        job.close()
    return (run_dir if job.is_root else run_dir / "nodes" / job.node), res.exit_code, job.is_root


def load_site_file(path: Path) -> Any:
    """The site file, or a :class:`FleetUsageError` of one line per problem."""
    from .site import SiteError, load_site

    try:
        return load_site(path)
    except SiteError as exc:
        raise FleetUsageError(str(exc)) from exc


# ------------------------------------------------------------------------------- bench merge


def merge_runs(out: Path, runs: list[Path]) -> dict[str, Any]:
    """A site record: each run copied whole below ``out/runs/<run-id>``, listed with its digest.

    Runs stay separate (their windows and meters belong to their own day); measurements of all of
    them are read through the one record.
    """
    import shutil

    from .inventory import utc_now

    if (out / record.MANIFEST).exists():
        raise FleetUsageError(f"OUT: {out} already holds a record; choose a new directory")
    recs = []
    for p in runs:
        try:
            recs.append(record.load_run(p))
        except record.RecordError as exc:
            raise FleetUsageError(f"RUN: {exc}") from exc
    from .fleet_job import NODE_NAME

    for r in recs:  # a run id names a folder of OUT
        if not NODE_NAME.fullmatch(r.run_id) and not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}", r.run_id):
            raise FleetUsageError(f"RUN: {r.path}: run id {r.run_id!r} is not a folder name; expected letters, digits, '-', '_', '.'")
    ids = [r.run_id for r in recs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise FleetUsageError(f"RUN: run {dup[0]!r} is given more than once")
    entries = []
    for rec in recs:
        rel = f"runs/{rec.run_id}"
        dest = out / rel
        shutil.copytree(rec.path, dest, symlinks=True)
        entries.append({"run_id": rec.run_id, "path": rel, "kind": rec.kind, "status": rec.status,
                        "sha256": record.sha256_file(dest / record.MANIFEST),
                        "hosts": sorted({str(m.get("host")) for m in rec.measurements})})
    manifest = {"schema": record.SCHEMA, "kind": "site", "run_id": out.name, "created_at": utc_now(),
                "status": "complete" if all(e["status"] == "complete" for e in entries) else "partial",
                "runs": entries, "aggregates": []}
    manifest["files"] = record.file_index(out)
    record.atomic_write_json(out / record.MANIFEST, manifest)
    return manifest


# ------------------------------------------------------------------------------- bench racks


def recompute_racks(run_dir: Path, site_path: Path) -> dict[str, Any]:
    """Rack figures of a multi-node record, again, from what it holds and the site file: for
    meter logs that arrive after the run, or a run made without ``--site``."""
    from .fleet_power import _readings_of, _write_readings, rack_aggregates
    from .fleet_run import timeline_windows
    from .inventory import utc_now

    try:
        rec = record.load_run(run_dir)
    except record.RecordError as exc:
        raise FleetUsageError(f"RUN: {exc}") from exc
    man = dict(rec.manifest)
    if (Path(run_dir) / record.SIGNATURE).exists():
        raise FleetUsageError(f"RUN: {run_dir} is signed; new rack figures would break its signature — run "
                              "`bench racks` on the record before it is signed (bench run without --sign, then `bench keygen`/sign)")
    if rec.kind != "fleet":
        raise FleetUsageError(f"RUN: {run_dir} is a {rec.kind} record; rack figures need a multi-node (fleet) record")
    timeline = man.get("timeline")
    if not isinstance(timeline, dict) or not {"epoch_s", "monotonic_s"} <= timeline.keys():
        raise FleetUsageError(f"RUN: {run_dir}: the manifest has no timeline (epoch_s, monotonic_s); "
                              "expected a fleet record written by bench run, whose readings can be placed in time")
    site = load_site_file(site_path)
    index = site.node_index()
    power = [dict(e) for e in man.get("power") or []]
    known = {e["source_id"] for e in power}
    hosts = {m.get("host") for m in rec.measurements}
    for rack in site.racks:  # meter logs the run did not know of
        if not hosts.intersection(n.name for n in rack.nodes):
            continue
        for i, pdu in enumerate(rack.pdus):
            sid = f"pdu-{rack.name}-{i}"
            if pdu.type == "meter-log" and sid not in known:
                power.append({"source_id": sid, "scope": "rack", "rack": rack.name, "node": None, "kind": "meter-log",
                              "accuracy_rel": pdu.accuracy_rel, "error": None, "trace_file": None, "reader": {}})
    offsets = {n.get("name"): (n.get("clock") or {}).get("offset_s", 0.0) for n in man.get("nodes") or []}
    for m in rec.measurements:
        m["_clock_offset_s"] = offsets.get(m.get("host"), 0.0)
    aggs = rack_aggregates(run_dir, site, site_path.parent, power, rec.measurements, timeline_windows(rec.measurements),
                           timeline)
    for e in power:  # a log read now is copied into the record like one read at the end of the run
        if e["kind"] == "meter-log" and not e.get("trace_file") and not e.get("error"):
            readings, e["reader"] = _readings_of(run_dir, e, site_path.parent, _source(site, e["source_id"]), timeline)
            e["readings"] = len(readings)
            e["trace_file"] = _write_readings(run_dir, {e["source_id"]: readings})
    for n in man.get("nodes") or []:
        if n.get("name") in index:
            n["rack"] = index[n["name"]][0].name
    man["aggregates"] = [a for a in man.get("aggregates") or [] if a.get("scope") != "rack"] + aggs
    man["power"] = power
    man["racks_recomputed_at"] = utc_now()
    man["site"] = {"site": site.site, "sha256": getattr(site, "sha256", None),
                   "racks": list(dict.fromkeys(a["rack_id"] for a in aggs))}
    man["files"] = record.file_index(run_dir)
    record.atomic_write_json(Path(run_dir) / record.MANIFEST, man)
    return man


def _source(site: Any, source_id: str) -> Any:
    for rack in site.racks:
        for i, pdu in enumerate(rack.pdus):
            if f"pdu-{rack.name}-{i}" == source_id:
                return pdu
    return None
