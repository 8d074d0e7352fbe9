"""detect_launch under a real Slurm (the one-host cluster of slurm_cluster.py): srun steps on one
and on two Slurm nodes, an exported MASTER_PORT, a batch script's own shell, loopback-only daemons."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401 - the fixture

from icb_bench.bench.launch_env import slurm_port

#: what each task prints: its LaunchEnv, its default node name and the Slurm node it ran on
PROBE = """\
import json, os, socket
from icb_bench.bench.launch_env import LaunchError, default_node_name, detect_launch
try:
    launch = detect_launch()
except LaunchError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({**launch.describe(), "node_name": default_node_name(launch, socket.gethostname()),
                      "slurm_node": os.environ["SLURMD_NODENAME"]}))
"""


def srun_probe(cluster: SlurmCluster, *opts: str) -> list[dict]:
    res = cluster.run("srun", *opts, sys.executable, "-c", PROBE)
    assert res.returncode == 0, f"srun {' '.join(opts)} failed: {res.stderr}\n{cluster.log_tails()}"
    tasks = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return sorted(tasks, key=lambda t: t.get("rank", -1))


def test_two_tasks_on_one_node_are_two_ranks(slurm_cluster: SlurmCluster) -> None:
    tasks = srun_probe(slurm_cluster, "-N", "1", "-n", "2", "-w", slurm_cluster.nodes[0])
    assert [t["rank"] for t in tasks] == [0, 1]
    first = slurm_cluster.nodes[0]
    for t in tasks:
        assert (t["launcher"], t["world_size"], t["local_world_size"], t["node_rank"]) == ("slurm", 2, 2, 0)
        assert (t["master_addr"], t["slurm_node"]) == (first, first)
        assert t["master_port"] == slurm_port(int(t["job_id"]))
    assert tasks[0]["job_id"] == tasks[1]["job_id"]
    assert [t["local_rank"] for t in tasks] == [0, 1]
    # several tasks on one host are separate "nodes", each with its own default name
    assert [t["node_name"] for t in tasks] == [f"{slurm_cluster.hostname}-0", f"{slurm_cluster.hostname}-1"]


def test_step_across_two_slurm_nodes(slurm_cluster: SlurmCluster) -> None:
    tasks = srun_probe(slurm_cluster, "-N", "2", "-n", "3")
    assert [t["rank"] for t in tasks] == [0, 1, 2]
    assert {t["master_addr"] for t in tasks} == {slurm_cluster.nodes[0]}  # first host of icbn[01-02]
    by_node = {n: [t for t in tasks if t["slurm_node"] == n] for n in slurm_cluster.nodes}
    assert sorted(len(v) for v in by_node.values()) == [1, 2]
    for index, node in enumerate(slurm_cluster.nodes):
        for t in by_node[node]:
            assert t["node_rank"] == index
            assert t["local_world_size"] == len(by_node[node])
    assert len({t["job_id"] for t in tasks}) == 1


def test_one_task_per_node(slurm_cluster: SlurmCluster) -> None:
    tasks = srun_probe(slurm_cluster, "-N", "2", "--ntasks-per-node", "1")
    assert [(t["rank"], t["node_rank"], t["local_world_size"]) for t in tasks] == [(0, 0, 1), (1, 1, 1)]
    # one task per Slurm node: the host name is the node name (both are this host here, so the
    # fleet join makes them unique; on a real cluster they differ)
    assert {t["node_name"] for t in tasks} == {slurm_cluster.hostname}


def test_exported_master_port_and_addr_win(slurm_cluster: SlurmCluster) -> None:
    tasks = srun_probe(slurm_cluster, "-N", "2", "-n", "2", "--export=ALL,MASTER_PORT=23456,MASTER_ADDR=127.0.0.1")
    assert {(t["master_addr"], t["master_port"]) for t in tasks} == {("127.0.0.1", 23456)}


def test_batch_script_shell_is_not_a_step(slurm_cluster: SlurmCluster, tmp_path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    out = tmp_path / "batch.out"
    res = slurm_cluster.run("sbatch", "--wait", "-N", "2", "-n", "2", "-o", str(out),
                            "--wrap", f"{sys.executable} {script}; srun {sys.executable} {script}")
    assert res.returncode == 0, f"sbatch failed: {res.stderr}\n{slurm_cluster.log_tails()}"
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    # the batch shell itself: SLURM_NTASKS=2 but no step → a usage error pointing at srun
    assert "srun bench run" in lines[0]["error"]
    assert sorted(t["rank"] for t in lines[1:]) == [0, 1]


def listeners(ss_output: str) -> list[tuple[str, str, int]]:
    """(process, address, port) of each listening TCP socket in ``ss -ltnpH`` output."""
    out = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        addr, _, port = fields[3].rpartition(":")
        for proc in set(re.findall(r'\("([^"]+)",pid=', line)):
            out.append((proc, addr, int(port)))
    return out


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is not installed")
def test_daemons_and_srun_listen_on_loopback_only(slurm_cluster: SlurmCluster) -> None:
    # run ss inside a step, so srun and slurmstepd are alive and listening while it looks
    res = slurm_cluster.run("srun", "-N", "1", "-n", "1", "ss", "-ltnpH")
    assert res.returncode == 0, res.stderr
    mine = [entry for entry in listeners(res.stdout) if entry[0] in ("slurmctld", "slurmd", "slurmstepd", "srun")]
    assert {p for _, _, p in mine} >= set(slurm_cluster.ports.values())
    assert {proc for proc, _, _ in mine} >= {"slurmctld", "slurmd", "srun"}
    assert {addr for _, addr, _ in mine} == {"127.0.0.1"}, mine


def test_example_sbatch_starts_one_bench_per_node(slurm_cluster: SlurmCluster, tmp_path) -> None:
    """examples/slurm/bench.sbatch as an operator submits it, with a stand-in `bench` on PATH
    that prints its LaunchEnv and arguments (this cluster has no GPU GRES: that line is dropped)."""
    example = Path(__file__).parents[2] / "examples" / "slurm" / "bench.sbatch"
    script = tmp_path / "bench.sbatch"
    script.write_text("".join(line for line in example.read_text().splitlines(keepends=True)
                              if not line.startswith("#SBATCH --gpus-per-node")))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bench"
    fake.write_text(f"#!{sys.executable}\nimport sys\nARGV = sys.argv[1:]\n"
                    + PROBE.replace('"slurm_node":', '"argv": ARGV, "slurm_node":'))
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{slurm_cluster.env['PATH']}", "SITE": "/shared/site.yaml", "CHALLENGE": "c-123"}
    res = slurm_cluster.run("sbatch", "--wait", "--nodes=2", f"--chdir={tmp_path}", str(script), extra_env=env)
    assert res.returncode == 0, f"sbatch failed: {res.stderr}\n{slurm_cluster.log_tails()}"
    job_id = res.stdout.split()[-1]
    tasks = sorted((json.loads(line) for line in (tmp_path / f"icb-bench-{job_id}.out").read_text().splitlines()
                    if line.startswith("{")), key=lambda t: t["rank"])
    assert [(t["rank"], t["node_rank"], t["local_world_size"], t["slurm_node"]) for t in tasks] == [
        (0, 0, 1, slurm_cluster.nodes[0]), (1, 1, 1, slurm_cluster.nodes[1])]
    assert {t["master_addr"] for t in tasks} == {slurm_cluster.nodes[0]}
    want = ["run", "--out", f"results/fleet-{job_id}", "--site", "/shared/site.yaml", "--challenge", "c-123"]
    assert [t["argv"] for t in tasks] == [want, want]
