"""Multi-node `bench run`: torchrun agents on this host as nodes (gloo on loopback, CPU backend),
with no shared filesystem between nodes (each has its own --out)."""

from __future__ import annotations

import json

import pytest

from icb_bench.bench import record
from icb_bench.bench.fleet import MAX_SKEW_S
from icb_bench.bench.fleet_run import timeline_windows

from fleet_helpers import QUICK, loopback_netns, start_job, wait_for

pytestmark = pytest.mark.slow

TIMEOUT_S = 300


@pytest.fixture
def netns():
    with loopback_netns() as prefix:
        yield prefix


def _manifest(node) -> dict:
    return json.loads((node.out / record.MANIFEST).read_text())


def test_three_nodes_one_run_on_rank_0(tmp_path, netns):
    nodes = start_job(tmp_path, 3, ["--backend", "cpu", *QUICK, "--dtypes", "fp32,fp16"], prefix=netns)
    codes = [n.wait(TIMEOUT_S) for n in nodes]
    assert codes == [0, 0, 0], [n.stderr()[-2000:] for n in nodes]
    root = nodes[0].out
    m = _manifest(nodes[0])
    assert m["kind"] == "fleet" and m["status"] == "complete" and m["world_size"] == 3
    assert [n["name"] for n in m["nodes"]] == ["n0", "n1", "n2"]
    # every shard reached rank 0 although the nodes share no directory, byte for byte
    for n in nodes[1:]:
        mine = sorted(p.relative_to(n.out).as_posix() for p in (n.out / "nodes" / n.name).rglob("*") if p.is_file())
        assert mine, n.name
        for rel in mine:
            assert (root / rel).read_bytes() == (n.out / rel).read_bytes(), rel
    digests = {s["path"]: s["sha256"] for s in m["shards"]}
    for n in nodes:
        assert digests[f"nodes/{n.name}/manifest.json"] == record.sha256_file(root / "nodes" / n.name / "manifest.json")
    # one common start per dtype for all three nodes, on rank 0's timeline
    # two per dtype (before the warm-up, before the core phase), each with all three nodes
    assert [b["arrivals"] for b in m["barriers"]] == [3, 3, 3, 3] and not any(b["timed_out"] for b in m["barriers"])
    # the skew is measured, not assumed: on a loaded host a worker may start late, and the record
    # must flag exactly those nodes (a bound on the spread itself would test the host's speed)
    rec = record.load_run(root)
    offsets = {n["name"]: n["clock"]["offset_s"] for n in m["nodes"]}
    windows = timeline_windows([{**x, "_clock_offset_s": offsets[x["host"]]} for x in rec.measurements])
    for skew in m["core_phase_skew"]:
        assert skew["devices"] == 3 and skew["common_start_s"] is not None
        late = {w["node"] for w in windows if w["dtype"] == skew["dtype"] and w["t_begin_s"] - skew["common_start_s"] > MAX_SKEW_S}
        assert late <= set(skew["nodes_out_of_bound"]) <= {"n0", "n1", "n2"}
        # and none began before it (within each node's clock uncertainty, half its best round trip)
        rtt = {n["name"]: n["clock"]["rtt_s"] for n in m["nodes"]}
        assert all(w["t_begin_s"] >= skew["common_start_s"] - rtt[w["node"]] / 2 - 0.01
                   for w in windows if w["dtype"] == skew["dtype"])
    assert {n["name"]: n["clock"]["rounds"] for n in m["nodes"]} == {"n0": 0, "n1": 8, "n2": 8}
    # the record reads as one run: every node's measurements, per-node and whole-run aggregates
    assert sorted({x["host"] for x in rec.measurements}) == ["n0", "n1", "n2"] and len(rec.measurements) == 6
    scopes = [(a["scope"], a.get("host"), a["dtype"]) for a in m["aggregates"]]
    assert ("node", "n2", "fp16") in scopes and ("run", None, "fp32") in scopes
    run_fp32 = next(a for a in m["aggregates"] if a["scope"] == "run" and a["dtype"] == "fp32")
    assert run_fp32["nodes"] == 3 and run_fp32["devices"] == 3
    # rank 0 prints the whole run; the others their own node
    assert {x["host"] for x in json.loads(nodes[0].stdout())["measurements"]} == {"n0", "n1", "n2"}
    assert {x["host"] for x in json.loads(nodes[2].stdout())["measurements"]} == {"n2"}


def test_a_node_killed_mid_run_is_named_and_nothing_finished_is_lost(tmp_path, netns):
    nodes = start_job(tmp_path, 2, ["--backend", "cpu", *QUICK, "--dtypes", "fp32,fp16,bf16", "--node-timeout", "5"],
                      prefix=netns)
    root, victim = nodes[0].out, nodes[1]
    # kill node n1 (its torchrun agent and its bench process) once its first measurement reached rank 0
    wait_for(lambda: any((root / "nodes" / "n1" / "measurements").glob("*.json")), TIMEOUT_S, "n1's first measurement on rank 0")
    victim.kill()
    res = nodes[0].result(TIMEOUT_S)
    nodes[0].kill()  # its torchrun agent would wait for the dead node's agent at its exit barrier
    assert res["exit_code"] == 1, nodes[0].stderr()[-2000:]
    m = _manifest(nodes[0])
    assert m["status"] == "failed"
    assert [x["name"] for x in m["missing_nodes"]] == ["n1"]
    miss = m["missing_nodes"][0]
    assert miss["devices"] == 1 and "heartbeat" in miss["reason"] and miss["measurements_received"] >= 1
    # the survivor measured every dtype; the victim's finished measurement is kept
    rec = record.load_run(root)
    mine = {x["dtype"] for x in rec.measurements if x["host"] == "n0"}
    assert mine == {"fp32", "fp16", "bf16"}
    assert any(x["host"] == "n1" and x["dtype"] == "fp32" for x in rec.measurements)
    assert next(n for n in m["nodes"] if n["name"] == "n1")["status"] == "missing"


def test_a_node_that_does_not_arrive_is_waited_for_only_so_long(tmp_path, netns):
    # n1 holds its device back for 25 s before measuring; the common start gives up after 4 s
    nodes = start_job(tmp_path, 2, ["--backend", "sleepy", *QUICK, "--dtypes", "fp32", "--fleet-timeout", "4"],
                      node_env={1: {"FAKE_SLEEP_S": "25"}}, prefix=netns)
    codes = [n.wait(TIMEOUT_S) for n in nodes]
    assert codes[0] == 0, nodes[0].stderr()[-2000:]
    m = _manifest(nodes[0])
    b0 = m["barriers"][0]
    assert b0["timed_out"] and b0["missing_nodes"] == ["n1"] and 4 <= b0["waited_s"] < 20
    # n1 measured after all, late: its core phase is flagged as out of step with the others
    skew = m["core_phase_skew"][0]
    assert skew["nodes_out_of_bound"] and skew["begin_spread_s"] > 0.8


def _log_has(node, text: str) -> bool:
    p = node.out / "fleet.log"  # rank 0's coordination log
    return p.is_file() and text in p.read_text()


def test_a_node_paused_past_its_timeout_is_declared_dead_then_back(tmp_path, netns):
    import signal

    nodes = start_job(tmp_path, 2, ["--backend", "cpu", "--quick", "--duration", "3", "--shape", "128x128x128", "--json",
                                    "--dtypes", "fp32,fp16,bf16", "--node-timeout", "2"], prefix=netns)
    root, victim = nodes[0], nodes[1]
    try:
        # n1 is measuring (its record is open: its heartbeat runs); pause it, with its workers, until
        # rank 0 has declared it dead — as a network blip longer than --node-timeout would — and
        # released a common start without it
        wait_for(lambda: (victim.out / "nodes" / "n1" / "run.log").is_file(), TIMEOUT_S, "n1's record opened")
        victim.signal_bench(signal.SIGSTOP)
        try:
            wait_for(lambda: _log_has(root, "dead=n1"), TIMEOUT_S, "a common start released without n1")
        finally:
            victim.signal_bench(signal.SIGCONT)
        codes = [n.wait(TIMEOUT_S) for n in nodes]
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.kill()
    assert _log_has(root, "node_dead node=n1") and _log_has(root, "node_back node=n1"), (root.out / "fleet.log").read_text()
    m = _manifest(root)
    # it came back: rank 0 waited for its shard, and the record says when it was dead
    assert m["missing_nodes"] == [] and m["status"] == "complete", (m["missing_nodes"], m["status"], codes)
    n1 = next(n for n in m["nodes"] if n["name"] == "n1")
    [death] = n1["declared_dead"]
    assert n1["status"] == "complete" and death["back_by"] == "heartbeat"
    assert death["declared_dead_s"] < death["back_s"] < m["barriers"][-1]["released_s"]
    # the common starts counted while it was dead say so; one after its return counted it again
    assert any(b["dead_nodes"] == ["n1"] for b in m["barriers"])
    assert m["barriers"][-1]["dead_nodes"] == [] and m["barriers"][-1]["expected"] == 2
    rec = record.load_run(root.out)
    assert sorted((x["host"], x["dtype"]) for x in rec.measurements) == sorted(
        (h, d) for h in ("n0", "n1") for d in ("fp32", "fp16", "bf16"))
    assert "fleet.log" in {f["path"] for f in m["files"]}


def test_rank_0_terminated_while_waiting_for_a_peer_closes_the_run_as_interrupted(tmp_path, netns):
    import signal

    # n1 holds its device back (a node stuck in its shape search); rank 0 measures alone after
    # its common starts give up, then waits for n1 — and is terminated there
    nodes = start_job(tmp_path, 2, ["--backend", "sleepy", *QUICK, "--dtypes", "fp32", "--fleet-timeout", "3"],
                      node_env={1: {"FAKE_SLEEP_S": "3600"}}, prefix=netns)
    root = nodes[0]
    try:
        # rank 0's own shard closed and counted done: what is left is waiting for n1
        wait_for(lambda: _log_has(root, "node_done node=n0 "), TIMEOUT_S, "rank 0 done with its own measurement")
        root.signal_bench(signal.SIGTERM, group=False)
        res = root.result(TIMEOUT_S)
    finally:
        for n in nodes:
            n.kill()
    assert res["exit_code"] == 1
    m = _manifest(root)
    assert m["status"] == "interrupted" and "files" in m
    assert [(x["name"], x["reason"]) for x in m["missing_nodes"]] == [("n1", "rank 0 was interrupted before this node finished")]
    assert [s["path"] for s in m["shards"]] == ["nodes/n0/manifest.json"]
    assert {n["name"]: n["status"] for n in m["nodes"]} == {"n0": "complete", "n1": "missing"}
    assert _log_has(root, "interrupted")
    rec = record.load_run(root.out)
    assert [(x["host"], x["dtype"]) for x in rec.measurements] == [("n0", "fp32")]
