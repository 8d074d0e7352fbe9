"""GEMM shapes: dimensions and FLOPs, memory needed, and the candidates a shape search tries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import zip_longest

from .dtypes import GemmDtype, get_dtype

#: workspace/graph/allocator slack assumed on top of A + B + C when sizing shapes
WORKSPACE_MARGIN_BYTES = 256 << 20
#: fraction of free memory A + B + C (+ margin) may use
MEMORY_FRACTION = 0.40
QUICK_SIZES: tuple[int, ...] = (256, 512, 768, 1024)
FULL_SIZES: tuple[int, ...] = (4096, 8192, 12288, 16384)
#: which sizes to keep when ``limit`` is below the number that fit (8192³ is H100's sweet spot)
_PREFERENCE = {True: (512, 1024, 256, 768), False: (8192, 4096, 16384, 12288)}


@dataclass(frozen=True)
class GemmShape:
    """C[m, n] = A[m, k] · B[k, n]."""

    m: int
    n: int
    k: int

    def __post_init__(self) -> None:
        if min(self.m, self.n, self.k) < 1:
            raise ValueError(f"GEMM dimensions must be positive, got {self}")

    @property
    def flops(self) -> int:
        """Dense FLOPs of one GEMM: one multiply and one add per (i, j, l)."""
        return 2 * self.m * self.n * self.k

    def as_dict(self) -> dict[str, int]:
        return {"m": self.m, "n": self.n, "k": self.k}

    def __str__(self) -> str:
        return f"{self.m}x{self.n}x{self.k}"


def shape_bytes(dtype: str | GemmDtype, shape: GemmShape) -> int:
    """Bytes of A + B + C for ``shape`` in ``dtype``."""
    import torch

    spec = get_dtype(dtype) if isinstance(dtype, str) else dtype
    in_bytes = torch.empty((), dtype=spec.torch_dtype("inputs")).element_size()
    out_bytes = torch.empty((), dtype=spec.torch_dtype("output")).element_size()
    return (shape.m * shape.k + shape.k * shape.n) * in_bytes + shape.m * shape.n * out_bytes


def candidate_shapes(
    dtype: str, free_bytes: int, *, quick: bool = False, limit: int = 4
) -> list[GemmShape]:
    """Up to ``limit`` square shapes (multiples of 256) whose A + B + C plus a workspace margin fit
    in ``MEMORY_FRACTION`` of ``free_bytes``, ascending. ``quick``: small CPU/test sizes.
    Falls back to the largest fitting multiple of 256; empty if not even 256³ fits."""
    spec = get_dtype(dtype)
    margin = min(WORKSPACE_MARGIN_BYTES, free_bytes // 10)
    budget = MEMORY_FRACTION * free_bytes - margin

    def fits(size: int) -> bool:
        return shape_bytes(spec, GemmShape(size, size, size)) <= budget

    sizes = QUICK_SIZES if quick else FULL_SIZES
    fitting = [s for s in _PREFERENCE[quick] if s in sizes and fits(s)][: max(1, limit)]
    if not fitting:
        per_elem = shape_bytes(spec, GemmShape(1, 1, 1)) / 3  # (2·in + out)/3 bytes per element
        side = int(math.sqrt(max(budget, 0) / (3 * per_elem)) // 256 * 256) if budget > 0 else 0
        while side >= 256 and not fits(side):
            side -= 256
        fitting = [side] if side >= 256 else []
    return [GemmShape(s, s, s) for s in sorted(fitting)]


#: output tile (rows, cols) assumed when counting waves: 128×256 is the common large GEMM tile of
#: current GPU libraries; 64×64 stands for a CPU's per-thread block
WAVE_TILE: dict[bool, tuple[int, int]] = {False: (128, 256), True: (64, 64)}
#: every dimension is a multiple of this (GPU sizes; the quick/CPU sizes use 64)
DIM_MULTIPLE: dict[bool, int] = {False: 256, True: 64}
#: the shape families a search tries around each base size s, as (m, n, k) factors of s;
#: "wave" shapes are built separately (whole waves of tiles over the compute units)
SHAPE_FAMILIES: dict[str, tuple[float, float, float]] = {
    "square": (1.0, 1.0, 1.0),
    "rect-wide-m": (2.0, 0.5, 1.0),
    "rect-wide-n": (0.5, 2.0, 1.0),
    "k-heavy": (0.5, 0.5, 4.0),
    "k-light": (2.0, 2.0, 0.25),
}


@dataclass(frozen=True)
class ShapeCandidate:
    """A shape the search tries, with the family it was built from."""

    shape: GemmShape
    family: str

    def as_dict(self) -> dict[str, object]:
        return {**self.shape.as_dict(), "family": self.family}


def wave_shape(size: int, compute_units: int, tile: tuple[int, int]) -> GemmShape | None:
    """The near-square m×n×size closest to size×size whose output tiles fill whole waves of
    ``compute_units`` (tiles ≡ 0 mod units), m and n multiples of the tile."""
    tm, tn = tile
    a0, b0 = max(1, round(size / tm)), max(1, round(size / tn))
    best: tuple[float, GemmShape] | None = None
    for a in range(max(1, a0 - a0 // 4), a0 + a0 // 4 + 1):
        step = compute_units // math.gcd(a, compute_units)
        b = max(step, round(b0 / step) * step)
        m, n = a * tm, b * tn
        err = abs(m - size) / size + abs(n - size) / size
        if best is None or err < best[0]:
            best = (err, GemmShape(m, n, size))
    return best[1] if best is not None and best[0] <= 0.5 else None


def search_candidates(
    dtype: str, free_bytes: int, compute_units: int | None, *, quick: bool = False, limit: int = 16
) -> list[ShapeCandidate]:
    """Up to ``limit`` shapes sized to the device: around each base size that fits memory, a
    square, rectangles, k-heavy and k-light shapes (:data:`SHAPE_FAMILIES`) and, where the compute
    units are known, a whole-waves shape (:func:`wave_shape`). Every one fits in
    ``MEMORY_FRACTION`` of ``free_bytes`` with the workspace margin. Families are interleaved (the
    preferred size first) so a small ``limit`` still keeps every kind. Empty if nothing fits."""
    spec = get_dtype(dtype)
    margin = min(WORKSPACE_MARGIN_BYTES, free_bytes // 10)
    budget = MEMORY_FRACTION * free_bytes - margin
    mult = DIM_MULTIPLE[quick]

    def dim(x: float) -> int:
        return max(mult, int(round(x / mult)) * mult)

    sizes = [s for s in _PREFERENCE[quick] if s in (QUICK_SIZES if quick else FULL_SIZES)]
    per_family: dict[str, list[GemmShape]] = {}
    for s in sizes:
        for family, (fm, fn, fk) in SHAPE_FAMILIES.items():
            per_family.setdefault(family, []).append(GemmShape(dim(fm * s), dim(fn * s), dim(fk * s)))
        if compute_units:
            wave = wave_shape(s, compute_units, WAVE_TILE[quick])
            if wave is not None:
                per_family.setdefault("wave", []).append(wave)
    out: list[ShapeCandidate] = []
    seen: set[GemmShape] = set()
    for row in zip_longest(*([ShapeCandidate(sh, fam) for sh in shapes] for fam, shapes in per_family.items())):
        for cand in row:
            if cand is None or cand.shape in seen or shape_bytes(spec, cand.shape) > budget:
                continue
            seen.add(cand.shape)
            out.append(cand)
    if not out:  # memory too small for every base size: the largest square that fits
        out = [ShapeCandidate(s, "square") for s in candidate_shapes(dtype, free_bytes, quick=quick, limit=1)]
    return out[: max(1, limit)]


__all__ = ["DIM_MULTIPLE", "FULL_SIZES", "SHAPE_FAMILIES", "WAVE_TILE", "ShapeCandidate", "search_candidates",
           "wave_shape", "MEMORY_FRACTION", "QUICK_SIZES", "WORKSPACE_MARGIN_BYTES", "GemmShape", "candidate_shapes",
           "shape_bytes"]
