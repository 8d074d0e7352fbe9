"""Which Redfish resource gives a node's or a rack's power: discovery of the metrics source.

* scope ``"node"``: the chassis collection ``/redfish/v1/Chassis`` is walked (top-level chassis --
  no ``Links.ContainedBy`` -- first, in collection order, at most 64) and the first chassis with

  1. ``EnvironmentMetrics`` → ``PowerWatts.Reading`` (newer schema; ``EnergykWh.Reading`` is the
     energy counter when present), else
  2. ``Power`` → ``PowerControl[0].PowerConsumedWatts`` (deprecated since DMTF 2020.4 but the
     common one; ``PowerControl[0].PowerMetrics`` -- ``AverageConsumedWatts`` over
     ``IntervalInMin`` -- is recorded as provenance, never used as the reading)

  is used. Top-level first, so that a GPU baseboard's EnvironmentMetrics never wins over the
  whole node's Power resource.
* scope ``"rack"``: ``/redfish/v1/PowerEquipment/RackPDUs`` → first PDU → ``Mains`` (the sum of
  every mains circuit's ``PowerWatts.Reading`` / ``EnergykWh.Reading``) else the PDU's
  ``Metrics`` (``PowerWatts`` / ``EnergykWh``). DMTF's ``public-pdu`` mockup gives its mains
  circuit only ``PolyPhasePowerWatts``, so there the PDU's Metrics is used. A rack fed by several
  PDUs (A/B feeds) needs one reader per PDU, summed by the caller.
* ``resource`` names a path and skips discovery: a ``Power`` or ``*Metrics`` resource, a
  circuit, a circuit collection (summed), a power ``Sensor`` (whose ``ReadingTime`` then stamps
  every sample), a chassis or a PDU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import redfish_docs as docs
from .base import PowerError

GetDoc = Callable[[str], dict[str, Any]]
TryGet = Callable[[str], "dict[str, Any] | None"]
#: path segments of circuit collections: a circuit's owner is the PDU above them
CIRCUIT_COLLECTIONS = ("/Mains", "/Branches", "/Feeders", "/Outlets", "/Subfeeds")


@dataclass
class MetricsSource:
    """What discovery chose: the resource(s) read at every sample and how."""

    kind: str  # "environment" | "power" | "metrics" | "mains" | "sensor"
    path: str  # the resource read (the circuit collection for "mains")
    power_property: str
    energy_property: str | None = None
    member_paths: list[str] = field(default_factory=list)  # circuits, for "mains"
    owner_path: str | None = None  # the chassis / PDU
    owner: dict[str, Any] = field(default_factory=dict)
    power_metrics: dict[str, Any] | None = None  # PowerControl[0].PowerMetrics at discovery
    sensor_uri: str | None = None  # PowerWatts.DataSourceUri
    discovery_note: str | None = None
    discovery_tried: list[str] = field(default_factory=list)  # what failed before this was chosen


class Discovery:
    """Finds the :class:`MetricsSource` of one service, through ``get`` (raises PowerError)."""

    def __init__(self, base_url: str, get: GetDoc, try_get: TryGet) -> None:
        self.base_url = base_url
        self._get = get
        self._try_get = try_get

    def find(self, scope: str, resource: str | None) -> MetricsSource:
        if resource:
            return self.classify(resource)
        root = self._get(docs.SERVICE_ROOT)
        return self._node(root) if scope == "node" else self._rack(root)

    def sensor_provenance(self, src: MetricsSource) -> dict[str, Any] | None:
        """Best effort: the power sensor's accuracy and sensing interval."""
        uri = src.sensor_uri
        doc = self._try_get(uri) if uri else None
        if doc is None:
            return None
        return {"uri": uri} | {k: docs.plain(doc[k]) for k in docs.SENSOR_KEYS if k in doc}

    # -- node -------------------------------------------------------------------------------
    def _node(self, root: dict[str, Any]) -> MetricsSource:
        coll_path = docs.link(root, "Chassis") or f"{docs.SERVICE_ROOT}/Chassis"
        paths = docs.members(self._get(coll_path))
        if not paths:
            raise PowerError(f"Redfish: {self.base_url}{coll_path} has no Members (no chassis)")
        found = [(p, self._get(p)) for p in paths]
        top = [(p, d) for p, d in found if not docs.link(d.get("Links") or {}, "ContainedBy")]
        sub = [(p, d) for p, d in found if docs.link(d.get("Links") or {}, "ContainedBy")]
        tried: list[str] = []
        for path, doc in top + sub:
            src = self._from_chassis(path, doc, tried)
            if src is not None:
                if tried:
                    src.discovery_tried = list(tried)
                if (path, doc) in sub:
                    src.discovery_note = (
                        f"no top-level chassis has a power reading; using {path}, which is contained in "
                        f"{docs.link(doc['Links'], 'ContainedBy')} and may cover only part of the node (pass resource= to choose)"
                    )
                return src
        raise PowerError(
            f"Redfish: no chassis under {self.base_url}{coll_path} has EnvironmentMetrics PowerWatts.Reading or "
            f"Power PowerControl[0].PowerConsumedWatts (tried: {'; '.join(tried) or 'nothing'})"
        )

    def _metrics(self, kind: str, path: str, owner_path: str, owner: Any) -> MetricsSource:
        """A resource with ``PowerWatts.Reading`` (and ``EnergykWh.Reading`` when present): a
        chassis's EnvironmentMetrics or a PDU's Metrics have the same shape."""
        doc = self._get(path)
        docs.reading(doc, "PowerWatts", path)
        src = MetricsSource(kind, path, "PowerWatts.Reading", owner_path=owner_path, owner=owner)
        src.energy_property = "EnergykWh.Reading" if docs.has_reading(doc, "EnergykWh") else None
        src.sensor_uri = docs.sensor_uri(doc, "PowerWatts")
        return src

    def _from_chassis(self, path: str, doc: dict[str, Any], tried: list[str]) -> MetricsSource | None:
        owner = docs.owner(path, doc)
        em = docs.link(doc, "EnvironmentMetrics")
        if em:
            try:
                return self._metrics("environment", em, path, owner)
            except PowerError as e:
                tried.append(str(e))
        pw = docs.link(doc, "Power")
        if pw:
            try:
                docs.power_control(self._get(pw), pw)
                return MetricsSource("power", pw, "PowerControl[0].PowerConsumedWatts", owner_path=path, owner=owner)
            except PowerError as e:
                tried.append(str(e))
        if not em and not pw:
            tried.append(f"{path}: no EnvironmentMetrics or Power link")
        return None

    # -- rack -------------------------------------------------------------------------------
    def _rack(self, root: dict[str, Any]) -> MetricsSource:
        pe = docs.link(root, "PowerEquipment") or f"{docs.SERVICE_ROOT}/PowerEquipment"
        rp = docs.link(self._get(pe), "RackPDUs")
        if not rp:
            raise PowerError(f"Redfish: {self.base_url}{pe} has no RackPDUs link (no rack PDU on this service)")
        pdus = docs.members(self._get(rp))
        if not pdus:
            raise PowerError(f"Redfish: {self.base_url}{rp} has no Members (no rack PDU)")
        src = self._from_pdu(pdus[0], self._get(pdus[0]))
        if len(pdus) > 1:
            src.discovery_note = (
                f"first of {len(pdus)} PDUs ({', '.join(pdus)}): a rack fed by several PDUs needs one reader per PDU "
                "(resource=), summed"
            )
        return src

    def _from_pdu(self, path: str, doc: dict[str, Any]) -> MetricsSource:
        owner = docs.owner(path, doc)
        tried: list[str] = []
        mains = docs.link(doc, "Mains")
        if mains:
            try:
                src = self._circuits(mains)
                src.owner_path, src.owner = path, owner
                return src
            except PowerError as e:
                tried.append(str(e))
        metrics = docs.link(doc, "Metrics")
        if metrics:
            try:
                src = self._metrics("metrics", metrics, path, owner)
                src.discovery_tried = list(tried)
                return src
            except PowerError as e:
                tried.append(str(e))
        if not mains and not metrics:
            tried.append(f"{path}: no Mains or Metrics link")
        raise PowerError(
            f"Redfish: PDU {self.base_url}{path} has no Mains circuits or Metrics with PowerWatts.Reading (tried: {'; '.join(tried)})"
        )

    def _circuits(self, coll_path: str) -> MetricsSource:
        paths = docs.members(self._get(coll_path))
        if not paths:
            raise PowerError(f"Redfish: {coll_path} has no Members (no mains circuit)")
        all_energy = True
        for m in paths:
            cdoc = self._get(m)
            docs.reading(cdoc, "PowerWatts", m)
            all_energy = all_energy and docs.has_reading(cdoc, "EnergykWh")
        return MetricsSource(
            "mains",
            coll_path,
            "sum of Members[].PowerWatts.Reading",
            energy_property="sum of Members[].EnergykWh.Reading" if all_energy else None,
            member_paths=paths,
        )

    # -- a named resource -------------------------------------------------------------------
    def classify(self, path: str) -> MetricsSource:
        """The source for an explicitly named resource, by what its document holds."""
        doc = self._get(path)
        parent = path.rstrip("/").rsplit("/", 1)[0]
        if parent.endswith(CIRCUIT_COLLECTIONS) or parent.endswith("/Sensors"):
            parent = parent.rsplit("/", 1)[0]  # a circuit's owner is the PDU, a sensor's its chassis
        if "PowerControl" in doc:
            docs.power_control(doc, path)
            src = MetricsSource("power", path, "PowerControl[0].PowerConsumedWatts", owner_path=parent)
        elif "PowerWatts" in doc:
            docs.reading(doc, "PowerWatts", path)
            kind = "environment" if "EnvironmentMetrics" in path else "metrics"
            src = MetricsSource(kind, path, "PowerWatts.Reading", owner_path=parent)
            src.energy_property = "EnergykWh.Reading" if docs.has_reading(doc, "EnergykWh") else None
            src.sensor_uri = docs.sensor_uri(doc, "PowerWatts")
        elif docs.is_power_sensor(doc):
            docs.sensor_reading(doc, path)
            src = MetricsSource("sensor", path, "Reading", owner_path=parent, sensor_uri=path)
        elif "Members" in doc:
            src = self._circuits(path)
            src.owner_path = parent
        elif docs.link(doc, "EnvironmentMetrics") or docs.link(doc, "Power"):
            tried: list[str] = []
            found = self._from_chassis(path, doc, tried)
            if found is None:
                raise PowerError(f"Redfish: chassis {path} has no usable power reading ({'; '.join(tried)})")
            return found
        elif docs.link(doc, "Mains") or docs.link(doc, "Metrics"):
            return self._from_pdu(path, doc)
        else:
            raise PowerError(
                f"Redfish: {path} at {self.base_url} is not a power resource (no PowerControl, PowerWatts, power "
                "Sensor Reading, Members, EnvironmentMetrics/Power or Mains/Metrics)"
            )
        if src.owner_path and src.owner_path != docs.SERVICE_ROOT:
            odoc = self._try_get(src.owner_path)
            if odoc is not None:
                src.owner = docs.owner(src.owner_path, odoc)
        return src
