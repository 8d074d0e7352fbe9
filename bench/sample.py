"""Which racks of a site an assessment measures: a draw of whole racks from the assessor's nonce.

The site owns the machines and gains from good numbers, so it must not know in advance which
racks will be measured (or it could tune, cool or swap just those). The assessor brings a fresh
random nonce (``bench sample --challenge``) and racks are ordered by
``HMAC-SHA256(key=nonce, msg=rack name)``:

* the order depends only on the nonce and the names, never on the order of racks in the file
  (a site cannot put its best racks first), and
* without the nonce nobody can predict it, while anyone holding the nonce and the site file can
  recompute it (:meth:`SamplePlan.matches`), so the draw is checkable afterwards.

Racks are taken in that order until the sampling rules (``verify/rules/sampling.yaml``, through
:mod:`icb_bench.verify.sampling`) are met: first enough racks and nodes; then, for every device
model still short of its share, the next racks *in the same order* that hold that model
(stratified) — never a later rack in place of an earlier one for convenience.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from icb_bench.verify.declaration import _MISSING, Issue
from icb_bench.verify.sampling import SamplingRules, devices_required, load_sampling_rules, racks_required

from .site import Rack, Site, SiteError, _issues

__all__ = ["SCHEMA", "METHOD", "SampleError", "ModelSample", "SamplePlan", "rack_order", "draw_sample", "load_sample_plan"]

SCHEMA = "icb-bench/sample-plan/1"
#: how the racks were drawn, recorded in the plan (a later method gets a new name)
METHOD = "hmac-sha256(key=nonce, msg=rack name) ascending; then, per short model, the next racks holding it"
MAX_NONCE_CHARS = 1024
MAX_PLAN_BYTES = 16 * 2**20


class SampleError(SiteError):
    """A nonce, level or plan file that cannot be used (reported like a site-file problem, exit 2)."""


@dataclass(frozen=True)
class ModelSample:
    """One device model: how many the site has, how many the drawn racks hold, how many the rules require."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", strict=True)

    model: str
    site_devices: int
    sample_devices: int
    required: int


@dataclass(frozen=True)
class SamplePlan:
    """The racks an assessment measures, with what the rules required (JSON: :meth:`to_dict`)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", strict=True)

    schema: str
    site: str
    site_sha256: str | None  # of the site file's bytes: the plan is for exactly that file
    level: int
    nonce: str
    nonce_sha256: str
    rules_source: str
    method: str
    racks: tuple[str, ...]  # in draw order
    nodes: tuple[str, ...]  # the drawn racks' nodes, rack by rack
    models: tuple[ModelSample, ...]
    racks_required: int
    nodes_required: int
    site_racks: int
    site_nodes: int
    created_at: str
    plan_sha256: str = field(default="")  # over the canonical JSON of every other field

    def body(self) -> dict[str, Any]:
        """Every field but ``plan_sha256``."""
        d = self.to_dict()
        d.pop("plan_sha256")
        return d

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`body` (sorted keys, no spaces, UTF-8)."""
        text = json.dumps(self.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-shaped data (lists, not tuples)."""
        return _PLAN.dump_python(self, mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def covers(self, measured_racks: list[str] | set[str] | tuple[str, ...]) -> tuple[bool, str]:
        """Whether the measured racks are exactly the drawn ones, and why not.

        A drawn rack left out fails (the site could drop a bad rack); so does a rack measured
        beyond the draw, because figures over racks the site chose are no longer a random sample:
        leave such racks out of the figures rather than accept them."""
        measured = set(measured_racks)
        missing = [r for r in self.racks if r not in measured]
        extra = sorted(measured - set(self.racks))
        if missing:
            return False, f"drawn racks not measured: {', '.join(missing)}"
        if extra:
            return False, f"racks measured that were not drawn: {', '.join(extra)} (figures must use only the drawn racks)"
        return True, f"all {len(self.racks)} drawn racks measured"

    def matches(self, site: Site) -> tuple[bool, str]:
        """Whether drawing again on ``site`` with this plan's nonce and level gives the same racks."""
        if self.site_sha256 is not None and site.sha256 is not None and site.sha256 != self.site_sha256:
            return False, f"the site file changed since the draw (sha256 {site.sha256[:12]}… ≠ {self.site_sha256[:12]}…)"
        again = draw_sample(site, self.nonce, self.level, created_at=self.created_at)
        differ = [k for k in _REDRAWN if getattr(again, k) != getattr(self, k)]
        if differ:
            return False, f"drawing again with the plan's nonce gives other {', '.join(differ)}: the plan was not drawn from this site"
        return True, "the plan is the draw of this site with its nonce"


#: what a fresh draw on the same site file and nonce must reproduce
_REDRAWN = ("site", "racks", "nodes", "models", "racks_required", "nodes_required", "site_racks", "site_nodes")


def _rank(rack: Rack, key: bytes) -> tuple[bytes, str]:
    return hmac.new(key, rack.name.encode("utf-8"), hashlib.sha256).digest(), rack.name


def rack_order(racks: list[Rack], nonce: str) -> list[Rack]:
    """The racks ordered by HMAC-SHA256(key=nonce, msg=rack name) (name as a tie-break that never happens)."""
    key = nonce.encode("utf-8")
    return sorted(racks, key=lambda r: _rank(r, key))


def _check_nonce(nonce: Any) -> str:
    if not isinstance(nonce, str) or not nonce.strip():
        raise SampleError("--challenge", [Issue("nonce", nonce if isinstance(nonce, str) else _MISSING,
                                                "the assessor's random challenge, e.g. from `openssl rand -hex 16`")])
    if len(nonce) > MAX_NONCE_CHARS:
        raise SampleError("--challenge", [Issue("nonce", nonce, f"at most {MAX_NONCE_CHARS} characters")])
    return nonce


def draw_sample(site: Site, nonce: str, level: int | None = None, rules: SamplingRules | None = None,
                created_at: str | None = None) -> SamplePlan:
    """Draw whole racks of ``site`` from ``nonce`` so that the sampling rules of ``level`` hold (the
    site file's level, else the rules' default, for None). :class:`SampleError` for an empty nonce
    or a level the rules do not have."""
    from .inventory import utc_now

    _check_nonce(nonce)
    rules = rules or load_sampling_rules()
    lv = level if level is not None else (site.level if site.level is not None else rules.default_level)
    try:
        rules.level(lv)
    except ValueError as exc:
        raise SampleError("--level", [Issue("level", lv, f"a level of the sampling rules ({exc})")]) from None
    need_racks, need_nodes = racks_required([len(r.nodes) for r in site.racks], lv, rules)
    site_models = site.models()
    required = {m: devices_required(n, lv, rules) for m, n in site_models.items()}

    order = rack_order(site.racks, nonce)
    per_rack = [r.devices_by_model() for r in order]
    taken: list[int] = []
    have: Counter[str] = Counter()
    nodes = 0
    for i, rack in enumerate(order):
        if len(taken) >= need_racks and nodes >= need_nodes:
            break
        taken.append(i)
        have.update(per_rack[i])
        nodes += len(rack.nodes)
    short = {m for m, need in required.items() if have[m] < need}
    # stratified top-up: further down the same order, only racks holding a model still short
    for i in range((taken[-1] + 1) if taken else 0, len(order)):
        if not short:
            break
        if short.intersection(per_rack[i]):
            taken.append(i)
            have.update(per_rack[i])
            short = {m for m in short if have[m] < required[m]}

    drawn = [order[i] for i in taken]
    plan = SamplePlan(
        schema=SCHEMA,
        site=site.site,
        site_sha256=site.sha256,
        level=lv,
        nonce=nonce,
        nonce_sha256=hashlib.sha256(nonce.encode("utf-8")).hexdigest(),
        rules_source=rules.source,
        method=METHOD,
        racks=tuple(r.name for r in drawn),
        nodes=tuple(n.name for r in drawn for n in r.nodes),
        models=tuple(ModelSample(m, n, have[m], required[m]) for m, n in site_models.items()),
        racks_required=need_racks,
        nodes_required=need_nodes,
        site_racks=len(site.racks),
        site_nodes=sum(len(r.nodes) for r in site.racks),
        created_at=created_at or utc_now(),
    )
    return _sealed(plan)


def _sealed(plan: SamplePlan) -> SamplePlan:
    from dataclasses import replace

    return replace(plan, plan_sha256=plan.digest())


_PLAN = TypeAdapter(SamplePlan)


def _consistency(plan: SamplePlan) -> list[Issue]:
    """What a plan file must satisfy beyond its types (it is hashed, not signed: anyone can edit and
    re-hash it, so :meth:`SamplePlan.matches` against the site is the real check)."""
    issues: list[Issue] = []
    if plan.schema != SCHEMA:
        issues.append(Issue("schema", plan.schema, SCHEMA))
    if plan.nonce_sha256 != hashlib.sha256(plan.nonce.encode("utf-8")).hexdigest():
        issues.append(Issue("nonce_sha256", plan.nonce_sha256, "the SHA-256 of nonce"))
    if len(set(plan.racks)) != len(plan.racks) or not plan.racks:
        issues.append(Issue("racks", list(plan.racks), "one or more distinct rack names"))
    for i, m in enumerate(plan.models):
        if not 0 <= m.sample_devices <= m.site_devices or m.sample_devices < m.required:
            issues.append(Issue(f"models[{i}]", asdict(m), "0 ≤ required ≤ sample_devices ≤ site_devices"))
    if len(plan.racks) < plan.racks_required or len(plan.nodes) < plan.nodes_required:
        issues.append(Issue("racks", len(plan.racks), f"at least racks_required ({plan.racks_required}) racks and nodes_required ({plan.nodes_required}) nodes"))
    if plan.plan_sha256 != plan.digest():
        issues.append(Issue("plan_sha256", plan.plan_sha256, "the SHA-256 of the plan's other fields (the file was changed after the draw)"))
    return issues


def load_sample_plan(path: str | Path) -> SamplePlan:
    """Read and check a plan written by ``bench sample --out``; :class:`SampleError` with every issue."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise SampleError(str(p), [Issue("(file)", str(p), f"a readable sample-plan file ({exc.strerror or exc})")]) from None
    if len(raw) > MAX_PLAN_BYTES:
        raise SampleError(str(p), [Issue("(file)", _MISSING, "a sample plan of at most 16 MiB")])
    try:
        plan = _PLAN.validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise SampleError(str(p), [Issue("(file)", _MISSING, "a JSON sample plan written by `bench sample --out`")]) from None
        raise SampleError(str(p), _issues(exc)) from None
    issues = _consistency(plan)
    if issues:
        raise SampleError(str(p), issues)
    return plan
