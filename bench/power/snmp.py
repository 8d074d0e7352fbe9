"""Rack PDU power over SNMP (v2c or v3), with ``pysnmp``.

Most rack PDUs in Chinese data centres are read over SNMP. A :class:`SnmpTarget` names the agent,
the credentials (already resolved by the caller: never read from a file here) and a *profile*:
which MIB object holds the PDU's active power. The profiles are data (:data:`PROFILES`):

* ``apc-rpdu2``: APC/Schneider PowerNet-MIB ``rPDU2DeviceStatusPower.<index>`` in hundredths of
  kW (10 W per unit); ``index`` is ``rPDU2DeviceStatusIndex`` (1 for a stand-alone PDU).
  ``rPDU2DeviceStatusEnergy`` (tenths of kWh, user resettable) is the energy counter.
* ``raritan-pdu2``: Raritan PDU2-MIB ``measurementsInletSensorValue.<pduId>.<inletId>.activePower``,
  scaled by ``inletSensorDecimalDigits`` of the same sensor (read at :meth:`SnmpPduReader.open`);
  ``index`` is the inlet, ``pdu_id`` the link ID (1 when PDUs are not linked). A reading whose
  ``measurementsInletSensorState`` is ``unavailable`` is refused; the sensor's
  ``inletSensorUnits`` must say watt. The ``activeEnergy`` sensor (Wh) is the energy counter.
* ``custom``: ``oid`` (a numeric instance OID) × ``scale`` watts per unit; no energy counter.

Energy: an energy object is used only with its documented resolution, and only when that
resolution is at most ``counter_max_fraction`` (5 %) of the expected window energy (power at
:meth:`SnmpPduReader.open` × ``expected_window_s``, 60 s), the rule the Redfish reader applies.
APC's 0.1 kWh = 360 kJ is coarser than that for any rack, so the APC reader polls power; Raritan's
1 Wh passes above ~1.2 kW. A counter that goes backwards (reset, wrap) is refused, never unwrapped.

pysnmp 7 is asyncio-based. The reader stays synchronous for the Sampler's thread: it owns one
private event loop and one ``SnmpEngine``/transport (one UDP socket), made in :meth:`open` and
released in :meth:`close`; every request runs on that loop under a lock, so repeated
:meth:`sample` calls from any one thread at a time reuse them and leak nothing. Every pysnmp
error is a :class:`PowerError` whose message names the agent and the reason; secrets are never
put in a message, a record or ``repr``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .base import PowerError, PowerReader, PowerSample
from .redfish import DEFAULT_COUNTER_MAX_FRACTION, DEFAULT_EXPECTED_WINDOW_S, J_PER_KWH

J_PER_WH = 3600.0
VERSIONS = ("2c", "3")
_NUMERIC_OID = re.compile(r"^\.?[0-2](\.\d+)+$")
#: pysnmp names of the USM protocols accepted in a site file (keys upper-cased)
AUTH_PROTOCOLS = {
    "MD5": "USM_AUTH_HMAC96_MD5",
    "SHA": "USM_AUTH_HMAC96_SHA",
    "SHA224": "USM_AUTH_HMAC128_SHA224",
    "SHA256": "USM_AUTH_HMAC192_SHA256",
    "SHA384": "USM_AUTH_HMAC256_SHA384",
    "SHA512": "USM_AUTH_HMAC384_SHA512",
}
PRIV_PROTOCOLS = {
    "DES": "USM_PRIV_CBC56_DES",
    "3DES": "USM_PRIV_CBC168_3DES",
    "AES": "USM_PRIV_CFB128_AES",
    "AES128": "USM_PRIV_CFB128_AES",
    "AES192": "USM_PRIV_CFB192_AES",
    "AES256": "USM_PRIV_CFB256_AES",
}
MIN_USM_KEY_CHARS = 8  # RFC 3414 §11.2: pass phrases shorter than 8 octets are refused


@dataclass(frozen=True)
class MibObject:
    """One column of a MIB table and how its instance suffix is built from the target."""

    name: str
    column: str  # numeric OID of the column
    instance: str  # suffix template: fields of SnmpTarget in braces

    def oid(self, target: "SnmpTarget") -> str:
        return f"{self.column}.{self.instance.format(index=target.index, pdu_id=target.pdu_id)}"


@dataclass(frozen=True)
class Quantity:
    """How one quantity (power in W, energy in J) is read from a PDU's MIB."""

    value: MibObject
    si_per_unit: float  # W or J per raw unit, before the decimal digits
    digits: MibObject | None = None  # raw / 10**digits (read once at open)
    state: MibObject | None = None  # read with every value; invalid_states refuse the value
    invalid_states: tuple[int, ...] = ()
    units: MibObject | None = None  # read at open; must equal units_expected
    units_expected: int | None = None
    unsupported: int | None = None  # the value a model that lacks the object answers


# PowerNet-MIB v4.5.2 (APC, 2023), rPDU2 = enterprises.318.1.1.26; rPDU2DeviceStatusEntry =
# rPDU2Device(4).rPDU2DeviceStatusTable(3).1, INDEX rPDU2DeviceStatusIndex:
#   rPDU2DeviceStatusPower  ::= { rPDU2DeviceStatusEntry 5 } "in hundredths of kilowatts.
#     Models that do not support this feature will respond to this OID with a value of -1."
#   rPDU2DeviceStatusEnergy ::= { rPDU2DeviceStatusEntry 9 } "A user resettable energy meter
#     ... in tenths of kilowatt-hours" (-1 when unsupported)
_APC_ENTRY = "1.3.6.1.4.1.318.1.1.26.4.3.1"
# PDU2-MIB (Raritan, LAST-UPDATED 202209210000Z), pdu2 = enterprises.13742.6; both tables are
# INDEX { pduId, inletId, sensorType }, SensorTypeEnumeration activePower(5), activeEnergy(8):
#   inletSensorMeasurementsEntry = measurements(5).measurementsInlet(2).inletSensorMeasurementsTable(3).1
#     measurementsInletSensorState 3 (SensorStateEnumeration, unavailable(-1) = no reading)
#     measurementsInletSensorValue 4 (Unsigned32 "scaled by inletSensorDecimalDigits")
#   inletSensorConfigurationEntry = configuration(3).inlets(3).inletSensorConfigurationTable(4).1
#     inletSensorUnits 6 (SensorUnitsEnumeration watt(3), wattHour(5)), inletSensorDecimalDigits 7
_RARITAN_MEAS = "1.3.6.1.4.1.13742.6.5.2.3.1"
_RARITAN_CONF = "1.3.6.1.4.1.13742.6.3.3.4.1"
_RARITAN_UNAVAILABLE = -1
_RARITAN_WATT, _RARITAN_WATT_HOUR = 3, 5


def _raritan(sensor_type: int, si_per_unit: float, units_expected: int) -> Quantity:
    inst = f"{{pdu_id}}.{{index}}.{sensor_type}"
    return Quantity(
        value=MibObject("measurementsInletSensorValue", f"{_RARITAN_MEAS}.4", inst),
        si_per_unit=si_per_unit,
        digits=MibObject("inletSensorDecimalDigits", f"{_RARITAN_CONF}.7", inst),
        state=MibObject("measurementsInletSensorState", f"{_RARITAN_MEAS}.3", inst),
        invalid_states=(_RARITAN_UNAVAILABLE,),
        units=MibObject("inletSensorUnits", f"{_RARITAN_CONF}.6", inst),
        units_expected=units_expected,
    )


#: profile -> (MIB module, {"power": Quantity, "energy": Quantity})
PROFILES: dict[str, tuple[str, dict[str, Quantity]]] = {
    "apc-rpdu2": (
        "PowerNet-MIB",
        {
            "power": Quantity(MibObject("rPDU2DeviceStatusPower", f"{_APC_ENTRY}.5", "{index}"), 10.0, unsupported=-1),
            "energy": Quantity(
                MibObject("rPDU2DeviceStatusEnergy", f"{_APC_ENTRY}.9", "{index}"), 0.1 * J_PER_KWH, unsupported=-1
            ),
        },
    ),
    "raritan-pdu2": (
        "PDU2-MIB",
        {"power": _raritan(5, 1.0, _RARITAN_WATT), "energy": _raritan(8, J_PER_WH, _RARITAN_WATT_HOUR)},
    ),
    "custom": ("custom", {}),  # the power Quantity is built from the target's oid and scale
}


def _bad(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"snmp {name}={value!r}: expected {expected}")


@dataclass(frozen=True)
class SnmpTarget:
    """One SNMP agent and the MIB object that holds its active power (secrets already resolved)."""

    host: str
    port: int = 161
    version: str = "2c"
    community: str | None = field(default=None, repr=False)
    user: str | None = None
    auth_protocol: str | None = None
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: str | None = None
    priv_key: str | None = field(default=None, repr=False)
    profile: str = "apc-rpdu2"
    index: int = 1  # APC rPDU2DeviceStatusIndex, Raritan inletId
    oid: str | None = None  # custom only
    scale: float | None = None  # custom only: W per unit
    timeout_s: float = 2.0
    retries: int = 1
    accuracy_rel: float | None = None
    pdu_id: int = 1  # Raritan pduId (the link ID; 1 when PDUs are not linked)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise _bad("host", self.host, "a host name or IP address")
        if not _is_int(self.port) or not 1 <= self.port <= 65535:
            raise _bad("port", self.port, "an integer in 1..65535")
        if self.version not in VERSIONS:
            raise _bad("version", self.version, f"one of {', '.join(map(repr, VERSIONS))}")
        if self.version == "2c":
            if not self.community:
                raise _bad("community", "<empty>" if self.community == "" else None, "a community for version 2c")
        else:
            self._check_v3()
        if self.profile not in PROFILES:
            raise _bad("profile", self.profile, f"one of {', '.join(PROFILES)}")
        for name in ("index", "pdu_id"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise _bad(name, v, "a non-negative integer (the row in the MIB table)")
        if self.profile == "custom":
            if not isinstance(self.oid, str) or not _NUMERIC_OID.match(self.oid):
                raise _bad("oid", self.oid, "a numeric OID such as 1.3.6.1.4.1.99999.1.1.0 for profile custom")
            if not _is_finite(self.scale) or self.scale <= 0:  # type: ignore[operator]
                raise _bad("scale", self.scale, "a positive number of watts per unit for profile custom")
        else:
            for name in ("oid", "scale"):
                if getattr(self, name) is not None:
                    raise _bad(name, getattr(self, name), f"null: only profile custom takes {name} ({self.profile} knows its OIDs)")
        if not _is_finite(self.timeout_s) or self.timeout_s <= 0:
            raise _bad("timeout_s", self.timeout_s, "a positive number of seconds")
        if not _is_int(self.retries) or not 0 <= self.retries <= 10:
            raise _bad("retries", self.retries, "an integer in 0..10")
        if self.accuracy_rel is not None and (not _is_finite(self.accuracy_rel) or not 0 <= self.accuracy_rel < 1):
            raise _bad("accuracy_rel", self.accuracy_rel, "null or a fraction in [0, 1), e.g. 0.01 for 1 %")

    def _check_v3(self) -> None:
        if not self.user:
            raise _bad("user", self.user, "a USM user name for version 3")
        if self.community is not None:
            raise _bad("community", "***", "null for version 3 (communities are v2c only)")
        for proto, key, table in (
            ("auth_protocol", "auth_key", AUTH_PROTOCOLS),
            ("priv_protocol", "priv_key", PRIV_PROTOCOLS),
        ):
            p, k = getattr(self, proto), getattr(self, key)
            if p is not None and str(p).upper() not in table:
                raise _bad(proto, p, f"one of {', '.join(table)}")
            if (p is None) != (k is None):
                raise _bad(key, None if k is None else "***", f"given together with {proto}")
            if k is not None and len(k) < MIN_USM_KEY_CHARS:
                raise _bad(key, "***", f"at least {MIN_USM_KEY_CHARS} characters (RFC 3414)")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise _bad("priv_protocol", self.priv_protocol, "null unless auth_protocol is set (USM has no privacy without authentication)")

    @property
    def security_level(self) -> str | None:
        """USM security level (v3), e.g. ``"authPriv"``; None for v2c."""
        if self.version != "3":
            return None
        return "authPriv" if self.priv_protocol else "authNoPriv" if self.auth_protocol else "noAuthNoPriv"

    def quantities(self) -> dict[str, Quantity]:
        """What this target's profile reads: ``power`` and, where the MIB has one, ``energy``."""
        if self.profile == "custom":
            assert self.oid is not None and self.scale is not None
            oid = self.oid.lstrip(".")
            column, _, inst = oid.rpartition(".")
            return {"power": Quantity(MibObject("custom", column, inst), float(self.scale))}
        return PROFILES[self.profile][1]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: pysnmp error indications (class names) -> the reason a person can act on
_INDICATIONS: dict[str, str] = {
    "RequestTimedOut": "no answer within {wait} (agent down or unreachable, wrong community -- v2c agents stay silent -- or a firewall)",
    "WrongDigest": "SNMPv3 authentication failed (wrong auth_key or auth_protocol)",
    "DecryptionError": "SNMPv3 decryption failed (wrong priv_key or priv_protocol)",
    "UnknownUserName": "SNMPv3 user {user!r} is unknown to the agent",
    "UnsupportedSecurityLevel": "the agent does not accept security level {level} for user {user!r}",
    "NotInTimeWindow": "SNMPv3 message outside the agent's time window (engine boots/time out of sync)",
    "UnknownEngineID": "SNMPv3 engine ID discovery failed",
    "AuthenticationError": "SNMPv3 authentication failed",
}


@dataclass
class _Got:
    """The varbinds of one GET, by OID, and the monotonic midpoint of the request."""

    values: dict[str, Any]
    t_s: float


class SnmpPduReader(PowerReader):
    """Active power (and, when documented and fine enough, energy) of one rack PDU over SNMP."""

    name = "snmp"

    def __init__(
        self,
        target: SnmpTarget,
        scope: str = "rack",
        *,
        expected_window_s: float = DEFAULT_EXPECTED_WINDOW_S,
        counter_max_fraction: float = DEFAULT_COUNTER_MAX_FRACTION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(target, SnmpTarget):
            raise TypeError(f"target must be an SnmpTarget, got {type(target).__name__}")
        if scope not in ("rack", "node"):
            raise _bad("scope", scope, "'rack' or 'node'")
        if not _is_finite(expected_window_s) or expected_window_s <= 0:
            raise _bad("expected_window_s", expected_window_s, "a positive number of seconds")
        if not _is_finite(counter_max_fraction) or not 0 < counter_max_fraction < 1:
            raise _bad("counter_max_fraction", counter_max_fraction, "a fraction in (0, 1)")
        self.target = target
        self.scope = scope  # type: ignore[assignment]
        self.expected_window_s = float(expected_window_s)
        self.counter_max_fraction = float(counter_max_fraction)
        self._clock = clock
        self._q = target.quantities()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Any = None
        self._transport: Any = None
        self._auth: Any = None
        self._hlapi: Any = None
        self._digits: dict[str, int] = {}  # quantity -> decimal digits read at open
        self._has_counter = False
        self._last_energy_raw: int | None = None
        #: why the energy counter is not used (read by the Sampler for its note)
        self.counter_note: str | None = None
        self.counter_resolution_j: float | None = None
        self._expected_window_j: float | None = None
        self._library = "pysnmp"
        self._latencies: collections.deque[float] = collections.deque(maxlen=10_000)
        self._n_requests = 0
        self._n_errors = 0

    def __repr__(self) -> str:
        t = self.target
        return f"SnmpPduReader({t.host}:{t.port}, v{t.version}, profile={t.profile!r}, index={t.index}, scope={self.scope!r})"

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Make the engine and transport and read the power once (and the configuration objects);
        raises :class:`PowerError` when the agent does not answer or the object is unusable."""
        with self._lock:
            if self._loop is not None:
                return
            try:
                import pysnmp
                from pysnmp.hlapi.v3arch import asyncio as hlapi
            except ImportError as e:
                raise PowerError("SNMP: the 'pysnmp' package (7.x) is not installed (pip install pysnmp)") from e
            self._hlapi = hlapi
            self._library = f"pysnmp {getattr(pysnmp, '__version__', '?')}"
            self._loop = asyncio.new_event_loop()
            try:
                self._engine, self._transport = self._run_setup()
                self._auth = self._make_auth()
                self._read_config()
                _, power_w, _ = self._read_power(with_energy=False)
                self._decide_counter(power_w)
            except BaseException:
                self._teardown()
                raise

    def close(self) -> None:
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        loop, self._loop = self._loop, None
        engine, self._engine = self._engine, None
        self._transport = None
        if loop is None:
            return
        try:
            if engine is not None:
                loop.run_until_complete(_close_engine(engine))
            loop.run_until_complete(loop.shutdown_asyncgens())
            # getaddrinfo ran in the loop's default executor: join its thread, leave none behind
            loop.run_until_complete(loop.shutdown_default_executor())
        except Exception:  # noqa: BLE001 - closing: nothing useful to do with the error
            pass
        finally:
            loop.close()

    def _run_setup(self) -> tuple[Any, Any]:
        hlapi, t = self._hlapi, self.target
        cls = hlapi.Udp6TransportTarget if ":" in t.host else hlapi.UdpTransportTarget

        async def setup() -> tuple[Any, Any]:
            engine = hlapi.SnmpEngine()  # made on our loop: its dispatcher binds to the running loop
            transport = await cls.create((t.host, t.port), timeout=t.timeout_s, retries=t.retries)
            return engine, transport

        assert self._loop is not None
        try:
            return self._loop.run_until_complete(setup())
        except Exception as e:  # noqa: BLE001 - pysnmp raises PySnmpError and socket errors
            raise PowerError(f"SNMP {self._where()}: cannot set up the transport ({self._redact(str(e))})") from None

    def _make_auth(self) -> Any:
        hlapi, t = self._hlapi, self.target
        if t.version == "2c":
            return hlapi.CommunityData(t.community, mpModel=1)
        kw: dict[str, Any] = {}
        if t.auth_protocol:
            kw["authProtocol"] = getattr(hlapi, AUTH_PROTOCOLS[t.auth_protocol.upper()])
        if t.priv_protocol:
            kw["privProtocol"] = getattr(hlapi, PRIV_PROTOCOLS[t.priv_protocol.upper()])
        return hlapi.UsmUserData(t.user, authKey=t.auth_key, privKey=t.priv_key, **kw)

    def _where(self) -> str:
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        return f"{host}:{self.target.port}"

    def _redact(self, text: str) -> str:
        for secret in (self.target.community, self.target.auth_key, self.target.priv_key):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _reason(self, indication: str, text: str) -> str:
        """What a pysnmp error indication means for the person who configured the target."""
        t = self.target
        template = _INDICATIONS.get(indication)
        if template is None:
            return self._redact(text or indication)
        return template.format(wait=f"{t.timeout_s:g} s x {t.retries + 1} tries", user=t.user, level=t.security_level)

    # -- requests ---------------------------------------------------------------------------
    def _get(self, oids: list[str]) -> _Got:
        """One GET of ``oids`` on the reader's loop; every failure is a PowerError."""
        if self._loop is None:
            raise PowerError(f"SNMP {self._where()}: reader used before open() or after close()")
        hlapi, t = self._hlapi, self.target
        # pysnmp applies timeout/retries itself; the outer bound only guards against a hang
        wait_s = t.timeout_s * (t.retries + 1)
        coro = hlapi.get_cmd(
            self._engine, self._auth, self._transport, hlapi.ContextData(),
            *(hlapi.ObjectType(hlapi.ObjectIdentity(o)) for o in oids), lookupMib=False,
        )
        self._n_requests += 1
        t0 = self._clock()
        try:
            err_ind, err_status, err_index, var_binds = self._loop.run_until_complete(asyncio.wait_for(coro, wait_s + 5.0))
        except asyncio.TimeoutError:
            self._n_errors += 1
            raise PowerError(f"SNMP {self._where()}: {self._reason('RequestTimedOut', '')}") from None
        except Exception as e:  # noqa: BLE001 - pysnmp's errors become PowerError at this boundary
            self._n_errors += 1
            raise PowerError(f"SNMP {self._where()}: request failed ({type(e).__name__}: {self._redact(str(e))})") from None
        t1 = self._clock()
        if err_ind:
            self._n_errors += 1
            raise PowerError(f"SNMP {self._where()}: {self._reason(type(err_ind).__name__, str(err_ind))}")
        if err_status:
            self._n_errors += 1
            bad = oids[int(err_index) - 1] if 0 < int(err_index) <= len(oids) else "the request"
            raise PowerError(f"SNMP {self._where()}: the agent answered {err_status.prettyPrint()} for {bad}")
        self._latencies.append(t1 - t0)
        return _Got({str(name).lstrip("."): value for name, value in var_binds}, 0.5 * (t0 + t1))

    def _integer(self, got: _Got, obj: MibObject, raw_oid: str) -> int:
        """The integer the agent answered for ``raw_oid``, else PowerError naming the object."""
        v = got.values.get(raw_oid)
        what = f"{obj.name} ({raw_oid})"
        kind = type(v).__name__
        if v is None or kind in ("NoSuchObject", "NoSuchInstance", "EndOfMibView"):
            raise PowerError(f"SNMP {self._where()}: {what} is missing ({kind if v is not None else 'not in the answer'}): check profile and index")
        from pyasn1.type import univ

        if not isinstance(v, univ.Integer) or kind == "TimeTicks":
            shown = v.prettyPrint() if hasattr(v, "prettyPrint") else repr(v)
            raise PowerError(f"SNMP {self._where()}: {what} is not a number ({kind} {shown[:40]!r})")
        return int(v)

    # -- configuration and readings -----------------------------------------------------------
    def _config_oids(self) -> list[tuple[str, MibObject]]:
        out = []
        for key, q in self._q.items():
            for obj in (q.digits, q.units):
                if obj is not None:
                    out.append((key, obj))
        return out

    def _read_config(self) -> None:
        """Decimal digits and units of each quantity (Raritan); the energy's may be missing."""
        cfg = self._config_oids()
        if not cfg:
            return
        got = self._get([obj.oid(self.target) for _, obj in cfg])
        for key, obj in cfg:
            q = self._q[key]
            try:
                v = self._integer(got, obj, obj.oid(self.target))
            except PowerError as e:
                if key == "power":
                    raise
                self.counter_note = f"energy object unusable: {e}"
                continue
            if obj is q.digits:
                if not 0 <= v <= 9:
                    raise PowerError(f"SNMP {self._where()}: {obj.name} of {key} is {v}, expected 0..9")
                self._digits[key] = v
            elif v != q.units_expected:
                msg = f"{obj.name} of {key} is {v}, expected {q.units_expected} (the MIB's unit for {key})"
                if key == "power":
                    raise PowerError(f"SNMP {self._where()}: {msg}")
                self.counter_note = f"energy object unusable: {msg}"

    def _unit(self, key: str) -> float:
        """SI units (W or J) per raw unit of quantity ``key``."""
        return self._q[key].si_per_unit / 10 ** self._digits.get(key, 0)

    def _quantity_oids(self, key: str) -> list[str]:
        q = self._q[key]
        return [obj.oid(self.target) for obj in (q.value, q.state) if obj is not None]

    def _raw(self, got: _Got, key: str) -> int:
        """The raw value of quantity ``key`` in ``got``, checked against its state and the MIB."""
        q = self._q[key]
        oid = q.value.oid(self.target)
        raw = self._integer(got, q.value, oid)
        if q.state is not None:
            state = self._integer(got, q.state, q.state.oid(self.target))
            if state in q.invalid_states:
                raise PowerError(f"SNMP {self._where()}: {q.state.name} of {oid} is {state} (unavailable): no reading")
        if q.unsupported is not None and raw == q.unsupported:
            raise PowerError(f"SNMP {self._where()}: {q.value.name} ({oid}) is {raw}: this model does not support it")
        if raw < 0:
            raise PowerError(f"SNMP {self._where()}: {q.value.name} ({oid}) is negative ({raw})")
        return raw

    def _read_power(self, with_energy: bool) -> tuple[float, float, int | None]:
        """(t_s, power_w, raw energy or None) from one GET."""
        oids = self._quantity_oids("power") + (self._quantity_oids("energy") if with_energy else [])
        got = self._get(oids)
        power_w = self._raw(got, "power") * self._unit("power")
        return got.t_s, power_w, self._raw(got, "energy") if with_energy else None

    def _decide_counter(self, power_w_at_open: float) -> None:
        self._expected_window_j = power_w_at_open * self.expected_window_s
        if "energy" not in self._q:
            self.counter_note = "profile has no energy object"
            return
        if self.counter_note:  # the energy's configuration objects were unusable
            return
        try:
            got = self._get(self._quantity_oids("energy"))
            self._raw(got, "energy")
        except PowerError as e:
            self.counter_note = f"energy object unusable: {e}"
            return
        self.counter_resolution_j = self._unit("energy")
        limit_j = self.counter_max_fraction * self._expected_window_j
        if self._expected_window_j <= 0:
            self.counter_note = f"power at open was {power_w_at_open:g} W: cannot judge the counter's resolution"
        elif self.counter_resolution_j > limit_j:
            self.counter_note = (
                f"{self._q['energy'].value.name} resolution {self.counter_resolution_j:g} J exceeds "
                f"{self.counter_max_fraction:.0%} of the expected window energy ({power_w_at_open:.0f} W x "
                f"{self.expected_window_s:g} s = {self._expected_window_j:.0f} J): polled power integrated instead"
            )
        else:
            self._has_counter = True

    # -- PowerReader ------------------------------------------------------------------------
    @property
    def has_energy_counter(self) -> bool:
        return self._has_counter

    def energy_j(self) -> float | None:
        """The PDU's energy counter in joules (None without a usable counter). A counter that
        went backwards since the last call (reset or wrap) raises PowerError."""
        with self._lock:
            if not self._has_counter:
                return None
            raw = self._raw(self._get(self._quantity_oids("energy")), "energy")
            last, self._last_energy_raw = self._last_energy_raw, raw
            if last is not None and raw < last:
                raise PowerError(
                    f"SNMP {self._where()}: energy counter went back from {last} to {raw} (reset or wrap): not usable for this window"
                )
            return raw * self._unit("energy")

    def sample(self) -> PowerSample:
        """One GET: power (and the counter when there is one); ``t_s`` is the GET's midpoint."""
        with self._lock:
            t_s, power_w, energy_raw = self._read_power(with_energy=self._has_counter)
        return PowerSample(t_s=t_s, power_w=power_w, energy_j=None if energy_raw is None else energy_raw * self._unit("energy"))

    def describe(self) -> dict[str, Any]:
        t = self.target
        module = PROFILES[t.profile][0]
        lat = sorted(self._latencies)
        return {
            "name": self.name,
            "scope": self.scope,
            "library": self._library,
            "host": t.host,
            "port": t.port,
            "version": t.version,
            "user": t.user,
            "security_level": t.security_level,
            "profile": t.profile,
            "mib": module,
            "index": t.index,
            "pdu_id": t.pdu_id if t.profile == "raritan-pdu2" else None,
            "oids": {f"{key}.{role}": obj.oid(t) for key, q in self._q.items() for role, obj in _objects(q)},
            "objects": {key: q.value.name for key, q in self._q.items()},
            "scale": self._unit("power"),  # W per unit of the power object, decimal digits applied
            "resolution_w": self._unit("power"),
            "decimal_digits": dict(self._digits),
            "accuracy_rel": t.accuracy_rel,
            "method": "counter" if self._has_counter else "polled",
            "has_energy_counter": self._has_counter,
            "counter_resolution_j": self.counter_resolution_j,
            "counter_max_fraction": self.counter_max_fraction,
            "expected_window_s": self.expected_window_s,
            "expected_window_j": self._expected_window_j,
            "counter_note": self.counter_note,
            "timeout_s": t.timeout_s,
            "retries": t.retries,
            "timing": {
                "n_requests": self._n_requests,
                "n_errors": self._n_errors,
                "latency_s_median": statistics.median(lat) if lat else None,
                "latency_s_max": lat[-1] if lat else None,
            },
        }


def _objects(q: Quantity) -> list[tuple[str, MibObject]]:
    return [(role, obj) for role, obj in (("value", q.value), ("state", q.state), ("digits", q.digits), ("units", q.units)) if obj is not None]


async def _close_engine(engine: Any) -> None:
    """Close the engine's dispatcher (its UDP socket and timer task) on the loop that owns it."""
    engine.close_dispatcher()
    await asyncio.sleep(0)  # let the cancelled timer task finish before the loop closes


__all__ = ["AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "PROFILES", "MibObject", "Quantity", "SnmpPduReader", "SnmpTarget"]
