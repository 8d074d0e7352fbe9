"""detect_launch: every launcher's variables, the one-process-per-node rule, bad input, hostlists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from icb_bench.bench.launch_env import (
    SLURM_PORT_BASE,
    SLURM_PORT_SPAN,
    HostlistError,
    LaunchEnv,
    LaunchError,
    default_node_name,
    detect_launch,
    expand_hostlist,
    expand_tasks_per_node,
    slurm_port,
)

#: what `torchrun --nnodes 2 --nproc-per-node 1` gives the second node's process
TORCHRUN = {"TORCHELASTIC_RUN_ID": "job7", "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "1", "ROLE_RANK": "1", "MASTER_ADDR": "node01",
            "MASTER_PORT": "29400"}
#: what Kubeflow's PyTorchJob (nprocPerNode: 1) sets in worker pod 2 of 4
PYTORCHJOB = {"MASTER_ADDR": "bench-master-0", "MASTER_PORT": "23456", "WORLD_SIZE": "4", "RANK": "2",
              "PYTHONUNBUFFERED": "1"}
#: an indexed Job's pod 3 of 4 with the example manifest's env
INDEXED = {"JOB_COMPLETION_INDEX": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "bench-0.bench", "MASTER_PORT": "29500"}
#: recorded from `srun -N 2 -n 3` on the test cluster (task 1: the second task of node icbn01)
SLURM = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
         "SLURM_NODEID": "0", "SLURM_NTASKS": "3", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_NUM_NODES": "2",
         "SLURM_STEP_NODELIST": "icbn[01-02]", "SLURM_JOB_NODELIST": "icbn[01-02]",
         "SLURM_STEP_TASKS_PER_NODE": "2,1", "SLURMD_NODENAME": "icbn01"}


def with_(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    out = dict(base)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def test_single_process_is_no_job() -> None:
    assert detect_launch({}) is None
    assert detect_launch({"HOME": "/root", "PATH": "/bin"}) is None
    assert detect_launch({"WORLD_SIZE": "1"}) is None
    assert detect_launch({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert detect_launch(with_(TORCHRUN, RANK="0", WORLD_SIZE="1", GROUP_RANK="0")) is None
    assert detect_launch(with_(SLURM, SLURM_STEP_NUM_TASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0",
                               SLURM_STEP_TASKS_PER_NODE="1")) is None
    # inside an allocation of one task (sbatch -n 1 running bench directly)
    assert detect_launch({"SLURM_JOB_ID": "5", "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None


def test_torchrun() -> None:
    launch = detect_launch(TORCHRUN)
    assert launch == LaunchEnv(launcher="torchrun", rank=1, world_size=2, local_rank=0, local_world_size=1,
                               node_rank=1, master_addr="node01", master_port=29400, job_id="job7")
    assert launch.describe() == {"launcher": "torchrun", "rank": 1, "world_size": 2, "local_rank": 0,
                                 "local_world_size": 1, "node_rank": 1, "master_addr": "node01",
                                 "master_port": 29400, "job_id": "job7"}


def test_torchrun_with_several_processes_per_node_is_a_usage_error() -> None:
    env = with_(TORCHRUN, WORLD_SIZE="16", RANK="9", LOCAL_RANK="1", LOCAL_WORLD_SIZE="8")
    with pytest.raises(LaunchError) as e:
        detect_launch(env)
    assert "LOCAL_WORLD_SIZE=8" in str(e.value)
    assert "run one bench process per node: torchrun --nproc-per-node 1" in str(e.value)


def test_two_torchrun_agents_on_one_host_are_two_nodes() -> None:
    # each agent has --nproc-per-node 1: LOCAL_WORLD_SIZE=1, its own GROUP_RANK
    a = detect_launch(with_(TORCHRUN, RANK="0", GROUP_RANK="0", MASTER_ADDR="127.0.0.1"))
    b = detect_launch(with_(TORCHRUN, MASTER_ADDR="127.0.0.1"))
    assert (a.rank, a.node_rank, b.rank, b.node_rank) == (0, 0, 1, 1)
    assert a.local_world_size == b.local_world_size == 1


def test_pytorchjob_env() -> None:
    launch = detect_launch(PYTORCHJOB)
    assert launch == LaunchEnv(launcher="env", rank=2, world_size=4, local_rank=0, local_world_size=1,
                               node_rank=2, master_addr="bench-master-0", master_port=23456, job_id=None)


def test_env_with_several_processes_per_node_is_a_usage_error() -> None:
    with pytest.raises(LaunchError, match=r"LOCAL_WORLD_SIZE=8: run one bench process per node"):
        detect_launch(with_(PYTORCHJOB, LOCAL_WORLD_SIZE="8", LOCAL_RANK="0"))


def test_k8s_indexed_job() -> None:
    launch = detect_launch(INDEXED)
    assert launch == LaunchEnv(launcher="k8s-indexed", rank=3, world_size=4, local_rank=0, local_world_size=1,
                               node_rank=3, master_addr="bench-0.bench", master_port=29500, job_id=None)
    assert detect_launch(with_(INDEXED, RANK="3")).rank == 3


@pytest.mark.parametrize(("env", "needle"), [
    (with_(INDEXED, WORLD_SIZE=None), "WORLD_SIZE is not set"),
    (with_(INDEXED, RANK="1"), "RANK=1 differs from JOB_COMPLETION_INDEX=3"),
    (with_(INDEXED, JOB_COMPLETION_INDEX="4"), "JOB_COMPLETION_INDEX=4 is not below WORLD_SIZE=4"),
    (with_(INDEXED, MASTER_ADDR=None), "MASTER_ADDR is not set"),
])
def test_k8s_indexed_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(LaunchError, match=needle):
        detect_launch(env)


def test_slurm_step() -> None:
    launch = detect_launch(SLURM)
    assert launch == LaunchEnv(launcher="slurm", rank=1, world_size=3, local_rank=1, local_world_size=2,
                               node_rank=0, master_addr="icbn01", master_port=SLURM_PORT_BASE + 42, job_id="42")
    third = detect_launch(with_(SLURM, SLURM_PROCID="2", SLURM_LOCALID="0", SLURM_NODEID="1"))
    assert (third.local_world_size, third.node_rank, third.master_addr) == (1, 1, "icbn01")


def test_slurm_master_from_job_nodelist_and_overrides() -> None:
    env = with_(SLURM, SLURM_STEP_NODELIST=None, SLURM_JOB_NODELIST="gpu-a[7-9],node01")
    assert detect_launch(env).master_addr == "gpu-a7"
    env = with_(SLURM, MASTER_ADDR="10.0.0.5", MASTER_PORT="6000")
    assert (detect_launch(env).master_addr, detect_launch(env).master_port) == ("10.0.0.5", 6000)


def test_slurm_port_is_derived_from_the_job_id_in_its_range() -> None:
    assert slurm_port(0) == SLURM_PORT_BASE
    assert slurm_port(SLURM_PORT_SPAN + 7) == SLURM_PORT_BASE + 7
    for job in (1, 9999, 10000, 123456789):
        assert SLURM_PORT_BASE <= slurm_port(job) < SLURM_PORT_BASE + SLURM_PORT_SPAN < 32768


@pytest.mark.parametrize(("env", "needle"), [
    (with_(SLURM, SLURM_PROCID="3"), r"SLURM_PROCID=3 is not below SLURM_STEP_NUM_TASKS=3; expected a rank from 0 to 2"),
    (with_(SLURM, SLURM_PROCID="one"), r"SLURM_PROCID='one' is not an integer"),
    (with_(SLURM, SLURM_LOCALID="2"), r"SLURM_LOCALID=2 is not below the 2 process"),
    (with_(SLURM, SLURM_NODEID="2"), r"SLURM_NODEID=2 is beyond SLURM_STEP_TASKS_PER_NODE='2,1'"),
    (with_(SLURM, SLURM_STEP_TASKS_PER_NODE="2,x"), r"SLURM_STEP_TASKS_PER_NODE='2,x': 'x' is not a task count"),
    (with_(SLURM, SLURM_STEP_NODELIST="icbn[01-02"), r"SLURM_STEP_NODELIST='icbn\[01-02': '\[' is never closed"),
    (with_(SLURM, SLURM_STEP_NODELIST=None, SLURM_JOB_NODELIST=None), "SLURM_STEP_NODELIST and SLURM_JOB_NODELIST"),
    (with_(SLURM, SLURM_JOB_ID=None), "SLURM_JOB_ID and MASTER_PORT are both unset"),
    (with_(SLURM, SLURM_JOB_ID="12a"), r"SLURM_JOB_ID='12a' is not an integer"),
])
def test_slurm_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(LaunchError, match=needle):
        detect_launch(env)


def test_slurm_batch_shell_is_a_usage_error() -> None:
    # what an sbatch script's own shell sees (recorded on the test cluster): no step variables
    batch = {"SLURM_JOB_ID": "2", "SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
             "SLURM_NODEID": "0", "SLURM_TASKS_PER_NODE": "2", "SLURM_JOB_NODELIST": "icbn01"}
    with pytest.raises(LaunchError, match=r"SLURM_NTASKS=2 but this is not a job step.*srun bench run"):
        detect_launch(batch)


@pytest.mark.parametrize(("env", "needle"), [
    (with_(TORCHRUN, RANK="2"), r"RANK=2 is not below WORLD_SIZE=2; expected a rank from 0 to 1"),
    (with_(TORCHRUN, RANK="-1"), r"RANK='-1' is not an integer ≥ 0"),
    (with_(TORCHRUN, WORLD_SIZE="0"), r"WORLD_SIZE='0' is not an integer ≥ 1"),
    (with_(TORCHRUN, WORLD_SIZE="２"), r"WORLD_SIZE='２' is not an integer"),  # full-width digit: int() takes it
    (with_(TORCHRUN, RANK=" 1"), r"RANK=' 1' is not an integer"),
    (with_(TORCHRUN, LOCAL_RANK=None), r"LOCAL_RANK is not set"),
    (with_(TORCHRUN, MASTER_ADDR=None), r"MASTER_ADDR is not set; expected the host name or address of rank 0"),
    (with_(TORCHRUN, MASTER_ADDR=" "), r"MASTER_ADDR is not set"),
    (with_(TORCHRUN, MASTER_PORT="70000"), r"MASTER_PORT=70000 is not a TCP port; expected 1–65535"),
    (with_(TORCHRUN, MASTER_PORT=None), r"MASTER_PORT is not set"),
    (with_(PYTORCHJOB, RANK=None), r"RANK is not set but WORLD_SIZE=4 is"),
    (with_(PYTORCHJOB, WORLD_SIZE=None), r"WORLD_SIZE is not set but RANK=2 is"),
    (with_(PYTORCHJOB, RANK="4"), r"RANK=4 is not below WORLD_SIZE=4"),
    (with_(PYTORCHJOB, MASTER_PORT="http"), r"MASTER_PORT='http' is not an integer"),
])
def test_inconsistent_env(env: dict[str, str], needle: str) -> None:
    with pytest.raises(LaunchError, match=needle):
        detect_launch(env)


def test_precedence_innermost_launcher_wins() -> None:
    # torchrun started by srun: torchrun's variables describe the bench process
    assert detect_launch({**SLURM, **TORCHRUN}).launcher == "torchrun"
    # RANK/WORLD_SIZE exported by hand inside a Slurm step
    assert detect_launch({**SLURM, **PYTORCHJOB}).launcher == "env"
    # an indexed Job whose manifest also sets RANK to the index
    assert detect_launch({**with_(PYTORCHJOB, RANK="3"), **INDEXED}).launcher == "k8s-indexed"


def test_default_node_name() -> None:
    slurm = detect_launch(SLURM)
    assert default_node_name(None, "node01.cluster.local") == "node01"
    assert default_node_name(detect_launch(TORCHRUN), "node01") == "node01"
    assert default_node_name(slurm, "vm.example") == "vm-1"
    assert default_node_name(detect_launch(with_(SLURM, SLURM_PROCID="2", SLURM_LOCALID="0", SLURM_NODEID="1")),
                             "icbn02") == "icbn02"


@pytest.mark.parametrize(("text", "hosts"), [
    ("node01", ["node01"]),
    ("node[01-03,07],gpu-a[1-2]", ["node01", "node02", "node03", "node07", "gpu-a1", "gpu-a2"]),
    ("n[8-10]", ["n8", "n9", "n10"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
    ("a,b[3],c-ib", ["a", "b3", "c-ib"]),
    ("[1-2]x", ["1x", "2x"]),
    ("node[1-2],", ["node1", "node2"]),
])
def test_expand_hostlist(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize(("text", "needle"), [
    ("", "empty host list"),
    ("node[1-2", "never closed"),
    ("node1-2]", "without '\\['"),
    ("node[1-[2]]", "nested"),
    ("node[3-1]", "runs backwards"),
    ("node[a-b]", "is not a number or range"),
    ("node[]", "is not a number or range"),
    ("node[1--2]", "is not a number or range"),
])
def test_expand_hostlist_errors(text: str, needle: str) -> None:
    with pytest.raises(HostlistError, match=needle):
        expand_hostlist(text)


@given(prefix=st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True),
       ranges=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 5), st.integers(1, 3)), min_size=1, max_size=4))
def test_expand_hostlist_matches_a_plain_listing(prefix: str, ranges: list[tuple[int, int, int]]) -> None:
    body = ",".join(f"{lo:0{w}d}-{lo + n:0{w}d}" for lo, n, w in ranges)
    want = [f"{prefix}{i:0{w}d}" for lo, n, w in ranges for i in range(lo, lo + n + 1)]
    assert expand_hostlist(f"{prefix}[{body}]") == want


@pytest.mark.parametrize(("text", "counts"), [
    ("2", [2]), ("2,1", [2, 1]), ("2(x3),1", [2, 2, 2, 1]), ("8(x2)", [8, 8]),
])
def test_expand_tasks_per_node(text: str, counts: list[int]) -> None:
    assert expand_tasks_per_node(text) == counts


@pytest.mark.parametrize("text", ["", "0", "2(x0)", "2(3)", "a", "2,,1"])
def test_expand_tasks_per_node_errors(text: str) -> None:
    with pytest.raises(ValueError, match="is not a task count"):
        expand_tasks_per_node(text)


# --- the examples: each manifest parses, asks for whole nodes and gives bench the env it reads ---

EXAMPLES = Path(__file__).parents[2] / "examples"


def container_env(container: dict) -> dict[str, str]:
    """The literal env of a container (downward-API and secret values left out)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def check_whole_node_pod(pod: dict) -> dict:
    """One pod per node, asking for every accelerator; returns its one container."""
    (container,) = pod["containers"]
    res = container["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == 8
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    command = " ".join(container["command"] + container["args"])
    assert "bench run --out" in command and '--node-name "$NODE_NAME"' in command
    node_name = {e["name"]: e for e in container["env"]}["NODE_NAME"]
    assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    return container


def test_pytorchjob_example_gives_one_rank_per_pod() -> None:
    job = yaml.safe_load((EXAMPLES / "k8s" / "pytorchjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert job["spec"]["nprocPerNode"] == "1"
    specs = job["spec"]["pytorchReplicaSpecs"]
    world = specs["Master"]["replicas"] + specs["Worker"]["replicas"]
    assert specs["Master"]["replicas"] == 1
    ports = set()
    for role, spec in specs.items():
        container = check_whole_node_pod(spec["template"]["spec"])
        assert container["name"] == "pytorch"  # the operator's container name
        ports |= {p["containerPort"] for p in container["ports"] if p["name"] == "pytorchjob-port"}
        has_secret = any(e["name"] == "ICB_PDU_PASSWORD" for e in container["env"])
        assert has_secret == (role == "Master")  # only rank 0 polls the rack meters
    (port,) = ports
    # what the operator sets in each pod: the master's service, the port, WORLD_SIZE and RANK
    for rank in range(world):
        env = {"MASTER_ADDR": f"{job['metadata']['name']}-master-0", "MASTER_PORT": str(port),
               "WORLD_SIZE": str(world * int(job["spec"]["nprocPerNode"])), "RANK": str(rank)}
        launch = detect_launch(env)
        assert (launch.launcher, launch.rank, launch.world_size, launch.local_world_size) == ("env", rank, world, 1)


def test_indexed_job_example_gives_one_rank_per_index() -> None:
    service, job = yaml.safe_load_all((EXAMPLES / "k8s" / "indexed-job.yaml").read_text())
    assert (service["kind"], service["spec"]["clusterIP"]) == ("Service", "None")
    assert (job["apiVersion"], job["kind"], job["spec"]["completionMode"]) == ("batch/v1", "Job", "Indexed")
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    container = check_whole_node_pod(pod)
    env = container_env(container)
    nodes = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == nodes == int(env["WORLD_SIZE"])
    assert env["MASTER_ADDR"] == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    assert int(env["MASTER_PORT"]) in {p["port"] for p in service["spec"]["ports"]}
    args = " ".join(container["args"])
    assert "--nproc-per-node 1" in args and "--no-python bench run" in args
    for index in range(nodes):
        # torchrun's env in the bench process (one agent per pod, --node-rank = the index) ...
        torchrun = {**env, "JOB_COMPLETION_INDEX": str(index), "TORCHELASTIC_RUN_ID": "none",
                    "RANK": str(index), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": str(index)}
        assert detect_launch(torchrun).describe() | {"job_id": None} == {
            "launcher": "torchrun", "rank": index, "world_size": nodes, "local_rank": 0, "local_world_size": 1,
            "node_rank": index, "master_addr": env["MASTER_ADDR"], "master_port": int(env["MASTER_PORT"]),
            "job_id": None}
        # ... and the README's variant that runs bench run directly
        direct = detect_launch({**env, "JOB_COMPLETION_INDEX": str(index)})
        assert (direct.launcher, direct.rank, direct.world_size) == ("k8s-indexed", index, nodes)


def test_sbatch_example_runs_one_task_per_node_through_srun() -> None:
    text = (EXAMPLES / "slurm" / "bench.sbatch").read_text()
    directives = {k: v for k, _, v in (line.removeprefix("#SBATCH ").partition("=") for line in text.splitlines()
                                       if line.startswith("#SBATCH "))}
    assert directives["--ntasks-per-node"] == "1" and "--nodes" in directives
    srun = text[text.index("\nsrun "):].replace("\\\n", " ")
    assert "--ntasks-per-node=1" in srun and 'bench run --out "$RUN" --site "$SITE" --challenge "$CHALLENGE"' in srun
    assert subprocess.run(["bash", "-n", str(EXAMPLES / "slurm" / "bench.sbatch")], check=False).returncode == 0
