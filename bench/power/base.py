"""One power-reader interface: energy over a window plus a sampled trace.

A reader is bound to one thing it measures (a device, a node's BMC, a rack's PDU); its ``scope``
says which. ``bench/`` never asks which vendor a reader belongs to: it opens the readers a backend
names, brackets the core phase with :meth:`PowerReader.energy_j` reads and runs a
:class:`~icb_bench.bench.power.sampler.Sampler` for the trace.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["device", "node", "rack"]
Method = Literal["counter", "polled", "none"]


class PowerError(Exception):
    """A power source failed or is unreadable (vendor errors are translated into this)."""


@dataclass(frozen=True)
class PowerSample:
    """One poll of a power source. Every field but the timestamp may be missing (None)."""

    t_s: float  # time.monotonic() of the read
    power_w: float | None = None
    energy_j: float | None = None  # the counter's value, when the source has one
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    power_limit_w: float | None = None
    throttle_reasons: int | None = None  # vendor bitmask, decoded by PowerReader.decode_throttle
    #: the source's own timestamp of the reading (Redfish Sensor ReadingTime), to tell a stale source
    source_time: str | None = None


@dataclass
class WindowEnergy:
    """Energy of one timed window, with how it was obtained."""

    scope: Scope
    method: Method
    source: str  # e.g. "nvml:nvmlDeviceGetTotalEnergyConsumption", "rapl:intel-rapl:0", "none"
    window_s: float
    energy_j: float | None
    power_w: float | None  # energy_j / window_s
    n_samples: int = 0
    sample_hz: float | None = None
    throttled: bool = False
    throttle_reasons: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. why a fallback was used
    #: summary of the polled telemetry over the window (median SM clock, max temperature, ...)
    telemetry: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class PowerReader(abc.ABC):
    """A source of power and energy readings for one scope."""

    scope: Scope = "device"
    #: short identifier recorded with every figure ("nvml", "rapl", "redfish", "none")
    name: str = ""

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire handles. Called once before any read."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles."""

    @property
    @abc.abstractmethod
    def has_energy_counter(self) -> bool:
        """True when :meth:`energy_j` returns a monotonic counter (preferred over polling)."""

    @abc.abstractmethod
    def energy_j(self) -> float | None:
        """Current value of the energy counter in joules (monotonic, wraps handled), or None."""

    @abc.abstractmethod
    def sample(self) -> PowerSample:
        """One poll: instant (or short-average) power and whatever telemetry the source has."""

    def decode_throttle(self, reasons: int | None) -> list[str]:
        """Names of the throttle reasons that make a window untrustworthy (power or thermal)."""
        return []

    def describe(self) -> dict[str, Any]:
        """Provenance of this reader (what it reads, through which library, its resolution)."""
        return {"name": self.name, "scope": self.scope}

    def __enter__(self) -> "PowerReader":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
