"""What rank 0 holds of every node's shard: each file's digest and size, and the measurements parsed
once, as they arrive — so the merge at the end of a 24,000-node run neither re-reads nor re-hashes
the run's gigabytes of measurement files.

Only what the merge reads is kept (:data:`MERGE_KEYS`), batch times as numpy arrays (100,000
devices × ~600 batches as Python floats would take ~2 GB).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import record

NODES_DIR = "nodes"


#: what the merge reads of a measurement (node and run aggregates, windows, rack figures); the
#: whole file stays on disk and in the file index, rank 0's memory holds only these
MERGE_KEYS = ("id", "host", "device", "dtype", "seq", "valid", "status", "grade", "tflops", "flops_total",
              "flops_per_gemm", "core_phase_s", "core_window", "energy_j", "power_w", "gflops_per_w", "power_scope",
              "power_method", "samples", "rack_id", "timing_consistent", "telemetry")


def _compact(m: dict[str, Any]) -> dict[str, Any]:
    m = {k: m[k] for k in MERGE_KEYS if k in m}
    samples = m.get("samples")
    if isinstance(samples, dict) and isinstance(samples.get("batch_time_ms"), list):
        try:
            m["samples"] = {**samples, "batch_time_ms": np.asarray(samples["batch_time_ms"], dtype=np.float64)}
        except (TypeError, ValueError):
            pass  # left as read: the rack arithmetic refuses it with a reason
    return m


class ShardIndex:
    """Every shard file rank 0 has: run-relative path -> (sha256, bytes); measurements by path."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.files: dict[str, tuple[str, int]] = {}
        self.measurements: dict[str, dict[str, Any]] = {}
        self._by_node: dict[str, dict[str, dict[str, Any]]] = {}
        self.bad: list[str] = []

    def add(self, node: str, rel: str, data: bytes, *, write: bool = True, digest: str | None = None) -> None:
        """One file of ``node``'s shard (``rel`` inside it): written unless the same bytes are there
        already (a shared filesystem), digested, and parsed when it is a measurement."""
        path = f"{NODES_DIR}/{node}/{rel}"
        sha = digest or hashlib.sha256(data).hexdigest()
        if write:
            dest = self.run_dir / path
            if not (dest.is_file() and dest.stat().st_size == len(data) and record.sha256_file(dest) == sha):
                record.atomic_write_bytes(dest, data)
        self.files[path] = (sha, len(data))
        if rel.startswith(f"{record.MEASUREMENTS_DIR}/") and rel.endswith(".json"):
            try:
                m = json.loads(data)
            except ValueError as exc:
                self.bad.append(f"{path}: unreadable measurement ({exc})")
                return
            if isinstance(m, dict):
                self.measurements[path] = self._by_node.setdefault(node, {})[path] = _compact(m)

    def add_local(self, node: str, shard_dir: Path) -> None:
        """A shard already on this disk (rank 0's own)."""
        shard_dir = Path(shard_dir)
        for p in sorted(shard_dir.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                self.add(node, p.relative_to(shard_dir).as_posix(), p.read_bytes(), write=False)

    def node_measurements(self, node: str) -> list[dict[str, Any]]:
        return list(self._by_node.get(node, {}).values())

    def shard_manifest(self, node: str) -> dict[str, Any] | None:
        p = self.run_dir / NODES_DIR / node / record.MANIFEST
        if f"{NODES_DIR}/{node}/{record.MANIFEST}" not in self.files and not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def file_index(self, extra: list[Path] = ()) -> list[dict[str, Any]]:
        """The run's file index: the shards' files from their digests at arrival, plus ``extra``
        files of rank 0's own (power traces) hashed now."""
        out = [{"path": p, "sha256": sha, "bytes": n} for p, (sha, n) in self.files.items()]
        for p in extra:
            rel = Path(p).relative_to(self.run_dir).as_posix()
            out.append({"path": rel, "sha256": record.sha256_file(p), "bytes": Path(p).stat().st_size})
        return sorted(out, key=lambda e: e["path"])
