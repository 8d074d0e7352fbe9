"""Correctness of a GEMM: the sampled FP64 comparison and the input health check.

* :func:`compare_samples`: sampled output elements against an FP64 reference built from the
  device's own inputs (the full-output check is :mod:`icb_bench.kernels.freivalds`).
* :func:`inspect_inputs`: degenerate inputs (zero, constant, low-rank, non-finite) are refused
  before a run: their products are cheap to fake and run faster or cooler than real ones.

The error metric is |out - ref| / (‖A[i,:]‖·‖B[:,j]‖/√k): relative to the RMS size of an output
element, so a wrong value (0, a neighbour's) scores ~1 at any k. A zero-norm row or column
scores as an error, never as 1 in the denominator: a generator returning zeros must fail.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .inputs import as_compute, row_chunks, row_operands

if TYPE_CHECKING:
    import torch

    from .dtypes import GemmDtype

#: poison for int32 outputs: unreachable by int8 GEMMs (|sum| <= 64*64*k < 2^31 for k < 2^19)
INT32_POISON = -(2**31)
#: sketch columns of the rank test (at most; fewer for small matrices, see :func:`_sketch_columns`)
SKETCH_COLUMNS = 32
#: smallest σ_min/σ_max of a sketch: a full-rank random operand gives ≳ 0.2 (Bai–Yin, rows and k
#: at least 8 × the sketch width); rank below the sketch width leaves only rounding noise (< 0.01)
MIN_SKETCH_RATIO = 0.05
#: smallest row (or column) norm relative to the median row norm: random rows are within a few
#: tens of percent of each other; a zero or near-zero row makes its outputs trivially known
MIN_ROW_NORM_RATIO = 0.05


class DegenerateInputs(KernelError):
    """The inputs are zero, constant, low-rank or not finite: refused before the run."""


@dataclass
class CorrectnessResult:
    """Sampled check of C against an FP64 host reference built from the device's own inputs."""

    valid: bool
    n_checked: int
    #: max |out - ref| / (‖A[i,:]‖·‖B[:,j]‖/√k) over finite samples (see module docstring)
    max_rel_err: float
    tolerance: float
    nan_inf_count: int
    #: samples still holding the poison written before the run
    unwritten_count: int
    reason: str = ""
    #: the brief's Cauchy–Schwarz-normalised error max |out-ref|/(‖A[i,:]‖·‖B[:,j]‖), for reference
    max_err_cs: float = 0.0
    #: samples whose input row or column has zero norm (a degenerate input, counted as wrong)
    zero_norm_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_errors(out64: "torch.Tensor", a_rows: "torch.Tensor", b_cols: "torch.Tensor", k: int
                    ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """(ref, rel, cs, zero_norm) per sample, all FP64: ``a_rows[s]``/``b_cols[s]`` are the row of
    A and column of B behind sample ``s``. ``rel`` is the error relative to the RMS output size
    (inf where a norm is zero and the output is not exactly the reference), ``cs`` the plain
    Cauchy–Schwarz ratio."""
    import torch

    ref = (a_rows * b_cols).sum(dim=1)
    norm = a_rows.norm(dim=1) * b_cols.norm(dim=1)
    err = (out64 - ref).abs()
    zero = norm == 0
    safe = torch.where(zero, torch.ones_like(norm), norm)
    rel = torch.where(zero, torch.where(err > 0, torch.full_like(err, math.inf), err), err / (safe / math.sqrt(k)))
    cs = torch.where(zero, rel, err / safe)
    return ref, rel, cs, zero


def poisoned_mask(out: "torch.Tensor", exact: bool) -> "torch.Tensor":
    """Which raw output values still hold the poison (NaN bits, or INT32_MIN for int32)."""
    import torch

    if exact:
        return out == INT32_POISON
    poison_bits = torch.full((), float("nan"), dtype=out.dtype)
    int_view = {2: torch.int16, 4: torch.int32}[out.element_size()]
    return out.view(int_view) == poison_bits.view(int_view)


def compare_samples(out: "torch.Tensor", a_rows: "torch.Tensor", b_cols: "torch.Tensor", spec: "GemmDtype",
                    k: int, positions: tuple["torch.Tensor", "torch.Tensor"]) -> CorrectnessResult:
    """Judge sampled outputs ``out`` (host, output dtype) against FP64 ``a_rows``/``b_cols`` (one
    row of A and one column of B per sample); ``positions`` (rows, cols) only name them."""
    import torch

    rows, cols = positions
    samples = int(out.numel())
    tol = spec.tolerance_for(k)
    poisoned = poisoned_mask(out, spec.exact)
    nan_inf = 0 if spec.exact else int((~torch.isfinite(out)).sum())
    unwritten = int(poisoned.sum())
    out64 = out.to(torch.float64)
    ref, rel, cs, zero = relative_errors(out64, a_rows, b_cols, k)
    # poison and NaN/Inf are counted on their own; the error metric covers the rest
    scored = torch.isfinite(out64) & ~poisoned
    rel = torch.where(scored, rel, torch.zeros_like(rel))
    cs = torch.where(scored, cs, torch.zeros_like(cs))
    max_rel = float(rel.max()) if samples else 0.0
    max_cs = float(cs.max()) if samples else 0.0
    zero_count = int(zero.sum())
    reasons = []
    if unwritten:
        reasons.append(f"{unwritten} sampled element(s) never written (poison left)")
    if nan_inf - (0 if spec.exact else unwritten) > 0:
        reasons.append(f"{nan_inf - unwritten} NaN/Inf output(s)")
    if zero_count:
        reasons.append(f"{zero_count} sampled element(s) have a zero-norm input row or column (degenerate inputs)")
    if max_rel > tol:
        worst = int(rel.argmax())
        reasons.append(
            f"max error {max_rel:.3g} > tolerance {tol:.3g} at "
            f"({int(rows[worst])}, {int(cols[worst])}): out {float(out64[worst]):.6g}, "
            f"ref {float(ref[worst]):.6g}"
        )
    return CorrectnessResult(
        valid=not reasons,
        n_checked=samples,
        max_rel_err=max_rel,
        tolerance=tol,
        nan_inf_count=nan_inf,
        unwritten_count=unwritten,
        reason="; ".join(reasons),
        max_err_cs=max_cs,
        zero_norm_count=zero_count,
    )


@dataclass
class InputHealth:
    """What :func:`inspect_inputs` found, per row operand (``A``, and ``Bt``: B's columns)."""

    ok: bool
    reason: str = ""
    #: smallest row norm over the median row norm
    min_row_norm_ratio: dict[str, float] = field(default_factory=dict)
    #: σ_min/σ_max of the operand times a random k×s Gaussian sketch (None: too small to test)
    sketch_ratio: dict[str, float | None] = field(default_factory=dict)
    sketch_columns: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sketch_columns(rows: int, k: int) -> int:
    """Sketch width: at most SKETCH_COLUMNS, and rows and k at least 8× it (so a full-rank
    operand's sketch is well conditioned); 0 when the matrix is too small for the test."""
    s = min(SKETCH_COLUMNS, rows // 8, k // 8)
    return s if s >= 2 else 0


def inspect_inputs(a: "torch.Tensor", b: "torch.Tensor", seed: int = 0) -> InputHealth:
    """Refuse degenerate inputs: non-finite values, a zero or near-zero row of A or column of B
    (constant-zero outputs), and rank below the sketch width (zero, constant and low-rank
    matrices). Reads each operand once in FP32 on its own device; the sketch's singular values
    are taken in FP64 on the host."""
    import torch

    k = a.shape[1]
    device = a.device
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) ^ 0x5EED_CE11)
    health = InputHealth(ok=True)
    problems: list[str] = []
    ops = row_operands(a, b)
    s = min(_sketch_columns(mat.shape[0], k) for mat in ops.values())
    health.sketch_columns = s
    sketch = torch.randn((k, max(s, 1)), generator=gen, dtype=torch.float32).to(device)
    for name, mat in ops.items():
        norms, parts, finite = [], [], True
        for start, stop in row_chunks(mat):
            x = as_compute(mat, start, stop, torch.float32)
            finite = finite and bool(torch.isfinite(x).all())
            norms.append(x.norm(dim=1).to("cpu", torch.float64))
            if s:
                parts.append((x @ sketch).to("cpu", torch.float64))
        label = "row of A" if name == "A" else "column of B"
        if not finite:
            problems.append(f"{name}: NaN or Inf in the inputs")
            continue
        all_norms = torch.cat(norms)
        median = float(all_norms.median())
        ratio = float(all_norms.min()) / median if median > 0 else 0.0
        health.min_row_norm_ratio[name] = ratio
        if ratio < MIN_ROW_NORM_RATIO:
            worst = int(all_norms.argmin())
            problems.append(f"{name}: {label} {worst} has norm {float(all_norms[worst]):.3g}, "
                            f"{ratio:.3g} of the median (zero or near-zero inputs; expected ≥ {MIN_ROW_NORM_RATIO})")
            continue
        if not s:
            health.sketch_ratio[name] = None
            continue
        sv = torch.linalg.svdvals(torch.cat(parts))
        sratio = float(sv[-1] / sv[0]) if float(sv[0]) > 0 else 0.0
        health.sketch_ratio[name] = sratio
        if sratio < MIN_SKETCH_RATIO:
            rank = int((sv > MIN_SKETCH_RATIO * sv[0]).sum())
            problems.append(f"{name}: rank about {rank} in a {s}-column random sketch (σ_min/σ_max {sratio:.3g} < "
                            f"{MIN_SKETCH_RATIO}): constant or low-rank inputs")
    health.ok = not problems
    health.reason = "; ".join(problems)
    return health


__all__ = ["INT32_POISON", "CorrectnessResult", "DegenerateInputs", "InputHealth", "compare_samples",
           "inspect_inputs", "poisoned_mask", "relative_errors"]
