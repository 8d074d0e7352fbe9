"""GEMM shapes: dimensions and FLOPs, memory needed, and the candidates a shape search tries."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


__all__ = ["FULL_SIZES", "MEMORY_FRACTION", "QUICK_SIZES", "WORKSPACE_MARGIN_BYTES", "GemmShape", "candidate_shapes",
           "shape_bytes"]
