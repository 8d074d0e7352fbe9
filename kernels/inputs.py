"""Seeded GEMM inputs that an auditor can regenerate on a CPU, row by row.

A measured workload's A (m×k) and Bᵀ (n×k: the columns of B) are drawn in blocks of
:data:`CHUNK_ROWS` rows, each block from its own CPU generator seeded with
``chunk_seed(seed, matrix, block)``. So any row of A or column of B can be regenerated from the
seed alone, without drawing the whole matrix: `bench audit` regenerates only the rows and
columns behind the output elements it recomputes.

Reproducibility: the values come from torch's CPU generator (MT19937) through ``torch.randn``
in FP32 (``torch.randint`` for int8) and are then scaled and rounded on the host, so the device
only ever receives finished inputs. They are bit-identical on the same torch version and CPU
instruction set (ATen has a vectorised FP32 normal kernel); elsewhere a few FP32 normals may
differ in their last bit, which moves the FP64 reference far less than any dtype's tolerance.
Integer inputs are exact everywhere.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    import torch

    from .dtypes import GemmDtype

#: name of this scheme, recorded with every measurement; changes when the values change
GENERATOR = "icb-bench/host-rows/1"
#: rows per seeded block (small, so an audit regenerates little around each sampled row)
CHUNK_ROWS = 16
#: rows generated on the host before each copy to the device (bounds the host buffer)
_COPY_ELEMENTS = 1 << 24
#: the two row operands: A's rows and Bᵀ's rows (B's columns)
MATRICES = ("A", "Bt")
#: integer inputs: uniform in [INT_LOW, INT_HIGH): int32 sums stay exact for any k < 2^19
INT_LOW, INT_HIGH = -64, 64


def chunk_seed(seed: int, matrix: str, chunk: int) -> int:
    """The CPU generator seed of one block of rows (63 bits, from SHA-256 of the three values)."""
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {MATRICES}, got {matrix!r}")
    text = f"{GENERATOR}\0{int(seed)}\0{matrix}\0{int(chunk)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") & ((1 << 63) - 1)


def scale_for(spec: "GemmDtype", k: int) -> float:
    """Multiplier of the N(0, 1) draws: k^-1/4 keeps every output ~N(0, 1) (no fp16 overflow at
    any k); fp8 inputs stay unit-scale, in E4M3's normal range (its output is BF16)."""
    return 1.0 if spec.op == "scaled_mm" else k ** -0.25


def describe(spec: "GemmDtype", k: int) -> str:
    """The input distribution in words (for the record)."""
    if spec.op == "int_mm":
        return f"uniform integers in [{INT_LOW}, {INT_HIGH - 1}]"
    if spec.op == "scaled_mm":
        return "N(0, 1) rounded to float8_e4m3fn, unit tensor-wise scales"
    return f"N(0, 1) * k^-1/4 (= {k ** -0.25:.4g}) in {spec.inputs}"


def _block(spec: "GemmDtype", k: int, seed: int, matrix: str, chunk: int, rows: int) -> "torch.Tensor":
    """One block of ``rows`` rows in the input dtype, on the host."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(chunk_seed(seed, matrix, chunk))
    if spec.op == "int_mm":
        return torch.randint(INT_LOW, INT_HIGH, (rows, k), generator=gen, dtype=torch.int8)
    x = torch.randn((rows, k), generator=gen, dtype=torch.float32).mul_(scale_for(spec, k))
    return x.to(spec.torch_dtype("inputs"))


def n_rows(matrix: str, m: int, n: int) -> int:
    """Rows of the row operand: m for A, n for Bᵀ."""
    return m if matrix == "A" else n


def fill(dst: "torch.Tensor", spec: "GemmDtype", k: int, seed: int, matrix: str) -> None:
    """Fill ``dst`` (rows × k, any layout, any device) with ``matrix``'s seeded rows."""
    import torch

    total = dst.shape[0]
    step = max(CHUNK_ROWS, (_COPY_ELEMENTS // max(1, k)) // CHUNK_ROWS * CHUNK_ROWS)
    for start in range(0, total, step):
        stop = min(total, start + step)
        blocks = [_block(spec, k, seed, matrix, c, min(CHUNK_ROWS, total - c * CHUNK_ROWS))
                  for c in range(start // CHUNK_ROWS, (stop + CHUNK_ROWS - 1) // CHUNK_ROWS)]
        dst[start:stop].copy_(torch.cat(blocks) if len(blocks) > 1 else blocks[0])


def host_rows(spec: "GemmDtype", shape: Any, seed: int, matrix: str, rows: Iterable[int]) -> "torch.Tensor":
    """The given rows of ``matrix`` (A or Bᵀ) as FP64 on the host, regenerating only their blocks.
    ``shape`` has ``m``, ``n``, ``k``. Exactly the values :func:`fill` wrote."""
    import torch

    wanted = [int(r) for r in rows]
    total = n_rows(matrix, shape.m, shape.n)
    for r in wanted:
        if not 0 <= r < total:
            raise IndexError(f"row {r} of {matrix} is outside 0..{total - 1}")
    cache: dict[int, "torch.Tensor"] = {}
    out = torch.empty((len(wanted), shape.k), dtype=torch.float64)
    for i, r in enumerate(wanted):
        c = r // CHUNK_ROWS
        if c not in cache:
            cache[c] = _block(spec, shape.k, seed, matrix, c, min(CHUNK_ROWS, total - c * CHUNK_ROWS)).to(torch.float64)
        out[i] = cache[c][r - c * CHUNK_ROWS]
    return out


def row_operands(a: "torch.Tensor", b: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    """A and Bᵀ as (rows × k) views, the shape every check iterates over."""
    return {"A": a, "Bt": b.t()}


def row_chunks(mat: "torch.Tensor", elements: int = _COPY_ELEMENTS) -> Iterable[tuple[int, int]]:
    """(start, stop) row ranges of about ``elements`` elements each."""
    rows, cols = mat.shape
    step = max(1, elements // max(1, cols))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def as_compute(mat: "torch.Tensor", start: int, stop: int, dtype: Any, device: Any = None) -> "torch.Tensor":
    """Rows ``start:stop`` of ``mat`` converted to ``dtype`` (moved to ``device`` first when given)."""
    part = mat[start:stop]
    if device is not None:
        part = part.to(device=device)
    return part.to(dtype)


__all__: Sequence[str] = ["CHUNK_ROWS", "GENERATOR", "chunk_seed", "describe", "fill", "host_rows",
                          "row_chunks", "row_operands", "scale_for", "as_compute"]
