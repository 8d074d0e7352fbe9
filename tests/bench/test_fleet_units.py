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
        deadline = time.monotonic() + 10
        while not _released(store) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _released(store)
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
        deadline = time.monotonic() + 10
        while not _released(store) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _released(store)
    finally:
        coord.stop()
    assert coord.barriers[0].expected == 2 and not coord.barriers[0].timed_out
