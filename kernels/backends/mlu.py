"""Cambricon MLUs through torch_mlu; its TF32 switches are set per dtype where the build has them."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .plugin import PluginBackend, resolve, switch_attr


class MluBackend(PluginBackend):
    name = device_type = "mlu"
    plugin_module = "torch_mlu"
    vendor = "cambricon"
    collective_backend = "cncl"
    install_hint = "install torch_mlu matching this torch and the Cambricon Neuware SDK"

    @contextlib.contextmanager
    def vendor_flags(self, dtype: str) -> Iterator[dict[str, Any]]:
        tf32 = dtype == "tf32"
        with switch_attr(
            resolve("torch.backends.mlu.matmul"), "allow_tf32", tf32, "mlu.matmul.allow_tf32"
        ) as a, switch_attr(resolve("torch.backends.cnnl"), "allow_tf32", tf32, "cnnl.allow_tf32") as b:
            yield {**a, **b}
