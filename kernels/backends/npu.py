"""Huawei Ascend NPUs through torch_npu (CANN); HF32 (Ascend's TF32-like mode) set per dtype."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .plugin import PluginBackend, resolve, switch_attr


class NpuBackend(PluginBackend):
    name = device_type = "npu"
    plugin_module = "torch_npu"
    vendor = "huawei"
    domestic = True
    install_hint = "install torch_npu matching this torch and the CANN toolkit (Huawei Ascend)"

    @contextlib.contextmanager
    def vendor_flags(self, dtype: str) -> Iterator[dict[str, Any]]:
        # HF32 only for the tf32 dtype: an "fp32" GEMM must be IEEE FP32 (default is False)
        matmul = resolve("torch_npu.npu.matmul")
        with switch_attr(matmul, "allow_hf32", dtype == "tf32", "torch_npu.npu.matmul.allow_hf32") as f:
            yield f
