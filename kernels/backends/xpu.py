"""Intel GPUs through torch's built-in ``torch.xpu`` (no plugin to import)."""

from __future__ import annotations

from .plugin import PluginBackend


class XpuBackend(PluginBackend):
    name = device_type = "xpu"
    plugin_module = None
    vendor = "intel"
    collective_backend = "xccl"
    install_hint = "install an XPU build of torch and Intel's GPU driver / oneAPI runtime"
