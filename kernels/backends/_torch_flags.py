"""torch's process-wide matmul precision flags: set per GEMM dtype, read back, restore.

Since torch 2.9 there are two APIs for the same switch: the legacy one
(``torch.set_float32_matmul_precision``, ``torch.backends.cuda.matmul.allow_tf32``) and the new one
(``torch.backends.cuda.matmul.fp32_precision``). Setting only the new one leaves the two
inconsistent, and torch then raises RuntimeError when anything reads the flag — including the
matmul itself. The legacy setters update both, so we set through them and read both back.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

#: dtypes for which TF32 (or another reduced-precision FP32 multiply) is wanted
REDUCED_FP32_DTYPES = frozenset({"tf32"})


def _read(getter: Any) -> Any:
    """A flag's value, or the error text when torch refuses to read it (mixed-API state)."""
    try:
        return getter()
    except (RuntimeError, AttributeError) as exc:
        return f"unreadable: {str(exc).splitlines()[0][:120]}"


def read_torch_flags() -> dict[str, Any]:
    """The current values of every flag that can change what an FP32/FP16/BF16 matmul computes."""
    import torch

    m = torch.backends.cuda.matmul
    flags: dict[str, Any] = {
        "float32_matmul_precision": _read(torch.get_float32_matmul_precision),
        "cuda.matmul.allow_tf32": _read(lambda: m.allow_tf32),
        "cuda.matmul.allow_fp16_reduced_precision_reduction": _read(
            lambda: m.allow_fp16_reduced_precision_reduction
        ),
        "cuda.matmul.allow_bf16_reduced_precision_reduction": _read(
            lambda: m.allow_bf16_reduced_precision_reduction
        ),
        "cudnn.allow_tf32": _read(lambda: torch.backends.cudnn.allow_tf32),
    }
    # newer torch only; absent attributes are simply not recorded
    for key, getter in (
        ("cuda.matmul.fp32_precision", lambda: m.fp32_precision),
        ("cuda.matmul.allow_fp16_accumulation", lambda: m.allow_fp16_accumulation),
        ("mkldnn.matmul.fp32_precision", lambda: torch.backends.mkldnn.matmul.fp32_precision),
    ):
        value = _read(getter)
        if not (isinstance(value, str) and value.startswith("unreadable") and "ttribute" in value):
            flags[key] = value
    return flags


def _try_set(obj: Any, attr: str, value: Any) -> None:
    """Set a flag that older torch builds may lack."""
    try:
        setattr(obj, attr, value)
    except AttributeError:
        pass


@contextlib.contextmanager
def torch_matmul_flags(dtype: str) -> Iterator[dict[str, Any]]:
    """IEEE FP32 and FP32 accumulation for every dtype except ``tf32`` (which turns TF32 on);
    yields the flags as read back after setting; restores the previous state on exit."""
    import torch

    m = torch.backends.cuda.matmul
    allow_tf32 = dtype in REDUCED_FP32_DTYPES
    saved_precision = _read(torch.get_float32_matmul_precision)
    saved_new = _read(lambda: m.fp32_precision)
    saved_cudnn = _read(lambda: torch.backends.cudnn.allow_tf32)
    saved_fp16_red = _read(lambda: m.allow_fp16_reduced_precision_reduction)
    saved_bf16_red = _read(lambda: m.allow_bf16_reduced_precision_reduction)
    saved_fp16_acc = _read(lambda: m.allow_fp16_accumulation)
    try:
        # the legacy setters keep legacy and new API state consistent (see module docstring)
        torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
        m.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
        # FP16/BF16 GEMMs accumulate in FP32: no reduced-precision split-K reductions
        _try_set(m, "allow_fp16_reduced_precision_reduction", False)
        _try_set(m, "allow_bf16_reduced_precision_reduction", False)
        _try_set(m, "allow_fp16_accumulation", False)
        yield read_torch_flags()
    finally:
        if saved_precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(saved_precision)
        elif isinstance(saved_new, str) and not saved_new.startswith("unreadable"):
            _try_set(m, "fp32_precision", saved_new)
        if isinstance(saved_cudnn, bool):
            torch.backends.cudnn.allow_tf32 = saved_cudnn
        if isinstance(saved_fp16_red, bool):
            _try_set(m, "allow_fp16_reduced_precision_reduction", saved_fp16_red)
        if isinstance(saved_bf16_red, bool):
            _try_set(m, "allow_bf16_reduced_precision_reduction", saved_bf16_red)
        if isinstance(saved_fp16_acc, bool):
            _try_set(m, "allow_fp16_accumulation", saved_fp16_acc)
