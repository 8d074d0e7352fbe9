"""`srun -n 2 bench run` on a real one-host Slurm cluster (slurm_cluster.py): two tasks, two "nodes",
one run on rank 0. Rank 0 serves the job's store on MASTER_ADDR=127.0.0.1 only."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401 - the fixture

from icb_bench.bench import record

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_srun_two_tasks_one_run(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "run"
    bench = str(Path(sys.executable).parent / "bench")
    res = slurm_cluster.run(
        "srun", "-N", "1", "-n", "2", "-w", slurm_cluster.nodes[0], "--chdir", str(tmp_path),
        f"--export=ALL,MASTER_ADDR=127.0.0.1,MASTER_PORT={_port()},GLOO_SOCKET_IFNAME=lo",
        bench, "run", "--backend", "cpu", "--quick", "--duration", "2", "--shape", "128x128x128",
        "--dtypes", "fp32", "--json", "--out", str(out), timeout_s=300,
        extra_env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert res.returncode == 0, f"{res.stderr[-3000:]}\n{slurm_cluster.log_tails()}"
    man = json.loads((out / record.MANIFEST).read_text())
    assert man["kind"] == "fleet" and man["status"] == "complete"
    assert man["launch"]["launcher"] == "slurm" and man["world_size"] == 2
    names = [n["name"] for n in man["nodes"]]
    assert len(set(names)) == 2  # two tasks on one host: two nodes with their own names
    rec = record.load_run(out)
    assert sorted(m["host"] for m in rec.measurements) == sorted(names)
    assert all(m["valid"] for m in rec.measurements)
    assert man["barriers"][0]["arrivals"] == 2
