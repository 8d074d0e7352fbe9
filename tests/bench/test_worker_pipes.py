"""Each device worker reports through its own pipe: a worker killed in the middle of a message
breaks only its own channel (its peers measure on and the run closes), and a worker's last
message, sent just before it exits, reaches the parent."""

import json
import os
import subprocess
import sys
from pathlib import Path

from icb_bench.bench import record

FAKES = Path(__file__).parent / "fakes"
DTYPES = ("fp32", "fp16")
ARGS = ["--quick", "--duration", "1", "--shape", "128x128x128", "--dtypes", ",".join(DTYPES), "--json"]
#: a run takes ~30 s here; a hang (the regression these tests are for) fails the test instead
RUN_TIMEOUT_S = 300

sys.path.insert(0, str(FAKES))
from killed_backend import LAST_WORDS, NOT_BLOCKED_EXIT  # noqa: E402


def _run(out: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    full_env = {**os.environ, "PYTHONPATH": f"{FAKES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "ICB_BENCH_BACKENDS": "killed=killed_backend:KilledWorker", **env}
    proc = subprocess.run([sys.executable, "-m", "icb_bench.bench.cli", "run", "--backend", "killed", *ARGS,
                           "--out", str(out)], capture_output=True, text=True, env=full_env, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout)


def _peer_complete_and_valid(out: Path) -> None:
    """Device 0 measured every dtype, validly; device 1 kept the measurement it finished."""
    rec = record.load_run(out)
    by = {(m["device"], m["dtype"]): m for m in rec.measurements}
    assert sorted(by) == [(0, "fp16"), (0, "fp32"), (1, "fp32")]
    assert all(m["valid"] and m["status"] == "ok" for m in by.values()), [m.get("error") for m in by.values()]
    assert rec.status == "failed" and rec.manifest["missing"] == []


def test_a_worker_killed_inside_a_send_breaks_only_its_own_channel(tmp_path):
    mark = tmp_path / "killed.mark"
    out = tmp_path / "run"
    proc, payload = _run(out, FAKE_KILLED_MODE="blocked", FAKE_KILLED_MARK=str(mark))
    assert mark.exists(), "the worker never reached its kill"
    assert payload["failed_devices"] != {"1": f"worker exited with code {NOT_BLOCKED_EXIT}"}, \
        "the worker's sending thread was never blocked: the case was not arranged"
    assert proc.returncode == 1, proc.stderr
    assert payload["failed_devices"] == {"1": "worker exited with code -9"}
    _peer_complete_and_valid(out)
    log = (out / "run.log").read_text()
    assert "x" * 100 not in log  # the cut-off message was dropped, never handled as a message


def test_a_last_message_sent_just_before_exit_is_not_lost(tmp_path):
    out = tmp_path / "run"
    proc, payload = _run(out, FAKE_KILLED_MODE="lastwords")
    assert proc.returncode == 1, proc.stderr
    # its own words, not the exit code the parent would otherwise report
    assert payload["failed_devices"] == {"1": LAST_WORDS}
    _peer_complete_and_valid(out)


def _channel_with(*raw: bytes) -> tuple[dict, list]:
    """A worker's channel (as the parent holds it) after the worker wrote ``raw`` and ended."""
    import multiprocessing as mp

    receive, send = mp.get_context("spawn").Pipe(duplex=False)
    send.send(("warning", {"device": 1, "message": "before"}))
    for chunk in raw:
        os.write(send.fileno(), chunk)
    send.close()
    return {1: receive}, []


def _frame(size: int) -> bytes:
    return size.to_bytes(4, "big")  # multiprocessing.connection's length prefix


def test_a_cut_off_or_garbled_message_ends_only_that_channel():
    from icb_bench.bench.orchestrate import _drain

    for raw in ((_frame(1 << 20), b"\x80\x04" + b"x" * 100),  # the writer died mid-message
                (_frame(8), b"\xff" * 8),                        # a whole frame that is no pickle
                ()):                                             # a plain end (EOF)
        channels, got = _channel_with(*raw)
        _drain(channels, 1, lambda kind, data: got.append((kind, data)))
        assert got == [("warning", {"device": 1, "message": "before"})]
        assert channels == {}


def test_a_workers_pipe_asks_for_a_wide_buffer():
    """Sends are synchronous: a 64 KiB pipe fills while the parent ships files; 1 MiB is asked for."""
    import fcntl
    import multiprocessing as mp

    from icb_bench.bench import orchestrate

    receive, send = mp.get_context("spawn").Pipe(duplex=False)
    try:
        before = fcntl.fcntl(send.fileno(), fcntl.F_GETPIPE_SZ)
        orchestrate._widen_pipe(send)
        after = fcntl.fcntl(send.fileno(), fcntl.F_GETPIPE_SZ)
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert after >= min(orchestrate.WORKER_PIPE_BYTES, max(limit, before)) and after >= before
    finally:
        receive.close()
        send.close()


def test_progress_is_throttled_during_a_core_phase():
    """One progress event per batch filled the pipe during the timed loop: at most one per
    PROGRESS_EVERY_S now (the core phase asks a Throttle before each event)."""
    from icb_bench.bench.runner import PROGRESS_EVERY_S, Throttle

    throttle = Throttle(PROGRESS_EVERY_S)
    batch_ends_s = [i * 0.01 for i in range(201)]  # 10 ms batches over 2 s
    sent = [t for t in batch_ends_s if throttle.due(t)]
    assert sent[0] == 0.0 and len(sent) == 5 and all(b - a >= PROGRESS_EVERY_S for a, b in zip(sent, sent[1:]))
