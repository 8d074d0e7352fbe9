"""Reading Redfish documents: links, collection members, sensor excerpts, numbers.

Pure functions over parsed JSON (floats parsed as :class:`decimal.Decimal`, so the number of
decimals a service prints is kept: it bounds an energy counter's resolution). Each failure is a
:class:`~icb_bench.bench.power.base.PowerError` naming the resource path and the property.
"""

from __future__ import annotations

import decimal
from typing import Any

from .base import PowerError

SERVICE_ROOT = "/redfish/v1"
MAX_MEMBERS = 64  # bound on collection walks
#: the owner's identifying properties recorded as provenance
OWNER_KEYS = ("Id", "Name", "Manufacturer", "Model", "SerialNumber", "PartNumber", "ChassisType", "EquipmentType")
#: the power sensor's properties recorded as provenance
SENSOR_KEYS = ("Accuracy", "Precision", "SensingInterval", "ReadingRangeMax", "PhysicalContext")


def link(doc: Any, key: str) -> str | None:
    """``doc[key]["@odata.id"]`` (or ``doc["@odata.id"]`` for key "") when it is a string."""
    v = doc.get(key) if isinstance(doc, dict) and key else doc
    if isinstance(v, dict) and isinstance(v.get("@odata.id"), str):
        return v["@odata.id"]
    return None


def members(doc: dict[str, Any]) -> list[str]:
    """The ``@odata.id`` of a collection's members (at most :data:`MAX_MEMBERS`)."""
    out = []
    for m in doc.get("Members") or []:
        p = link(m, "")
        if p:
            out.append(p)
        if len(out) >= MAX_MEMBERS:
            break
    return out


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def decimals_resolution(v: Any) -> decimal.Decimal:
    """The last printed digit's weight: Decimal("12.500") -> 0.001, 12 -> 1."""
    d = v if isinstance(v, decimal.Decimal) else decimal.Decimal(str(v))
    exp = d.as_tuple().exponent
    return decimal.Decimal(1).scaleb(exp if isinstance(exp, int) else 0)


def error_message(doc: Any) -> str | None:
    """The Redfish error's first message, if the body is a Redfish error."""
    try:
        err = doc["error"]
    except (KeyError, TypeError):
        return None
    try:
        return str(err["@Message.ExtendedInfo"][0]["Message"])
    except (KeyError, IndexError, TypeError):
        return str(err.get("message")) if isinstance(err, dict) and err.get("message") else None


def plain(v: Any) -> Any:
    """Decimals to floats, recursively (for records)."""
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def owner(path: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The chassis / PDU that a reading belongs to, for provenance."""
    return {"path": path} | {k: doc[k] for k in OWNER_KEYS if isinstance(doc.get(k), str)}


def has_reading(doc: dict[str, Any], prop: str) -> bool:
    v = doc.get(prop)
    return isinstance(v, dict) and is_number(v.get("Reading"))


def _what(v: Any, present: bool) -> str:
    return "is null" if v is None and present else "is missing" if v is None else f"is not a number ({v!r})"


def reading(doc: dict[str, Any], prop: str, path: str) -> Any:
    """``doc[prop]["Reading"]`` as a number, else PowerError naming the path and property."""
    v = doc.get(prop)
    if not isinstance(v, dict):
        raise PowerError(f"Redfish: {path} has no {prop} (keys: {', '.join(sorted(doc)[:12])})")
    r = v.get("Reading")
    if not is_number(r):
        raise PowerError(f"Redfish: {path} {prop}.Reading {_what(r, 'Reading' in v)}")
    return r


def sensor_reading(doc: dict[str, Any], path: str) -> Any:
    """A ``Sensor`` resource's own ``Reading`` (watts), else PowerError."""
    r = doc.get("Reading")
    if not is_number(r):
        raise PowerError(f"Redfish: {path} Reading {_what(r, 'Reading' in doc)}")
    return r


def is_power_sensor(doc: dict[str, Any]) -> bool:
    """A ``Sensor`` resource reading watts (``ReadingType`` Power or ``ReadingUnits`` W)."""
    return "Reading" in doc and (doc.get("ReadingType") == "Power" or doc.get("ReadingUnits") == "W")


def reading_time(doc: dict[str, Any]) -> str | None:
    """The sensor's own timestamp of its reading (``ReadingTime``), when the service gives one."""
    v = doc.get("ReadingTime")
    return v if isinstance(v, str) and v else None


def sensor_uri(doc: dict[str, Any], prop: str) -> str | None:
    v = doc.get(prop)
    return v.get("DataSourceUri") if isinstance(v, dict) and isinstance(v.get("DataSourceUri"), str) else None


def power_control(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """``PowerControl[0]`` with a numeric ``PowerConsumedWatts``, else PowerError."""
    pcs = doc.get("PowerControl")
    if not isinstance(pcs, list) or not pcs or not isinstance(pcs[0], dict):
        raise PowerError(f"Redfish: {path} has no PowerControl[0]")
    v = pcs[0].get("PowerConsumedWatts")
    if not is_number(v):
        raise PowerError(f"Redfish: {path} PowerControl[0].PowerConsumedWatts {_what(v, 'PowerConsumedWatts' in pcs[0])}")
    return pcs[0]
