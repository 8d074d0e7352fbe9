"""Huawei Ascend NPUs through torch_npu (CANN); HF32 (Ascend's TF32-like mode) set per dtype.

The switches, as documented by Huawei's torch_npu API reference (hiascend.com, PyTorch API list
"torch_npu.npu.matmul.allow_hf32" / "torch_npu.npu.conv.allow_hf32" / "torch_npu.npu.aclnn.allow_hf32"):
matmul defaults to False, conv and aclnn (conv operators through aclnn) default to True. A "fp32"
GEMM must be IEEE FP32, so all three are switched off for it and on only for the ``tf32`` dtype;
each is read back into numeric_mode's record ("absent" where the build lacks it).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .plugin import PluginBackend, resolve, switch_attr

#: (namespace under torch.npu / torch_npu.npu, record key suffix) of every HF32 switch
HF32_SWITCHES: tuple[str, ...] = ("matmul", "conv", "aclnn")


class NpuBackend(PluginBackend):
    name = device_type = "npu"
    plugin_module = "torch_npu"
    vendor = "huawei"
    collective_backend = "hccl"
    install_hint = "install torch_npu matching this torch and the CANN toolkit (Huawei Ascend)"

    @contextlib.contextmanager
    def vendor_flags(self, dtype: str) -> Iterator[dict[str, Any]]:
        hf32 = dtype == "tf32"
        with contextlib.ExitStack() as stack:
            flags: dict[str, Any] = {}
            for ns in HF32_SWITCHES:
                # torch_npu registers the same object as torch.npu; the documented path first
                obj = resolve(f"torch_npu.npu.{ns}") or resolve(f"torch.npu.{ns}")
                flags.update(stack.enter_context(switch_attr(obj, "allow_hf32", hf32, f"torch_npu.npu.{ns}.allow_hf32")))
            yield flags
