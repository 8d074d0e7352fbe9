"""One operating point for the measured claims: power limit, clocks and loaded devices compared.

Per device model, across every record that feeds A2.7 (its devices) and A1.7 (its racks'
devices): the power limits may differ by at most ``power_limit_rel`` (max ÷ min − 1), the median
SM clocks (the application clocks' proxy) by ``sm_clock_rel``, and every record must have loaded
the same share of its node's devices. Unknown values (older records, readers without telemetry)
are not compared; the bounds are data (``rules/operating_point.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

__all__ = ["OperatingPoint", "OpRules", "NodeRun", "load_op_rules", "mismatches", "node_run", "point_of"]


@dataclass(frozen=True)
class OperatingPoint:
    """What one device record was measured at."""

    model: str  # datasheet key
    label: str  # run/measurement, for the reason
    power_limit_w: float | None
    sm_clock_mhz: float | None
    loaded: str | None  # "all devices of the node" or "1 of 8": what the run loaded of its node's devices


@dataclass(frozen=True)
class OpRules:
    power_limit_rel: float
    sm_clock_rel: float


@lru_cache(maxsize=1)
def load_op_rules() -> OpRules:
    p = Path(str(resources.files("icb_bench.verify").joinpath("rules", "operating_point.yaml")))
    raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    return OpRules(float(raw["power_limit_rel"]), float(raw["sm_clock_rel"]))


def _spread(points: list[OperatingPoint], attr: str, rel: float, unit: str, what: str) -> str | None:
    vals = [(getattr(p, attr), p.label) for p in points if getattr(p, attr) is not None]
    vals = [(v, lab) for v, lab in vals if math.isfinite(v) and v > 0]
    if len(vals) < 2:
        return None
    lo, hi = min(vals), max(vals)
    if hi[0] / lo[0] - 1 <= rel:
        return None
    return f"{what} {lo[0]:g} {unit} ({lo[1]}) vs {hi[0]:g} {unit} ({hi[1]}), beyond ±{rel:.0%}"


def mismatches(points: Iterable[OperatingPoint], rules: OpRules | None = None) -> list[str]:
    """Every model whose records were not measured at one operating point, with the reason."""
    rules = rules or load_op_rules()
    by_model: dict[str, list[OperatingPoint]] = {}
    for p in points:
        by_model.setdefault(p.model, []).append(p)
    out = []
    for model, pts in sorted(by_model.items()):
        why = [w for w in (_spread(pts, "power_limit_w", rules.power_limit_rel, "W", "power limit"),
                           _spread(pts, "sm_clock_mhz", rules.sm_clock_rel, "MHz", "SM clock")) if w]
        loads = sorted({p.loaded for p in pts if p.loaded is not None})
        if len(loads) > 1:
            first = {ld: next(p.label for p in pts if p.loaded == ld) for ld in loads}
            why.append("loaded devices " + " vs ".join(f"{ld} ({first[ld]})" for ld in loads))
        if why:
            out.append(f"not one operating point for {model}: " + "; ".join(why))
    return out


@dataclass(frozen=True)
class NodeRun:
    """What a run's manifest says of its node: inventory by device index, the load share."""

    inventory: dict[str, dict[str, Any]]
    loaded: str | None


def node_run(manifest: dict[str, Any]) -> NodeRun:
    """Read once per record (not per measurement)."""
    inv = [e for e in manifest.get("inventory") or [] if isinstance(e, dict)]
    plan = manifest.get("plan") if isinstance(manifest.get("plan"), dict) else {}
    devices = plan.get("devices")
    loaded = None
    if isinstance(devices, list) and inv:
        loaded = "all devices of the node" if len(set(map(str, devices))) >= len(inv) else f"{len(devices)} of {len(inv)}"
    return NodeRun({str(e.get("index")): e for e in inv}, loaded)


def point_of(model: str, label: str, m: dict[str, Any], node: NodeRun) -> OperatingPoint:
    """The operating point of measurement ``m`` of a run on ``node``."""
    tel = m.get("telemetry") if isinstance(m.get("telemetry"), dict) else {}
    limit = _num(tel.get("power_limit_w"))
    if limit is None:
        mine = node.inventory.get(str(m.get("device")), {})
        limit = _num(mine.get("power_limit")) or _num(mine.get("power_limit_w"))
    return OperatingPoint(model, label, limit, _num(tel.get("sm_clock_mhz_median")), node.loaded)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None
