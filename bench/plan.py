"""Run plans: what `bench run` measures, for how long, and the profiles that set the defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: the core phase must last at least this long for a measurement to count towards a verdict
#: (clocks and temperature reach steady state; Green500's core phase is ≥ 1 min)
MIN_ASSESSMENT_S = 60.0
#: the shape search may take at most this share of the core phase (10 %: 6 s of a 60 s phase)
SEARCH_SHARE_MAX = 0.10


@dataclass(frozen=True)
class Profile:
    """Timing knobs of one profile. ``assessment`` is the default; ``quick`` is a smoke test."""

    name: str
    duration_s: float  # sustained core phase per dtype
    search_batches: int  # kept for old plans (the halving search is sized by its budget)
    max_shapes: int  # candidate shapes the search starts from
    batch_ms: float  # target device time of one batch
    warmup_ms: float  # MAXIMUM warm-up after the common start (ends earlier at steady state)
    warmup_min_ms: float  # minimum warm-up (steady state is judged over a full window)
    steady_window_s: float  # trailing window the steady-state rule judges (bench/steady.py)
    search_share: float  # search budget as a share of the core phase (<= SEARCH_SHARE_MAX)
    search_batch_ms: float  # target time of one batch during the search
    setup_allowance_ms: float  # building, calibrating and probing the measured workload
    tflops_plateau_rel: float  # throughput plateau tolerance of the steady-state rule


PROFILES: dict[str, Profile] = {
    "assessment": Profile("assessment", duration_s=MIN_ASSESSMENT_S, search_batches=5, max_shapes=16, batch_ms=100.0,
                          warmup_ms=90_000.0, warmup_min_ms=30_000.0, steady_window_s=30.0, search_share=0.10,
                          search_batch_ms=25.0, setup_allowance_ms=15_000.0, tflops_plateau_rel=0.01),
    "quick": Profile("quick", duration_s=3.0, search_batches=3, max_shapes=8, batch_ms=50.0, warmup_ms=1500.0,
                     warmup_min_ms=500.0, steady_window_s=0.5, search_share=0.10, search_batch_ms=10.0,
                     setup_allowance_ms=3000.0, tflops_plateau_rel=0.03),
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
    warmup_ms: float = 90_000.0
    warmup_min_ms: float = 30_000.0
    steady_window_s: float = 30.0
    search_share: float = 0.10
    search_batch_ms: float = 25.0
    setup_allowance_ms: float = 15_000.0
    tflops_plateau_rel: float = 0.01
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
            warmup_ms=prof.warmup_ms, warmup_min_ms=prof.warmup_min_ms, steady_window_s=prof.steady_window_s,
            search_share=prof.search_share, search_batch_ms=prof.search_batch_ms,
            setup_allowance_ms=prof.setup_allowance_ms, tflops_plateau_rel=prof.tflops_plateau_rel, **kw,
        )

    def __post_init__(self) -> None:
        if not 0 < self.search_share <= SEARCH_SHARE_MAX:
            raise ValueError(f"search_share={self.search_share!r}: expected a share in (0, {SEARCH_SHARE_MAX}] "
                             "of the core phase")
        if self.warmup_min_ms < 0 or self.warmup_ms < 0:
            raise ValueError(f"warmup_ms={self.warmup_ms!r}, warmup_min_ms={self.warmup_min_ms!r}: expected >= 0 "
                             "(a minimum above the maximum is clamped to it)")

    @property
    def search_budget_s(self) -> float:
        """Wall time the shape search may take per dtype: ``search_share`` of the core phase."""
        return self.search_share * self.duration_s

    def steady_rule(self) -> Any:
        """The steady-state rule of this plan (:class:`icb_bench.bench.steady.SteadyRule`)."""
        from .steady import SteadyRule

        return SteadyRule(window_s=self.steady_window_s, tflops_plateau_rel=self.tflops_plateau_rel)

    def schedule_s(self, searching: bool) -> float:
        """Seconds from leaving the common start to the core phase: the same on every device, so
        core phases start together (maximum warm-up + search budget + setup allowance)."""
        return (self.warmup_ms + self.setup_allowance_ms) / 1e3 + (self.search_budget_s if searching else 0.0)

    def grade_for(self, core_phase_s: float) -> str:
        """``assessment`` only when the measured core phase lasted the minimum; else ``smoke``."""
        return "assessment" if core_phase_s >= MIN_ASSESSMENT_S else "smoke"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        d["dtypes"] = list(self.dtypes)
        d["shape"] = list(self.shape) if self.shape else None
        d["min_assessment_s"] = MIN_ASSESSMENT_S
        d["search_budget_s"] = self.search_budget_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunPlan":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["devices"] = tuple(d["devices"])
        d["dtypes"] = tuple(d["dtypes"])
        if d.get("shape"):
            d["shape"] = tuple(d["shape"])
        return cls(**d)
