"""Bad declarations found by fuzzing (issue 7): one `error:` line naming the field, exit 2, in bounded time."""

from __future__ import annotations

import os

import pytest
import typer
from typer.testing import CliRunner

from helpers.hangs import hang_guard
from icb_bench.verify import units
from icb_bench.verify.cli import register

from .conftest import example_dict, write_decl
from .test_cli_input_errors import _error_line as error_line

runner = CliRunner()
BIG = "INTEGER_OF_4301_DIGITS"
_app = typer.Typer()
register(_app)


def _score(path) -> object:
    with hang_guard():
        return runner.invoke(_app, ["score", str(path)])


@pytest.mark.parametrize("section, key, value, words", [
    ("industrial_value", "enterprises_served", BIG, ["line", "more than 50 digits"]),
    ("technical", "storage_capacity", "1e5000 PB", ["technical.storage_capacity", "below 1e100"]),
    ("technical", "pue", "1e100000000", ["technical.pue", "below 1e100"]),
    ("technical", "pue", "１２０", ["technical.pue", "at most 3"]),
    ("technical", "pue", "0.9", ["technical.pue", "at least 1"]),
    ("industrial_value", "rack_efficiency", "150 TFLOPS/W", ["industrial_value.rack_efficiency", "at most 2000 GFLOPS/W"]),
    ("technical", "fp16_peak", "1e400 PFLOPS", ["technical.fp16_peak", "below 1e100"]),
    ("technical", "fp16_peak", "2e6 PFLOPS", ["technical.fp16_peak", "at most 1000000 PFLOPS"]),
    ("technical", "racks_total", 0, ["technical.racks_total", "at least 1", "accelerators"]),
])
def test_fuzzer_findings_are_one_error_line(tmp_path, section, key, value, words):
    data = example_dict()
    data[section][key] = value
    if key == "racks_total":
        data["technical"]["racks_in_use"] = 0
    path = write_decl(tmp_path, data, "d.yaml")
    if value is BIG:  # a 4,301-digit integer literal (Python itself refuses to convert it)
        path.write_text(path.read_text(encoding="utf-8").replace(f"{key}: {BIG}", f"{key}: {'9' * 4301}"), encoding="utf-8")
    line = error_line(_score(path))
    for w in words:
        assert w in line, line


def test_an_inventory_device_above_the_plausible_is_named(tmp_path):
    data = example_dict()
    data["inventory"][0]["fp16_tflops"] = "1e6 TFLOPS"
    line = error_line(_score(write_decl(tmp_path, data)))
    assert "inventory[0].fp16_tflops" in line and "at most 20000 TFLOPS" in line


def test_yaml_alias_bomb_is_refused(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    p = tmp_path / "bomb.yaml"
    p.write_text(bomb, encoding="utf-8")
    assert "alias" in error_line(_score(p))


def test_a_fifo_as_declaration_is_refused_not_read(tmp_path):
    p = tmp_path / "fifo.yaml"
    os.mkfifo(p)
    line = error_line(_score(p))
    assert "fifo.yaml" in line and "not a regular file" in line


def test_full_width_digits_are_read_as_digits():
    assert units.parse("number", "１．２８") == units.parse("number", "1.28")
    assert units.parse("compute", "１１００ PFLOPS") == 1100


@pytest.mark.parametrize("raw", ["1e100000000", "9" * 4301, "1" + "0" * 60, "1e-100000", "٣"])
def test_number_parser_refuses_without_huge_intermediates(raw):
    with hang_guard(30), pytest.raises(units.UnitError):
        units.parse_number(raw)


def test_huge_python_numbers_are_refused_not_converted():
    with pytest.raises(units.UnitError, match="below 1e100"):
        units.parse_number(10**5000)
