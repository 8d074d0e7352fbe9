"""The reader used where nothing can be measured: it reports absence, never zero."""

from __future__ import annotations

import time
from typing import Any

from .base import PowerReader, PowerSample


class NullReader(PowerReader):
    """No power source: samples carry only a timestamp; windows get method "none", energy None."""

    name = "none"

    def __init__(self, scope: str = "device", *, reason: str | None = None) -> None:
        self.scope = scope  # type: ignore[assignment]
        #: why no real reader could be used (recorded with every figure)
        self.reason = reason

    @property
    def has_energy_counter(self) -> bool:
        return False

    def energy_j(self) -> float | None:
        return None

    def sample(self) -> PowerSample:
        return PowerSample(t_s=time.monotonic())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "measured": False, "note": "not measured", "reason": self.reason}
