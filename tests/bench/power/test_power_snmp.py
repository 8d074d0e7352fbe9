"""SnmpPduReader against a real SNMP agent (snmpsim) on loopback (tests/bench/power/snmp_agent.py).

The agent serves tests/bench/power/data/snmp/*.snmprec; values change during a test through SNMP
SETs of snmpsim's ``writecache`` values. Every agent is stopped by its fixture; every wait is
bounded; timing assertions only bound from above, with generous slack.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Iterator

import pytest
from snmp_agent import AgentUnavailable, SnmpAgent, V3User

from icb_bench.bench.power import PowerError, Sampler
from icb_bench.bench.power.snmp import SnmpPduReader, SnmpTarget

# OIDs written out from the MIBs (independently of the module's table)
APC_POWER = "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1"  # PowerNet-MIB rPDU2DeviceStatusPower.1
APC_ENERGY = "1.3.6.1.4.1.318.1.1.26.4.3.1.9.1"  # rPDU2DeviceStatusEnergy.1
RARITAN_POWER = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5"  # PDU2-MIB measurementsInletSensorValue.1.1.activePower
RARITAN_ENERGY = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.8"  # ... .activeEnergy
CUSTOM_POWER = "1.3.6.1.4.1.99999.1.1.0"
CUSTOM_TEXT = "1.3.6.1.4.1.99999.1.2.0"
V3 = V3User()
FAST = {"timeout_s": 0.5, "retries": 0}


def _start(**kw: object) -> SnmpAgent:
    try:
        return SnmpAgent(**kw).start()  # type: ignore[arg-type]
    except AgentUnavailable as e:
        pytest.skip(f"cannot start the SNMP agent (snmpsim): {e}")


@pytest.fixture(scope="module")
def agent() -> Iterator[SnmpAgent]:
    """One agent shared by the module's tests (each test SETs the values it relies on)."""
    a = _start()
    yield a
    a.stop()


@pytest.fixture
def own_agent() -> Iterator[SnmpAgent]:
    """An agent of the test's own (for tests that kill it)."""
    a = _start()
    yield a
    a.stop()


@pytest.fixture
def opened() -> Iterator[list[SnmpPduReader]]:
    """Readers appended here are closed when the test ends."""
    readers: list[SnmpPduReader] = []
    yield readers
    for r in readers:
        r.close()


def v2c(a: SnmpAgent, community: str, **kw: object) -> SnmpTarget:
    return SnmpTarget(host=a.host, port=a.port, version="2c", community=community, **kw)  # type: ignore[arg-type]


def v3(a: SnmpAgent, **kw: object) -> SnmpTarget:
    base = dict(user=V3.user, auth_protocol="SHA", auth_key=V3.auth_key, priv_protocol="AES", priv_key=V3.priv_key)
    base.update(kw)
    return SnmpTarget(host=a.host, port=a.port, version="3", **base)  # type: ignore[arg-type]


def open_reader(readers: list[SnmpPduReader], target: SnmpTarget) -> SnmpPduReader:
    r = SnmpPduReader(target)
    readers.append(r)
    r.open()
    return r


# -- targets (no agent) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, field, expected",
    [
        ({"profile": "custom"}, "oid", "numeric OID"),
        ({"profile": "custom", "oid": "1.3.6.1.4.1.9.1.0"}, "scale", "positive number"),
        ({"profile": "custom", "oid": "sysDescr.0", "scale": 1.0}, "oid", "numeric OID"),
        ({"profile": "eaton"}, "profile", "apc-rpdu2"),
        ({"port": 0}, "port", "1..65535"),
        ({"port": 70000}, "port", "1..65535"),
        ({"version": "1"}, "version", "'2c'"),
        ({"community": None}, "community", "version 2c"),
        ({"oid": "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1"}, "oid", "only profile custom"),
        ({"scale": 10.0}, "scale", "only profile custom"),
        ({"timeout_s": 0}, "timeout_s", "positive"),
        ({"retries": -1}, "retries", "0..10"),
        ({"index": -1}, "index", "non-negative"),
        ({"accuracy_rel": 1.5}, "accuracy_rel", "fraction"),
        ({"host": ""}, "host", "host name"),
    ],
)
def test_target_rejects_bad_input_naming_field_value_and_expectation(kw: dict, field: str, expected: str) -> None:
    args = {"host": "127.0.0.1", "community": "public"} | kw
    with pytest.raises(ValueError) as ei:
        SnmpTarget(**args)
    msg = str(ei.value)
    assert msg.startswith(f"snmp {field}="), msg
    assert expected in msg


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"user": None}, "user"),
        ({"auth_key": "short"}, "auth_key"),
        ({"auth_protocol": "SHA1024"}, "auth_protocol"),
        ({"auth_protocol": None, "auth_key": None}, "priv_protocol"),
        ({"priv_key": None}, "priv_key"),
        ({"community": "public"}, "community"),
    ],
)
def test_v3_target_validation_never_echoes_a_key(kw: dict, field: str) -> None:
    args = dict(host="::1", version="3", user="u", auth_protocol="SHA", auth_key="auth-key-123", priv_protocol="AES", priv_key="priv-key-123")
    with pytest.raises(ValueError) as ei:
        SnmpTarget(**(args | kw))  # type: ignore[arg-type]
    msg = str(ei.value)
    assert msg.startswith(f"snmp {field}="), msg
    for secret in ("auth-key-123", "priv-key-123", "short", "public"):
        assert secret not in msg


def test_target_repr_hides_secrets() -> None:
    t = SnmpTarget("127.0.0.1", version="3", user="u", auth_protocol="sha256", auth_key="auth-key-123", priv_protocol="aes256", priv_key="priv-key-123")
    assert "key-123" not in repr(t) and t.security_level == "authPriv"
    assert "c0mmunity" not in repr(SnmpTarget("127.0.0.1", community="c0mmunity"))


def test_reader_used_before_open_raises_power_error() -> None:
    r = SnmpPduReader(SnmpTarget("127.0.0.1", community="public"))
    with pytest.raises(PowerError, match="before open"):
        r.sample()
    with pytest.raises(ValueError, match="scope"):
        SnmpPduReader(SnmpTarget("127.0.0.1", community="public"), scope="device")


# -- v2c profiles against the agent ---------------------------------------------------------------
def test_apc_reads_tens_of_watts_and_follows_a_change(agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    agent.set("apc-rpdu2", APC_POWER, 613)  # 6.13 kW
    r = open_reader(opened, v2c(agent, "apc-rpdu2", accuracy_rel=0.01))
    t0 = time.monotonic()
    s = r.sample()
    t1 = time.monotonic()
    assert s.power_w == pytest.approx(6130.0)
    assert t0 <= s.t_s <= t1
    agent.set("apc-rpdu2", APC_POWER, 702)
    assert r.sample().power_w == pytest.approx(7020.0)
    agent.set("apc-rpdu2", APC_POWER, 0)
    assert r.sample().power_w == 0.0
    # 0.1 kWh (360 kJ) is far coarser than 5 % of a minute at this power: polled, and said why
    assert not r.has_energy_counter and r.energy_j() is None
    assert "360000 J" in (r.counter_note or "")
    d = r.describe()
    assert d["name"] == "snmp" and d["scope"] == "rack" and d["method"] == "polled"
    assert (d["host"], d["port"], d["version"], d["profile"]) == ("127.0.0.1", agent.port, "2c", "apc-rpdu2")
    assert d["oids"]["power.value"] == APC_POWER and d["oids"]["energy.value"] == APC_ENERGY
    assert d["scale"] == 10.0 and d["resolution_w"] == 10.0 and d["accuracy_rel"] == 0.01
    assert "apc-rpdu2" not in json.dumps({k: v for k, v in d.items() if k != "profile"})  # the community


def test_raritan_scales_by_decimal_digits_and_uses_its_watt_hour_counter(agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    agent.set("raritan-pdu2", RARITAN_POWER, 18047, "Gauge32")  # 1804.7 W with 1 decimal digit
    agent.set("raritan-pdu2", RARITAN_ENERGY, 7302115, "Gauge32")  # Wh, 0 decimals
    r = open_reader(opened, v2c(agent, "raritan-pdu2", profile="raritan-pdu2"))
    assert r.sample().power_w == pytest.approx(1804.7)
    agent.set("raritan-pdu2", RARITAN_POWER, 25003, "Gauge32")
    assert r.sample().power_w == pytest.approx(2500.3)
    assert r.describe()["resolution_w"] == pytest.approx(0.1)
    # 1 Wh = 3600 J is below 5 % of 1804.7 W x 60 s: the counter is used
    assert r.has_energy_counter and r.counter_resolution_j == 3600.0
    assert r.describe()["method"] == "counter"
    assert r.energy_j() == pytest.approx(7302115 * 3600.0)
    agent.set("raritan-pdu2", RARITAN_ENERGY, 7302140, "Gauge32")
    assert r.energy_j() == pytest.approx(7302140 * 3600.0)
    assert r.sample().energy_j == pytest.approx(7302140 * 3600.0)
    agent.set("raritan-pdu2", RARITAN_ENERGY, 12, "Gauge32")  # reset or wrap: refused, not unwrapped
    with pytest.raises(PowerError, match="went back from 7302140 to 12"):
        r.energy_j()


def test_raritan_inlet_with_unavailable_sensor_is_refused(agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    with pytest.raises(PowerError, match=r"measurementsInletSensorState .* is -1 \(unavailable\)"):
        open_reader(opened, v2c(agent, "raritan-pdu2", profile="raritan-pdu2", index=2))


def test_custom_oid_times_scale_follows_a_change(agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    agent.set("custom", CUSTOM_POWER, 2450, "Gauge32")
    r = open_reader(opened, v2c(agent, "custom", profile="custom", oid=CUSTOM_POWER, scale=0.5))
    assert r.sample().power_w == pytest.approx(1225.0)
    agent.set("custom", CUSTOM_POWER, 3001, "Gauge32")
    assert r.sample().power_w == pytest.approx(1500.5)
    d = r.describe()
    assert d["oids"] == {"power.value": CUSTOM_POWER} and d["scale"] == 0.5 and not r.has_energy_counter


@pytest.mark.parametrize(
    "community, kw, match",
    [
        ("apc-rpdu2", {"index": 7}, r"rPDU2DeviceStatusPower \(1\.3\.6\.1\.4\.1\.318\.1\.1\.26\.4\.3\.1\.5\.7\) is missing"),
        ("apc-rpdu2", {"index": 2}, r"is -1: this model does not support it"),
        ("custom", {"profile": "custom", "oid": CUSTOM_TEXT, "scale": 1.0}, r"is not a number \(OctetString 'n/a'\)"),
        ("custom", {"profile": "custom", "oid": "1.3.6.1.4.1.99999.1.9.0", "scale": 1.0}, r"is missing"),
    ],
)
def test_missing_unsupported_or_non_numeric_object_fails_open(
    agent: SnmpAgent, opened: list[SnmpPduReader], community: str, kw: dict, match: str
) -> None:
    with pytest.raises(PowerError, match=match):
        open_reader(opened, v2c(agent, community, **kw))


def test_wrong_community_fails_with_a_clear_reason_within_the_timeout(agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    r = SnmpPduReader(v2c(agent, "not-the-community", **FAST))
    opened.append(r)
    t0 = time.monotonic()
    with pytest.raises(PowerError) as ei:
        r.open()
    elapsed = time.monotonic() - t0
    msg = str(ei.value)
    assert f"127.0.0.1:{agent.port}: no answer within 0.5 s x 1 tries" in msg and "wrong community" in msg
    assert "not-the-community" not in msg
    assert elapsed < 0.5 + 20.0  # bounded (engine set-up on a loaded machine takes a while)


# -- SNMPv3 ---------------------------------------------------------------------------------------
def test_v3_auth_priv_reads_with_the_right_keys(agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    agent.set("apc-rpdu2", APC_POWER, 455)  # the writecache is shared with the v3 (self) view
    r = open_reader(opened, v3(agent))
    assert r.sample().power_w == pytest.approx(4550.0)
    agent.set("apc-rpdu2", APC_POWER, 456)
    assert r.sample().power_w == pytest.approx(4560.0)
    d = r.describe()
    assert (d["version"], d["user"], d["security_level"]) == ("3", V3.user, "authPriv")
    text = json.dumps(d) + repr(r) + repr(r.target)
    assert V3.auth_key not in text and V3.priv_key not in text


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"auth_key": "wrong-auth-key"}, "authentication failed"),
        ({"priv_key": "wrong-priv-key"}, "decryption failed"),
        ({"auth_protocol": "MD5"}, "authentication failed"),
        ({"user": "somebody-else"}, "user 'somebody-else' is unknown"),
    ],
)
def test_v3_wrong_credentials_fail_with_the_reason(agent: SnmpAgent, opened: list[SnmpPduReader], kw: dict, match: str) -> None:
    with pytest.raises(PowerError, match=match) as ei:
        open_reader(opened, v3(agent, **FAST, **kw))
    for secret in (V3.auth_key, V3.priv_key, "wrong-auth-key", "wrong-priv-key"):
        assert secret not in str(ei.value)


# -- failures mid-run, threads and resources ------------------------------------------------------
def test_agent_killed_mid_run_gives_failed_reads_never_a_held_value(own_agent: SnmpAgent, opened: list[SnmpPduReader]) -> None:
    own_agent.set("apc-rpdu2", APC_POWER, 300)
    r = open_reader(opened, v2c(own_agent, "apc-rpdu2", **FAST))
    sampler = Sampler(r, hz=10.0).start()
    try:
        deadline = time.monotonic() + 30.0
        while not sampler.samples() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sampler.samples(), f"no sample polled from the sampler thread: {sampler.stats()}"
        own_agent.kill()
        n_at_kill = len(sampler.samples())
        _wait_errors(sampler, 2)
        n_failing = len(sampler.samples())
        _wait_errors(sampler, 4)
        stats = sampler.stats()
        n_end = len(sampler.samples())
    finally:
        sampler.stop()
    assert stats["errors"][0] >= 4 and "no answer" in stats["last_error"][0]
    # at most one request was in flight at the kill; while reads fail, no sample is added
    # (a held value would be)
    assert n_failing <= n_at_kill + 1 and n_end == n_failing
    with pytest.raises(PowerError, match="no answer"):
        r.sample()


def _wait_errors(sampler: Sampler, n: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sampler.stats()["errors"][0] < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sampler.stats()["errors"][0] >= n, sampler.stats()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count file descriptors")
def test_repeated_samples_from_threads_leak_no_loop_socket_or_thread(agent: SnmpAgent) -> None:
    agent.set("apc-rpdu2", APC_POWER, 100)
    fds0, threads0 = _fds(), threading.active_count()
    r = SnmpPduReader(v2c(agent, "apc-rpdu2"))
    r.open()
    try:
        fds_open = _fds()
        for _ in range(100):
            assert r.sample().power_w == 1000.0
        assert _fds() == fds_open
        out: list[float | None] = []
        worker = threading.Thread(target=lambda: out.extend(r.sample().power_w for _ in range(50)))
        worker.start()
        worker.join(timeout=60)
        assert out == [1000.0] * 50 and _fds() == fds_open
    finally:
        r.close()
    assert _fds() == fds0 and threading.active_count() == threads0
    with pytest.raises(PowerError, match="after close"):
        r.sample()
    r.close()  # twice is harmless


def test_ipv6_loopback(opened: list[SnmpPduReader]) -> None:
    try:
        a = SnmpAgent(ipv6=True).start()
    except AgentUnavailable as e:
        pytest.skip(f"cannot start the SNMP agent on ::1: {e}")
    try:
        a.set("apc-rpdu2", APC_POWER, 42)
        r = open_reader(opened, SnmpTarget(host="::1", port=a.port, community="apc-rpdu2"))
        assert r.sample().power_w == 420.0
        assert r.describe()["host"] == "::1"
    finally:
        a.stop()
