"""Transport to one Redfish service: connect, log in, GET with timing, log out.

Built on the DMTF ``redfish`` library (imported lazily in :meth:`RedfishSession.open`). Library
notes (``redfish`` 3.4, ``redfish/rest/v1.py``): ``redfish_client`` GETs the service root in its
constructor; requests are retried ``max_retry`` times (default 10!) with a 1 s sleep, so this
session passes ``max_retry=0`` unless told otherwise; TLS certificates are *not* verified unless
``cafile`` is given (``verify=False`` is hard-coded otherwise, and the library silences urllib3's
InsecureRequestWarning on import), so ``verify_tls=True`` passes ``ca_file`` or the ``certifi``
bundle as ``cafile``. Transport failures surface as ``RetriesExhaustedError`` chained to the
``requests`` exception; HTTP errors are plain responses with ``.status``.

Every failure is a :class:`PowerError` naming the URL path. The password is kept in one private
attribute, redacted from messages, and a filter on the library's logger redacts it from log
records. Request counts, errors and latencies are kept for provenance (:meth:`timing`).
"""

from __future__ import annotations

import collections
import decimal
import json
import logging
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import redfish_docs as docs
from .base import PowerError

_LIB_LOGGER = "redfish.rest.v1"


@dataclass(frozen=True)
class RedfishEndpoint:
    """Where and how to reach a service (no password: it is passed to the session separately)."""

    base_url: str  # scheme://host[:port], without credentials or path
    username: str | None = None
    auth: str = "session"  # "session" | "basic"
    timeout_s: float = 5.0
    verify_tls: bool = True
    ca_file: str | None = None
    max_retry: int = 0


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


class RedfishSession:
    """One logged-in connection to a Redfish service. Not thread-safe: the reader serialises."""

    def __init__(self, endpoint: RedfishEndpoint, password: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint
        self._password = password  # never recorded, logged or put in a message
        self._clock = clock
        self._client: Any = None
        self._filter: _Redact | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=10_000)
        self.n_requests = 0
        self.n_errors = 0

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Connect (GET of the service root) and log in when a username is given."""
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
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Log out (DELETE of the session, if any) and close the HTTP session; never raises."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
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

    def _connect(self, redfish: Any) -> Any:
        ep = self.endpoint
        cafile = None
        if ep.base_url.startswith("https:") and ep.verify_tls:
            cafile = ep.ca_file or _default_ca_bundle()
        root = f"{ep.base_url}{docs.SERVICE_ROOT}"
        try:
            client = redfish.redfish_client(
                base_url=ep.base_url,
                username=ep.username,
                password=self._password,
                cafile=cafile,
                timeout=ep.timeout_s,
                max_retry=ep.max_retry,
            )
        except Exception as e:  # noqa: BLE001 - RetriesExhausted, ServerDownOrUnreachable, JsonDecoding
            self.n_errors += 1
            raise PowerError(self.redact(f"Redfish: cannot reach the service root {root} ({_why(e) if e.__cause__ else e})")) from None
        if ep.username is not None:
            if not self._password:
                self._close_quietly(client)
                raise PowerError(f"Redfish: username {ep.username!r} given for {ep.base_url} but no password")
            try:
                client.login(auth=ep.auth)
            except Exception as e:  # noqa: BLE001 - InvalidCredentials, SessionCreation, transport
                self._close_quietly(client)
                why = _why(e) if e.__cause__ else f"{type(e).__name__}: {e}"
                raise PowerError(self.redact(
                    f"Redfish: {ep.auth} login as {ep.username!r} at {ep.base_url}{client.login_url} failed ({why.strip()})"
                )) from None
            if ep.auth == "session" and not client.get_session_key():
                self._close_quietly(client)
                raise PowerError(f"Redfish: session login at {ep.base_url}{client.login_url} returned no X-Auth-Token")
        return client

    @staticmethod
    def _close_quietly(client: Any) -> None:
        try:
            client.logout()
        except Exception:  # noqa: BLE001
            pass

    # -- HTTP -------------------------------------------------------------------------------
    def get(self, path: str, *, _relogin: bool = True) -> tuple[dict[str, Any], float, float]:
        """GET ``path`` → (JSON object with Decimal floats, t0, t1 of the request). Raises PowerError."""
        if self._client is None:
            raise PowerError("RedfishReader used before open()")
        base = self.endpoint.base_url
        t0 = self._clock()
        try:
            resp = self._client.get(path)
        except Exception as e:  # noqa: BLE001 - RetriesExhaustedError chained to requests' error
            self.n_errors += 1
            raise PowerError(self.redact(f"Redfish: GET {path} at {base} failed ({_why(e)})")) from None
        t1 = self._clock()
        self.n_requests += 1
        self._latencies.append(t1 - t0)
        status = resp.status
        text = resp.text if resp.read is not None else ""
        if status == 401 and _relogin and self.endpoint.username is not None and self._password:
            try:  # the session may have expired: log in once more and retry once
                self._client.login(auth=self.endpoint.auth)
            except Exception:  # noqa: BLE001 - report the 401 below
                pass
            else:
                return self.get(path, _relogin=False)
        if status is None or not 200 <= status < 300:
            self.n_errors += 1
            detail = None
            try:
                detail = docs.error_message(json.loads(text))
            except ValueError:
                pass
            hint = " (authentication required: give username and password)" if status == 401 and self.endpoint.username is None else ""
            msg = f"Redfish: GET {path} at {base} returned HTTP {status}{hint}" + (f": {detail}" if detail else "")
            raise PowerError(self.redact(msg))
        try:
            doc = json.loads(text, parse_float=decimal.Decimal)
        except ValueError:
            self.n_errors += 1
            ctype = resp.getheader("content-type")
            raise PowerError(
                f"Redfish: GET {path} at {base} did not return JSON (Content-Type {ctype!r}, body starts {text[:40]!r})"
            ) from None
        if not isinstance(doc, dict):
            self.n_errors += 1
            raise PowerError(f"Redfish: GET {path} at {base} returned JSON that is not an object")
        return doc, t0, t1

    def get_doc(self, path: str) -> dict[str, Any]:
        """The document only (discovery does not need the request's times)."""
        return self.get(path)[0]

    def try_get(self, path: str) -> dict[str, Any] | None:
        """The document, or None when the GET fails (best-effort provenance)."""
        try:
            return self.get(path)[0]
        except PowerError:
            return None

    def latency_stats(self) -> dict[str, Any]:
        """Median, 95th percentile and maximum request latency so far (s)."""
        lat = sorted(self._latencies)
        return {
            "latency_s_median": statistics.median(lat) if lat else None,
            "latency_s_p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None,
            "latency_s_max": lat[-1] if lat else None,
        }
