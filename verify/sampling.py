"""Sampling rules: how much of a site must be measured before a site figure may be confirmed.

The numbers are data (``rules/sampling.yaml``); this module only does the arithmetic. Both
``bench sample`` (which racks to measure) and ``bench verify`` (whether what was measured is
enough) use it, so the draw and the check can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["SamplingLevel", "SamplingRules", "load_sampling_rules", "racks_required", "devices_required",
           "rack_figures_required"]


@dataclass(frozen=True)
class SamplingLevel:
    """One measurement level: the share of racks and of each model, the node floor, the meter."""

    level: int
    fraction: Fraction
    min_nodes: int
    meter_accuracy: Fraction


@dataclass(frozen=True)
class SamplingRules:
    source: str
    levels: dict[int, SamplingLevel]
    default_level: int

    def level(self, level: int | None = None) -> SamplingLevel:
        """The rule of ``level`` (the default level for None); ValueError for an unknown level."""
        lv = self.default_level if level is None else level
        if lv not in self.levels:
            raise ValueError(f"sampling level {lv!r} is not one of {sorted(self.levels)}")
        return self.levels[lv]


@lru_cache(maxsize=None)
def load_sampling_rules(path: str | None = None) -> SamplingRules:
    """Read ``rules/sampling.yaml`` (or ``path``)."""
    p = Path(path) if path else Path(str(resources.files("icb_bench.verify").joinpath("rules", "sampling.yaml")))
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    levels = {
        int(k): SamplingLevel(int(k), Fraction(str(v["fraction"])), int(v["min_nodes"]), Fraction(str(v["meter_accuracy"])))
        for k, v in data["levels"].items()
    }
    for lv in levels.values():
        if not (0 < lv.fraction <= 1 and lv.min_nodes >= 0 and 0 < lv.meter_accuracy < 1):
            raise ValueError(f"{p}: level {lv.level} is out of range")
    return SamplingRules(str(data.get("source", "")), levels, int(data["default_level"]))


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def devices_required(declared_count: int, level: int | None = None, rules: SamplingRules | None = None) -> int:
    """Devices of one model that must be measured (and count, valid or not) for its figure to stand
    for the declared ``declared_count``: ⌈fraction × count⌉, at least one where any is declared."""
    if declared_count <= 0:
        return 0
    lv = (rules or load_sampling_rules()).level(level)
    return max(1, min(declared_count, _ceil(lv.fraction * declared_count)))


def racks_required(nodes_per_rack: list[int], level: int | None = None, rules: SamplingRules | None = None) -> tuple[int, int]:
    """(racks, nodes) a sample must reach at least: ⌈fraction × racks⌉ racks, and racks enough to
    hold ``min_nodes`` nodes (all nodes where the site has fewer)."""
    lv = (rules or load_sampling_rules()).level(level)
    n_racks = len(nodes_per_rack)
    return (min(n_racks, _ceil(lv.fraction * n_racks)) if n_racks else 0,
            min(sum(nodes_per_rack), lv.min_nodes) if lv.fraction < 1 else sum(nodes_per_rack))


def rack_figures_required(racks_in_use: int, level: int | None = None, rules: SamplingRules | None = None) -> int:
    """Racks with a rack figure needed before a per-rack efficiency stands for a site of
    ``racks_in_use`` racks: ⌈fraction × racks⌉, at least one (the node floor needs the site
    file's rack sizes, which a sample plan carries)."""
    if racks_in_use <= 0:
        return 1
    lv = (rules or load_sampling_rules()).level(level)
    return max(1, min(racks_in_use, _ceil(lv.fraction * racks_in_use)))
