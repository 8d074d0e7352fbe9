"""What `bench verify` returns: per-model and site FP16 figures, rack efficiencies, claims.

Plain dataclasses, re-exported by :mod:`icb_bench.verify.measured` (the public facade).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .scoring import Scorecard

__all__ = [
    "CONFIRMED",
    "NOT_CONFIRMED",
    "INCONCLUSIVE",
    "ASSURANCE_ORDER",
    "CONFIRMING_ASSURANCE",
    "Claim",
    "ModelFigure",
    "SiteFigures",
    "EfficiencyFigure",
    "ScopeSummary",
    "PlanCheck",
    "Verification",
]

CONFIRMED = "CONFIRMED"
NOT_CONFIRMED = "NOT CONFIRMED"
INCONCLUSIVE = "INCONCLUSIVE"

#: where a rack's power came from, best first (fleet contract); only the first two can confirm A1.7:
#: device counters summed leave out fans, CPUs, NICs and PSU losses
ASSURANCE_ORDER = ("rack-meter", "node-meters", "device-counters")
CONFIRMING_ASSURANCE = frozenset(ASSURANCE_ORDER[:2])


@dataclass
class ModelFigure:
    """One declared inventory line with what was measured of its model.

    ``sampled`` counts every assessment-grade device of the model that was measured (or failed
    while being measured) in a counted rack; ``invalid`` those among them that count as zero
    throughput. ``mean_tflops`` (zeros included) × ``count`` is the model's measured figure;
    ``ci_low_tflops``/``ci_high_tflops`` bound that mean (None: no spread estimate).
    """

    model: str
    key: str
    count: int
    declared_tflops: Fraction | None
    datasheet_tflops: float | None
    datasheet_source: str | None
    datasheet_kind: str | None
    domestic: bool
    sampled: int = 0
    required: int = 0  # devices_required(count, level)
    invalid: int = 0
    below_efficiency: int = 0
    mean_tflops: float | None = None  # failed/invalid devices as zero
    stdev_tflops: float | None = None
    median_tflops: float | None = None  # of the correct devices (what a working device sustains)
    q1_tflops: float | None = None
    q3_tflops: float | None = None
    min_tflops: float | None = None
    max_tflops: float | None = None
    ci_low_tflops: float | None = None
    ci_high_tflops: float | None = None
    interval: str | None = None  # how the interval was made (t + FPC, census, none)
    rule_met: bool = False
    credited: bool = False
    reason: str | None = None  # why the nominal figure is not credited
    measured_reason: str | None = None  # why the measured figure cannot confirm (None: it can)
    above_datasheet: bool = False

    @property
    def attainment(self) -> float | None:
        """算力达成率 per device: measured mean (failed devices as zero) ÷ datasheet peak."""
        if self.mean_tflops is None or not self.datasheet_tflops:
            return None
        return self.mean_tflops / self.datasheet_tflops

    @property
    def confirmable(self) -> bool:
        """The measured figure may count towards confirming the site figure."""
        return self.measured_reason is None

    @property
    def nominal_pflops(self) -> float:
        return self.datasheet_tflops * self.count / 1000 if self.credited and self.datasheet_tflops else 0.0

    @property
    def measured_pflops(self) -> float | None:
        """Extrapolated figure: mean per device × declared count."""
        return None if self.mean_tflops is None else self.mean_tflops * self.count / 1000

    @property
    def measured_low_pflops(self) -> float | None:
        return None if self.ci_low_tflops is None else self.ci_low_tflops * self.count / 1000

    @property
    def measured_high_pflops(self) -> float | None:
        return None if self.ci_high_tflops is None else self.ci_high_tflops * self.count / 1000


@dataclass
class SiteFigures:
    """Site FP16 peak three ways (PFLOPS, FP16 dense). The measured figure sums the models that may
    confirm; the others are in ``gaps`` (each with its reason) and contribute nothing."""

    declared: Fraction | None
    nominal: float
    measured: float
    measured_low: float
    measured_high: float | None  # None: a model's upper bound is unknown
    attainment: float | None  # 算力达成率: measured ÷ nominal over the models with a measured figure
    complete: bool  # every model may confirm and the sample plan (if any) was followed
    level: int = 1
    gaps: list[str] = field(default_factory=list)  # models that cannot confirm, with the reason


@dataclass
class EfficiencyFigure:
    """A GFLOPS/W figure with the scope and assurance its power was measured at."""

    scope: str  # rack | node | device
    run_id: str
    label: str  # rack id, host or measurement id
    gflops_per_w: float | None
    tflops: float | None
    power_w: float | None
    nominal_gflops_per_w: float | None = None  # 理论算效: datasheet FLOPS over the same power
    low: float | None = None
    high: float | None = None
    assurance: str | None = None  # rack-meter | node-meters | device-counters
    status: str = "ok"  # ok | insufficient | missing
    reason: str | None = None  # why it is not scored, or how its uncertainty was taken
    rack_id: str | None = None
    ops: list = field(default_factory=list, repr=False)  # operating points of its devices (operating_point.py)

    @property
    def scored(self) -> bool:
        """Counts for A1.7: an ok figure whose power came from a rack or node meter."""
        return self.status == "ok" and self.assurance in CONFIRMING_ASSURANCE and self.gflops_per_w is not None


@dataclass
class ScopeSummary:
    """GFLOPS/W figures below rack scope (node, device): shown with their scope, never scored for A1.7."""

    scope: str
    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float


@dataclass
class PlanCheck:
    """The measured racks against a sample plan (`bench sample`)."""

    path: str
    level: int
    racks: list[str]
    plan_sha256: str
    nonce_sha256: str
    outside: list[str] = field(default_factory=list)  # measured racks the plan did not draw: not counted
    not_measured: list[str] = field(default_factory=list)  # drawn racks with no device measurement
    no_rack_efficiency: list[str] = field(default_factory=list)  # drawn racks with no scored rack figure
    unplaced: int = 0  # device measurements without a rack_id: not counted


@dataclass
class Claim:
    """One declared figure checked against a measurement."""

    id: str
    field: str
    zh: str
    en: str
    unit: str
    precision: str | None
    declared: Fraction | None
    figure: float | None
    low: float | None
    high: float | None
    source: str
    required: float | None  # declared × (1 − tolerance)
    status: str
    reason: str


@dataclass
class Verification:
    """`bench verify`'s result: the scorecard with measured figures, and the claims."""

    scorecard: Scorecard
    claims: list[Claim]
    models: list[ModelFigure]
    site: SiteFigures
    basis: str
    tolerance: Fraction
    min_efficiency: Fraction
    domestic_share: Fraction | None
    racks: list[EfficiencyFigure]  # rack-scope figures, scored or shown (see ``scored``)
    lower_scopes: list[ScopeSummary]
    smoke: list[str] = field(default_factory=list)  # not assessment-grade (smoke, or no grade): ignored
    excluded: list[str] = field(default_factory=list)  # assessment-grade but not trusted, with the reason
    unmatched: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    level: int = 1
    plan: PlanCheck | None = None
    not_counted: list[str] = field(default_factory=list)  # records not closed (running, interrupted …): listed, ignored
    repeats: list[str] = field(default_factory=list)  # devices with several records: each listed, the median counted
    operating_point: list[str] = field(default_factory=list)  # why the claims' records are not one operating point

    @property
    def all_confirmed(self) -> bool:
        return bool(self.claims) and all(c.status == CONFIRMED for c in self.claims)

    @property
    def verdict(self) -> str:
        """One overall verdict: NOT CONFIRMED when a claim is refuted, else INCONCLUSIVE when one
        (or all: no claim) cannot be decided, else CONFIRMED."""
        statuses = {c.status for c in self.claims}
        if NOT_CONFIRMED in statuses:
            return NOT_CONFIRMED
        return CONFIRMED if statuses == {CONFIRMED} else INCONCLUSIVE

    @property
    def unverified(self) -> list[str]:
        """Indicators the measurement decides (those with a ``claim`` in the rules) whose claim is
        INCONCLUSIVE: the scorecard holds their declared figure, so it cannot certify."""
        rules = self.scorecard.rules
        measured = {i.id for i in rules.indicators if i.claim} if rules is not None else {c.id for c in self.claims}
        return sorted(c.id for c in self.claims if c.status == INCONCLUSIVE and c.id in measured)

    @property
    def certification(self) -> str:
        """``yes`` only on measured figures; ``not verified`` when the scorecard certifies but a
        measured indicator is inconclusive; ``no`` when the scorecard does not certify."""
        if not self.scorecard.certified:
            return "no"
        return "not verified" if self.unverified else "yes"
