"""RedfishReader against a real HTTP server on loopback (tests/bench/power/redfish_server.py).

Every request goes to 127.0.0.1 on an ephemeral port; each server is shut down by its fixture's
finalizer; every wait is bounded.
"""

from __future__ import annotations

import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator

import pytest
from redfish_server import MockRedfish, loopback_only, make_self_signed_cert

from icb_bench.bench.power import PowerError, Sampler
from icb_bench.bench.power.redfish import J_PER_KWH, RedfishReader

V1 = "/redfish/v1"
PASSWORD = "s3cret-Pa55"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
def server() -> Iterator[Callable[..., MockRedfish]]:
    """Factory: ``server(**kw)`` starts a MockRedfish; all are stopped when the test ends."""
    started: list[MockRedfish] = []

    def make(**kw: Any) -> MockRedfish:
        srv = MockRedfish(password=PASSWORD, **kw)
        srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gets(srv: MockRedfish) -> list[str]:
    return [p for m, p, _ in srv.requests if m == "GET"]


# -- discovery ------------------------------------------------------------------------------
def test_discovery_prefers_environment_metrics_over_power(server) -> None:
    srv = server(variant="environment")
    with RedfishReader(srv.url, scope="node") as r:
        d = r.describe()
        s = r.sample()
        e = r.energy_j()
    assert d["resource"] == f"{V1}/Chassis/1/EnvironmentMetrics"
    assert d["resource_kind"] == "environment"
    assert d["power_property"] == "PowerWatts.Reading" and d["energy_property"] == "EnergykWh.Reading"
    assert d["owner"]["Model"] == "AX-9000" and d["owner"]["SerialNumber"] == "SN-NODE-0001"
    assert d["url"] == srv.url and d["scope"] == "node" and d["name"] == "redfish"
    assert d["power_sensor"]["SensingInterval"] == "PT1S"  # provenance from the DataSourceUri sensor
    assert "averages over seconds" in d["note"]
    assert d["has_energy_counter"] is True  # 6 decimals: 3.6 J resolution
    assert d["counter_resolution_j"] == pytest.approx(0.000001 * J_PER_KWH)
    assert 400.0 <= s.power_w <= 800.0
    assert e == pytest.approx(1234.0 * J_PER_KWH, rel=1e-6) and s.energy_j is not None
    assert f"{V1}/Chassis/1/Power" not in gets(srv)  # EnvironmentMetrics won: Power never read


def test_power_fallback_and_top_level_chassis_first(server) -> None:
    srv = server(variant="power")  # GPU baseboard (EnvironmentMetrics, 200 W) listed first
    with RedfishReader(srv.url) as r:
        d = r.describe()
        s = r.sample()
    assert d["resource"] == f"{V1}/Chassis/1/Power"
    assert d["resource_kind"] == "power"
    assert d["power_property"] == "PowerControl[0].PowerConsumedWatts"
    assert d["power_metrics"] == {"IntervalInMin": 1, "MinConsumedWatts": 400, "MaxConsumedWatts": 800, "AverageConsumedWatts": 600}
    assert d["has_energy_counter"] is False and "no EnergykWh" in d["counter_note"]
    assert r.energy_j() is None
    assert 400.0 <= s.power_w <= 800.0 and s.energy_j is None  # the node, not the 200 W baseboard


def test_rack_scope_sums_pdu_mains(server) -> None:
    srv = server()
    with RedfishReader(srv.url, scope="rack") as r:
        d = r.describe()
        s = r.sample()
    assert d["scope"] == "rack" and d["resource_kind"] == "mains"
    assert d["resource"] == f"{V1}/PowerEquipment/RackPDUs/1/Mains"
    assert d["members"] == [f"{V1}/PowerEquipment/RackPDUs/1/Mains/AC1", f"{V1}/PowerEquipment/RackPDUs/1/Mains/AC2"]
    assert d["owner"]["Model"] == "PDU-42" and d["owner"]["SerialNumber"] == "SN-PDU-0042"
    assert 5500.0 - 800.0 <= s.power_w <= 5500.0 + 800.0  # 3000 + 2500 W +- 2 x 400 W
    assert s.energy_j == pytest.approx(2 * 1234.0 * J_PER_KWH, rel=1e-6)


def test_rack_scope_falls_back_to_pdu_metrics(server) -> None:
    srv = server()
    srv.edit(f"{V1}/PowerEquipment/RackPDUs/1", lambda d: d.pop("Mains"))
    with RedfishReader(srv.url, scope="rack") as r:
        d = r.describe()
        s = r.sample()
    assert d["resource"] == f"{V1}/PowerEquipment/RackPDUs/1/Metrics" and d["resource_kind"] == "metrics"
    assert d["energy_property"] == "EnergykWh.Reading"
    assert 4700.0 <= s.power_w <= 6300.0


def test_explicit_resource_skips_discovery(server) -> None:
    srv = server(variant="environment")
    with RedfishReader(srv.url, resource=f"{V1}/Chassis/1/Power") as r:
        d = r.describe()
    assert d["resource"] == f"{V1}/Chassis/1/Power" and d["resource_kind"] == "power"
    assert d["owner"]["SerialNumber"] == "SN-NODE-0001"
    assert f"{V1}/Chassis" not in gets(srv) and f"{V1}/Chassis/1/EnvironmentMetrics" not in gets(srv)
    # the resource may also be the URL's path
    with RedfishReader(srv.url + f"{V1}/PowerEquipment/RackPDUs/1/Metrics", scope="rack") as r:
        d = r.describe()
    assert d["url"] == srv.url and d["resource"] == f"{V1}/PowerEquipment/RackPDUs/1/Metrics"
    assert d["resource_kind"] == "metrics" and d["owner"]["Model"] == "PDU-42"


# -- authentication -------------------------------------------------------------------------
def test_session_auth_uses_token_and_logs_out(server, caplog: pytest.LogCaptureFixture) -> None:
    srv = server(require_auth=True)
    with pytest.raises(urllib.error.HTTPError) as ei:  # the server itself: 401 without a token
        urllib.request.urlopen(f"{srv.url}{V1}/Chassis", timeout=5)
    assert ei.value.code == 401

    with pytest.raises(PowerError, match=r"HTTP 401.*authentication required"):
        RedfishReader(srv.url).open()

    srv.requests.clear()
    caplog.set_level(logging.DEBUG)  # the library logs request bodies at DEBUG
    with RedfishReader(srv.url, username="admin", password=PASSWORD) as r:
        d = r.describe()
        r.sample()
        assert len(srv.sessions) == 1
        token_gets = [tok for m, p, tok in srv.requests if m == "GET" and p != V1]
        assert token_gets and all(token_gets)
    assert srv.deleted_sessions == [f"{V1}/SessionService/Sessions/1"] and not srv.sessions
    assert d["auth"] == "session" and d["username"] == "admin"
    assert PASSWORD not in repr(d) and PASSWORD not in repr(r)
    assert PASSWORD not in caplog.text
    assert any(r.name.startswith("redfish") for r in caplog.records)  # the library did log


def test_expired_session_logs_in_again(server) -> None:
    srv = server(require_auth=True)
    with RedfishReader(srv.url, username="admin", password=PASSWORD) as r:
        r.sample()
        srv.sessions.clear()  # the BMC dropped the session (idle timeout, BMC reset)
        assert r.sample().power_w is not None
        assert len(srv.login_attempts) == 2 and len(srv.sessions) == 1


def test_wrong_password_is_a_power_error_without_the_password(server) -> None:
    srv = server(require_auth=True)
    with pytest.raises(PowerError) as ei:
        RedfishReader(srv.url, username="admin", password="wrong-Pa55word").open()
    msg = str(ei.value)
    assert "login as 'admin'" in msg and f"{V1}/SessionService/Sessions" in msg
    assert "wrong-Pa55word" not in msg
    with pytest.raises(PowerError, match="no password"):
        RedfishReader(srv.url, username="admin").open()


def test_basic_auth_and_username_from_url(server) -> None:
    srv = server(require_auth=True)
    url = srv.url.replace("http://", "http://admin@")
    with RedfishReader(url, password=PASSWORD, auth="basic") as r:
        d = r.describe()
        r.sample()
    assert d["username"] == "admin" and d["auth"] == "basic" and d["url"] == srv.url
    assert not srv.sessions and not srv.login_attempts  # no session was created
    with pytest.raises(ValueError, match="password"):
        RedfishReader(srv.url.replace("http://", f"http://admin:{PASSWORD}@"))


# -- counter or polled ----------------------------------------------------------------------
def test_coarse_kwh_counter_is_not_used(server) -> None:
    srv = server(energy_decimals=3)  # 0.001 kWh = 3600 J
    with RedfishReader(srv.url) as r:
        assert r.counter_resolution_j == pytest.approx(3600.0)
        assert r.has_energy_counter is False  # 3600 J > 5 % of ~600 W x 60 s
        assert "coarse counter" in r.counter_note and "3600 J" in r.counter_note
        assert r.energy_j() is not None  # the value is still there, just not trusted
    # a long expected window makes the same counter fine enough
    with RedfishReader(srv.url, expected_window_s=3600.0) as r:
        assert r.has_energy_counter is True
    # a resolution the operator knows overrides the inference
    with RedfishReader(srv.url, expected_window_s=3600.0, counter_resolution_j=1e6) as r:
        assert r.has_energy_counter is False and r.describe()["counter_resolution_source"] == "given"


def test_delay_shifts_timestamps_and_disables_the_counter(server) -> None:
    srv = server()
    with RedfishReader(srv.url, delay_s=0.5) as r:
        t0 = time.monotonic()
        s = r.sample()
        t1 = time.monotonic()
        d = r.describe()
    assert t0 - 0.5 <= s.t_s <= t1 - 0.5
    assert d["delay_s"] == 0.5 and d["has_energy_counter"] is False and "delay_s" in d["counter_note"]


# -- errors ---------------------------------------------------------------------------------
def test_connection_refused_names_the_url() -> None:
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(PowerError) as ei:
        RedfishReader(f"http://127.0.0.1:{port}", timeout_s=2.0).open()
    assert f"http://127.0.0.1:{port}{V1}" in str(ei.value) and "connection refused" in str(ei.value)
    assert time.monotonic() - t0 < 5.0  # no 10 x 1 s library retries


def test_http_500_is_a_power_error(server) -> None:
    srv = server()
    srv.fail[V1] = 500
    with pytest.raises(PowerError, match=r"service root .*/redfish/v1"):
        RedfishReader(srv.url).open()
    srv.fail.clear()
    em = f"{V1}/Chassis/1/EnvironmentMetrics"
    with RedfishReader(srv.url) as r:
        srv.fail[em] = 500
        with pytest.raises(PowerError, match=rf"GET {em} .*HTTP 500: simulated failure"):
            r.sample()
        with pytest.raises(PowerError, match="HTTP 500"):
            r.energy_j()
        srv.fail.clear()
        assert r.sample().power_w is not None  # recovers
        assert r.timing()["n_errors"] == 2
    srv.fail[f"{V1}/Chassis/1/Power"] = 503
    with pytest.raises(PowerError, match=r"Chassis/1/Power .*HTTP 503"):
        RedfishReader(srv.url, resource=f"{V1}/Chassis/1/Power").open()
    with pytest.raises(PowerError, match=r"GET /redfish/v1/Nope .*HTTP 404"):
        RedfishReader(srv.url, resource=f"{V1}/Nope").open()


def test_missing_property_is_named(server) -> None:
    srv = server(variant="power")
    srv.edit(f"{V1}/Chassis/1/Power", lambda d: d["PowerControl"][0].pop("PowerConsumedWatts"))
    with pytest.raises(PowerError, match=r"/redfish/v1/Chassis/1/Power PowerControl\[0\]\.PowerConsumedWatts is missing"):
        RedfishReader(srv.url, resource=f"{V1}/Chassis/1/Power").open()
    with RedfishReader(srv.url) as r:  # discovery falls back to the contained baseboard, and says so
        d = r.describe()
    assert d["resource"] == f"{V1}/Chassis/GPU_Baseboard/EnvironmentMetrics"
    assert "may cover only part of the node" in d["discovery_note"]
    assert any("PowerConsumedWatts is missing" in t for t in d["discovery_tried"])
    srv.edit(f"{V1}/Chassis/GPU_Baseboard/EnvironmentMetrics", lambda d: d.pop("PowerWatts"))
    with pytest.raises(PowerError, match=r"no chassis .*PowerConsumedWatts is missing.*has no PowerWatts"):
        RedfishReader(srv.url).open()  # discovery names what it tried

    srv2 = server(variant="environment")
    em = f"{V1}/Chassis/1/EnvironmentMetrics"
    with RedfishReader(srv2.url, resource=em) as r:
        srv2.edit(em, lambda d: d.pop("PowerWatts"))
        with pytest.raises(PowerError, match=rf"{em} has no PowerWatts"):
            r.sample()
    srv3 = server(variant="environment")
    srv3.edit(em, lambda d: d["PowerWatts"].update(Reading=None))
    with pytest.raises(PowerError, match=r"PowerWatts\.Reading is null"):
        RedfishReader(srv3.url, resource=em).open()


def test_non_json_is_a_power_error(server) -> None:
    srv = server()
    em = f"{V1}/Chassis/1/EnvironmentMetrics"
    srv.raw[em] = ("text/html", b"<html>Please log in</html>")
    with pytest.raises(PowerError, match=rf"GET {em} .*did not return JSON .*text/html"):
        RedfishReader(srv.url, resource=em).open()
    srv.raw[f"{V1}/Chassis"] = ("application/json", b"[1, 2]")
    with pytest.raises(PowerError, match="not an object"):
        RedfishReader(srv.url).open()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # verify_tls=False, on purpose
def test_tls_is_verified_unless_told_otherwise(server, tmp_path) -> None:
    cert, key = make_self_signed_cert(str(tmp_path))
    srv = server(tls=(cert, key))
    assert srv.url.startswith("https://127.0.0.1:")
    with pytest.raises(PowerError, match="TLS certificate verification failed"):
        RedfishReader(srv.url).open()  # the library alone would not have verified
    with RedfishReader(srv.url, ca_file=cert) as r:
        assert r.describe()["tls_verified"] is True and r.sample().power_w is not None
    with RedfishReader(srv.url, verify_tls=False) as r:
        assert r.describe()["tls_verified"] is False and r.sample().power_w is not None


# -- end to end with the Sampler ------------------------------------------------------------
@pytest.mark.parametrize(
    ("variant", "scope", "decimals", "kw", "method"),
    [
        ("environment", "node", 6, {}, "counter"),
        ("power", "node", 6, {}, "polled"),
        ("environment", "rack", 6, {}, "counter"),
        # 2 x 3600 J against 5 % of 5.5 kW x 10 s = 2750 J: coarse -> polled
        ("environment", "rack", 3, {"expected_window_s": 10.0}, "polled"),
    ],
)
def test_sampler_window_energy_matches_the_script(server, variant: str, scope: str, decimals: int, kw: dict, method: str) -> None:
    srv = server(variant=variant, energy_decimals=decimals)
    with RedfishReader(srv.url, scope=scope, **kw) as r:
        sampler = Sampler(r, hz=20.0).start()
        try:
            win = sampler.begin_window()
            time.sleep(1.0)
            res = sampler.end_window(win)
        finally:
            sampler.stop()
        timing = r.describe()["timing"]
    expected = (srv.expected_node_j if scope == "node" else srv.expected_rack_j)(win.t_begin_s, win.t_end_s)
    assert res.scope == scope and res.method == method
    assert res.source.startswith("redfish:")
    assert res.energy_j == pytest.approx(expected, rel=0.10)
    if method == "polled":
        assert res.n_samples >= 10 and "integrated the polled power trace" in res.note
    assert timing["sample_hz_achieved"] >= 1.0 and timing["green500_1hz_ok"] is True
    assert timing["latency_s_median"] is not None and timing["latency_s_median"] < 1.0
    assert sampler.stats()["errors"] == [0]


# -- a source answering slowly at the window's edges -----------------------------------------
def test_slow_answers_at_the_edges_still_give_a_figure(server) -> None:
    srv = server(variant="power")  # no counter: polled
    with RedfishReader(srv.url) as r:
        sampler = Sampler(r, hz=20.0).start()
        try:
            srv.latency_s = 0.2  # the edge polls take 0.2 s each
            win = sampler.begin_window()
            srv.latency_s = 0.0
            time.sleep(1.0)
            srv.latency_s = 0.2
            res = sampler.end_window(win)
        finally:
            srv.latency_s = 0.0
            sampler.stop()
    assert res.method == "polled", res.note
    assert res.energy_j == pytest.approx(srv.expected_node_j(win.t_begin_s, win.t_end_s), rel=0.10)
    assert res.telemetry["coverage"]["ok"] is True


def test_a_source_stalling_at_the_end_edge_gives_no_figure(server) -> None:
    srv = server(variant="power")
    with RedfishReader(srv.url, timeout_s=5.0) as r:
        sampler = Sampler(r, hz=20.0).start()
        try:
            win = sampler.begin_window()
            time.sleep(0.5)
            srv.latency_s = 3.0  # the BMC hangs: the readings stop 1.5 s before the window's end
            time.sleep(1.5)
            res = sampler.end_window(win)
        finally:
            srv.latency_s = 0.0
            sampler.stop()
    assert res.method == "none" and res.energy_j is None, res.note
    assert "gap without a new reading" in res.note and "(limit 1 s)" in res.note
