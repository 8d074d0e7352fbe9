"""The site file (``schema: icb-bench/site/1``): racks, their nodes and devices, and the meters.

A site file says what a site holds (racks → nodes → devices of one model each) and where the
power of each rack (PDUs, meter logs) and, optionally, each node (its BMC) can be read. It is
loaded into strict pydantic models (unknown keys are errors: a misspelt ``acuracy`` must not be
ignored) and every problem of a file is reported at once, one line each, naming the field path,
the value and what was expected.

Secrets never live in the file: a source names an environment variable (``password_env``) or a
file (``password_file``) instead; a literal ``password:`` is refused without echoing it.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields as dc_fields
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from icb_bench.verify import units

from .bounded_read import MissingFile, UnreadableFile, read_regular_file
from icb_bench.verify.declaration import _MISSING, Issue, _construct_mapping, _Contradiction, _path, _plain, _UniqueKeyLoader, yaml_issue

if TYPE_CHECKING:
    from .power.base import PowerReader

__all__ = [
    "SCHEMA",
    "MAX_SITE_BYTES",
    "SiteError",
    "SecretRef",
    "RedfishSource",
    "SnmpSource",
    "MeterLogSource",
    "DcmiSource",
    "PduSource",
    "BmcSource",
    "Devices",
    "Node",
    "Rack",
    "Site",
    "load_site",
    "parse_site",
    "resolve_secret",
    "open_reader",
]

SCHEMA = "icb-bench/site/1"
#: a site file larger than this is refused before it is parsed (a real site of 10,000 racks is ~5 MiB)
MAX_SITE_BYTES = 16 * 2**20
#: a secret file larger than this is not a password
MAX_SECRET_BYTES = 64 * 2**10
#: bounds of a site file's values: beyond them a value is a typo, a unit slip or an attack, not a site
BOUNDS: dict[str, int] = {
    "devices_per_node": 64,  # the densest nodes hold 16 accelerators (32 dies): 64 leaves room
    "nodes_per_rack": 256,  # a 48U rack of the smallest sleds holds ~100
    "meters_per_rack": 16,  # several feeds and phases of one rack
    "snmp_index": 10**6,  # an outlet or inlet index of a PDU
    "oid_arcs": 128,  # RFC 2578 §3.5: at most 128 sub-identifiers
    "oid_arc": 2**32 - 1,  # each an unsigned 32-bit number
    "scale_w_per_unit": 10**6,  # watts per unit of an OID's value: MW units at most
    "path_chars": 4096,  # PATH_MAX
    "host_chars": 253,  # the longest DNS name
    "text_chars": 4096,  # a URL, a user name
}


class SiteError(Exception):
    """A site file (or a secret it names) that cannot be used; ``issues`` lists every problem.

    The CLI prints :meth:`render` (one line per problem, ``FILE: field: value — expected ...``)
    and exits with code 2.
    """

    def __init__(self, source: str, issues: list[Issue]):
        self.source = source
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        # one line per issue, whatever a value or a parser's message holds (libyaml's span lines)
        return "\n".join(" ".join(f"{self.source}: {i}".split()) for i in self.issues)


class _Hidden:
    """Stands in for a value that must not be printed (a secret written into the file)."""

    def __repr__(self) -> str:
        return "(value not shown)"


_HIDDEN = _Hidden()
_SECRET_REFUSED = "is refused: a secret is never written in the site file"


# ----------------------------------------------------------------------------- value types


def _accuracy(v: Any) -> Fraction:
    try:
        share = units.parse("share", v)
    except units.UnitError as exc:
        raise ValueError(f"a meter accuracy relative to the reading, such as '1%' or 0.01 ({exc})") from None
    if not 0 < share < 1:
        raise ValueError("a meter accuracy above 0 and below 100%, such as '1%' or 0.01")
    return share


def _positive_int(limit: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        # YAML's `true` is an int to Python, and "8" is text: neither is a count
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= limit:
            raise ValueError(f"a whole number from 1 to {limit}")
        return v

    return check


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or len(v) > BOUNDS["text_chars"] or "\x00" in v:
        raise ValueError(f"non-empty text of at most {BOUNDS['text_chars']} characters")
    return v


def _name(v: Any) -> str:
    # names are used in file names and HMAC messages: no surrounding blanks, no control characters
    if not isinstance(v, str) or not v or v != v.strip() or any(ord(c) < 32 for c in v) or len(v) > 200:
        raise ValueError("a name of 1 to 200 characters without surrounding spaces or control characters")
    return v


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(v: Any) -> str:
    if not isinstance(v, str) or not _ENV_NAME.fullmatch(v):
        raise ValueError("the name of an environment variable, such as ICB_PDU_PASSWORD")
    return v


def _refuse_secret(v: Any) -> None:
    raise ValueError(_SECRET_REFUSED)


Accuracy = Annotated[Fraction, BeforeValidator(_accuracy)]
Text = Annotated[str, BeforeValidator(_text)]
Name = Annotated[str, BeforeValidator(_name)]
EnvName = Annotated[str, BeforeValidator(_env_name)]
def _path_text(v: Any) -> str:
    # a file name: no control characters (a NUL would reach open())
    if not isinstance(v, str) or not v.strip() or len(v) > BOUNDS["path_chars"] or any(ord(c) < 32 for c in v):
        raise ValueError(f"a file path of 1 to {BOUNDS['path_chars']} characters without control characters")
    return v


_HOST = re.compile(r"[A-Za-z0-9_.:%-]+")


def _host(v: Any) -> str:
    if not isinstance(v, str) or len(v) > BOUNDS["host_chars"] or not _HOST.fullmatch(v):
        raise ValueError("a host name or IP address (letters, digits, '.', '-', ':'), such as pdu-r01.example or ::1")
    return v


def _zone(v: Any) -> str:
    # checked here, not only when the log is read after the run: a bad tz must fail before anything is measured
    from .power.meterlog import MeterLogError, parse_zone

    text = _text(v)
    try:
        parse_zone("tz", text)
    except MeterLogError:
        raise ValueError("'UTC', an offset such as '+08:00', or an IANA zone such as 'Asia/Shanghai'") from None
    return text


Port = Annotated[int, BeforeValidator(_positive_int(65535))]
Count = Annotated[int, BeforeValidator(_positive_int(BOUNDS["devices_per_node"]))]
Index = Annotated[int, BeforeValidator(_positive_int(BOUNDS["snmp_index"]))]
PathText = Annotated[str, BeforeValidator(_path_text)]
Host = Annotated[str, BeforeValidator(_host)]
Zone = Annotated[str, BeforeValidator(_zone)]
Flag = Annotated[bool, Field(strict=True)]
#: a field that exists only to refuse a secret written into the file with a clear message
Refused = Annotated[None, BeforeValidator(_refuse_secret), Field(exclude=True, repr=False)]


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is: an environment variable or a file (relative paths: to the site file)."""

    field: str  # "password", "community", "auth_key", "priv_key"
    env: str | None = None
    file: str | None = None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _Source(_Strict):
    """A meter. Subclasses name their secrets in ``_SECRETS``; each is given by ``<name>_env`` or ``<name>_file``."""

    _SECRETS: ClassVar[tuple[str, ...]] = ()
    accuracy: Accuracy | None = None

    @property
    def accuracy_rel(self) -> float | None:
        """The stated relative accuracy of the meter (None: not stated)."""
        return None if self.accuracy is None else float(self.accuracy)

    def secret(self, name: str) -> SecretRef | None:
        """Where secret ``name`` is to be read from, or None when the file names none."""
        env, file = getattr(self, f"{name}_env"), getattr(self, f"{name}_file")
        return None if env is None and file is None else SecretRef(name, env, file)

    @model_validator(mode="after")
    def _one_place_per_secret(self) -> "_Source":
        for name in self._SECRETS:
            if getattr(self, f"{name}_env") is not None and getattr(self, f"{name}_file") is not None:
                raise _Contradiction(f"{name}_file", getattr(self, f"{name}_file"), f"only one of {name}_env and {name}_file")
        return self

    def label(self) -> str:
        """A short human name of the source (no secrets), used in messages."""
        return str(getattr(self, "type", "source"))


def _redfish_params() -> dict[str, Callable[[str], Any]]:
    # the query parameters `--node-power` accepts, with the same meaning (one table, in bench.power)
    from .power import _SCOPE_PARAMS

    return {k: v for k, v in _SCOPE_PARAMS.items() if k != "insecure"}  # `insecure` is a field here


class RedfishSource(_Source):
    """A rack PDU or a node's chassis read over Redfish (DMTF), as ``bench run --node-power`` does."""

    _SECRETS = ("password",)
    type: Literal["redfish"]
    url: Text
    username: Text | None = None
    password_env: EnvName | None = None
    password_file: PathText | None = None
    password: Refused = None
    insecure: Flag = False

    @model_validator(mode="after")
    def _check_url(self) -> "RedfishSource":
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 - parses the port, which raises on a bad one
        except ValueError as exc:
            raise _Contradiction("url", self.url, f"a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Contradiction("url", self.url, "https://host[:port]/redfish/v1/... (scheme and host are required)")
        if parts.password is not None:
            raise _Contradiction("url", _HIDDEN, f"a URL without a password (use password_env or password_file); a password in the URL {_SECRET_REFUSED}")
        known = _redfish_params()
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in known:
                raise _Contradiction("url", self.url, f"query parameters among {', '.join(known)} (not {key!r})")
            try:
                known[key](value)
            except ValueError:
                raise _Contradiction("url", self.url, f"{key}= a finite, non-negative number (not {value!r})") from None
        return self

    def reader_options(self) -> tuple[str, dict[str, Any]]:
        """(the URL without its query, the reader's keyword options from the query)."""
        parts = urlsplit(self.url)
        known = _redfish_params()
        opts = {k: known[k](v) for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), opts

    def label(self) -> str:
        return f"redfish {self.reader_options()[0]}"


_SNMP_AUTH = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
_SNMP_PRIV = ("DES", "3DES", "AES", "AES128", "AES192", "AES256")
_OID = re.compile(r"\.?[0-9]+(\.[0-9]+)+")


def _choice(*choices: str) -> BeforeValidator:
    def parse(v: Any) -> str:
        if isinstance(v, str) and v.upper() in choices:
            return v.upper()
        raise ValueError("one of " + " | ".join(choices))

    return BeforeValidator(parse)


def _oid(v: Any) -> str:
    expected = f"a numeric OID such as 1.3.6.1.4.1.318.1.1.12.1.16.0 (at most {BOUNDS['oid_arcs']} numbers below 2**32)"
    # the length is checked before the pattern: no regex work on a megabyte of digits
    if not isinstance(v, str) or len(v) > BOUNDS["oid_arcs"] * 11 or not _OID.fullmatch(v):
        raise ValueError(expected)
    arcs = v.lstrip(".").split(".")
    if len(arcs) > BOUNDS["oid_arcs"] or any(len(a) > 10 or int(a) > BOUNDS["oid_arc"] for a in arcs):
        raise ValueError(expected)
    return v.lstrip(".")


def _scale(v: Any) -> float:
    top = BOUNDS["scale_w_per_unit"]
    # compared before float(): an int of 400 digits does not fit a float
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= top or (isinstance(v, float) and not math.isfinite(v)):
        raise ValueError(f"a positive number of watts per unit of the OID's value, at most {top}")
    return float(v)


class SnmpSource(_Source):
    """A rack PDU read over SNMP (v2c community or v3 user security)."""

    _SECRETS = ("community", "auth_key", "priv_key")
    type: Literal["snmp"]
    host: Host
    port: Port = 161
    version: Literal["2c", "3"] = "2c"
    community_env: EnvName | None = None
    community_file: PathText | None = None
    community: Refused = None
    user: Text | None = None
    auth_protocol: Annotated[str, _choice(*_SNMP_AUTH)] | None = None
    auth_key_env: EnvName | None = None
    auth_key_file: PathText | None = None
    auth_key: Refused = None
    priv_protocol: Annotated[str, _choice(*_SNMP_PRIV)] | None = None
    priv_key_env: EnvName | None = None
    priv_key_file: PathText | None = None
    priv_key: Refused = None
    profile: Literal["apc-rpdu2", "raritan-pdu2", "custom"]
    index: Index = 1
    oid: Annotated[str, BeforeValidator(_oid)] | None = None
    scale: Annotated[float, BeforeValidator(_scale)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SnmpSource":
        if self.profile == "custom":
            for f in ("oid", "scale"):
                if getattr(self, f) is None:
                    raise _Contradiction(f, _MISSING, f"{f} for profile 'custom' (the active-power OID and watts per unit)")
        else:
            for f in ("oid", "scale"):
                if getattr(self, f) is not None:
                    raise _Contradiction(f, getattr(self, f), f"null: {f} is only for profile 'custom' ({self.profile} knows its OIDs)")
        if self.version == "2c":
            if self.secret("community") is None:
                raise _Contradiction("community_env", _MISSING, "community_env or community_file for SNMP v2c")
            for f in ("user", "auth_protocol", "auth_key_env", "auth_key_file", "priv_protocol", "priv_key_env", "priv_key_file"):
                if getattr(self, f) is not None:
                    raise _Contradiction(f, getattr(self, f), "null: it is an SNMP v3 field and version is '2c'")
        else:
            if self.user is None:
                raise _Contradiction("user", _MISSING, "the SNMP v3 user name")
            if self.secret("community") is not None:
                raise _Contradiction("community_env", self.community_env or self.community_file, "null: a community is SNMP v2c and version is '3'")
            if (self.auth_protocol is None) != (self.secret("auth_key") is None):
                raise _Contradiction("auth_protocol", self.auth_protocol, "auth_protocol together with auth_key_env or auth_key_file")
            if (self.priv_protocol is None) != (self.secret("priv_key") is None):
                raise _Contradiction("priv_protocol", self.priv_protocol, "priv_protocol together with priv_key_env or priv_key_file")
            if self.priv_protocol is not None and self.auth_protocol is None:
                raise _Contradiction("priv_protocol", self.priv_protocol, "an auth_protocol as well (SNMP v3 has no privacy without authentication)")
        return self

    def label(self) -> str:
        return f"snmp {self.host}:{self.port} {self.profile}#{self.index}"


class MeterLogSource(_Source):
    """Readings logged by a power analyser or read off a display, loaded after the run."""

    type: Literal["meter-log"]
    path: PathText  # relative to the site file
    format: Literal["csv", "ptdaemon"] = "csv"
    tz: Zone | None = None  # the log's time zone where its timestamps carry none (PTDaemon: always)

    def label(self) -> str:
        return f"meter-log {self.path}"


class DcmiSource(_Source):
    """A node's BMC read with ``ipmitool dcmi power reading``."""

    _SECRETS = ("password",)
    type: Literal["dcmi"]
    host: Host
    port: Port = 623
    username: Text | None = None
    password_env: EnvName | None = None
    password_file: PathText | None = None
    password: Refused = None
    interface: Literal["lanplus", "lan"] = "lanplus"

    def label(self) -> str:
        return f"dcmi {self.host}:{self.port}"


PduSource = Annotated[Union[RedfishSource, SnmpSource, MeterLogSource], Field(discriminator="type")]
BmcSource = Annotated[Union[RedfishSource, DcmiSource], Field(discriminator="type")]
_TAGS = ("redfish", "snmp", "meter-log", "dcmi")


class Devices(_Strict):
    """The accelerators of a node: one model, how many."""

    model: Name
    count: Count


class Node(_Strict):
    name: Name
    devices: Devices
    bmc: BmcSource | None = None


class Rack(_Strict):
    name: Name
    pdus: Annotated[list[PduSource], Field(max_length=BOUNDS["meters_per_rack"])] = Field(default_factory=list)
    nodes: Annotated[list[Node], Field(min_length=1, max_length=BOUNDS["nodes_per_rack"])]

    def devices_by_model(self) -> Counter[str]:
        """Model → number of devices in this rack."""
        c: Counter[str] = Counter()
        for n in self.nodes:
            c[n.devices.model] += n.devices.count
        return c


def _known_level(v: Any) -> int:
    from icb_bench.verify.sampling import load_sampling_rules

    levels = sorted(load_sampling_rules().levels)
    if isinstance(v, bool) or not isinstance(v, int) or v not in levels:
        raise ValueError("a sampling level of verify/rules/sampling.yaml: " + " | ".join(map(str, levels)))
    return int(v)


class Site(_Strict):
    """A whole site file."""

    schema_: Literal["icb-bench/site/1"] = Field(alias="schema")
    site: Name
    level: Annotated[int, BeforeValidator(_known_level)] | None = None
    racks: Annotated[list[Rack], Field(min_length=1)]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True)
    #: the folder relative paths (meter logs, secret files) are read from
    _base_dir: Path = PrivateAttr(default_factory=Path)
    #: SHA-256 of the file's bytes (None when parsed from data)
    _sha256: str | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def sha256(self) -> str | None:
        return self._sha256

    def node_index(self) -> dict[str, tuple[Rack, Node]]:
        """Node name → (its rack, the node)."""
        return {n.name: (r, n) for r in self.racks for n in r.nodes}

    def models(self) -> dict[str, int]:
        """Device model → number of devices of that model on the site (in order of first appearance)."""
        c: Counter[str] = Counter()
        for r in self.racks:
            c.update(r.devices_by_model())
        return dict(c)


# -------------------------------------------------------------------------------- errors

_EXPECTED_BY_TYPE = {
    "missing": "a value (required field)",
    "extra_forbidden": "no such field in this format (misspelt? unknown keys are errors)",
    "unexpected_keyword_argument": "no such field in this format (misspelt? unknown keys are errors)",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "text",
    "union_tag_invalid": "a type among: {expected_tags}",
    "union_tag_not_found": "a mapping with a `type` field",
    "too_short": "at least one entry",
    "too_long": "at most {max_length} entries",
}


_SECRETISH = re.compile(r"pass|secret|key|token|community", re.I)


def _issues(exc: ValidationError) -> list[Issue]:
    out: list[Issue] = []
    for err in exc.errors():
        # a tagged union puts the tag in the location (pdus.0.redfish.url): drop it
        loc = tuple("schema" if p == "schema_" else p for p in err["loc"] if p not in _TAGS)
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        value: Any = _MISSING if err["type"] == "missing" else _plain(err.get("input"))
        if err["type"] == "union_tag_invalid":
            loc, value = loc + ("type",), ctx.get("tag")
        if isinstance(cause, _Contradiction):
            loc, value, expected = loc + (cause.field,), _plain(cause.value), cause.expected
        elif err["type"] == "value_error" and cause is not None:
            expected = str(cause)
        elif err["type"] in _EXPECTED_BY_TYPE:
            expected = _EXPECTED_BY_TYPE[err["type"]].format(**{k: str(v) for k, v in ctx.items()})
        else:
            expected = err["msg"].replace("Input should be ", "")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument") and _SECRETISH.search(str(loc[-1])):
            value = _HIDDEN  # an unknown key that looks like a secret: do not echo it
        if expected == _SECRET_REFUSED or (loc and str(loc[-1]) in ("password", "community", "auth_key", "priv_key")):
            value = _HIDDEN
            expected = f"no {loc[-1]}: a secret is never written in the site file; name where it is with {loc[-1]}_env (an environment variable) or {loc[-1]}_file (a file)"
        out.append(Issue(_path(loc), value, expected))
    return out


def _duplicates(data: dict[str, Any]) -> list[Issue]:
    """Rack names and node names must each be unique across the site (checked on the raw data, so
    the problems are reported beside field errors)."""
    issues: list[Issue] = []
    racks = data.get("racks")
    if not isinstance(racks, list):
        return issues
    seen_rack: dict[str, int] = {}
    seen_node: dict[str, str] = {}
    for i, r in enumerate(racks):
        if not isinstance(r, dict):
            continue
        name = r.get("name")
        if isinstance(name, str):
            if name in seen_rack:
                issues.append(Issue(f"racks[{i}].name", name, f"a rack name not used before (racks[{seen_rack[name]}] has it)"))
            seen_rack.setdefault(name, i)
        nodes = r.get("nodes")
        for j, n in enumerate(nodes if isinstance(nodes, list) else []):
            nname = n.get("name") if isinstance(n, dict) else None
            if isinstance(nname, str):
                where = f"racks[{i}].nodes[{j}]"
                if nname in seen_node:
                    issues.append(Issue(f"{where}.name", nname, f"a node name unique across the site ({seen_node[nname]} has it)"))
                seen_node.setdefault(nname, where)
    return issues


# -------------------------------------------------------------------------------- loading


def _refuse_alias_or_tag(event: Any) -> None:
    """A site file has no use for aliases or tags: refusing aliases rules out "billion laughs"
    expansion, and refusing tags keeps every value a plain YAML type."""
    if isinstance(event, yaml.AliasEvent):
        raise yaml.composer.ComposerError(None, None, f"an alias (*{event.anchor}): aliases are refused in a site file", event.start_mark)
    tag = getattr(event, "tag", None)
    if tag is not None:
        raise yaml.composer.ComposerError(None, None, f"a tag ({tag}): tags are refused in a site file", event.start_mark)


class _SiteLoader(_UniqueKeyLoader):
    """The declaration loader (safe, duplicate keys refused) that also refuses aliases and tags."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        _refuse_alias_or_tag(self.peek_event())
        return super().compose_node(parent, index)


_CSafeLoader = getattr(yaml, "CSafeLoader", None)
if _CSafeLoader is not None:

    class _CSiteLoader(_CSafeLoader):  # type: ignore[misc,valid-type]
        """libyaml's safe loader with the same duplicate-key refusal (4× faster on a 3,000-rack site)."""

    _CSiteLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str) -> Any:
    if _CSafeLoader is None:
        return yaml.load(text, Loader=_SiteLoader)  # noqa: S506 - a SafeLoader subclass
    # libyaml composes in C, out of reach of compose_node: check its events first (cheap, no expansion)
    for event in yaml.parse(text, Loader=_CSafeLoader):
        _refuse_alias_or_tag(event)
    return yaml.load(text, Loader=_CSiteLoader)  # noqa: S506 - a CSafeLoader subclass


def parse_site(data: Any, source: str = "<site>") -> Site:
    """Validate already-parsed data; raises :class:`SiteError` with every issue."""
    if not isinstance(data, dict):
        raise SiteError(source, [Issue("(top level)", type(data).__name__, "a mapping with schema, site and racks")])
    issues: list[Issue] = []
    site: Site | None = None
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        issues = _issues(exc)
    issues += _duplicates(data)
    if issues or site is None:
        raise SiteError(source, issues)
    return site


def load_site(path: str | Path) -> Site:
    """Read and validate a site file (YAML, safely: at most 16 MiB, no aliases, no tags, no duplicate keys)."""
    p = Path(path)
    try:
        raw = read_regular_file(p, MAX_SITE_BYTES)
    except MissingFile:
        raise SiteError(str(p), [Issue("(file)", str(p), "an existing site file")]) from None
    except UnreadableFile as exc:
        raise SiteError(str(p), [Issue("(file)", str(p), f"a readable file, as a site file: {exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SiteError(str(p), [Issue("(file)", _MISSING, f"UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise SiteError(str(p), [yaml_issue(exc, "valid YAML without aliases or tags")]) from None
    except RecursionError:
        raise SiteError(str(p), [Issue("(file)", _MISSING, "YAML nested less deeply")]) from None
    except ValueError as exc:  # an integer of more than 4300 digits: Python refuses to convert it
        raise SiteError(str(p), [Issue("(file)", _MISSING, f"YAML whose numbers have at most 4300 digits ({exc})")]) from None
    site = parse_site(data, str(p))
    site._base_dir = p.resolve().parent
    site._sha256 = hashlib.sha256(raw).hexdigest()
    return site


# -------------------------------------------------------------------------------- secrets


def resolve_secret(ref: SecretRef | None, env: Mapping[str, str] = os.environ, base_dir: Path | None = None,
                   where: str = "secret") -> str | None:
    """The secret ``ref`` names (None when it names none): the environment variable's value, or the
    file's content without its trailing newline. :class:`SiteError` when it is unset, empty or unreadable."""
    if ref is None:
        return None
    if ref.env is not None:
        value = env.get(ref.env)
        if not value:
            raise SiteError(where, [Issue(f"{ref.field}_env", ref.env, "an environment variable that is set and not empty")])
        return value
    assert ref.file is not None
    p = Path(ref.file).expanduser()
    if not p.is_absolute():
        p = (base_dir or Path.cwd()) / p
    try:
        value = read_regular_file(p, MAX_SECRET_BYTES).decode("utf-8").rstrip("\r\n")
    except (UnreadableFile, UnicodeDecodeError) as exc:
        raise SiteError(where, [Issue(f"{ref.field}_file", str(p), f"a readable UTF-8 file ({exc})")]) from None
    if not value:
        raise SiteError(where, [Issue(f"{ref.field}_file", str(p), f"a file holding the {ref.field} (not empty, at most 64 KiB)")])
    return value


# -------------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class _ReaderCall:
    """What a reader factory gets: the source, its scope and how to resolve its secrets."""

    source: Any
    scope: str
    base_dir: Path
    env: Mapping[str, str]

    def secret(self, name: str) -> str | None:
        return resolve_secret(self.source.secret(name), self.env, self.base_dir, where=self.source.label())


def _redfish(call: _ReaderCall) -> "PowerReader":
    from .power.redfish import RedfishReader

    src: RedfishSource = call.source
    url, opts = src.reader_options()
    return RedfishReader(url, username=src.username, password=call.secret("password"), scope=call.scope,
                         verify_tls=not src.insecure, **opts)


def _target(cls: type, call: _ReaderCall, values: dict[str, Any]) -> Any:
    # the stated accuracy reaches the target when the target has a field for it
    if "accuracy_rel" in {f.name for f in dc_fields(cls)}:
        values["accuracy_rel"] = call.source.accuracy_rel
    return cls(**values)


def _snmp(call: _ReaderCall) -> "PowerReader":
    mod = importlib.import_module("icb_bench.bench.power.snmp")
    src: SnmpSource = call.source
    values = src.model_dump(exclude={"type", "accuracy", "community_env", "community_file", "auth_key_env",
                                     "auth_key_file", "priv_key_env", "priv_key_file"})
    values.update(community=call.secret("community"), auth_key=call.secret("auth_key"), priv_key=call.secret("priv_key"))
    return mod.SnmpPduReader(_target(mod.SnmpTarget, call, values), scope=call.scope)


def _dcmi(call: _ReaderCall) -> "PowerReader":
    mod = importlib.import_module("icb_bench.bench.power.dcmi")
    src: DcmiSource = call.source
    values = src.model_dump(exclude={"type", "accuracy", "password_env", "password_file"})
    values["password"] = call.secret("password")
    return mod.DcmiReader(_target(mod.DcmiTarget, call, values), scope=call.scope)


#: source type → (the scopes it can measure, its reader's factory; None: read after the run)
READER_FACTORIES: dict[str, tuple[tuple[str, ...], Callable[[_ReaderCall], "PowerReader"] | None]] = {
    "redfish": (("rack", "node"), _redfish),
    "snmp": (("rack",), _snmp),
    "dcmi": (("node",), _dcmi),
    "meter-log": (("rack",), None),  # post-hoc: bench.power.meterlog.load_meter_log after the run
}


def open_reader(source: Any, scope: str, base_dir: Path | None = None,
                env: Mapping[str, str] | None = None) -> "PowerReader | None":
    """The power reader for a site-file source (a PDU: scope "rack"; a BMC: scope "node"), built
    but not opened (use it as a context manager or call ``open()``); None for a meter log, which
    is read after the run. Secrets are resolved here, from ``env`` (default ``os.environ``) or
    files relative to ``base_dir``. :class:`SiteError` for a missing secret, a scope the source
    cannot measure or options the reader refuses."""
    from .power.base import PowerError

    kind = getattr(source, "type", None)
    if kind not in READER_FACTORIES:
        raise SiteError("site", [Issue("type", kind, "one of " + " | ".join(READER_FACTORIES))])
    scopes, factory = READER_FACTORIES[kind]
    if scope not in scopes:
        raise SiteError(source.label(), [Issue("scope", scope, f"{' or '.join(scopes)}: a {kind} source measures that")])
    if factory is None:
        return None
    call = _ReaderCall(source, scope, base_dir or Path.cwd(), os.environ if env is None else env)
    try:
        return factory(call)
    except (ValueError, TypeError, PowerError) as exc:
        # the reader's own check of its options, or a target that lacks a field of the contract
        raise SiteError(source.label(), [Issue("(reader)", _MISSING, f"options the {kind} reader accepts ({exc})")]) from None
