"""`bench --version` and `bench info`: backends, devices and power sources, and why not."""

from __future__ import annotations

import json
from importlib import metadata

from typer.testing import CliRunner

from icb_bench.bench.cli import app


def test_version():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output == f"icb-bench {metadata.version('icb-bench')}\n"


def test_info_lists_every_backend_with_a_reason():
    r = CliRunner().invoke(app, ["info", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    by = {b["name"]: b for b in doc["backends"]}
    assert {"cuda", "npu", "mlu", "musa", "xpu", "cpu"} <= set(by)
    assert by["cpu"]["available"] and by["cpu"]["devices"] and by["cpu"]["devices"][0]["model"]
    for name, b in by.items():
        assert b["available"] or b["reason"], name  # every backend that is not usable says why
    # the CPU device's power reader: RAPL where the kernel exposes it, else why not
    cpu0 = doc["power"]["cpu:0"]
    assert cpu0.get("measured") is not False or cpu0.get("reason")
    assert doc["version"] == metadata.version("icb-bench") and doc["host"]["hostname"]


def test_info_text():
    r = CliRunner().invoke(app, ["info", "--no-power"])
    assert r.exit_code == 0 and "backends (detected:" in r.output and "cpu" in r.output
