"""Moore Threads GPUs through torch_musa."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .plugin import PluginBackend, resolve, switch_attr


class MusaBackend(PluginBackend):
    name = device_type = "musa"
    plugin_module = "torch_musa"
    vendor = "moorethreads"
    collective_backend = "mccl"
    install_hint = "install torch_musa matching this torch and the MUSA toolkit (Moore Threads)"

    @contextlib.contextmanager
    def vendor_flags(self, dtype: str) -> Iterator[dict[str, Any]]:
        with switch_attr(
            resolve("torch.backends.mudnn"), "allow_tf32", dtype == "tf32", "mudnn.allow_tf32"
        ) as f:
            yield f
