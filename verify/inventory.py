"""The declared accelerator inventory, resolved against the datasheet-peak table.

Each item gets its datasheet entry (by model-name alias), the per-device FP16 figure the site
declared, and whether it counts as domestic (国产): the item's own ``domestic`` flag, else the
datasheet table's vendor, else not domestic. Site figures are exact (Fractions, PFLOPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from .declaration import Declaration, InventoryItem
from .rules import PeakEntry, PeakTable, load_peaks, normalise_model

__all__ = ["ResolvedItem", "resolve_inventory", "site_pflops", "domestic_share", "Basis"]

Basis = Literal["declared", "datasheet"]


@dataclass(frozen=True)
class ResolvedItem:
    """One inventory line with what the datasheet table knows of its model."""

    index: int
    model: str
    key: str  # datasheet key, or the normalised model name when the table has none
    count: int
    declared_tflops: Fraction | None
    datasheet: PeakEntry | None
    domestic: bool
    domestic_source: str  # "declared", "datasheet" or "assumed"

    @property
    def dies_per_card(self) -> int:
        """Torch devices one declared card shows up as (the datasheet entry's; 1 without one)."""
        return self.datasheet.dies_per_card if self.datasheet else 1

    @property
    def devices(self) -> int:
        """The declared cards as the devices a backend enumerates: count × dies_per_card."""
        return self.count * self.dies_per_card

    def per_device_tflops(self, basis: Basis) -> Fraction | None:
        """Dense FP16 TFLOPS per declared device, i.e. per CARD (the declaration's unit; the table's
        figure is per card too): declared first (``declared``) or datasheet first (``datasheet``)."""
        ds = self.datasheet.fp16_tflops if self.datasheet else None
        first, second = (self.declared_tflops, ds) if basis == "declared" else (ds, self.declared_tflops)
        return first if first is not None else second

    @property
    def above_datasheet(self) -> bool:
        """Declared per-device figure above the datasheet's dense FP16 ceiling (sparse/FP8 passed off?)."""
        return (
            self.declared_tflops is not None
            and self.datasheet is not None
            and self.declared_tflops > self.datasheet.ceiling_tflops
        )


def resolve_inventory(decl: Declaration, peaks: PeakTable | None = None) -> list[ResolvedItem]:
    """Every inventory line resolved against the datasheet table."""
    peaks = peaks or load_peaks()
    out = []
    for i, item in enumerate(decl.inventory):
        out.append(_resolve(i, item, peaks))
    return out


def _resolve(i: int, item: InventoryItem, peaks: PeakTable) -> ResolvedItem:
    entry = peaks.match(item.model)
    if item.domestic is not None:
        domestic, src = item.domestic, "declared"
    elif entry is not None:
        domestic, src = entry.domestic, "datasheet"
    else:
        domestic, src = False, "assumed"
    return ResolvedItem(
        index=i,
        model=item.model,
        key=entry.key if entry else normalise_model(item.model),
        count=item.count,
        declared_tflops=item.fp16_tflops,
        datasheet=entry,
        domestic=domestic,
        domestic_source=src,
    )


def site_pflops(items: list[ResolvedItem], basis: Basis) -> Fraction | None:
    """Σ count × per-device TFLOPS ÷ 1000, or None when some line has no figure at all."""
    total = Fraction(0)
    for it in items:
        per = it.per_device_tflops(basis)
        if per is None:
            return None
        total += it.count * per
    return total / 1000


def domestic_share(items: list[ResolvedItem], basis: Basis) -> Fraction | None:
    """Domestic part of the inventory's FP16 compute, or None when it cannot be computed."""
    total = site_pflops(items, basis)
    if not total:
        return None
    dom = sum((it.count * it.per_device_tflops(basis) for it in items if it.domestic), Fraction(0))  # type: ignore[misc]
    return dom / 1000 / total
