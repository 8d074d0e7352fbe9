"""Host provenance: who ran what, where, with which software."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

_VERSIONED = ("icb-bench", "torch", "numpy", "pandas", "pyarrow", "nvidia-ml-py", "pydantic", "typer", "rich")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: the node's name in a multi-node run (``--node-name``; set for the worker processes too)
NODE_NAME_ENV = "ICB_BENCH_NODE_NAME"


def hostname() -> str:
    """The name measurements carry as ``host``: the node's name in a job, else the hostname."""
    return os.environ.get(NODE_NAME_ENV) or socket.gethostname() or "localhost"


def real_hostname() -> str:
    return socket.gethostname() or "localhost"


def package_versions(names: tuple[str, ...] = _VERSIONED) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def host_info() -> dict[str, Any]:
    """Host, OS, CPU and software versions (torch's own build versions come from the backend)."""
    info: dict[str, Any] = {
        "hostname": hostname(),
        "real_hostname": real_hostname(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
    }
    try:
        import torch

        info["torch_build"] = {
            "version": torch.__version__,
            "cuda": getattr(torch.version, "cuda", None),
            "hip": getattr(torch.version, "hip", None),
            "git": getattr(torch.version, "git_version", None),
        }
    except ImportError:  # pragma: no cover - torch is a dependency
        info["torch_build"] = None
    return info
