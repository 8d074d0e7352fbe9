"""Node (BMC) and rack (PDU) power through Redfish, with the DMTF ``redfish`` library.

What is read (methodology §4):

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
  ``Metrics`` (``PowerWatts`` / ``EnergykWh``). A rack fed by several PDUs (A/B feeds) needs one
  reader per PDU, summed by the caller.
* ``resource`` names a path and skips discovery: a ``Power`` or ``*Metrics`` resource, a
  circuit, a circuit collection (summed), a chassis or a PDU.

Energy: method ``"counter"`` only when the resource has ``EnergykWh.Reading`` *and* its
resolution is fine enough. ``EnergykWh`` is often printed with 3 decimals, i.e. 0.001 kWh =
3600 J; a counter whose resolution exceeds ``counter_max_fraction`` (5 %) of the expected window
energy (the power at :meth:`RedfishReader.open` × ``expected_window_s``, 60 s by default: the
Green500 core phase is ≥ 1 min) is not trustworthy, and the reader then says
``has_energy_counter = False`` with a ``counter_note`` so the
:class:`~icb_bench.bench.power.sampler.Sampler` integrates the polled power instead. The
resolution is ``counter_resolution_j`` when given, else inferred from the number of decimals the
service prints (the reading is parsed with :class:`decimal.Decimal`, so ``"12.500"`` counts as 3
decimals) -- an upper bound on the real resolution, so the inference errs towards polling.

BMC and PDU readings are often averages over seconds and lag the load; one site shifts the
window by its BMC's 7.5 s delay. ``delay_s`` records that delay and applies it: every sample's
timestamp is ``(midpoint of the request) - delay_s`` (the reading taken at *t* describes
*t - delay_s*). The Sampler reads counters at the window's edges in real time and cannot shift
them, so with ``delay_s > 0`` the counter is not used (polled method, shifted trace).

Rate: a BMC answers in tens to hundreds of milliseconds. The Sampler asks at ≥ 10 Hz; a slow
request just makes the sample arrive later. Every request's latency is recorded and
:meth:`RedfishReader.describe` reports it with the achieved sample rate and whether it meets
Green500's ≥ 1 Hz.

Library notes (``redfish`` 3.4, ``redfish/rest/v1.py``): ``redfish_client`` GETs the service root
in its constructor; requests are retried ``max_retry`` times (default 10!) with a 1 s sleep, so
this reader passes ``max_retry=0`` unless told otherwise; TLS certificates are *not* verified
unless ``cafile`` is given (``verify=False`` is hard-coded otherwise, and the library silences
urllib3's InsecureRequestWarning on import), so ``verify_tls=True`` passes ``ca_file`` or the
``certifi`` bundle as ``cafile``. Transport failures surface as ``RetriesExhaustedError`` chained
to the ``requests`` exception; HTTP errors are plain responses with ``.status``.

Errors are :class:`PowerError` whose message names the URL path and what was missing. The
password is never logged, recorded or put in a message: it is kept in one private attribute,
redacted from messages, and a filter on the library's logger redacts it from log records.
"""

from __future__ import annotations

import collections
import decimal
import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from .base import PowerError, PowerReader, PowerSample

J_PER_KWH = 3.6e6
SERVICE_ROOT = "/redfish/v1"
DEFAULT_EXPECTED_WINDOW_S = 60.0
DEFAULT_COUNTER_MAX_FRACTION = 0.05
MAX_MEMBERS = 64  # bound on collection walks
_LIB_LOGGER = "redfish.rest.v1"

NOTE = (
    "BMC/PDU readings are often averages over seconds and lag the load (methodology §4: one site "
    "shifts the window by its BMC's 7.5 s delay); delay_s shifts sample timestamps back by that delay"
)


@dataclass
class _Source:
    """What discovery chose: the resource(s) read at every sample and how."""

    kind: str  # "environment" | "power" | "metrics" | "mains"
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


@dataclass
class _Reading:
    t_s: float  # midpoint of the request(s), before the delay shift
    power_w: float
    energy_kwh: decimal.Decimal | None = None
    resolution_kwh: decimal.Decimal | None = None


class _Redact(logging.Filter):
    """Replaces a secret in the records of the library's logger (defence in depth)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        if self._secret and self._secret in msg:
            record.msg = msg.replace(self._secret, "***")
            record.args = None
        return True


def _link(doc: Any, key: str) -> str | None:
    """``doc[key]["@odata.id"]`` (or ``doc["@odata.id"]`` for key "") when it is a string."""
    v = doc.get(key) if isinstance(doc, dict) and key else doc
    if isinstance(v, dict) and isinstance(v.get("@odata.id"), str):
        return v["@odata.id"]
    return None


def _members(doc: dict[str, Any]) -> list[str]:
    out = []
    for m in doc.get("Members") or []:
        p = _link(m, "")
        if p:
            out.append(p)
        if len(out) >= MAX_MEMBERS:
            break
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def _decimals_resolution(v: Any) -> decimal.Decimal:
    """The last printed digit's weight: Decimal("12.500") -> 0.001, 12 -> 1."""
    d = v if isinstance(v, decimal.Decimal) else decimal.Decimal(str(v))
    exp = d.as_tuple().exponent
    return decimal.Decimal(1).scaleb(exp if isinstance(exp, int) else 0)


def _error_message(doc: Any) -> str | None:
    """The Redfish error's first message, if the body is a Redfish error."""
    try:
        err = doc["error"]
    except (KeyError, TypeError):
        return None
    try:
        return str(err["@Message.ExtendedInfo"][0]["Message"])
    except (KeyError, IndexError, TypeError):
        return str(err.get("message")) if isinstance(err, dict) and err.get("message") else None


def _why(e: BaseException) -> str:
    """Short reason for a transport failure (the library chains the requests exception)."""
    cause = e.__cause__ or e.__context__ or e
    text = f"{type(cause).__name__}: {cause}"
    low = text.lower()
    if "connection refused" in low or "errno 111" in low:
        return "connection refused"
    if "certificate" in low or "ssl" in type(cause).__name__.lower():
        return "TLS certificate verification failed (give ca_file, or verify_tls=False for a self-signed BMC)"
    if "timed out" in low or "timeout" in type(cause).__name__.lower():
        return "timed out"
    return text if len(text) <= 240 else text[:237] + "..."


def _default_ca_bundle() -> str | None:
    try:
        import certifi

        return certifi.where()
    except ImportError:  # pragma: no cover - requests depends on certifi
        try:
            from requests import certs

            return certs.where()
        except Exception:  # noqa: BLE001
            return None


class RedfishReader(PowerReader):
    """Power (and, when fine enough, energy) of a node's chassis or a rack's PDU over Redfish."""

    name = "redfish"

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        scope: str = "node",
        resource: str | None = None,
        timeout_s: float = 5.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
        auth: str = "session",
        delay_s: float = 0.0,
        expected_window_s: float = DEFAULT_EXPECTED_WINDOW_S,
        counter_resolution_j: float | None = None,
        counter_max_fraction: float = DEFAULT_COUNTER_MAX_FRACTION,
        max_retry: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scope not in ("node", "rack"):
            raise ValueError(f"scope must be 'node' or 'rack', got {scope!r}")
        if auth not in ("session", "basic"):
            raise ValueError(f"auth must be 'session' or 'basic', got {auth!r}")
        if delay_s < 0 or timeout_s <= 0 or expected_window_s <= 0 or not 0 < counter_max_fraction < 1:
            raise ValueError("delay_s must be >= 0; timeout_s, expected_window_s > 0; 0 < counter_max_fraction < 1")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be http(s)://host[:port][/path] (scheme and host are required)")
        if parts.password is not None:
            raise ValueError("do not put the password in the URL: pass password= (read it from an environment variable)")
        if parts.username and username is None:
            username = unquote(parts.username)
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        #: the service's URL without credentials or path (recorded)
        self.base_url = f"{parts.scheme}://{netloc}"
        url_path = parts.path.rstrip("/")
        if resource is None and url_path and url_path not in (SERVICE_ROOT, "/redfish"):
            resource = url_path  # "https://bmc/redfish/v1/Chassis/1/Power" names the resource
        self.scope = scope  # type: ignore[assignment]
        self.resource = resource
        self.username = username
        self._password = password  # never recorded, logged or put in a message
        self.auth = auth
        self.timeout_s = float(timeout_s)
        self.verify_tls = bool(verify_tls)
        self.ca_file = ca_file
        self.delay_s = float(delay_s)
        self.expected_window_s = float(expected_window_s)
        self.counter_max_fraction = float(counter_max_fraction)
        self._given_resolution_j = counter_resolution_j
        self.max_retry = int(max_retry)
        self._clock = clock

        self._client: Any = None
        self._source: _Source | None = None
        self._lock = threading.RLock()
        self._filter: _Redact | None = None
        self._has_counter = False
        #: why the counter is not used (read by the Sampler for its note)
        self.counter_note: str | None = None
        #: resolution of the energy counter in J (None when there is no counter)
        self.counter_resolution_j: float | None = None
        self.counter_resolution_source: str | None = None
        self.counter_update_s: float | None = None  # unknown: BMCs do not say
        self.energy_source = "redfish:none"
        self.power_source = "redfish:none"
        self._expected_window_j: float | None = None
        self._power_sensor: dict[str, Any] | None = None
        # timing
        self._latencies: collections.deque[float] = collections.deque(maxlen=10_000)
        self._n_requests = 0
        self._n_errors = 0
        self._n_samples = 0
        self._t_first_sample: float | None = None
        self._t_last_sample: float | None = None

    def __repr__(self) -> str:
        return f"RedfishReader({self.base_url!r}, scope={self.scope!r}, resource={self.resource!r}, username={self.username!r})"

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            try:
                import redfish
            except ImportError as e:
                raise PowerError("Redfish: the 'redfish' package is not installed (pip install redfish)") from e
            if self._password:
                self._filter = _Redact(self._password)
                logging.getLogger(_LIB_LOGGER).addFilter(self._filter)
            try:
                self._client = self._connect(redfish)
                self._source = self._discover()
                first = self._read()
                self._decide_counter(first)
                self._probe_sensor()
            except BaseException:
                self._teardown()
                raise

    def close(self) -> None:
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()  # DELETEs the session (if any) and closes the HTTP session
            except Exception:  # noqa: BLE001 - closing: nothing useful to do with the error
                sess = getattr(client, "_session", None)
                if sess is not None:
                    try:
                        sess.close()
                    except Exception:  # noqa: BLE001
                        pass
        if self._filter is not None:
            logging.getLogger(_LIB_LOGGER).removeFilter(self._filter)
            self._filter = None

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _connect(self, redfish: Any) -> Any:
        cafile = None
        if self.base_url.startswith("https:") and self.verify_tls:
            cafile = self.ca_file or _default_ca_bundle()
        root = f"{self.base_url}{SERVICE_ROOT}"
        try:
            client = redfish.redfish_client(
                base_url=self.base_url,
                username=self.username,
                password=self._password,
                cafile=cafile,
                timeout=self.timeout_s,
                max_retry=self.max_retry,
            )
        except Exception as e:  # noqa: BLE001 - RetriesExhausted, ServerDownOrUnreachable, JsonDecoding
            self._n_errors += 1
            raise PowerError(self._redact(f"Redfish: cannot reach the service root {root} ({_why(e) if e.__cause__ else e})")) from None
        if self.username is not None:
            if not self._password:
                self._close_quietly(client)
                raise PowerError(f"Redfish: username {self.username!r} given for {self.base_url} but no password")
            try:
                client.login(auth=self.auth)
            except Exception as e:  # noqa: BLE001 - InvalidCredentials, SessionCreation, transport
                self._close_quietly(client)
                why = _why(e) if e.__cause__ else f"{type(e).__name__}: {e}"
                raise PowerError(self._redact(f"Redfish: {self.auth} login as {self.username!r} at {self.base_url}{client.login_url} failed ({why.strip()})")) from None
            if self.auth == "session" and not client.get_session_key():
                self._close_quietly(client)
                raise PowerError(f"Redfish: session login at {self.base_url}{client.login_url} returned no X-Auth-Token")
        return client

    @staticmethod
    def _close_quietly(client: Any) -> None:
        try:
            client.logout()
        except Exception:  # noqa: BLE001
            pass

    # -- HTTP -------------------------------------------------------------------------------
    def _get(self, path: str, *, _relogin: bool = True) -> tuple[dict[str, Any], float, float]:
        """GET ``path`` → (JSON object with Decimal floats, t0, t1). Raises PowerError."""
        if self._client is None:
            raise PowerError("RedfishReader used before open()")
        t0 = self._clock()
        try:
            resp = self._client.get(path)
        except Exception as e:  # noqa: BLE001 - RetriesExhaustedError chained to requests' error
            self._n_errors += 1
            raise PowerError(self._redact(f"Redfish: GET {path} at {self.base_url} failed ({_why(e)})")) from None
        t1 = self._clock()
        self._n_requests += 1
        self._latencies.append(t1 - t0)
        status = resp.status
        text = resp.text if resp.read is not None else ""
        if status == 401 and _relogin and self.username is not None and self._password:
            try:  # the session may have expired: log in once more and retry once
                self._client.login(auth=self.auth)
            except Exception:  # noqa: BLE001 - report the 401 below
                pass
            else:
                return self._get(path, _relogin=False)
        if status is None or not 200 <= status < 300:
            self._n_errors += 1
            detail = None
            try:
                detail = _error_message(json.loads(text))
            except ValueError:
                pass
            hint = " (authentication required: give username and password)" if status == 401 and self.username is None else ""
            msg = f"Redfish: GET {path} at {self.base_url} returned HTTP {status}{hint}" + (f": {detail}" if detail else "")
            raise PowerError(self._redact(msg))
        try:
            doc = json.loads(text, parse_float=decimal.Decimal)
        except ValueError:
            self._n_errors += 1
            ctype = resp.getheader("content-type")
            raise PowerError(
                f"Redfish: GET {path} at {self.base_url} did not return JSON (Content-Type {ctype!r}, body starts {text[:40]!r})"
            ) from None
        if not isinstance(doc, dict):
            self._n_errors += 1
            raise PowerError(f"Redfish: GET {path} at {self.base_url} returned JSON that is not an object")
        return doc, t0, t1

    def _try_get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._get(path)[0]
        except PowerError:
            return None

    # -- discovery --------------------------------------------------------------------------
    def _discover(self) -> _Source:
        if self.resource:
            return self._classify(self.resource)
        root = self._get(SERVICE_ROOT)[0]
        if self.scope == "node":
            return self._discover_node(root)
        return self._discover_rack(root)

    def _discover_node(self, root: dict[str, Any]) -> _Source:
        coll_path = _link(root, "Chassis") or f"{SERVICE_ROOT}/Chassis"
        paths = _members(self._get(coll_path)[0])
        if not paths:
            raise PowerError(f"Redfish: {self.base_url}{coll_path} has no Members (no chassis)")
        docs = [(p, self._get(p)[0]) for p in paths]
        top = [(p, d) for p, d in docs if not _link(d.get("Links") or {}, "ContainedBy")]
        sub = [(p, d) for p, d in docs if _link(d.get("Links") or {}, "ContainedBy")]
        tried: list[str] = []
        for path, doc in top + sub:
            src = self._from_chassis(path, doc, tried)
            if src is not None:
                if tried:
                    src.discovery_tried = list(tried)
                if (path, doc) in sub:
                    src.discovery_note = (
                        f"no top-level chassis has a power reading; using {path}, which is contained in "
                        f"{_link(doc['Links'], 'ContainedBy')} and may cover only part of the node (pass resource= to choose)"
                    )
                return src
        raise PowerError(
            f"Redfish: no chassis under {self.base_url}{coll_path} has EnvironmentMetrics PowerWatts.Reading or "
            f"Power PowerControl[0].PowerConsumedWatts (tried: {'; '.join(tried) or 'nothing'})"
        )

    def _metrics_source(self, kind: str, path: str, owner_path: str, owner: Any) -> _Source:
        """A resource with ``PowerWatts.Reading`` (and ``EnergykWh.Reading`` when present): a
        chassis's EnvironmentMetrics or a PDU's Metrics have the same shape."""
        doc = self._get(path)[0]
        _reading(doc, "PowerWatts", path)
        src = _Source(kind, path, "PowerWatts.Reading", owner_path=owner_path, owner=owner)
        src.energy_property = "EnergykWh.Reading" if _has_reading(doc, "EnergykWh") else None
        src.sensor_uri = _sensor_uri(doc, "PowerWatts")
        return src

    def _from_chassis(self, path: str, doc: dict[str, Any], tried: list[str]) -> _Source | None:
        owner = _owner(path, doc)
        em = _link(doc, "EnvironmentMetrics")
        if em:
            try:
                return self._metrics_source("environment", em, path, owner)
            except PowerError as e:
                tried.append(str(e))
        pw = _link(doc, "Power")
        if pw:
            try:
                pdoc = self._get(pw)[0]
                _power_control(pdoc, pw)
                src = _Source("power", pw, "PowerControl[0].PowerConsumedWatts", owner_path=path, owner=owner)
                return src
            except PowerError as e:
                tried.append(str(e))
        if not em and not pw:
            tried.append(f"{path}: no EnvironmentMetrics or Power link")
        return None

    def _discover_rack(self, root: dict[str, Any]) -> _Source:
        pe = _link(root, "PowerEquipment") or f"{SERVICE_ROOT}/PowerEquipment"
        pedoc = self._get(pe)[0]
        rp = _link(pedoc, "RackPDUs")
        if not rp:
            raise PowerError(f"Redfish: {self.base_url}{pe} has no RackPDUs link (no rack PDU on this service)")
        pdus = _members(self._get(rp)[0])
        if not pdus:
            raise PowerError(f"Redfish: {self.base_url}{rp} has no Members (no rack PDU)")
        src = self._from_pdu(pdus[0], self._get(pdus[0])[0])
        if len(pdus) > 1:
            src.discovery_note = (
                f"first of {len(pdus)} PDUs ({', '.join(pdus)}): a rack fed by several PDUs needs one reader per PDU "
                "(resource=), summed"
            )
        return src

    def _from_pdu(self, path: str, doc: dict[str, Any]) -> _Source:
        owner = _owner(path, doc)
        tried: list[str] = []
        mains = _link(doc, "Mains")
        if mains:
            try:
                src = self._circuits(mains)
                src.owner_path, src.owner = path, owner
                return src
            except PowerError as e:
                tried.append(str(e))
        metrics = _link(doc, "Metrics")
        if metrics:
            try:
                return self._metrics_source("metrics", metrics, path, owner)
            except PowerError as e:
                tried.append(str(e))
        if not mains and not metrics:
            tried.append(f"{path}: no Mains or Metrics link")
        raise PowerError(
            f"Redfish: PDU {self.base_url}{path} has no Mains circuits or Metrics with PowerWatts.Reading (tried: {'; '.join(tried)})"
        )

    def _circuits(self, coll_path: str) -> _Source:
        members = _members(self._get(coll_path)[0])
        if not members:
            raise PowerError(f"Redfish: {coll_path} has no Members (no mains circuit)")
        all_energy = True
        for m in members:
            cdoc = self._get(m)[0]
            _reading(cdoc, "PowerWatts", m)
            all_energy = all_energy and _has_reading(cdoc, "EnergykWh")
        return _Source(
            "mains",
            coll_path,
            "sum of Members[].PowerWatts.Reading",
            energy_property="sum of Members[].EnergykWh.Reading" if all_energy else None,
            member_paths=members,
        )

    def _classify(self, path: str) -> _Source:
        """The source for an explicitly named resource, by what its document holds."""
        doc = self._get(path)[0]
        parent = path.rstrip("/").rsplit("/", 1)[0]
        if parent.endswith(("/Mains", "/Branches", "/Feeders", "/Outlets", "/Subfeeds")):
            parent = parent.rsplit("/", 1)[0]  # a circuit: its owner is the PDU
        if "PowerControl" in doc:
            _power_control(doc, path)
            src = _Source("power", path, "PowerControl[0].PowerConsumedWatts", owner_path=parent)
        elif "PowerWatts" in doc:
            _reading(doc, "PowerWatts", path)
            kind = "environment" if "EnvironmentMetrics" in path else "metrics"
            src = _Source(kind, path, "PowerWatts.Reading", owner_path=parent)
            src.energy_property = "EnergykWh.Reading" if _has_reading(doc, "EnergykWh") else None
            src.sensor_uri = _sensor_uri(doc, "PowerWatts")
        elif "Members" in doc:
            src = self._circuits(path)
            src.owner_path = parent
        elif _link(doc, "EnvironmentMetrics") or _link(doc, "Power"):
            tried: list[str] = []
            found = self._from_chassis(path, doc, tried)
            if found is None:
                raise PowerError(f"Redfish: chassis {path} has no usable power reading ({'; '.join(tried)})")
            return found
        elif _link(doc, "Mains") or _link(doc, "Metrics"):
            return self._from_pdu(path, doc)
        else:
            raise PowerError(
                f"Redfish: {path} at {self.base_url} is not a power resource (no PowerControl, PowerWatts, Members, "
                "EnvironmentMetrics/Power or Mains/Metrics)"
            )
        if src.owner_path and src.owner_path != SERVICE_ROOT:
            odoc = self._try_get(src.owner_path)
            if odoc is not None:
                src.owner = _owner(src.owner_path, odoc)
        return src

    def _probe_sensor(self) -> None:
        """Best effort: the power sensor's accuracy and sensing interval, as provenance."""
        src = self._source
        if src is None or not src.sensor_uri:
            return
        doc = self._try_get(src.sensor_uri)
        if doc is not None:
            keep = ("Accuracy", "Precision", "SensingInterval", "ReadingRangeMax", "PhysicalContext")
            self._power_sensor = {"uri": src.sensor_uri} | {k: _plain(doc[k]) for k in keep if k in doc}

    # -- reading ----------------------------------------------------------------------------
    def _read(self) -> _Reading:
        src = self._source
        if src is None:
            raise PowerError("RedfishReader used before open()")
        if src.kind == "power":
            doc, t0, t1 = self._get(src.path)
            pc = _power_control(doc, src.path)
            if src.power_metrics is None and isinstance(pc.get("PowerMetrics"), dict):
                src.power_metrics = {k: _plain(v) for k, v in pc["PowerMetrics"].items()}
            return _Reading(0.5 * (t0 + t1), float(pc["PowerConsumedWatts"]))
        if src.kind == "mains":
            power = 0.0
            energy: decimal.Decimal | None = decimal.Decimal(0) if src.energy_property else None
            res = decimal.Decimal(0)
            t_start = t_end = None
            for m in src.member_paths:
                doc, t0, t1 = self._get(m)
                t_start = t0 if t_start is None else t_start
                t_end = t1
                power += float(_reading(doc, "PowerWatts", m))
                if energy is not None:
                    e = _reading(doc, "EnergykWh", m)
                    energy += e
                    res += _decimals_resolution(e)
            assert t_start is not None and t_end is not None
            return _Reading(0.5 * (t_start + t_end), power, energy, res if energy is not None else None)
        doc, t0, t1 = self._get(src.path)
        power_w = float(_reading(doc, "PowerWatts", src.path))
        if src.energy_property:
            e = _reading(doc, "EnergykWh", src.path)
            return _Reading(0.5 * (t0 + t1), power_w, e, _decimals_resolution(e))
        return _Reading(0.5 * (t0 + t1), power_w)

    def _decide_counter(self, first: _Reading) -> None:
        src = self._source
        assert src is not None
        self.power_source = f"redfish:{src.path}#{src.power_property}"
        if not src.energy_property or first.energy_kwh is None:
            self._has_counter = False
            self.counter_note = f"{src.path} has no EnergykWh.Reading"
            return
        self.energy_source = f"redfish:{src.path}#{src.energy_property}"
        if self._given_resolution_j is not None:
            self.counter_resolution_j = float(self._given_resolution_j)
            self.counter_resolution_source = "given"
        else:
            assert first.resolution_kwh is not None
            self.counter_resolution_j = float(first.resolution_kwh) * J_PER_KWH
            self.counter_resolution_source = "inferred from the decimals the service prints (an upper bound)"
        self._expected_window_j = first.power_w * self.expected_window_s
        limit_j = self.counter_max_fraction * self._expected_window_j
        if self.delay_s > 0:
            self._has_counter = False
            self.counter_note = (
                f"delay_s={self.delay_s:g}: counter edges cannot be shifted, the polled trace is shifted instead"
            )
        elif self._expected_window_j <= 0:
            self._has_counter = False
            self.counter_note = f"power at open was {first.power_w:g} W: cannot judge the counter's resolution"
        elif self.counter_resolution_j > limit_j:
            self._has_counter = False
            self.counter_note = (
                f"EnergykWh resolution {self.counter_resolution_j:g} J exceeds {self.counter_max_fraction:.0%} of the "
                f"expected window energy ({first.power_w:.0f} W x {self.expected_window_s:g} s = "
                f"{self._expected_window_j:.0f} J): coarse counter, polled power integrated instead"
            )
        else:
            self._has_counter = True
            self.counter_note = None

    @property
    def has_energy_counter(self) -> bool:
        return self._has_counter

    def energy_j(self) -> float | None:
        """The EnergykWh counter in joules (None when the resource has none). Only used by the
        Sampler when :attr:`has_energy_counter` (a fine enough counter)."""
        with self._lock:
            if self._source is None:
                raise PowerError("RedfishReader used before open()")
            if not self._source.energy_property:
                return None
            r = self._read()
            return None if r.energy_kwh is None else float(r.energy_kwh) * J_PER_KWH

    def sample(self) -> PowerSample:
        """One request (one per circuit for Mains): power, and the counter when there is one.
        ``t_s`` is the request's midpoint minus ``delay_s``."""
        with self._lock:
            r = self._read()
            t = r.t_s - self.delay_s
            self._n_samples += 1
            if self._t_first_sample is None:
                self._t_first_sample = t
            self._t_last_sample = t
        return PowerSample(
            t_s=t,
            power_w=r.power_w,
            energy_j=None if r.energy_kwh is None else float(r.energy_kwh) * J_PER_KWH,
        )

    # -- provenance -------------------------------------------------------------------------
    def timing(self) -> dict[str, Any]:
        """Request latency and achieved sample rate so far."""
        lat = sorted(self._latencies)
        n = self._n_samples
        span = (self._t_last_sample - self._t_first_sample) if (n >= 2 and self._t_first_sample is not None) else 0.0
        hz = (n - 1) / span if span and span > 0 else None
        return {
            "n_requests": self._n_requests,
            "n_errors": self._n_errors,
            "n_samples": n,
            "latency_s_median": statistics.median(lat) if lat else None,
            "latency_s_p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None,
            "latency_s_max": lat[-1] if lat else None,
            "sample_hz_achieved": hz,
            "green500_1hz_ok": None if hz is None else hz >= 1.0,
        }

    def describe(self) -> dict[str, Any]:
        src = self._source
        d: dict[str, Any] = {
            "name": self.name,
            "scope": self.scope,
            "library": "redfish (DMTF python-redfish-library)",
            "url": self.base_url,
            "resource_requested": self.resource,
            "resource": src.path if src else None,
            "resource_kind": src.kind if src else None,
            "members": list(src.member_paths) if src and src.member_paths else None,
            "power_property": src.power_property if src else None,
            "energy_property": src.energy_property if src else None,
            "owner_path": src.owner_path if src else None,
            "owner": dict(src.owner) if src else {},
            "power_metrics": src.power_metrics if src else None,
            "power_sensor": self._power_sensor,
            "discovery_note": src.discovery_note if src else None,
            "discovery_tried": list(src.discovery_tried) if src else [],
            "auth": self.auth if self.username is not None else "none",
            "username": self.username,
            "tls_verified": self.base_url.startswith("https:") and self.verify_tls,
            "has_energy_counter": self._has_counter,
            "counter_resolution_j": self.counter_resolution_j,
            "counter_resolution_source": self.counter_resolution_source,
            "counter_max_fraction": self.counter_max_fraction,
            "expected_window_s": self.expected_window_s,
            "expected_window_j": self._expected_window_j,
            "counter_note": self.counter_note,
            "delay_s": self.delay_s,
            "energy_source": self.energy_source,
            "power_source": self.power_source,
            "timing": self.timing(),
            "note": NOTE,
        }
        return d


# -- document helpers -----------------------------------------------------------------------
def _plain(v: Any) -> Any:
    """Decimals to floats, recursively (for records)."""
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _owner(path: str, doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("Id", "Name", "Manufacturer", "Model", "SerialNumber", "PartNumber", "ChassisType", "EquipmentType")
    return {"path": path} | {k: doc[k] for k in keep if isinstance(doc.get(k), str)}


def _has_reading(doc: dict[str, Any], prop: str) -> bool:
    v = doc.get(prop)
    return isinstance(v, dict) and _is_number(v.get("Reading"))


def _reading(doc: dict[str, Any], prop: str, path: str) -> Any:
    """``doc[prop]["Reading"]`` as a number, else PowerError naming the path and property."""
    v = doc.get(prop)
    if not isinstance(v, dict):
        raise PowerError(f"Redfish: {path} has no {prop} (keys: {', '.join(sorted(doc)[:12])})")
    r = v.get("Reading")
    if not _is_number(r):
        what = "is null" if r is None and "Reading" in v else "is missing" if r is None else f"is not a number ({r!r})"
        raise PowerError(f"Redfish: {path} {prop}.Reading {what}")
    return r


def _sensor_uri(doc: dict[str, Any], prop: str) -> str | None:
    v = doc.get(prop)
    return v.get("DataSourceUri") if isinstance(v, dict) and isinstance(v.get("DataSourceUri"), str) else None


def _power_control(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """``PowerControl[0]`` with a numeric ``PowerConsumedWatts``, else PowerError."""
    pcs = doc.get("PowerControl")
    if not isinstance(pcs, list) or not pcs or not isinstance(pcs[0], dict):
        raise PowerError(f"Redfish: {path} has no PowerControl[0]")
    v = pcs[0].get("PowerConsumedWatts")
    if not _is_number(v):
        what = "is null" if "PowerConsumedWatts" in pcs[0] and v is None else "is missing" if v is None else f"is not a number ({v!r})"
        raise PowerError(f"Redfish: {path} PowerControl[0].PowerConsumedWatts {what}")
    return pcs[0]


__all__ = ["J_PER_KWH", "RedfishReader"]
