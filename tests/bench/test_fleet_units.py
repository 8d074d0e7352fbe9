"""Pieces of the multi-node code that need no job: what a shipped file may be, node names."""

from __future__ import annotations

import pytest

from icb_bench.bench.fleet import _safe_rel
from icb_bench.bench.fleet_job import FleetError, _unique_names


@pytest.mark.parametrize("rel, ok", [
    ("manifest.json", True), ("run.log", True), ("measurements/n1-d0-fp16.json", True), ("traces/n1-d0-fp16.parquet", True),
    ("measurements", False), ("traces", False), ("manifest.json/x", False), ("measurements/a/b.json", False),
    ("../n0/manifest.json", False), ("/etc/passwd", False), ("measurements/../manifest.json", False),
    ("measurements/.hidden.json", False), ("power/readings.parquet", False), ("signature.json", False), ("", False),
])
def test_only_a_shards_own_files_may_be_shipped(rel, ok):
    assert _safe_rel(rel) is ok


def test_node_names_name_folders_and_are_unique():
    def info(rank, name, named=False):
        return {"rank": rank, "name": name, "named": named}

    assert _unique_names([info(0, "vm"), info(1, "vm")]) == ["vm-r0", "vm-r1"]
    with pytest.raises(FleetError, match="given to 2 ranks"):
        _unique_names([info(0, "a", True), info(1, "a", True)])
    with pytest.raises(FleetError, match="rank 1: node name '../../x'"):
        _unique_names([info(0, "n0"), info(1, "../../x", True)])


# ------------------------------------------------------------------ common starts, on a real store


import datetime as _dt
import json
import socket
import threading
import time


@pytest.fixture
def store_address():
    import torch.distributed as dist

    from icb_bench.bench.fleet import StoreAddress

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    master = dist.TCPStore("127.0.0.1", port, None, True, _dt.timedelta(seconds=30), wait_for_workers=False)
    yield StoreAddress("127.0.0.1", port, "test-run", timeout_s=30)
    del master


def _arrive(address, node, dev):
    from icb_bench.bench.fleet import FleetBarrier

    t = threading.Thread(target=FleetBarrier(address, node, 30.0).for_device(dev).wait, daemon=True)
    t.start()
    return t


def _released(store, name="b0"):
    return store.check(f"go/{name}")


def _wait_released(store, timeout_s: float = 10.0) -> bool:
    """Whether the first common start is released within ``timeout_s`` (generous: never a speed test)."""
    deadline = time.monotonic() + timeout_s
    while not _released(store) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _released(store)


def test_a_device_lost_after_it_arrived_does_not_release_the_start_early(store_address, tmp_path):
    from icb_bench.bench.fleet import Coordinator, NodeState, Store

    coord = Coordinator(store_address, [NodeState("a", 0, 2), NodeState("b", 1, 1)], tmp_path,
                        timeout_s=60, dead_after_s=60).start()
    store = Store(store_address)
    try:
        _arrive(store_address, "a", 1)
        time.sleep(0.3)
        store.push("lost", json.dumps(["a", 1]))  # a/1 dies after it arrived
        _arrive(store_address, "a", 0)
        time.sleep(0.5)
        assert not _released(store)  # b/0 has not arrived: two arrivals of three are not enough
        _arrive(store_address, "b", 0)
        assert _wait_released(store)
    finally:
        coord.stop()
    assert coord.barriers[0].arrivals == 3 and coord.barriers[0].expected == 3 and not coord.barriers[0].timed_out


def test_a_device_lost_before_it_arrived_holds_up_nobody(store_address, tmp_path):
    from icb_bench.bench.fleet import Coordinator, NodeState, Store

    coord = Coordinator(store_address, [NodeState("a", 0, 2), NodeState("b", 1, 1)], tmp_path,
                        timeout_s=60, dead_after_s=60).start()
    store = Store(store_address)
    try:
        store.push("lost", json.dumps(["a", 1]))  # a/1 died before its first common start
        _arrive(store_address, "a", 0)
        _arrive(store_address, "b", 0)
        assert _wait_released(store)
    finally:
        coord.stop()
    assert coord.barriers[0].expected == 2 and not coord.barriers[0].timed_out


# ------------------------------------------------------------------ a node declared dead comes back


def _until(pred, what: str, timeout_s: float = 120.0) -> None:
    """Waits on what the coordinator did, never on how fast it did it (the bound only ends a hang)."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


def _wait_in_thread(barrier):
    t = threading.Thread(target=barrier.wait, daemon=True)
    t.start()
    return t


def test_a_node_declared_dead_that_comes_back_is_recorded_and_counts_again(store_address, tmp_path):
    from icb_bench.bench.fleet import FLEET_LOG, Coordinator, FleetBarrier, NodeLink, NodeState, Store

    run = tmp_path / "run"
    coord = Coordinator(store_address, [NodeState("a", 0, 1), NodeState("b", 1, 1, token="tb")], run,
                        timeout_s=600, dead_after_s=1).start()
    store = Store(store_address)
    a, b = (FleetBarrier(store_address, n, 600.0).for_device(0) for n in ("a", "b"))
    try:
        store.set("hb/b", "1")
        _until(lambda: coord.nodes["b"].dead, "b declared dead (its heartbeat stopped)")
        _wait_in_thread(a)
        _until(lambda: _released(store, "b0"), "b0 released without the dead node")
        store.set("hb/b", "2")  # b's heartbeat moves again: the blip is over
        _until(lambda: not coord.nodes["b"].dead, "b back")
        _wait_in_thread(a).join(0.5)  # a at b1 now waits for b, which counts again
        assert not _released(store, "b1")
        b.wait()  # b, late at b0: released already, it passes
        t = _wait_in_thread(b)
        _until(lambda: _released(store, "b1"), "b1 released with both nodes")
        t.join(30)
        # what b ships after it came back is received; its done flag is read
        shard = tmp_path / "b-shard"
        (shard / "measurements").mkdir(parents=True)
        (shard / "measurements" / "b-d0-fp32.json").write_text(json.dumps({"host": "b", "device": 0}))
        assert NodeLink(store_address, "b", shard, ship=True, token="tb").ship() == 1
        for n in ("a", "b"):
            store.set(f"done/{n}", json.dumps({"status": "complete"}))
        assert coord.wait_all_done(600, until_s=time.monotonic() + 120)
    finally:
        coord.stop()
    st = coord.nodes["b"]
    assert not st.dead and st.done == {"status": "complete"} and coord.received["b"] == 1
    [death] = st.deaths
    assert death["reason"].startswith("no heartbeat") and death["back_by"] == "heartbeat"
    assert death["declared_dead_s"] < death["back_s"]
    b0, b1 = coord.barriers
    assert (b0.arrivals, b0.expected, b0.dead_nodes) == (1, 1, ["b"])
    assert (b1.arrivals, b1.expected, b1.dead_nodes, b1.timed_out) == (2, 2, [], False)
    log = (run / FLEET_LOG).read_text()
    assert "node_dead node=b" in log and "node_back node=b" in log and "counts_from=b1" in log


def test_a_node_that_never_connected_but_finished_is_back_by_its_done_flag(store_address, tmp_path):
    from icb_bench.bench.fleet import Coordinator, NodeState, Store

    coord = Coordinator(store_address, [NodeState("a", 0, 1), NodeState("b", 1, 1, token="tb")], tmp_path,
                        timeout_s=600, dead_after_s=1).start()
    store = Store(store_address)
    try:
        _until(lambda: coord.nodes["b"].dead, "b declared dead")
        assert coord.nodes["b"].dead_reason.startswith("never connected")
        store.set("done/b", json.dumps({"status": "complete"}))
        _until(lambda: coord.nodes["b"].done is not None, "b's done flag read")
    finally:
        coord.stop()
    [death] = coord.nodes["b"].deaths
    assert death["back_by"] == "done" and not coord.nodes["b"].dead


# ------------------------------------------------------------------ a file under another node's name


def test_a_file_shipped_under_another_nodes_name_is_rejected(store_address, tmp_path):
    from icb_bench.bench.fleet import FLEET_LOG, Coordinator, NodeLink, NodeState, Store

    run = tmp_path / "run"
    nodes = [NodeState("a", 0, 1), NodeState("b", 1, 1, token="token-b"), NodeState("c", 2, 1, token="token-c")]
    coord = Coordinator(store_address, nodes, run, timeout_s=600, dead_after_s=600).start()
    shard = tmp_path / "c-shard"
    (shard / "measurements").mkdir(parents=True)
    (shard / "measurements" / "x.json").write_text(json.dumps({"host": "b", "device": 0, "tflops": 1e9}))
    try:
        assert NodeLink(store_address, "b", shard, ship=True, token="token-c").ship() == 1  # c posing as b
        Store(store_address).push("files", json.dumps({"node": "b", "path": "run.log", "b64": "",
                                                       "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}))
        assert NodeLink(store_address, "c", shard, ship=True, token="token-c").ship() == 1  # c as itself
        _until(lambda: coord.received["c"] == 1 and len(coord.rejected) == 2, "the three files drained")
    finally:
        coord.stop()
    assert coord.received == {"a": 0, "b": 0, "c": 1}
    assert not (run / "nodes" / "b").exists() and (run / "nodes" / "c" / "measurements" / "x.json").is_file()
    assert coord.rejected == ["b/measurements/x.json: shipped under b's name without b's token (its MAC does not match)",
                              "b/run.log: shipped under b's name without b's token (its MAC does not match)"]
    assert coord.index.node_measurements("b") == []
    assert "rejected why=b/measurements/x.json" in (run / FLEET_LOG).read_text()


def test_a_node_that_ships_needs_its_token(store_address, tmp_path):
    from icb_bench.bench.fleet import NodeLink

    with pytest.raises(ValueError, match="token"):
        NodeLink(store_address, "b", tmp_path, ship=True)
