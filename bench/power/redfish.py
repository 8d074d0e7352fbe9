"""Node (BMC) and rack (PDU) power through Redfish, with the DMTF ``redfish`` library.

The reader is three concerns in three modules: :mod:`.redfish_client` (transport: connect, log
in, timed GETs, redaction of the password), :mod:`.redfish_discovery` (which resource holds the
node's or the rack's power, methodology §4) and this module (reading → sample, and whether the
energy counter is fine enough to use).

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
Green500's ≥ 1 Hz. :attr:`RedfishReader.expected_interval_s` (the power sensor's
``SensingInterval`` when it gives one) tells the Sampler how often a new reading can arrive.

A power ``Sensor`` resource (``resource=.../Sensors/TotalPower``) stamps each sample with its
``ReadingTime`` (:attr:`PowerSample.source_time`), so a frozen BMC is told from a constant load.
"""

from __future__ import annotations

import decimal
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from . import redfish_docs as docs
from .base import PowerError, PowerReader, PowerSample
from .redfish_client import RedfishEndpoint, RedfishSession
from .redfish_discovery import Discovery, MetricsSource

J_PER_KWH = 3.6e6
SERVICE_ROOT = docs.SERVICE_ROOT
DEFAULT_EXPECTED_WINDOW_S = 60.0
DEFAULT_COUNTER_MAX_FRACTION = 0.05

NOTE = (
    "BMC/PDU readings are often averages over seconds and lag the load (methodology §4: one site "
    "shifts the window by its BMC's 7.5 s delay); delay_s shifts sample timestamps back by that delay"
)
_ISO_SECONDS = re.compile(r"^PT(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


@dataclass
class _Reading:
    t_s: float  # midpoint of the request(s), before the delay shift
    power_w: float
    energy_kwh: decimal.Decimal | None = None
    resolution_kwh: decimal.Decimal | None = None
    source_time: str | None = None


def _duration_s(text: Any) -> float | None:
    """``"PT0.25S"`` / ``"PT1M"`` → seconds (the ISO 8601 durations Redfish sensors use)."""
    m = _ISO_SECONDS.match(text) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        return None
    return 60.0 * float(m.group(1) or 0) + float(m.group(2) or 0)


def _split_url(base_url: str, username: str | None, resource: str | None) -> tuple[str, str | None, str | None]:
    """(scheme://host[:port], username, resource) from a URL that may name a user and a path."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be http(s)://host[:port][/path] (scheme and host are required)")
    if parts.password is not None:
        raise ValueError("do not put the password in the URL: pass password= (read it from an environment variable)")
    if parts.username and username is None:
        username = unquote(parts.username)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    url_path = parts.path.rstrip("/")
    if resource is None and url_path and url_path not in (SERVICE_ROOT, "/redfish"):
        resource = url_path  # "https://bmc/redfish/v1/Chassis/1/Power" names the resource
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else ""), username, resource


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
        #: the service's URL without credentials or path (recorded)
        self.base_url, username, resource = _split_url(base_url, username, resource)
        self.scope = scope  # type: ignore[assignment]
        self.resource = resource
        self.username = username
        self.auth = auth
        self.timeout_s = float(timeout_s)
        self.verify_tls = bool(verify_tls)
        self.ca_file = ca_file
        self.delay_s = float(delay_s)
        self.expected_window_s = float(expected_window_s)
        self.counter_max_fraction = float(counter_max_fraction)
        self._given_resolution_j = counter_resolution_j
        self.max_retry = int(max_retry)
        self._session = RedfishSession(
            RedfishEndpoint(self.base_url, username, auth, self.timeout_s, self.verify_tls, ca_file, self.max_retry),
            password,
            clock,
        )
        self._source: MetricsSource | None = None
        self._lock = threading.RLock()
        self._has_counter = False
        #: why the counter is not used (read by the Sampler for its note)
        self.counter_note: str | None = None
        #: resolution of the energy counter in J (None when there is no counter)
        self.counter_resolution_j: float | None = None
        self.counter_resolution_source: str | None = None
        self.counter_update_s: float | None = None  # unknown: BMCs do not say
        #: how often the source can give a new reading (s): the sensor's SensingInterval, else None
        self.expected_interval_s: float | None = None
        self.energy_source = "redfish:none"
        self.power_source = "redfish:none"
        self._expected_window_j: float | None = None
        self._power_sensor: dict[str, Any] | None = None
        self._n_samples = 0
        self._t_first_sample: float | None = None
        self._t_last_sample: float | None = None

    def __repr__(self) -> str:
        return f"RedfishReader({self.base_url!r}, scope={self.scope!r}, resource={self.resource!r}, username={self.username!r})"

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._session.is_open:
                return
            try:
                self._session.open()
                s = self._session
                finder = Discovery(self.base_url, s.get_doc, s.try_get)
                self._source = finder.find(self.scope, self.resource)
                self._decide_counter(self._read())
                self._power_sensor = finder.sensor_provenance(self._source)
                if self._power_sensor:
                    self.expected_interval_s = _duration_s(self._power_sensor.get("SensingInterval"))
            except BaseException:
                self._session.close()
                raise

    def close(self) -> None:
        with self._lock:
            self._session.close()

    # -- reading ----------------------------------------------------------------------------
    def _read(self) -> _Reading:
        src = self._source
        if src is None or not self._session.is_open:
            raise PowerError("RedfishReader used before open()")
        get = self._session.get
        if src.kind == "mains":
            return self._read_circuits(src)
        doc, t0, t1 = get(src.path)
        t = 0.5 * (t0 + t1)
        if src.kind == "power":
            pc = docs.power_control(doc, src.path)
            if src.power_metrics is None and isinstance(pc.get("PowerMetrics"), dict):
                src.power_metrics = {k: docs.plain(v) for k, v in pc["PowerMetrics"].items()}
            return _Reading(t, float(pc["PowerConsumedWatts"]))
        if src.kind == "sensor":
            return _Reading(t, float(docs.sensor_reading(doc, src.path)), source_time=docs.reading_time(doc))
        power_w = float(docs.reading(doc, "PowerWatts", src.path))
        if src.energy_property:
            e = docs.reading(doc, "EnergykWh", src.path)
            return _Reading(t, power_w, e, docs.decimals_resolution(e))
        return _Reading(t, power_w)

    def _read_circuits(self, src: MetricsSource) -> _Reading:
        """One GET per mains circuit; the reading's time is the midpoint of all of them."""
        power = 0.0
        energy: decimal.Decimal | None = decimal.Decimal(0) if src.energy_property else None
        res = decimal.Decimal(0)
        t_start = t_end = None
        for m in src.member_paths:
            doc, t0, t1 = self._session.get(m)
            t_start = t0 if t_start is None else t_start
            t_end = t1
            power += float(docs.reading(doc, "PowerWatts", m))
            if energy is not None:
                e = docs.reading(doc, "EnergykWh", m)
                energy += e
                res += docs.decimals_resolution(e)
        assert t_start is not None and t_end is not None
        return _Reading(0.5 * (t_start + t_end), power, energy, res if energy is not None else None)

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
            source_time=r.source_time,
        )

    # -- provenance -------------------------------------------------------------------------
    def timing(self) -> dict[str, Any]:
        """Request latency and achieved sample rate so far."""
        n = self._n_samples
        span = (self._t_last_sample - self._t_first_sample) if (n >= 2 and self._t_first_sample is not None) else 0.0
        hz = (n - 1) / span if span and span > 0 else None
        return {
            "n_requests": self._session.n_requests,
            "n_errors": self._session.n_errors,
            "n_samples": n,
            **self._session.latency_stats(),
            "sample_hz_achieved": hz,
            "green500_1hz_ok": None if hz is None else hz >= 1.0,
        }

    def describe(self) -> dict[str, Any]:
        src = self._source
        return {
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
            "expected_interval_s": self.expected_interval_s,
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


__all__ = ["J_PER_KWH", "RedfishReader"]
