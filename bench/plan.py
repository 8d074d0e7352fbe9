"""Run plans: what `bench run` measures, for how long, and the profiles that set the defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: the core phase must last at least this long for a measurement to count towards a verdict
#: (clocks and temperature reach steady state; Green500's core phase is ≥ 1 min)
MIN_ASSESSMENT_S = 60.0


@dataclass(frozen=True)
class Profile:
    """Timing knobs of one profile. ``assessment`` is the default; ``quick`` is a smoke test."""

    name: str
    duration_s: float  # sustained core phase per dtype
    search_batches: int  # timed batches per candidate shape during the shape search
    max_shapes: int  # candidate shapes tried
    batch_ms: float  # target device time of one batch
    warmup_ms: float  # warm-up before calibration


PROFILES: dict[str, Profile] = {
    "assessment": Profile("assessment", duration_s=MIN_ASSESSMENT_S, search_batches=5, max_shapes=4, batch_ms=100.0, warmup_ms=2000.0),
    "quick": Profile("quick", duration_s=3.0, search_batches=3, max_shapes=2, batch_ms=50.0, warmup_ms=200.0),
}


@dataclass(frozen=True)
class RunPlan:
    """Everything a worker needs to measure one device; recorded verbatim in the manifest."""

    backend: str
    devices: tuple[int, ...]
    dtypes: tuple[str, ...]
    profile: str = "assessment"
    duration_s: float = MIN_ASSESSMENT_S
    seed: int = 0
    search_batches: int = 5
    max_shapes: int = 4
    batch_ms: float = 100.0
    warmup_ms: float = 2000.0
    sample_hz: float = 20.0
    outlier_tolerance: float = 0.10  # a device below (1 − tol) × median of its peers is an outlier
    check_samples: int = 256
    shape: tuple[int, int, int] | None = None  # fixed m, n, k (skips the shape search)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, backend: str, devices: tuple[int, ...], dtypes: tuple[str, ...], *, quick: bool = False,
              duration_s: float | None = None, seed: int = 0, **kw: Any) -> "RunPlan":
        prof = PROFILES["quick" if quick else "assessment"]
        return cls(
            backend=backend, devices=devices, dtypes=dtypes, profile=prof.name,
            duration_s=prof.duration_s if duration_s is None else float(duration_s), seed=seed,
            search_batches=prof.search_batches, max_shapes=prof.max_shapes, batch_ms=prof.batch_ms,
            warmup_ms=prof.warmup_ms, **kw,
        )

    def grade_for(self, core_phase_s: float) -> str:
        """``assessment`` only when the measured core phase lasted the minimum; else ``smoke``."""
        return "assessment" if core_phase_s >= MIN_ASSESSMENT_S else "smoke"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        d["dtypes"] = list(self.dtypes)
        d["shape"] = list(self.shape) if self.shape else None
        d["min_assessment_s"] = MIN_ASSESSMENT_S
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunPlan":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["devices"] = tuple(d["devices"])
        d["dtypes"] = tuple(d["dtypes"])
        if d.get("shape"):
            d["shape"] = tuple(d["shape"])
        return cls(**d)
