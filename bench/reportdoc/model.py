"""The report as data: sections of tables, figures and notes, rendered alike to HTML and Markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Tone = Literal["ok", "bad", "warn", ""]


@dataclass(frozen=True)
class Cell:
    text: str
    tone: Tone = ""


def cell(value: Any, tone: Tone = "") -> Cell:
    return value if isinstance(value, Cell) else Cell("—" if value is None else str(value), tone)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str | None = None

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"row of {len(values)} cells for {len(self.columns)} columns")
        self.rows.append([cell(v) for v in values])


@dataclass(frozen=True)
class Figure:
    key: str  # file name stem (Markdown writes images beside the report under this name)
    title: str
    png: bytes


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    """The headline: certification result (None without a declaration) and its one-line reasons."""

    certified: bool | None
    headline: str
    lines: tuple[str, ...] = ()


@dataclass
class Report:
    title: str
    lang: str
    generated_at: str
    runs: list[str]
    verdict: Verdict
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ numbers

#: dtypes whose throughput is in operations, not floating-point operations
_OPS_DTYPES = {"int8"}


def flops_unit(dtype: str | None, prefix: str = "T") -> str:
    return f"{prefix}OPS" if (dtype or "").lower() in _OPS_DTYPES else f"{prefix}FLOPS"


def num(x: Any, digits: int = 1) -> str:
    """A figure to ``digits`` decimals; small figures keep 3 significant digits (CPU runs, not 0.0)."""
    if x is None or isinstance(x, bool):
        return "—"
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(f):
        return "—"
    if f != 0 and abs(f) < 10 ** (-digits) * 5:
        return f"{f:.3g}"
    return f"{f:,.{digits}f}"


def tflops(x: Any, dtype: str | None) -> str:
    """Throughput with its unit and precision: ``659.3 TFLOPS (FP16)``; GFLOPS where TFLOPS reads 0.0."""
    if x is None:
        return "—"
    prec = f" ({(dtype or '?').upper()})"
    if abs(float(x)) < 0.1:
        return f"{num(float(x) * 1000, 2)} {flops_unit(dtype, 'G')}{prec}"
    return f"{num(x, 1)} {flops_unit(dtype)}{prec}"


def pct(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{float(x) * 100:.{digits}f}%"


def gpw(x: Any, dtype: str | None) -> str:
    return "—" if x is None else f"{num(x, 1)} G{flops_unit(dtype)[1:]}/W ({(dtype or '?').upper()})"


def interval(lo: Any, hi: Any, digits: int = 1) -> str:
    return "—" if lo is None or hi is None else f"[{num(lo, digits)}, {num(hi, digits)}]"
