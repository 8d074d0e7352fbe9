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
import math
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

SCHEMA = "icb-bench/record/1"
MEASUREMENT_SCHEMA = "icb-bench/measurement/1"
MANIFEST = "manifest.json"
#: the signature over the record (bench/sign.py), written after the file index and not in it
SIGNATURE = "signature.json"
MEASUREMENTS_DIR = "measurements"
TRACES_DIR = "traces"
SUPPORTED_SCHEMAS = {SCHEMA}


class RecordError(Exception):
    """A record directory is missing, unreadable or of an unknown schema."""


class RecordWriteError(OSError):
    """A record file could not be written (disk full, read-only, I/O error): ``filename`` names it.
    A run stops at the first one (bench/orchestrate.py) instead of measuring on."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.
    Any OSError is raised as :class:`RecordWriteError` (the old file, if any, is left whole)."""
    path = Path(path)
    try:
        _atomic_write(path, data)
    except OSError as exc:
        raise RecordWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def _atomic_write(path: Path, data: bytes) -> None:
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


def atomic_write_json(path: Path, obj: Any, *, compact: bool = False) -> None:
    """JSON with sorted keys and a trailing newline (stable for golden files and signatures).
    ``compact``: no indentation (a 24,000-node manifest: the C encoder, several times faster)."""
    text = json.dumps(obj, ensure_ascii=False, indent=None if compact else 2, sort_keys=True, allow_nan=False,
                      separators=(",", ":") if compact else None)
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


#: space set aside at the start so that a full disk still lets the record close (deleted right
#: before the final manifest: a node's manifest with its file index is well below this)
RESERVE = ".reserve"
RESERVE_BYTES = 4 << 20
#: the writer's lock and heartbeat (bench/liveness.py)
WRITER_LOCK = ".writer.lock"
HEARTBEAT = ".heartbeat"


class RecordCloseError(RecordError):
    """The final manifest could not be written (a disk full beyond the reserve, an I/O error): the
    record on disk is the last whole manifest (status ``running``), never a half-written one."""


class RecordWriter:
    """Writes one run's record directory. Not shared between processes: workers write their own
    measurement and trace files through :func:`write_measurement`; the parent owns the manifest.

    While open, the record holds the writer's lock and heartbeat (bench/liveness.py) and a
    :data:`RESERVE` file; none of them is part of the record (see :func:`is_temp_name`)."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = dict(manifest)
        self.manifest.setdefault("schema", SCHEMA)
        self.manifest.setdefault("status", "running")
        self.manifest.setdefault("aggregates", [])
        self._lease: Any = None

    def start(self) -> None:
        if (self.path / MANIFEST).exists():
            raise RecordError(f"{self.path} already holds a record (manifest.json exists); choose another --out")
        (self.path / MEASUREMENTS_DIR).mkdir(parents=True, exist_ok=True)
        (self.path / TRACES_DIR).mkdir(parents=True, exist_ok=True)
        self.open()
        self.write_manifest()

    def open(self) -> None:
        """Take the writer's lease and set the reserve aside (``start`` does; a resumed record calls it itself)."""
        from .liveness import WriterLease

        lease = WriterLease(self.path)
        try:
            lease.acquire()  # RecordError (not an OSError) when another writer holds the record
            _write_reserve(self.path / RESERVE, RESERVE_BYTES)
        except OSError as exc:  # a disk already full: neither lease nor reserve can be written
            with _suppress():
                os.unlink(self.path / RESERVE)
            lease.release()
            raise RecordError(f"{self.path}: cannot set aside the {RESERVE_BYTES >> 20} MiB the record needs to close "
                              f"({exc.strerror or exc}); free some space or choose another --out") from None
        self._lease = lease

    def release(self) -> None:
        """Give the record up unwritten (a resume that stops before writing): lease and reserve removed."""
        with _suppress():
            os.unlink(self.path / RESERVE)
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def write_manifest(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest)

    def update(self, **keys: Any) -> None:
        self.manifest.update(keys)
        self.write_manifest()

    def finish(self, status: str, **keys: Any) -> None:
        """Close the record: final status and the file index (path, sha256, bytes) for later signing.
        The reserve is freed first, so this succeeds on a disk that filled during the run;
        RecordCloseError (one line) when it still cannot be written."""
        self.manifest.update(keys)
        self.manifest["status"] = status
        if self._lease is not None:
            self._lease.stop()  # no heartbeat write competes with the close for the freed space
        with _suppress():
            os.unlink(self.path / RESERVE)
        try:
            self.manifest["files"] = file_index(self.path)
            self.write_manifest()
        except OSError as exc:
            if self._lease is not None:  # its last heartbeat stays: readers see when the writer went
                self._lease.release(remove=False)
                self._lease = None
            raise RecordCloseError(f"{self.path}: could not close the record as {status!r} "
                                   f"({exc.strerror or exc}); it stays 'running' with its last whole manifest") from None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def close_failed(self, reason: str, **keys: Any) -> None:
        """Close the record as ``failed`` with ``reason`` (one line, kept as ``failure_reason``):
        for a run that cannot go on (a full disk). Raises RecordCloseError as :meth:`finish`."""
        self.finish("failed", failure_reason=reason.splitlines()[0] if reason else reason, **keys)


def _write_reserve(path: Path, nbytes: int) -> None:
    """``nbytes`` really allocated (not a sparse file): fallocate where the system has it, else written."""
    with open(path, "wb") as fh:
        if nbytes <= 0:
            return
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fh.fileno(), 0, nbytes)
            return
        chunk = bytes(1 << 20)
        left = nbytes
        while left > 0:
            left -= fh.write(chunk[:min(left, len(chunk))])


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


#: files an open record holds for its writer (bench/liveness.py, the reserve): never part of it
WRITER_FILES = frozenset({WRITER_LOCK, HEARTBEAT, RESERVE})


def is_temp_name(name: str) -> bool:
    """A leftover of :func:`atomic_write_bytes` (``.<name>.<random>.tmp``) or one of the writer's
    own files (:data:`WRITER_FILES`): never part of a record, its file index or its signature."""
    return (name.startswith(".") and name.endswith(".tmp")) or name in WRITER_FILES


def file_index(run_dir: Path) -> list[dict[str, Any]]:
    """``[{path, sha256, bytes}]`` of every regular file below ``run_dir`` except its own
    manifest and signature: shards' manifests (``nodes/<node>/manifest.json``) are included, so
    a fleet manifest's index covers its shards. Symbolic links are never indexed (nor followed)."""
    run_dir = Path(run_dir)
    out = []
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir).as_posix()
        if rel in (MANIFEST, SIGNATURE) or is_temp_name(p.name) or p.is_symlink() or not p.is_file():
            continue
        out.append({"path": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size})
    return out


def load_run(path: Path | str) -> RunRecord:
    """Read a record directory (complete or partial). Raises :class:`RecordError` with a clear message.

    A fleet record (``kind: fleet``) holds one shard per node below ``nodes/``; a site record
    (``kind: site``, from `bench merge`) holds whole runs below ``runs/``. Their measurements are
    read from every shard, each annotated with ``rack_id`` where the fleet knew the node's rack.

    Hostile records are refused, never followed (see :func:`read_record_file`): only regular
    files inside the record, sizes bounded before reading, strict bounded JSON.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    if manifest.get("kind") in COMPOSITE_KINDS:
        parts = _load_parts(path, manifest)
        measurements = [m for part in parts for m in part.measurements]
        return RunRecord(path=path, manifest=manifest, measurements=_sorted(measurements), parts=parts)
    return RunRecord(path=path, manifest=manifest, measurements=_sorted(load_measurements(path)))


#: bounds on what a reader accepts (checked before reading or while parsing, never after)
MAX_MANIFEST_BYTES = 64 << 20
MAX_MEASUREMENT_BYTES = 32 << 20
MAX_MEASUREMENT_FILES = 200_000
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 40  # an integer beyond 10**40 is no count, size or time a record holds


def _inside_root(root: Path, p: Path) -> None:
    """RecordError unless ``p``'s directory resolves inside ``root`` (no link leading out)."""
    try:
        inside = p.parent.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as exc:
        raise RecordError(f"{p}: unreadable ({exc})") from None
    if not inside:
        raise RecordError(f"{p}: leads outside the record {root}")


def read_record_file(root: Path, p: Path, max_bytes: int) -> bytes:
    """The bytes of ``p``, a file of the record at ``root``: a regular file (no symbolic link, FIFO
    or device), in a directory inside ``root``, of at most ``max_bytes`` (checked before reading)."""
    p = Path(p)
    _inside_root(Path(root), p)
    try:
        st = os.lstat(p)
    except OSError as exc:
        raise RecordError(f"{p}: unreadable ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        raise RecordError(f"{p}: is a symbolic link; a record holds regular files only")
    if not stat.S_ISREG(st.st_mode):
        raise RecordError(f"{p}: is not a regular file (a FIFO, device, socket or directory); a record holds regular files only")
    if st.st_size > max_bytes:
        raise RecordError(f"{p}: {st.st_size} bytes, more than the {max_bytes} this file may hold")
    try:
        # O_NONBLOCK: a FIFO swapped in after the check cannot block the open; O_NOFOLLOW: nor a link
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise RecordError(f"{p}: unreadable ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise RecordError(f"{p}: is not a regular file; a record holds regular files only")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RecordError(f"{p}: more than the {max_bytes} bytes this file may hold")
    return data


def record_file_sha256(root: Path | str, rel: Any, max_bytes: int = MAX_MANIFEST_BYTES) -> str:
    """sha256 of the record file at relative path ``rel`` (read as :func:`read_record_file` does)."""
    root = Path(root)
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise RecordError(f"{root}: file path {short_repr(rel)} is not a relative path inside the record")
    return hashlib.sha256(read_record_file(root, root / rel, max_bytes)).hexdigest()


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (an overflowing sum of absurd inputs) as None: JSON has no NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def strict_json_dumps(obj: Any, **kw: Any) -> str:
    """Strict JSON text (never NaN/Infinity) for what readers print (`bench show --json`)."""
    return json.dumps(finite_json(obj), allow_nan=False, **kw)


class _BadNumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a JSON number (strict JSON: no NaN or Infinity)")


def _finite_float(text: str) -> float:
    f = float(text)
    if not math.isfinite(f):
        raise _BadNumber(f"{text[:20]} is beyond the range of a double")
    return f


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadNumber(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                return d
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def parse_record_json(data: bytes, where: Path | str, what: str) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity, integers of at most 40 digits, finite floats, nesting of
    at most 64), or RecordError naming ``where`` and what was wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{where}: unreadable {what} (not UTF-8: {exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except RecursionError:
        raise RecordError(f"{where}: unreadable {what} (JSON nested more than {MAX_JSON_DEPTH} deep)") from None
    except ValueError as exc:
        raise RecordError(f"{where}: unreadable {what} ({exc})") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise RecordError(f"{where}: unreadable {what} (JSON nested more than {MAX_JSON_DEPTH} deep)")
    return obj


def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    if not path.exists():
        raise RecordError(f"{path}: no such directory")
    if not os.path.lexists(mpath) or (mpath.is_dir() and not mpath.is_symlink()):
        raise RecordError(f"{path}: not a bench run record (no {MANIFEST})")
    manifest = parse_record_json(read_record_file(path, mpath, MAX_MANIFEST_BYTES), mpath, "manifest")
    if not isinstance(manifest, dict):
        raise RecordError(f"{mpath}: the manifest is a JSON {type(manifest).__name__}, expected an object")
    schema = manifest.get("schema")
    if schema not in SUPPORTED_SCHEMAS:
        raise RecordError(f"{mpath}: schema {short_repr(schema)} is not one this version reads (expected one of {sorted(SUPPORTED_SCHEMAS)})")
    for key, kind in _MANIFEST_TYPES.items():
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise RecordError(f"{mpath}: {key!r} is a JSON {type(manifest[key]).__name__}, expected {_JSON_NAME[kind]}")
    return manifest


def short_repr(v: Any) -> str:
    """A value as an error message quotes it: its repr, cut to 60 characters."""
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def load_measurements(path: Path) -> list[dict[str, Any]]:
    """Every measurement file of one (single-node) record directory, checked: regular files
    directly in ``measurements/`` (itself a real directory of the record), sizes bounded."""
    measurements = []
    root = Path(path)
    mdir = root / MEASUREMENTS_DIR
    if mdir.is_symlink():
        raise RecordError(f"{mdir}: is a symbolic link; a record holds its measurements itself")
    if not mdir.is_dir():
        return measurements
    _inside_root(root, mdir / "x")
    try:
        names = sorted(e.name for e in os.scandir(mdir) if e.name.endswith(".json") and not e.name.startswith("."))
    except OSError as exc:
        raise RecordError(f"{mdir}: unreadable ({exc.strerror or exc})") from None
    if len(names) > MAX_MEASUREMENT_FILES:
        raise RecordError(f"{mdir}: {len(names)} measurement files, more than {MAX_MEASUREMENT_FILES}")
    for name in names:
        p = mdir / name
        m = parse_record_json(read_record_file(root, p, MAX_MEASUREMENT_BYTES), p, "measurement")
        _check_measurement(p, m)
        measurements.append(m)
    return measurements


def _sorted(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def num(v: Any) -> int:  # `device: null` (or a missing key) sorts first, never a TypeError
        return v if isinstance(v, int) and not isinstance(v, bool) else -1

    return sorted(measurements, key=lambda m: (str(m.get("host", "")), num(m.get("device")), num(m.get("seq")),
                                               str(m.get("dtype", ""))))


#: manifests that describe a run made of other records: (key listing the parts, key of a part's path)
COMPOSITE_KINDS = {"fleet": ("nodes", "shard"), "site": ("runs", "path")}


def _inside(root: Path, rel: Any) -> Path:
    """``root/rel`` when it names a directory inside ``root`` (no ``..``, no absolute path, no
    link leading out), else RecordError."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise RecordError(f"{root}: part path {rel!r} is not a relative path inside the record")
    p = root / rel
    try:
        resolved, top = p.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:
        raise RecordError(f"{root}: part {rel!r} is unreadable ({exc})") from None
    if not resolved.is_relative_to(top):
        raise RecordError(f"{root}: part {rel!r} leads outside the record")
    if resolved == top:  # strictly below: parts of parts always descend, so no cycle
        raise RecordError(f"{root}: part {rel!r} is the record itself")
    return p


def _load_parts(path: Path, manifest: dict[str, Any]) -> list[RunRecord]:
    list_key, path_key = COMPOSITE_KINDS[manifest["kind"]]
    entries = manifest.get(list_key)
    if not isinstance(entries, list):
        raise RecordError(f"{path / MANIFEST}: {list_key!r} is missing; a {manifest['kind']} record lists its parts")
    parts = []
    seen: set[Path] = set()
    for e in entries:
        if not isinstance(e, dict):
            raise RecordError(f"{path / MANIFEST}: an entry of {list_key!r} is not an object")
        sub = _inside(path, e.get(path_key))
        if sub.resolve() in seen:
            raise RecordError(f"{path / MANIFEST}: part {short_repr(e.get(path_key))} is listed twice")
        seen.add(sub.resolve())
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
