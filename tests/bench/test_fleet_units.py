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
