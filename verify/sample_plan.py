"""The sample plan `bench sample` writes (``icb-bench/sample-plan/1``), as `bench verify` reads it.

Read here with a small pydantic model rather than by importing ``bench/sample.py``: verify stays
a pure reader of files. Only the keys verify needs are checked (others are kept, unused), and the
seal: ``plan_sha256`` over the other fields, ``nonce_sha256`` of ``nonce`` where it is given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["SCHEMA", "SamplePlan", "SamplePlanError", "load_sample_plan", "plan_digest"]

SCHEMA = "icb-bench/sample-plan/1"


class SamplePlanError(ValueError):
    """A sample plan that cannot be read or is not one (names the field, the value, what was expected)."""


class SamplePlan(BaseModel):
    """The racks drawn for measurement, at which level, and the plan's fingerprints."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_: str = Field(alias="schema")
    racks: list[str] = Field(min_length=1)
    level: int
    nonce_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    plan_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: str) -> str:
        if v != SCHEMA:
            raise ValueError(f"expected {SCHEMA!r}")
        return v

    @field_validator("racks")
    @classmethod
    def _racks(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a rack is named twice")
        return v


def load_sample_plan(path: str | Path) -> SamplePlan:
    """Read and check a sample plan; :class:`SamplePlanError` names the first bad field."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SamplePlanError(f"{p}: unreadable sample plan ({exc})") from exc
    try:
        plan = SamplePlan.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "an object"
        raise SamplePlanError(f"{p}: {where} is {shown[:80]}: {err['msg']}") from exc
    digest = plan_digest(data)
    if digest != plan.plan_sha256:
        raise SamplePlanError(f"{p}: plan_sha256 is {plan.plan_sha256[:12]}…, expected the SHA-256 of the plan's other "
                              f"fields ({digest[:12]}…): the file was changed after the draw")
    nonce = data.get("nonce")
    if isinstance(nonce, str) and hashlib.sha256(nonce.encode("utf-8")).hexdigest() != plan.nonce_sha256:
        raise SamplePlanError(f"{p}: nonce_sha256 is {plan.nonce_sha256[:12]}…, expected the SHA-256 of nonce")
    return plan


def plan_digest(data: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of every field but ``plan_sha256``,
    as `bench sample` seals a plan."""
    body = {k: v for k, v in data.items() if k != "plan_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
