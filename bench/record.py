"""The run record: the one module that owns the on-disk format shared by ``bench/`` and ``verify/``.

A record is a directory described by one manifest::

    <run-dir>/
      manifest.json                 schema, run id, status, plan, host, inventory, aggregates, files
      measurements/<id>.json        one file per finished measurement (device × dtype), raw samples inside
      traces/<id>.parquet|.csv      the power/clock trace of that measurement's core phase

Every file is written atomically (temporary file + ``os.replace``) so a killed run leaves only
whole files behind, and each measurement is on disk before the next one starts. Later work
(merging ranks, signatures, audits) adds files and manifest keys, not a new format: readers
ignore keys they do not know, and ``schema`` changes only when a key changes meaning.

This module must not import torch (``verify/`` reads records on machines without it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

SCHEMA = "icb-bench/record/1"
MEASUREMENT_SCHEMA = "icb-bench/measurement/1"
MANIFEST = "manifest.json"
MEASUREMENTS_DIR = "measurements"
TRACES_DIR = "traces"
SUPPORTED_SCHEMAS = {SCHEMA}


class RecordError(Exception):
    """A record directory is missing, unreadable or of an unknown schema."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    """JSON with sorted keys and a trailing newline (stable for golden files and signatures)."""
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class RunRecord:
    """A record as read back: the manifest and every measurement found on disk."""

    path: Path
    manifest: dict[str, Any]
    measurements: list[dict[str, Any]] = field(default_factory=list)
    #: the shards (fleet) or runs (site) a composite record is made of
    parts: list["RunRecord"] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind") or "node")

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.path.name))

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def aggregates(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("aggregates") or [])


class RecordWriter:
    """Writes one run's record directory. Not shared between processes: workers write their own
    measurement and trace files through :func:`write_measurement`; the parent owns the manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = dict(manifest)
        self.manifest.setdefault("schema", SCHEMA)
        self.manifest.setdefault("status", "running")
        self.manifest.setdefault("aggregates", [])

    def start(self) -> None:
        if (self.path / MANIFEST).exists():
            raise RecordError(f"{self.path} already holds a record (manifest.json exists); choose another --out")
        (self.path / MEASUREMENTS_DIR).mkdir(parents=True, exist_ok=True)
        (self.path / TRACES_DIR).mkdir(parents=True, exist_ok=True)
        self.write_manifest()

    def write_manifest(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest)

    def update(self, **keys: Any) -> None:
        self.manifest.update(keys)
        self.write_manifest()

    def finish(self, status: str, **keys: Any) -> None:
        """Close the record: final status and the file index (path, sha256, bytes) for later signing."""
        self.manifest.update(keys)
        self.manifest["status"] = status
        self.manifest["files"] = file_index(self.path)
        self.write_manifest()


def write_measurement(run_dir: Path, measurement: dict[str, Any]) -> Path:
    """Atomically write one finished measurement (its ``id`` names the file)."""
    m = dict(measurement)
    m.setdefault("schema", MEASUREMENT_SCHEMA)
    path = Path(run_dir) / MEASUREMENTS_DIR / f"{m['id']}.json"
    atomic_write_json(path, m)
    return path


def write_trace(run_dir: Path, measurement_id: str, rows: list[dict[str, Any]]) -> str | None:
    """Write a power/clock trace as Parquet (CSV where pyarrow is missing); return its relative path."""
    if not rows:
        return None
    import pandas as pd

    df = pd.DataFrame(rows)
    traces = Path(run_dir) / TRACES_DIR
    traces.mkdir(parents=True, exist_ok=True)
    try:
        import pyarrow  # noqa: F401

        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        rel = f"{TRACES_DIR}/{measurement_id}.parquet"
        atomic_write_bytes(Path(run_dir) / rel, buf.getvalue())
    except ImportError:
        rel = f"{TRACES_DIR}/{measurement_id}.csv"
        atomic_write_bytes(Path(run_dir) / rel, df.to_csv(index=False).encode("utf-8"))
    return rel


def read_trace(run_dir: Path, rel: str):
    """The trace as a pandas DataFrame."""
    import pandas as pd

    p = Path(run_dir) / rel
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)


def file_index(run_dir: Path) -> list[dict[str, Any]]:
    run_dir = Path(run_dir)
    out = []
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith("."):
            out.append({"path": p.relative_to(run_dir).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size})
    return out


def load_run(path: Path | str) -> RunRecord:
    """Read a record directory (complete or partial). Raises :class:`RecordError` with a clear message.

    A fleet record (``kind: fleet``) holds one shard per node below ``nodes/``; a site record
    (``kind: site``, from `bench merge`) holds whole runs below ``runs/``. Their measurements are
    read from every shard, each annotated with ``rack_id`` where the fleet knew the node's rack.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    if manifest.get("kind") in COMPOSITE_KINDS:
        parts = _load_parts(path, manifest)
        measurements = [m for part in parts for m in part.measurements]
        return RunRecord(path=path, manifest=manifest, measurements=_sorted(measurements), parts=parts)
    return RunRecord(path=path, manifest=manifest, measurements=_sorted(load_measurements(path)))


def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    if not path.exists():
        raise RecordError(f"{path}: no such directory")
    if not mpath.is_file():
        raise RecordError(f"{path}: not a bench run record (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{mpath}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise RecordError(f"{mpath}: the manifest is a JSON {type(manifest).__name__}, expected an object")
    schema = manifest.get("schema")
    if schema not in SUPPORTED_SCHEMAS:
        raise RecordError(f"{mpath}: schema {schema!r} is not one this version reads (expected one of {sorted(SUPPORTED_SCHEMAS)})")
    for key, kind in _MANIFEST_TYPES.items():
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise RecordError(f"{mpath}: {key!r} is a JSON {type(manifest[key]).__name__}, expected {_JSON_NAME[kind]}")
    return manifest


def load_measurements(path: Path) -> list[dict[str, Any]]:
    """Every measurement file of one (single-node) record directory, checked."""
    measurements = []
    mdir = Path(path) / MEASUREMENTS_DIR
    if mdir.is_dir():
        for p in sorted(mdir.glob("*.json")):
            try:
                m = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RecordError(f"{p}: unreadable measurement ({exc})") from exc
            _check_measurement(p, m)
            measurements.append(m)
    return measurements


def _sorted(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(measurements, key=lambda m: (str(m.get("host", "")), m.get("device", 0), m.get("seq", 0), str(m.get("dtype", ""))))


#: manifests that describe a run made of other records: (key listing the parts, key of a part's path)
COMPOSITE_KINDS = {"fleet": ("nodes", "shard"), "site": ("runs", "path")}


def _inside(root: Path, rel: Any) -> Path:
    """``root/rel`` when it names a directory inside ``root`` (no ``..``, no absolute path, no
    link leading out), else RecordError."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise RecordError(f"{root}: part path {rel!r} is not a relative path inside the record")
    p = root / rel
    try:
        if not p.resolve().is_relative_to(root.resolve()):
            raise RecordError(f"{root}: part {rel!r} leads outside the record")
    except OSError as exc:
        raise RecordError(f"{root}: part {rel!r} is unreadable ({exc})") from exc
    return p


def _load_parts(path: Path, manifest: dict[str, Any]) -> list[RunRecord]:
    list_key, path_key = COMPOSITE_KINDS[manifest["kind"]]
    entries = manifest.get(list_key)
    if not isinstance(entries, list):
        raise RecordError(f"{path / MANIFEST}: {list_key!r} is missing; a {manifest['kind']} record lists its parts")
    parts = []
    for e in entries:
        if not isinstance(e, dict):
            raise RecordError(f"{path / MANIFEST}: an entry of {list_key!r} is not an object")
        sub = _inside(path, e.get(path_key))
        if (sub / MANIFEST).is_file():
            part = load_run(sub)
        elif sub.is_dir():  # a node that died before its manifest arrived: what it shipped
            part = RunRecord(path=sub, manifest={"run_id": sub.name, "status": "missing"},
                             measurements=load_measurements(sub))
        else:
            continue
        rack = e.get("rack")
        for m in part.measurements:
            if rack is not None and m.get("rack_id") is None:
                m["rack_id"] = rack
            m.setdefault("_part", str(e.get(path_key)))
        parts.append(part)
    return parts


#: manifest keys whose JSON type readers rely on
_MANIFEST_TYPES: dict[str, type] = {"aggregates": list, "inventory": list, "plan": dict, "host": dict,
                                    "files": list, "failed_devices": dict}
#: measurement keys whose JSON type readers rely on (bool is excluded from the ints: JSON true is not a device)
_MEASUREMENT_TYPES: dict[str, type | tuple[type, ...]] = {
    "device": int, "seq": int, "dtype": str, "host": str, "device_info": dict, "tflops_stats": dict,
    "tflops": (int, float), "power_w": (int, float), "energy_j": (int, float), "gflops_per_w": (int, float),
}
_JSON_NAME = {list: "an array", dict: "an object", int: "an integer", str: "a string", (int, float): "a number"}


def _check_measurement(p: Path, m: Any) -> None:
    if not isinstance(m, dict):
        raise RecordError(f"{p}: the measurement is a JSON {type(m).__name__}, expected an object")
    for key, kind in _MEASUREMENT_TYPES.items():
        v = m.get(key)
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
            raise RecordError(f"{p}: {key!r} is {v!r}, expected {_JSON_NAME[kind]}")


def find_runs(paths: Iterable[Path | str]) -> list[RunRecord]:
    """Records named directly, or found one level below a folder (``results/`` holds many runs)."""
    out: list[RunRecord] = []
    for p in map(Path, paths):
        if (p / MANIFEST).is_file():
            out.append(load_run(p))
        elif p.is_dir():
            found = [load_run(c) for c in sorted(p.iterdir()) if (c / MANIFEST).is_file()]
            if not found:
                raise RecordError(f"{p}: no bench run record in it or directly below it")
            out.extend(found)
        else:
            raise RecordError(f"{p}: no such record directory")
    return out
