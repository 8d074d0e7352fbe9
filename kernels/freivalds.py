"""Freivalds' check of every output element: C·R against A·(B·R) for random R, on the device.

Sampling 256 elements catches one wrong 128×256 tile of a 16384² output about 3 % of the time.
Freivalds' check reads all of C: for random R (n × q), a correct C gives C·R = A·(B·R) up to
rounding, and any wrong row shows up in that row of the difference D = C·R - A·(B·R) = E·R
(E = C - AB) unless R happens to be nearly orthogonal to the row's error. Cost: three passes
over A, B and C in the compute precision (q = 16 columns: BLAS-3 work of 2·q·(mn + nk + mk)
FLOPs, far below one GEMM's 2·mnk), outside the timed window.

Tolerance, per dtype (:data:`RULES`). For a correct output, row i of E has norm
‖E_i‖ ≤ ε·S_i with S_i = ‖A_i‖·‖B‖_F/√k (the RMS size of row i of AB times √n) and

    ε = f · (u_out + 2·u_mul + 4·u_acc·√k + 4·u_comp·(√n + √k)),   f = 2 (SAFETY)

u_out: rounding of the output (fp16 2^-11; bf16, and fp8's bf16 output, 2^-8; fp32 2^-24);
u_mul: rounding of each operand in the multiply (tf32: 2^-11; other inputs are exact);
u_acc: FP32 accumulation, with the probabilistic √k growth the sampled check also allows;
u_comp: the check's own arithmetic: FP32 for fp16/bf16/fp8 (its error, ~u32·√n, is 100× below
their output rounding) and FP64 for fp32/tf32 (whose ε is near FP32's own rounding).
With Gaussian R independent of E, D_i / ‖E_i‖ is exactly N(0, 1), so the test
|D_i| ≤ t·ε·S_i with t = 8 (TAIL_SIGMAS) fails a correct output with probability below
P(|N| > 8) ≈ 1.2e-15 per row and column (≈ 6e-10 for 16384 rows × 32 columns).

int8 is exact: R has integers uniform in [-R_max, R_max] and every sum stays below 2^53, so
the FP64 products are exact and any nonzero D is an error. A wrong row escapes one column with
probability ≤ 1/(2·R_max + 1) (Schwartz–Zippel), R_max = 1024 up to k·n = 2^31.

Miss probability (:func:`miss_bound`): a row whose error has norm γ·S_i escapes one Gaussian
column with probability ≤ √(2/π)·t·ε/(γ - ε), and all 2 × 16 columns with that to the 32nd
power — for the worst case of every row of a tile carrying the same error; independent rows
multiply further. One zeroed 128×256 tile of a 16384² output (γ = √(256/16384) = 0.125):
fp16 ≤ 1e-39, bf16/fp8 ≤ 1e-12; at test scale one 16×16 tile of a 512² output (γ = 0.18):
bf16 ≤ 1e-17. A single wrong element of ordinary size has γ ≈ 1/√n: Freivalds is for tiles,
rows and columns; the sampled FP64 check remains for single elements.

Limit: this catches faulty kernels and hardware, not a harness that lies; R comes from the run's
seed or challenge, so the record's audit (:mod:`icb_bench.bench.audit`) checks sampled outputs
independently of this code's verdict.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .inputs import as_compute, row_chunks, row_operands

if TYPE_CHECKING:
    import torch

    from .dtypes import GemmDtype


@dataclass(frozen=True)
class FreivaldsRule:
    """Rounding units of one dtype's GEMM and the precision its check runs in."""

    compute: str  # torch dtype name of the check's arithmetic
    u_out: float
    u_mul: float = 0.0
    u_acc: float = 2.0**-24
    exact: bool = False


#: per dtype; see the module docstring for the derivation
RULES: dict[str, FreivaldsRule] = {
    "fp16": FreivaldsRule("float32", u_out=2.0**-11),
    "bf16": FreivaldsRule("float32", u_out=2.0**-8),
    "fp8": FreivaldsRule("float32", u_out=2.0**-8),  # E4M3 products are exact in FP32; output BF16
    "fp32": FreivaldsRule("float64", u_out=2.0**-24),
    "tf32": FreivaldsRule("float64", u_out=2.0**-24, u_mul=2.0**-11),
    "int8": FreivaldsRule("float64", u_out=0.0, u_acc=0.0, exact=True),
}
#: unit roundoff of the check's own arithmetic
COMPUTE_UNIT = {"float32": 2.0**-24, "float64": 2.0**-53}
SAFETY = 2.0
TAIL_SIGMAS = 8.0
TRIALS = 2
VECTORS_PER_TRIAL = 16
#: the tile the recorded miss bound is stated for (columns; a tile row's error norm is √(cols/n))
REFERENCE_TILE_COLS = 256
#: int8: largest |r| (smaller when k·n is large, so that every FP64 sum stays exact below 2^53)
INT_R_MAX = 1024


def rule_for(dtype: str) -> FreivaldsRule:
    try:
        return RULES[dtype]
    except KeyError:
        raise ValueError(f"no Freivalds rule for dtype {dtype!r}; known: {', '.join(RULES)}") from None


def epsilon(dtype: str, n: int, k: int) -> float:
    """ε: the largest ‖E_i‖/S_i of a correct output (0 for exact dtypes)."""
    r = rule_for(dtype)
    if r.exact:
        return 0.0
    u_comp = COMPUTE_UNIT[r.compute]
    return SAFETY * (r.u_out + 2 * r.u_mul + 4 * r.u_acc * math.sqrt(k) + 4 * u_comp * (math.sqrt(n) + math.sqrt(k)))


def tolerance(dtype: str, n: int, k: int) -> float:
    """Largest |D_i|/S_i accepted (0 for exact dtypes)."""
    return TAIL_SIGMAS * epsilon(dtype, n, k)


def int_r_max(n: int, k: int) -> int:
    """|r| bound for int8: |a|, |b| ≤ 64, so every partial sum is ≤ 4096·k·n·r_max < 2^53."""
    return max(1, min(INT_R_MAX, (1 << 41) // max(1, k * n)))


def miss_bound(dtype: str, n: int, k: int, tile_cols: int = REFERENCE_TILE_COLS,
               columns: int = TRIALS * VECTORS_PER_TRIAL) -> float:
    """Upper bound on the chance that a tile ``tile_cols`` wide whose values are all wrong by
    about one output element (e.g. zeroed) escapes every column, rows of the tile all alike."""
    if rule_for(dtype).exact:
        return (1.0 / (2 * int_r_max(n, k) + 1)) ** columns
    eps, tol = epsilon(dtype, n, k), tolerance(dtype, n, k)
    gamma = math.sqrt(min(tile_cols, n) / n)
    per_column = 1.0 if gamma <= eps else min(1.0, math.sqrt(2 / math.pi) * tol / (gamma - eps))
    return per_column**columns


@dataclass
class FreivaldsResult:
    """Outcome of :func:`freivalds_check`."""

    passed: bool
    trials: int
    vectors_per_trial: int
    compute: str
    #: accepted max |D_i|/S_i (0: exact)
    tolerance: float
    #: the largest |D_i|/S_i seen (int8: the largest |D_i|)
    max_stat: float
    #: rows failing in any trial (the first 32; every trial must pass)
    failed_rows: list[int] = field(default_factory=list)
    worst_row: int | None = None
    time_s: float = 0.0
    #: where the arithmetic ran: "device", or "host" when the device cannot run ``compute``
    place: str = "device"
    miss_bound_tile: float = 0.0
    reference_tile: str = ""
    r_distribution: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _draw_r(seed: int, trial: int, n: int, q: int, exact: bool, r_max: int) -> "torch.Tensor":
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + 7919 * (trial + 1)) & ((1 << 63) - 1))
    if exact:
        return torch.randint(-r_max, r_max + 1, (n, q), generator=gen, dtype=torch.int64).to(torch.float64)
    return torch.randn((n, q), generator=gen, dtype=torch.float64)


def _products(c: "torch.Tensor", a: "torch.Tensor", b: "torch.Tensor", r: "torch.Tensor", dtype: Any,
              place: Any, want_norms: bool) -> tuple["torch.Tensor", "torch.Tensor | None", float | None]:
    """(D = C·r - A·(B·r) on the host in FP64, ‖A_i‖ per row, ‖B‖_F) with the arithmetic in
    ``dtype`` on ``place``; each operand is read once, in row chunks."""
    import torch

    ops = row_operands(a, b)
    r_dev = r.to(device=place, dtype=dtype)
    k = a.shape[1]
    br = torch.zeros((k, r.shape[1]), dtype=dtype, device=place)
    b_sq = torch.zeros((), dtype=dtype, device=place)
    for start, stop in row_chunks(ops["Bt"]):  # B·r = Σ_j B[:, j] r_j over chunks of B's columns
        x = as_compute(ops["Bt"], start, stop, dtype, place)
        br += x.t() @ r_dev[start:stop]
        if want_norms:
            b_sq += x.pow(2).sum()
    abr, a_norms = [], []
    for start, stop in row_chunks(a):
        x = as_compute(a, start, stop, dtype, place)
        abr.append(x @ br)
        if want_norms:
            a_norms.append(x.norm(dim=1))
    cr = [as_compute(c, start, stop, dtype, place) @ r_dev for start, stop in row_chunks(c)]
    d = (torch.cat(cr) - torch.cat(abr)).to("cpu", torch.float64)
    if not want_norms:
        return d, None, None
    return d, torch.cat(a_norms).to("cpu", torch.float64), float(b_sq.to("cpu", torch.float64).sqrt())


def freivalds_check(c: "torch.Tensor", a: "torch.Tensor", b: "torch.Tensor", spec: "GemmDtype", seed: int, *,
                    synchronize: Callable[[], None] | None = None, trials: int = TRIALS,
                    vectors: int = VECTORS_PER_TRIAL) -> FreivaldsResult:
    """Check every element of ``c`` = ``a`` @ ``b`` (device tensors) with ``trials`` independent
    random R of ``vectors`` columns each, drawn from ``seed``. ``synchronize`` waits for the
    device (so ``time_s`` covers the work, not just its enqueueing)."""
    import torch

    rule = rule_for(spec.name)
    m, k = a.shape
    n = b.shape[1]
    dtype = getattr(torch, rule.compute)
    tol = tolerance(spec.name, n, k)
    r_max = int_r_max(n, k)
    sync = synchronize or (lambda: None)
    sync()
    t0 = time.perf_counter()
    place: Any = a.device
    place_name = "device"
    failed: set[int] = set()
    worst_row, max_stat = None, 0.0
    scale: "torch.Tensor | None" = None
    for trial in range(trials):
        r = _draw_r(seed, trial, n, vectors, rule.exact, r_max)
        try:
            d, a_norms, b_norm = _products(c, a, b, r, dtype, place, want_norms=scale is None)
        except (RuntimeError, NotImplementedError, TypeError):
            if place_name == "host":
                raise
            place, place_name = torch.device("cpu"), "host"  # e.g. no FP64 on this device
            d, a_norms, b_norm = _products(c, a, b, r, dtype, place, want_norms=scale is None)
        if scale is None:
            scale = torch.ones(m, dtype=torch.float64) if rule.exact else a_norms * b_norm / math.sqrt(k)  # type: ignore[operator]
        # a zero-norm row (scale 0) or a NaN/Inf output scores inf: it fails, never passes as 0/1
        stat = d.abs() / scale.unsqueeze(1)
        stat = torch.where(torch.isfinite(stat), stat, torch.full_like(stat, math.inf)).amax(dim=1)
        failed |= set((stat > tol).nonzero().flatten().tolist())
        row = int(stat.argmax())
        if float(stat[row]) > max_stat or worst_row is None:
            worst_row, max_stat = row, float(stat[row])
    sync()
    elapsed = time.perf_counter() - t0
    reason = ""
    first = sorted(failed)[:32]
    if failed:
        what = "differs from A·(B·r)" if rule.exact else f"exceeds {tol:.3g} (scaled by ‖A_i‖‖B‖_F/√k)"
        reason = (f"Freivalds: {len(failed)} of {m} output row(s) wrong, e.g. row {first[0]}: "
                  f"|C·r - A·(B·r)| {what}")
    tile_rows = min(128, m)
    return FreivaldsResult(
        passed=not failed, trials=trials, vectors_per_trial=vectors, compute=rule.compute, tolerance=tol,
        max_stat=max_stat, failed_rows=first, worst_row=worst_row, time_s=elapsed, place=place_name,
        miss_bound_tile=miss_bound(spec.name, n, k, columns=trials * vectors),
        reference_tile=f"{tile_rows}x{min(REFERENCE_TILE_COLS, n)} tile of a {m}x{n} output",
        r_distribution=(f"integers uniform in [-{r_max}, {r_max}]" if rule.exact else "N(0, 1) in float64"),
        reason=reason,
    )


__all__ = ["RULES", "FreivaldsResult", "FreivaldsRule", "epsilon", "freivalds_check", "miss_bound", "tolerance"]
