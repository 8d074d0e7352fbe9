"""Site declarations (申报材料): YAML, safely loaded, into typed and validated pydantic models.

Field names follow ``declaration.example.yaml`` (a contract: ``schema: icb-declaration/1``).
Quantities are exact :class:`~fractions.Fraction` values in the canonical unit of their kind (see
:mod:`.units`): bandwidth Gbps, storage PB, compute PFLOPS, per-device compute TFLOPS,
efficiency GFLOPS/W, money CNY, shares as fractions.

:func:`load_declaration` reports every problem of a file at once as a :class:`DeclarationError`
whose ``issues`` each name the field path, the value and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from . import units

__all__ = [
    "Issue",
    "DeclarationError",
    "Declaration",
    "InventoryItem",
    "load_declaration",
    "parse_declaration",
    "field_exists",
    "get_field",
    "SCHEMA",
    "TIERS",
]

SCHEMA = "icb-declaration/1"
TIERS = ("economic_region", "hub", "provincial", "municipal", "industry")


@dataclass(frozen=True)
class Issue:
    """One problem of a declaration: where, what was there, what was expected."""

    path: str
    value: Any
    expected: str

    def __str__(self) -> str:
        shown = "(missing)" if self.value is _MISSING else _repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.path}: {shown} — expected {self.expected}"


_MISSING = type("Missing", (), {"__repr__": lambda self: "(missing)"})()


def _repr(v: Any) -> str:
    """repr that never fails: an integer beyond Python's digit limit says how big it is instead."""
    try:
        return repr(v)
    except ValueError:
        return f"<a number of more than {4300} digits>"


class DeclarationError(Exception):
    """A declaration that cannot be scored; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[Issue]):
        self.source = source
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: {len(self.issues)} problem{'s' if len(self.issues) != 1 else ''} in the declaration"
        return "\n".join([head, *(f"  - {i}" for i in self.issues)])


# ----------------------------------------------------------------------------- value types


def _unit(kind: str) -> BeforeValidator:
    def parse(v: Any) -> Fraction:
        try:
            return units.parse(kind, v)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(parse)


def _count(v: Any) -> int:
    try:
        return int(units.parse("count", v))
    except units.UnitError as exc:
        raise ValueError(str(exc)) from None


def _text(v: Any) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
        raise ValueError("text")
    return str(v)


def _level(*choices: str) -> BeforeValidator:
    """An enumeration read case-insensitively ("a" is grade A); YAML's bare ``no`` is not 'none'."""

    def parse(v: Any) -> str:
        if isinstance(v, str):
            for c in choices:
                if v.strip().lower() == c.lower():
                    return c
        raise ValueError("one of " + " | ".join(choices))

    return BeforeValidator(parse)


Bandwidth = Annotated[Fraction, _unit("bandwidth")]
Storage = Annotated[Fraction, _unit("storage")]
Compute = Annotated[Fraction, _unit("compute")]
DeviceCompute = Annotated[Fraction, _unit("device")]
Efficiency = Annotated[Fraction, _unit("efficiency")]
Money = Annotated[Fraction, _unit("money")]
Share = Annotated[Fraction, _unit("share")]
Number = Annotated[Fraction, _unit("number")]
Count = Annotated[int, BeforeValidator(_count)]
Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, Field(strict=True)]


def _known_spec(v: str) -> str:
    from .rules import available_specs  # local: rules imports this module

    if v not in available_specs():
        raise ValueError("a specification edition this version has rules for: " + ", ".join(sorted(available_specs())))
    return v


class _Model(BaseModel):
    # Unknown keys are kept (a later format may add fields) and reported as warnings.
    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, frozen=True)


class Base(_Model):
    name: Text
    tier: Literal["economic_region", "hub", "provincial", "municipal", "industry"]
    city: Text | None = None
    operator: Text | None = None


class Virtualization(_Model):
    compute: Flag
    storage: Flag
    network: Flag


class IndustrialValue(_Model):
    """A1 产业价值评估."""

    policy_compliant: Flag
    development_plan: Flag
    operation_plan: Flag
    enterprises_served: Count
    industrial_compute_share: Share
    virtualization: Virtualization
    rack_efficiency: Efficiency | None = None  # declared; a rack-scope measurement replaces it
    public_service: Flag
    rnd_spend: Money
    research_level: Annotated[str, _level("national", "provincial", "municipal", "none")]


class Technical(_Model):
    """A2 技术能力评测."""

    machine_room_grade: Annotated[str, _level("A", "B", "C", "none")]
    egress_bandwidth: Bandwidth
    backbone_link: Annotated[str, _level("provincial", "municipal", "none")]
    storage_capacity: Storage
    racks_total: Count
    racks_in_use: Count
    fp16_peak: Compute | None = None  # declared; measurement verifies it
    energy_metering: Flag
    monitoring_24x7: Flag
    fault_detection_rate: Share
    security_level: Annotated[int, BeforeValidator(_count), Field(le=5)]
    security_assessed: Flag = False
    dr_level: Annotated[int, BeforeValidator(_count), Field(le=6)]
    pue: Number
    rer: Share
    domestic_compute_share: Share | None = None  # declared; the inventory recomputes it
    domestic_consumed_share: Share



class DataAccess(_Model):
    """A3 数据接入要求."""

    cloud_platform: Flag
    push_to_central: Flag
    collect_basic: Flag
    collect_compute: Flag
    collect_security: Flag
    api_compliant: Flag
    daily_push_window: Text
    adhoc_push: Flag


class InventoryItem(_Model):
    """Accelerators of one model that the site declares."""

    model: Text
    count: Annotated[int, BeforeValidator(_count), Field(ge=1, le=10**9)]
    fp16_tflops: DeviceCompute | None = None  # declared dense FP16 per device
    domestic: Flag | None = None  # None: from the datasheet table's vendor
    vendor: Text | None = None


class Declaration(_Model):
    """A whole site declaration."""

    schema_: Literal["icb-declaration/1"] = Field(alias="schema")
    spec: Annotated[str, BeforeValidator(_text), AfterValidator(_known_spec)]
    base: Base
    industrial_value: IndustrialValue
    technical: Technical
    data_access: DataAccess
    inventory: list[InventoryItem] = Field(default_factory=list)

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, frozen=True, populate_by_name=True)



class _Contradiction(ValueError):
    """A cross-field problem raised inside a model validator; carries the offending sub-field."""

    def __init__(self, field: str, value: Any, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(expected)


# ------------------------------------------------------------------------------ field access


_SECTIONS = {
    "base": Base,
    "industrial_value": IndustrialValue,
    "technical": Technical,
    "data_access": DataAccess,
}


def field_exists(path: str) -> bool:
    """Whether ``path`` (``technical.pue``) names a field of the declaration model."""
    model: Any = Declaration
    for part in path.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        ann = fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return True


def get_field(decl: Declaration, path: str) -> Any:
    """The value at ``path`` (``industrial_value.virtualization.compute``)."""
    obj: Any = decl
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


# -------------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML would silently keep the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}", key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

#: an integer literal longer than this is refused before conversion (Python refuses > 4300 digits
#: with a ValueError; no declared figure needs more than a few dozen)
MAX_INT_DIGITS = 50
#: a declaration is a page of YAML; a bigger file is refused before it is read
MAX_DECLARATION_BYTES = 1 << 20


def _construct_int(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> int:
    text = str(node.value)
    if sum(c.isdigit() for c in text) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of more than {MAX_INT_DIGITS} digits", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _compose_node(loader: _UniqueKeyLoader, parent: Any, index: Any) -> Any:
    """Aliases (``*name``) refused: a declaration needs none, and nested aliases expand exponentially."""
    if loader.check_event(yaml.events.AliasEvent):
        event = loader.peek_event()
        raise yaml.composer.ComposerError(None, None, f"an alias (*{event.anchor}); a declaration uses none",
                                          event.start_mark)
    return yaml.composer.Composer.compose_node(loader, parent, index)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_UniqueKeyLoader.compose_node = _compose_node  # type: ignore[method-assign]

_EXPECTED_BY_TYPE = {
    "missing": "a value (required field)",
    "bool_type": "true or false",
    "literal_error": None,  # pydantic's own message lists the choices
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "text",
    "less_than_equal": None,
    "greater_than_equal": None,
    "too_short": None,
}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _issues(exc: ValidationError, raw: Any) -> list[Issue]:
    issues: list[Issue] = []
    for err in exc.errors():
        loc = tuple("schema" if p == "schema_" else p for p in err["loc"])
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _Contradiction):
            issues.append(Issue(_path(loc + (cause.field,)), _plain(cause.value), cause.expected))
            continue
        if err["type"] == "value_error" and cause is not None:
            expected = str(cause)
        else:
            expected = _EXPECTED_BY_TYPE.get(err["type"]) or err["msg"].replace("Input should be ", "")
        value = _MISSING if err["type"] == "missing" else _plain(err.get("input"))
        issues.append(Issue(_path(loc), value, expected))
    return issues


def _plain(v: Any) -> Any:
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else float(v)
    return v


def _extras(model: BaseModel, prefix: str = "") -> list[str]:
    """Keys the model does not know, as field paths (warned about, not errors)."""
    out = [f"{prefix}{k}" for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        v = getattr(model, name)
        if isinstance(v, BaseModel):
            out += _extras(v, f"{prefix}{name}.")
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, BaseModel):
                    out += _extras(item, f"{prefix}{name}[{i}].")
    return out


def _lenient(data: Any, path: str, kind: str) -> Fraction | None:
    """The value at ``path`` of raw data parsed as ``kind``, or None when absent or malformed."""
    obj = data
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    try:
        return units.parse(kind, obj)
    except (units.UnitError, ValueError, TypeError):
        return None


def _contradictions(data: dict[str, Any]) -> list[Issue]:
    """Cross-field checks on the raw data, so that they are reported beside field errors."""
    issues: list[Issue] = []
    in_use = _lenient(data, "technical.racks_in_use", "count")
    total = _lenient(data, "technical.racks_total", "count")
    if in_use is not None and total is not None and in_use > total:
        issues.append(
            Issue("technical.racks_in_use", int(in_use), f"at most racks_total ({int(total)}): more racks in use than usable")
        )
    devices = _inventory_devices(data)
    if devices:
        if total == 0:
            issues.append(Issue("technical.racks_total", 0, f"at least 1: the inventory declares {devices} accelerators, "
                                                            "which need racks"))
    return issues + _implausible(data)


def _inventory_devices(data: dict[str, Any]) -> int:
    items = data.get("inventory")
    if not isinstance(items, list):
        return 0
    counts = (_lenient(it, "count", "count") if isinstance(it, dict) else None for it in items)
    return int(sum(c for c in counts if c is not None))


def _implausible(data: dict[str, Any]) -> list[Issue]:
    """Figures outside the physically possible (``rules/plausibility.yaml``)."""
    from .rules import load_plausibility  # local: rules imports this module

    issues: list[Issue] = []
    for path, bound in load_plausibility().declaration.items():
        head, _, rest = path.partition(".")
        if head == "inventory":
            items = data.get("inventory")
            located = [(f"inventory[{i}].{rest}", it, rest) for i, it in enumerate(items)] if isinstance(items, list) else []
        else:
            located = [(path, data, path)]
        for where, obj, sub in located:
            value = _lenient(obj, sub, bound.kind)
            problem = None if value is None else bound.problem(value)
            if problem:
                issues.append(Issue(where, _plain(value), problem))
    return issues


def parse_declaration(data: Any, source: str = "<declaration>") -> Declaration:
    """Validate already-parsed YAML/JSON data; raises :class:`DeclarationError` with every issue."""
    if not isinstance(data, dict):
        raise DeclarationError(source, [Issue("(top level)", _short(data), "a mapping of the declaration's sections")])
    issues: list[Issue] = []
    decl: Declaration | None = None
    try:
        decl = Declaration.model_validate(data)
    except ValidationError as exc:
        issues = _issues(exc, data)
    issues += _contradictions(data)
    if issues or decl is None:
        raise DeclarationError(source, issues)
    return decl


def _short(v: Any) -> Any:
    return v if not isinstance(v, (str, bytes)) or len(v) < 60 else v[:57] + "..."


def yaml_issue(exc: yaml.YAMLError, expected: str = "valid YAML") -> Issue:
    """A YAML syntax error as an issue at its line and column."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
    problem = getattr(exc, "problem", None) or str(exc)
    return Issue(where, _MISSING, f"{expected} ({problem})")


def load_declaration(path: str | Path) -> Declaration:
    """Read and validate a declaration file (YAML, safe loading, duplicate keys rejected)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_DECLARATION_BYTES or not p.is_file():
            what = "not a regular file" if not p.is_file() else f"more than {MAX_DECLARATION_BYTES} bytes"
            raise DeclarationError(str(p), [Issue("(file)", str(p), f"a declaration file of at most {MAX_DECLARATION_BYTES} "
                                                                     f"bytes ({what})")])
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeclarationError(str(p), [Issue("(file)", str(p), "an existing declaration file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeclarationError(str(p), [Issue("(file)", str(p), f"a readable UTF-8 text file ({exc})")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DeclarationError(str(p), [yaml_issue(exc)]) from None
    except RecursionError:
        raise DeclarationError(str(p), [Issue("(file)", _MISSING, "YAML nested less deeply")]) from None
    return parse_declaration(data, str(p))


def unknown_fields(decl: Declaration) -> list[str]:
    """Field paths present in the file but not in this schema version (ignored when scoring)."""
    return _extras(decl)
