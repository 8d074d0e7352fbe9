"""The GEMM dtypes the harness measures, each named exactly: inputs, accumulate, output.

A throughput figure is meaningless without all three (FP16 with FP16 accumulate runs up to 2x
faster than FP16 with FP32 accumulate on some parts), so every dtype here pins them down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.base import Backend


@dataclass(frozen=True)
class GemmDtype:
    """One GEMM numeric type. Dtype fields hold torch dtype names (``"float16"``, …)."""

    name: str
    inputs: str
    accumulate: str
    output: str
    #: correctness tolerance for |out - ref| / (‖A[i,:]‖·‖B[:,j]‖/√k); see GemmWorkload.check
    tolerance: float
    #: column in the datasheet peak table (kernels/peaks.yaml)
    peak_key: str
    #: how the products are formed (``"tf32"`` rounds FP32 inputs to TF32's 10-bit mantissa)
    multiply: str = ""
    #: torch op: "mm" (torch.mm), "scaled_mm" (torch._scaled_mm), "int_mm" (torch._int_mm)
    op: str = "mm"
    #: B stored column-major (transpose of a contiguous (n, k) tensor): _scaled_mm requires it,
    #: and cuBLASLt's int8 path only supports row-major A with column-major B ("TN")
    b_col_major: bool = False
    description: str = ""

    def torch_dtype(self, which: str) -> Any:
        """The torch dtype of ``which`` ("inputs" or "output")."""
        import torch

        return getattr(torch, getattr(self, which))

    @property
    def exact(self) -> bool:
        """Integer GEMMs must match the reference exactly."""
        return self.tolerance == 0.0

    def tolerance_for(self, k: int) -> float:
        """Tolerance at reduction length ``k``: the dtype's rounding allowance plus FP32
        accumulation error, which grows like √k·u for FP32 sums (u = 2^-24)."""
        if self.exact:
            return 0.0
        return self.tolerance + 4.0 * 2.0**-24 * math.sqrt(k)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inputs": self.inputs,
            "multiply": self.multiply or self.inputs,
            "accumulate": self.accumulate,
            "output": self.output,
            "op": self.op,
        }


# Tolerances are on the error relative to the RMS size of an output element (‖a‖‖b‖/√k), so a
# wrong value scores ~1 at every k; each is several times the unit roundoff of the output (or of
# TF32's inputs) times the largest |out|/rms among 256 Gaussian samples (~3.5).
DTYPES: dict[str, GemmDtype] = {
    d.name: d
    for d in (
        GemmDtype(
            "fp16", "float16", "float32", "float16", 4e-3, "fp16",
            description="FP16 inputs, FP32 accumulate, FP16 output (torch.mm; no reduced-precision reduction)",
        ),
        GemmDtype(
            "bf16", "bfloat16", "float32", "bfloat16", 3e-2, "bf16",
            description="BF16 inputs, FP32 accumulate, BF16 output (torch.mm)",
        ),
        GemmDtype(
            "fp32", "float32", "float32", "float32", 1e-5, "fp32", multiply="float32",
            description="IEEE FP32 (TF32 and every reduced-precision FP32 mode off, checked by a probe)",
        ),
        GemmDtype(
            "tf32", "float32", "float32", "float32", 3e-3, "tf32", multiply="tf32",
            description="FP32 inputs/outputs, TF32 multiply (10-bit mantissa), FP32 accumulate",
        ),
        GemmDtype(
            "fp8", "float8_e4m3fn", "float32", "bfloat16", 6e-2, "fp8", op="scaled_mm",
            b_col_major=True,
            description="FP8 E4M3 inputs, FP32 accumulate, BF16 output (torch._scaled_mm, unit "
            "tensor-wise scales, use_fast_accum=False)",
        ),
        GemmDtype(
            "int8", "int8", "int32", "int32", 0.0, "int8", op="int_mm", b_col_major=True,
            description="INT8 inputs, INT32 accumulate and output (torch._int_mm), exact",
        ),
    )
}

DEFAULT_DTYPES: tuple[str, ...] = ("fp16", "fp32")

#: shape of the tiny GEMM that probes support (multiples of 8, m > 16: _int_mm's CUDA limits)
PROBE_SIZE = 256
#: fp32/tf32 probe at a size where BLAS libraries pick their tensor-core (TF32) kernels, so a
#: tiny-size SIMT kernel cannot make TF32 look absent
PROBE_SIZE_FP32 = 1024


def get_dtype(name: str) -> GemmDtype:
    """The GemmDtype called ``name``; ValueError naming the valid ones otherwise."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown GEMM dtype {name!r}; valid: {', '.join(DTYPES)}") from None


def parse_dtypes(text: str) -> tuple[str, ...]:
    """``"fp16, FP32"`` -> ("fp16", "fp32"); duplicates dropped, order kept; ValueError naming
    the bad value and the valid ones."""
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        get_dtype(name)
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"no GEMM dtype given in {text!r}; valid: {', '.join(DTYPES)}")
    return tuple(names)


def probe_dtypes(backend: "Backend", index: int, names: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """For each dtype, None if a tiny GEMM runs, checks correct and passes its mode probe on this
    device; otherwise the reason it is not supported."""
    from .errors import KernelError
    from .gemm import GemmShape, GemmWorkload

    reasons: dict[str, str | None] = {}
    for name in names or tuple(DTYPES):
        size = PROBE_SIZE_FP32 if name in ("fp32", "tf32") else PROBE_SIZE
        shape = GemmShape(size, size, size)
        known = backend.dtype_unsupported_reason(index, name)
        if known:
            reasons[name] = known
            continue
        try:
            with GemmWorkload(backend, index, name, shape, seed=0, use_graphs=False) as wl:
                wl.poison()
                wl.warmup(iters=1)
                # Wrong results do not make a dtype "unsupported": the measurement itself must
                # then be recorded as invalid, so a faulty device is flagged, never skipped.
                probe = wl.mode_probe()
                spec = DTYPES[name]
                engaged = (spec.multiply or spec.inputs) != spec.inputs  # e.g. tf32: the mode must take effect
                reasons[name] = None if probe.passed or not engaged else f"mode probe failed: {probe.detail}"
        except (KernelError, RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            reasons[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return reasons


def probe_supported(backend: "Backend", index: int) -> list[str]:
    """The dtypes (in DTYPES order) this device runs correctly; probes, never assumes."""
    return [name for name, reason in probe_dtypes(backend, index).items() if reason is None]
