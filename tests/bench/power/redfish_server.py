"""A small mock Redfish service on loopback for the Redfish reader's tests.

A real threaded ``http.server`` bound to 127.0.0.1 on an ephemeral port. It serves:

* the service root ``/redfish/v1`` (``Links.Sessions``), ``SessionService/Sessions`` (POST →
  201 with ``X-Auth-Token`` and ``Location``; DELETE of the session → 204);
* ``Chassis``: variant ``"environment"``: ``Chassis/1`` with ``EnvironmentMetrics`` (PowerWatts
  with a DataSourceUri sensor, EnergykWh) *and* ``Power``; variant ``"power"``: a GPU baseboard
  sub-chassis listed first (EnvironmentMetrics, ContainedBy Chassis/1) and ``Chassis/1`` with
  ``Power`` only (PowerControl[0].PowerConsumedWatts and PowerMetrics);
* ``PowerEquipment/RackPDUs/1`` with ``Mains`` (two circuits) and ``Metrics``.

Power follows scripted functions of the server's time ``s = time.monotonic() - t0``; each energy
counter integrates its function (1 ms trapezoid steps, at request time) from ``energy_offset_kwh``
and is printed with exactly ``energy_decimals`` decimals (3 → 0.001 kWh = 3600 J resolution).

Test hooks: ``fail[path] = status`` (Redfish error body), ``raw[path] = (content_type, bytes)``,
``edit(path, fn)`` (fn mutates the document), ``requests`` (method, path, token present),
``require_auth`` (401 without a valid token, except the service root and the session POST),
``kill()`` (a BMC that died: open keep-alive connections are dropped unanswered and new ones refused;
``stop()`` alone would let the handler threads of open connections go on answering).
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

PowerFn = Callable[[float], float]
V1 = "/redfish/v1"


def default_node_power(s: float) -> float:
    return 600.0 + 200.0 * math.sin(2 * math.pi * s / 0.8)


def default_rack_power(i: int) -> PowerFn:
    base = (3000.0, 2500.0)[i % 2]
    return lambda s: base + 400.0 * math.sin(2 * math.pi * s / 0.7 + i)


def integrate(fn: PowerFn, a: float, b: float, step: float = 1e-3) -> float:
    """Trapezoid integral of ``fn`` over [a, b] (J for W over s)."""
    if b <= a:
        return 0.0
    n = max(1, math.ceil((b - a) / step))
    h = (b - a) / n
    return h * (0.5 * fn(a) + sum(fn(a + k * h) for k in range(1, n)) + 0.5 * fn(b))


class Integrator:
    """A monotonic energy counter of ``fn``, advanced to the time of each read."""

    def __init__(self, fn: PowerFn) -> None:
        self.fn = fn
        self._t = 0.0
        self._acc = 0.0
        self._lock = threading.Lock()

    def energy_j(self, s: float) -> float:
        with self._lock:
            if s > self._t:
                self._acc += integrate(self.fn, self._t, s)
                self._t = s
            return self._acc


class Num:
    """A number printed with exactly ``decimals`` decimals in the JSON."""

    def __init__(self, value: float, decimals: int) -> None:
        self.text = f"{value:.{decimals}f}"


def _dumps(doc: Any) -> bytes:
    text = json.dumps(doc, default=lambda o: f"@@NUM:{o.text}@@" if isinstance(o, Num) else str(o))
    return re.sub(r'"@@NUM:([-0-9.eE+]+)@@"', r"\1", text).encode()


def _err(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "Base.1.0.GeneralError",
            "message": message,
            "@Message.ExtendedInfo": [{"MessageId": "Base.1.0.GeneralError", "Message": message}],
        }
    }


def _ref(path: str) -> dict[str, str]:
    return {"@odata.id": path}


class MockRedfish:
    """The mock service. ``start()`` returns the base URL; ``stop()`` shuts it down."""

    def __init__(
        self,
        *,
        variant: str = "environment",
        node_power: PowerFn = default_node_power,
        rack_power: list[PowerFn] | None = None,
        energy_decimals: int = 6,
        energy_offset_kwh: float = 1234.0,
        require_auth: bool = False,
        username: str = "admin",
        password: str = "s3cret-Pa55",
        latency_s: float = 0.0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        assert variant in ("environment", "power")
        self.variant = variant
        self.node_power = node_power
        self.rack_power = rack_power or [default_rack_power(0), default_rack_power(1)]
        self.energy_decimals = energy_decimals
        self.energy_offset_kwh = energy_offset_kwh
        self.require_auth = require_auth
        self.username = username
        self.password = password
        self.latency_s = latency_s
        self.tls = tls  # (certfile, keyfile): serve HTTPS
        self.fail: dict[str, int] = {}
        self.raw: dict[str, tuple[str, bytes]] = {}
        self._edits: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self.requests: list[tuple[str, str, bool]] = []
        self.sessions: dict[str, str] = {}  # token -> session path
        self.deleted_sessions: list[str] = []
        self.login_attempts: list[dict[str, Any]] = []
        self._n_session = 0
        self._lock = threading.Lock()
        self._node_counter = Integrator(node_power)
        self._rack_counters = [Integrator(f) for f in self.rack_power]
        self.t0 = time.monotonic()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.dead = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5  # idle keep-alive connections end on their own
            disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per response

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.url

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def kill(self) -> None:
        """The BMC dies: nothing more is answered, on any connection."""
        self.dead = True
        self.stop()

    def __enter__(self) -> "MockRedfish":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- script ---------------------------------------------------------------------------
    def s(self, t_monotonic: float | None = None) -> float:
        """Server time of a monotonic instant (now by default)."""
        return (time.monotonic() if t_monotonic is None else t_monotonic) - self.t0

    def expected_node_j(self, t_begin: float, t_end: float) -> float:
        """Exact energy of the node's script between two ``time.monotonic()`` instants."""
        return integrate(self.node_power, self.s(t_begin), self.s(t_end))

    def expected_rack_j(self, t_begin: float, t_end: float) -> float:
        return sum(integrate(f, self.s(t_begin), self.s(t_end)) for f in self.rack_power)

    def edit(self, path: str, fn: Callable[[dict[str, Any]], None]) -> None:
        """Mutate the document at ``path`` on every later GET (e.g. drop a property)."""
        self._edits.setdefault(path, []).append(fn)

    def _kwh(self, counter: Integrator, s: float) -> Num:
        return Num(self.energy_offset_kwh + counter.energy_j(s) / 3.6e6, self.energy_decimals)

    # -- documents ------------------------------------------------------------------------
    def _doc(self, path: str) -> dict[str, Any] | None:
        s = self.s()
        p_node = round(self.node_power(s), 2)
        rack = [round(f(s), 2) for f in self.rack_power]
        docs: dict[str, Callable[[], dict[str, Any]]] = {
            V1: lambda: {
                "@odata.id": V1,
                "RedfishVersion": "1.17.0",
                "Chassis": _ref(f"{V1}/Chassis"),
                "PowerEquipment": _ref(f"{V1}/PowerEquipment"),
                "SessionService": _ref(f"{V1}/SessionService"),
                "Links": {"Sessions": _ref(f"{V1}/SessionService/Sessions")},
            },
            f"{V1}/Chassis": lambda: {
                "Members": [_ref(f"{V1}/Chassis/{c}") for c in (["1"] if self.variant == "environment" else ["GPU_Baseboard", "1"])],
                "Members@odata.count": 1 if self.variant == "environment" else 2,
            },
            f"{V1}/Chassis/1": lambda: {
                "@odata.id": f"{V1}/Chassis/1",
                "Id": "1",
                "Name": "Computer System Chassis",
                "ChassisType": "RackMount",
                "Manufacturer": "Acme",
                "Model": "AX-9000",
                "SerialNumber": "SN-NODE-0001",
                "Power": _ref(f"{V1}/Chassis/1/Power"),
                **({"EnvironmentMetrics": _ref(f"{V1}/Chassis/1/EnvironmentMetrics")} if self.variant == "environment" else {}),
            },
            f"{V1}/Chassis/1/Power": lambda: {
                "@odata.id": f"{V1}/Chassis/1/Power",
                "PowerControl": [
                    {
                        "MemberId": "0",
                        "Name": "System Power Control",
                        "PowerConsumedWatts": p_node,
                        "PowerMetrics": {
                            "IntervalInMin": 1,
                            "MinConsumedWatts": 400,
                            "MaxConsumedWatts": 800,
                            "AverageConsumedWatts": 600,
                        },
                    }
                ],
            },
            f"{V1}/Chassis/1/Sensors/TotalPower": lambda: {
                "Id": "TotalPower",
                "Reading": p_node,
                "ReadingUnits": "W",
                "Accuracy": 2.0,
                "SensingInterval": "PT1S",
            },
            f"{V1}/PowerEquipment": lambda: {"RackPDUs": _ref(f"{V1}/PowerEquipment/RackPDUs")},
            f"{V1}/PowerEquipment/RackPDUs": lambda: {"Members": [_ref(f"{V1}/PowerEquipment/RackPDUs/1")]},
            f"{V1}/PowerEquipment/RackPDUs/1": lambda: {
                "Id": "1",
                "EquipmentType": "RackPDU",
                "Manufacturer": "Acme Power",
                "Model": "PDU-42",
                "SerialNumber": "SN-PDU-0042",
                "Mains": _ref(f"{V1}/PowerEquipment/RackPDUs/1/Mains"),
                "Metrics": _ref(f"{V1}/PowerEquipment/RackPDUs/1/Metrics"),
            },
            f"{V1}/PowerEquipment/RackPDUs/1/Mains": lambda: {
                "Members": [_ref(f"{V1}/PowerEquipment/RackPDUs/1/Mains/AC{i + 1}") for i in range(len(rack))]
            },
            f"{V1}/PowerEquipment/RackPDUs/1/Metrics": lambda: {
                "PowerWatts": {"Reading": round(sum(rack), 2)},
                "EnergykWh": {
                    "Reading": Num(
                        self.energy_offset_kwh * len(rack) + sum(c.energy_j(s) for c in self._rack_counters) / 3.6e6,
                        self.energy_decimals,
                    )
                },
            },
        }
        if self.variant == "environment":
            docs[f"{V1}/Chassis/1/EnvironmentMetrics"] = lambda: {
                "@odata.id": f"{V1}/Chassis/1/EnvironmentMetrics",
                "PowerWatts": {"Reading": p_node, "DataSourceUri": f"{V1}/Chassis/1/Sensors/TotalPower"},
                "EnergykWh": {"Reading": self._kwh(self._node_counter, s)},
            }
        else:
            docs[f"{V1}/Chassis/GPU_Baseboard"] = lambda: {
                "Id": "GPU_Baseboard",
                "ChassisType": "Module",
                "EnvironmentMetrics": _ref(f"{V1}/Chassis/GPU_Baseboard/EnvironmentMetrics"),
                "Links": {"ContainedBy": _ref(f"{V1}/Chassis/1")},
            }
            docs[f"{V1}/Chassis/GPU_Baseboard/EnvironmentMetrics"] = lambda: {"PowerWatts": {"Reading": 200.0}}
        for i, (counter, p) in enumerate(zip(self._rack_counters, rack)):
            docs[f"{V1}/PowerEquipment/RackPDUs/1/Mains/AC{i + 1}"] = lambda counter=counter, p=p: {
                "PowerWatts": {"Reading": p},
                "EnergykWh": {"Reading": self._kwh(counter, s)},
            }
        make = docs.get(path)
        if make is None:
            return None
        doc = make()
        for fn in self._edits.get(path, []):
            fn(doc)
        return doc

    # -- HTTP -----------------------------------------------------------------------------
    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        token = h.headers.get("X-Auth-Token")
        if token and token in self.sessions:
            return True
        basic = h.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            want = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return basic[6:] == want
        return False

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"", ctype: str = "application/json", headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("OData-Version", "4.0")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        if self.dead:  # drop the connection without a response
            h.close_connection = True
            return
        path = h.path.split("?", 1)[0]
        if path != "/" and path.endswith("/"):
            path = path.rstrip("/")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, path, bool(h.headers.get("X-Auth-Token"))))
        if self.latency_s:
            time.sleep(self.latency_s)
        sessions = f"{V1}/SessionService/Sessions"
        if method == "POST" and path == sessions:
            try:
                creds = json.loads(body or b"{}")
            except ValueError:
                creds = {}
            self.login_attempts.append({"UserName": creds.get("UserName")})
            if creds.get("UserName") != self.username or creds.get("Password") != self.password:
                return self._send(h, 401, _dumps(_err(401, "Invalid username or password")))
            with self._lock:
                self._n_session += 1
                token = secrets.token_hex(16)
                loc = f"{sessions}/{self._n_session}"
                self.sessions[token] = loc
            return self._send(
                h, 201, _dumps({"@odata.id": loc, "Id": str(self._n_session), "UserName": creds["UserName"]}),
                headers={"X-Auth-Token": token, "Location": loc},
            )
        if self.require_auth and path != V1 and not self._authorized(h):
            return self._send(h, 401, _dumps(_err(401, "Authentication required")))
        if method == "DELETE":
            with self._lock:
                for tok, loc in list(self.sessions.items()):
                    if loc == path:
                        del self.sessions[tok]
                        self.deleted_sessions.append(path)
                        return self._send(h, 204)
            return self._send(h, 404, _dumps(_err(404, f"no session {path}")))
        if method != "GET":
            return self._send(h, 405, _dumps(_err(405, "method not allowed")))
        if path in self.fail:
            status = self.fail[path]
            return self._send(h, status, _dumps(_err(status, f"simulated failure of {path}")))
        if path in self.raw:
            ctype, raw = self.raw[path]
            return self._send(h, 200, raw, ctype=ctype)
        doc = self._doc(path)
        if doc is None:
            return self._send(h, 404, _dumps(_err(404, f"resource {path} not found")))
        return self._send(h, 200, _dumps(doc))


def loopback_only(monkeypatch: Any) -> None:
    """requests honours *_PROXY: make sure loopback requests stay on loopback (a pytest monkeypatch)."""
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def make_self_signed_cert(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (SAN IP) and its key, written under ``directory``."""
    import datetime
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = os.path.join(directory, "bmc-cert.pem")
    keyfile = os.path.join(directory, "bmc-key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certfile, keyfile
