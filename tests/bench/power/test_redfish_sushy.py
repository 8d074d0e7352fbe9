"""RedfishReader against a real Redfish server: ``sushy-static`` (OpenStack sushy-tools) serving
mockups written for these tests (tests/bench/power/data/redfish/, in the layout of DMTF's
``public-rackmount1`` for a node and ``public-pdu`` for a rack PDU).

sushy-static reads ``index.json`` from disk on every GET, so a feeder thread rewriting the files
(atomically) changes the readings during a test; killing the process is a BMC that died.
Every server listens on 127.0.0.1 and is killed by its fixture; every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from redfish_server import loopback_only

from icb_bench.bench.power import Sampler
from icb_bench.bench.power.coverage import CoverageRule
from icb_bench.bench.power.redfish import RedfishReader

DATA = Path(__file__).parent / "data" / "redfish"
V1 = "/redfish/v1"
CHASSIS = f"{V1}/Chassis/1U"
SENSOR = f"{CHASSIS}/Sensors/TotalPower"
PDU = f"{V1}/PowerEquipment/RackPDUs/1"
START_TIMEOUT_S = 30.0  # a loaded machine starts Python slowly


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sushy:
    """One sushy-static process serving a copy of a mockup tree."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        last = ""
        for _ in range(3):  # the free port may be taken between the probe and the bind
            self.port = _free_port()
            err = self.root.parent / f"sushy-{self.port}.err"
            with open(err, "wb") as ferr:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "sushy_tools.static.main", "-i", "127.0.0.1", "-p", str(self.port),
                     "-m", str(self.root)],
                    stdout=subprocess.DEVNULL, stderr=ferr,  # it prints every request's headers
                )
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{self.url}{V1}", timeout=2) as r:
                        if r.status == 200:
                            return
                except OSError:
                    time.sleep(0.1)
            self.kill()
            last = err.read_text(errors="replace")[-400:]
        pytest.skip(f"sushy-static did not start on 127.0.0.1 ({last.strip() or 'no output'})")

    def kill(self) -> None:
        """SIGKILL: the BMC dies without a word."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def edit(self, path: str, fn: Callable[[dict[str, Any]], None]) -> None:
        """Change the document at ``path``; written atomically (sushy reads the file per GET)."""
        f = self.root / path.removeprefix(V1).lstrip("/") / "index.json"
        doc = json.loads(f.read_text())
        fn(doc)
        tmp = f.with_name(f"index.json.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, f)


class Feeder:
    """Rewrites the power readings every ``step_s`` with ``power(t)``; remembers what it wrote."""

    def __init__(self, srv: Sushy, paths: list[tuple[str, Callable[[dict[str, Any], float, str], None]]],
                 power: Callable[[float], float], step_s: float = 0.05) -> None:
        self.srv, self.paths, self.power, self.step_s = srv, paths, power, step_s
        self.written: list[tuple[float, float]] = []  # (time.monotonic() after the write, watts)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._n = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            p = round(self.power(time.monotonic()), 1)
            self._n += 1
            stamp = f"2024-01-01T00:{self._n // 600 % 60:02d}:{self._n / 10 % 60:06.3f}+00:00"
            for path, set_ in self.paths:
                self.srv.edit(path, lambda d: set_(d, p, stamp))
            self.written.append((time.monotonic(), p))
            self._stop.wait(self.step_s)

    def start(self) -> "Feeder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def energy_j(self, t0: float, t1: float) -> float:
        """Integral of the written (piecewise constant) power over [t0, t1]."""
        pts = self.written
        total = 0.0
        for (ta, p), (tb, _) in zip(pts, pts[1:] + [(math.inf, 0.0)]):
            lo, hi = max(ta, t0), min(tb, t1)
            if hi > lo:
                total += p * (hi - lo)
        return total


def set_env_metrics(d: dict[str, Any], p: float, stamp: str) -> None:
    d["PowerWatts"]["Reading"] = p


def set_sensor(d: dict[str, Any], p: float, stamp: str) -> None:
    d["Reading"], d["ReadingTime"] = p, stamp


def set_pdu_metrics(d: dict[str, Any], p: float, stamp: str) -> None:
    d["PowerWatts"]["Reading"] = p


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
def sushy(tmp_path: Path) -> Iterator[Callable[[str], Sushy]]:
    """Factory: ``sushy("node" | "pdu")`` serves a copy of that mockup; all are killed at the end."""
    if importlib.util.find_spec("sushy_tools") is None:
        pytest.skip("sushy-tools is not installed (pip install sushy-tools)")
    started: list[Sushy] = []

    def make(tree: str) -> Sushy:
        root = tmp_path / tree
        shutil.copytree(DATA / tree, root)
        srv = Sushy(root)
        started.append(srv)
        srv.start()
        return srv

    yield make
    for srv in started:
        srv.kill()


def _window(sampler: Sampler, seconds: float):
    win = sampler.begin_window()
    time.sleep(seconds)
    return win, sampler.end_window(win)


#: windows of seconds here, not minutes; a gap of 1.5 s is allowed so a loaded machine's stalls pass
RULE = CoverageRule(stale_after_s=1.0, max_gap_floor_s=1.5)


# -- reading node and rack power ---------------------------------------------------------------
def test_node_power_from_public_rackmount1_layout(sushy) -> None:
    srv = sushy("node")
    feeder = Feeder(srv, [(f"{CHASSIS}/EnvironmentMetrics", set_env_metrics)], lambda t: 400.0 + 100.0 * math.sin(t)).start()
    try:
        with RedfishReader(srv.url, scope="node") as r:
            d = r.describe()
            assert d["resource"] == f"{CHASSIS}/EnvironmentMetrics" and d["resource_kind"] == "environment"
            assert d["owner"]["SerialNumber"] == "TS-0001" and d["power_sensor"]["SensingInterval"] == "PT0.25S"
            assert r.expected_interval_s == pytest.approx(0.25)
            assert d["has_energy_counter"] is False  # EnvironmentMetrics without EnergykWh: polled
            with Sampler(r, hz=20.0, coverage=RULE) as s:
                win, res = _window(s, 2.0)
    finally:
        feeder.stop()
    assert res.scope == "node" and res.method == "polled", res.note
    assert res.energy_j == pytest.approx(feeder.energy_j(win.t_begin_s, win.t_end_s), rel=0.03)
    assert len({row["power_w"] for row in win.trace_rows()}) > 3  # the values did change on the server
    assert res.telemetry["coverage"]["ok"] is True


def test_rack_pdu_from_public_pdu_layout(sushy) -> None:
    srv = sushy("pdu")
    with RedfishReader(srv.url, scope="rack") as r:
        d = r.describe()
        first = r.sample().power_w
        srv.edit(f"{PDU}/Metrics", lambda doc: doc["PowerWatts"].update(Reading=7250.5))
        second = r.sample().power_w
    # like DMTF's public-pdu, the mains circuit has per-phase power only: the PDU's Metrics is read
    assert d["resource"] == f"{PDU}/Metrics" and d["resource_kind"] == "metrics" and d["scope"] == "rack"
    assert any("Mains/AC1 has no PowerWatts" in t for t in d["discovery_tried"])
    assert d["owner"]["Model"] == "TP-20" and d["energy_property"] == "EnergykWh.Reading"
    assert d["counter_resolution_j"] == pytest.approx(3.6e6) and d["has_energy_counter"] is False  # whole kWh
    assert (first, second) == (6000.0, 7250.5)
    # the outlets, named as the resource, are summed
    with RedfishReader(srv.url, scope="rack", resource=f"{PDU}/Outlets") as r:
        assert r.describe()["resource_kind"] == "mains" and r.sample().power_w == 6000.0


def test_rack_pdu_window_with_changing_power(sushy) -> None:
    srv = sushy("pdu")
    feeder = Feeder(srv, [(f"{PDU}/Metrics", set_pdu_metrics)], lambda t: 6000.0 + 800.0 * math.sin(2 * t)).start()
    try:
        with RedfishReader(srv.url, scope="rack") as r, Sampler(r, hz=20.0, coverage=RULE) as s:
            win, res = _window(s, 2.0)
    finally:
        feeder.stop()
    assert res.scope == "rack" and res.method == "polled", res.note
    assert res.energy_j == pytest.approx(feeder.energy_j(win.t_begin_s, win.t_end_s), rel=0.03)


# -- a dead or stale BMC gives no figure --------------------------------------------------------
def test_bmc_killed_between_two_windows(sushy) -> None:
    srv = sushy("node")
    feeder = Feeder(srv, [(f"{CHASSIS}/EnvironmentMetrics", set_env_metrics)], lambda t: 500.0 + 50.0 * math.sin(3 * t)).start()
    try:
        with RedfishReader(srv.url, scope="node", timeout_s=2.0) as r, Sampler(r, hz=20.0, coverage=RULE) as s:
            win1, first = _window(s, 1.5)
            srv.kill()
            win2, second = _window(s, 1.5)
            t0 = time.monotonic()
            time.sleep(1.5)
            after = s.window_between(t0, time.monotonic())  # the ScopeMonitor's way: edges after the fact
    finally:
        feeder.stop()
    assert first.method == "polled" and first.energy_j is not None
    for res in (second, after.result):
        assert res.method == "none" and res.energy_j is None and res.power_w is None
        assert "source stopped answering" in res.note and "connection refused" in res.note
        assert re.search(r"0 readings inside the \d+\.\d s window", res.note), res.note
        assert res.telemetry["coverage"]["ok"] is False


def test_frozen_sensor_reading_time_is_stale(sushy) -> None:
    srv = sushy("node")
    feeder = Feeder(srv, [(SENSOR, set_sensor)], lambda t: 450.0)  # constant load, live sensor
    feeder.start()
    try:
        with RedfishReader(srv.url, resource=SENSOR) as r, Sampler(r, hz=20.0, coverage=RULE) as s:
            assert r.describe()["resource_kind"] == "sensor"
            _, live = _window(s, 2.0)
            feeder.stop()  # the BMC still answers, but its sensor no longer updates
            _, frozen = _window(s, 3.0)
    finally:
        feeder.stop()
    # a constant value with an advancing ReadingTime is a live source
    assert live.method == "polled" and live.energy_j == pytest.approx(450.0 * live.window_s, rel=1e-6), live.note
    assert frozen.method == "none" and frozen.energy_j is None
    assert "stale source: its reading time stayed" in frozen.note


def test_frozen_value_without_timestamp_is_stale(sushy) -> None:
    srv = sushy("node")  # nothing rewrites the files: EnvironmentMetrics stays at 400 W
    with RedfishReader(srv.url) as r, Sampler(r, hz=20.0, coverage=RULE) as s:
        _, res = _window(s, 1.5)
    assert res.method == "none" and res.energy_j is None
    assert "stale source: every one of the" in res.note and "400 W" in res.note
