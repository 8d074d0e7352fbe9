"""CPU package energy through the Linux powercap RAPL interface (Intel, and AMD on recent kernels).

Sums the top-level package zones ``intel-rapl:N`` (sub-zones such as ``intel-rapl:0:0`` are parts
of a package and would double count; a ``psys`` platform zone includes the packages and is skipped
too). ``energy_uj`` wraps at ``max_energy_range_uj``: the reader keeps the last raw value of each
zone and accumulates deltas, so it must be read at least once per wrap period (the
:class:`~icb_bench.bench.power.sampler.Sampler` does, at its polling rate).
Reading ``energy_uj`` needs root on kernels patched for CVE-2020-8694.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .base import PowerError, PowerReader, PowerSample

DEFAULT_ROOT = "/sys/class/powercap"
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")
_SKIP_NAMES = ("psys",)  # platform zone: already includes the packages


def _read_text(path: Path) -> str:
    """Read a sysfs file (a function of its own so tests can simulate permission errors)."""
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _read_int(path: Path) -> int:
    return int(_read_text(path))


@dataclass
class _Zone:
    path: Path
    name: str
    max_range_uj: int
    last_raw_uj: int
    acc_uj: int = 0  # energy accumulated since open


def find_package_zones(root: str | os.PathLike[str] = DEFAULT_ROOT) -> list[Path]:
    """Top-level package zone directories under ``root`` (no sub-zones, no psys)."""
    r = Path(root)
    if not r.is_dir():
        return []
    out = []
    for p in sorted(r.iterdir(), key=lambda q: int(q.name.split(":")[1]) if _PACKAGE_ZONE.match(q.name) else -1):
        if not _PACKAGE_ZONE.match(p.name) or not (p / "energy_uj").exists():
            continue
        try:
            name = _read_text(p / "name")
        except OSError:
            name = p.name
        if name.startswith(_SKIP_NAMES):
            continue
        out.append(p)
    return out


def why_not_readable(root: str | os.PathLike[str] = DEFAULT_ROOT) -> str | None:
    """None when every package zone's counter can be read, else the reason."""
    zones = find_package_zones(root)
    if not zones:
        return f"RAPL: no package zones under {root}"
    for z in zones:
        try:
            _read_int(z / "energy_uj")
            _read_int(z / "max_energy_range_uj")
        except PermissionError:
            return f"RAPL not readable (permission denied: {z / 'energy_uj'}; needs root on recent kernels)"
        except (OSError, ValueError) as e:
            return f"RAPL not readable ({z}: {e})"
    return None


def is_readable(root: str | os.PathLike[str] = DEFAULT_ROOT) -> bool:
    """True when RAPL package counters exist and can be read (not the case without root on
    recent kernels: the caller then uses the null reader)."""
    return why_not_readable(root) is None


class RaplReader(PowerReader):
    """Sum of the CPU package RAPL counters; power is the derivative between two samples."""

    name = "rapl"
    counter_update_s = 0.001  # RAPL updates about every millisecond

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        scope: str = "device",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.scope = scope  # type: ignore[assignment]
        self._clock = clock
        self._zones: list[_Zone] = []
        self._lock = threading.RLock()
        self._last: tuple[float, float] | None = None  # (t_s, energy_j) of the previous sample
        self.energy_source = f"rapl:{self.root}"
        self.power_source = "rapl:energy_uj derivative"

    def open(self) -> None:
        if self._zones:
            return
        reason = why_not_readable(self.root)
        if reason:
            raise PowerError(reason)
        zones = []
        for p in find_package_zones(self.root):
            try:
                zones.append(
                    _Zone(
                        path=p,
                        name=_read_text(p / "name") if (p / "name").exists() else p.name,
                        max_range_uj=_read_int(p / "max_energy_range_uj"),
                        last_raw_uj=_read_int(p / "energy_uj"),
                    )
                )
            except (OSError, ValueError) as e:
                raise PowerError(f"RAPL not readable ({p}: {e})") from None
        self._zones = zones
        self._last = None
        self.energy_source = "rapl:" + "+".join(z.path.name for z in zones)

    def close(self) -> None:
        self._zones = []
        self._last = None

    @property
    def has_energy_counter(self) -> bool:
        return bool(self._zones)

    def energy_j(self) -> float | None:
        """Joules consumed by all packages since open(), wraparound handled."""
        if not self._zones:
            raise PowerError("RaplReader used before open()")
        with self._lock:
            for z in self._zones:
                try:
                    raw = _read_int(z.path / "energy_uj")
                except (OSError, ValueError) as e:
                    raise PowerError(f"RAPL read failed ({z.path}: {e})") from None
                if raw >= z.last_raw_uj:
                    z.acc_uj += raw - z.last_raw_uj
                else:  # wrapped: up to the range's end, then from zero
                    z.acc_uj += (z.max_range_uj + 1 - z.last_raw_uj) + raw
                z.last_raw_uj = raw
            return sum(z.acc_uj for z in self._zones) / 1e6

    def sample(self) -> PowerSample:
        """Counter value and the mean power since the previous sample (None on the first)."""
        with self._lock:  # re-entrant: energy_j takes it too; keeps (t, e) pairs consistent
            e = self.energy_j()
            t = self._clock()
            power_w = None
            prev = self._last
            if prev is not None and e is not None and t > prev[0]:
                power_w = (e - prev[1]) / (t - prev[0])
            if e is not None:
                self._last = (t, e)
        return PowerSample(t_s=t, power_w=power_w, energy_j=e)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "root": str(self.root),
            "zones": [
                {"zone": z.path.name, "name": z.name, "max_energy_range_uj": z.max_range_uj} for z in self._zones
            ],
            "energy_source": self.energy_source,
            "power_source": self.power_source,
            "note": "sum of package zones; sub-zones and psys skipped; wraps handled if read once per wrap period",
        }
