"""Declarations: typed parsing, every error at once with path, value and expectation."""

from __future__ import annotations

from fractions import Fraction

import pytest

from icb_bench.verify.declaration import DeclarationError, load_declaration, parse_declaration, unknown_fields

from .conftest import EXAMPLE_COPY, example_dict, write_decl


def test_example_parses_into_canonical_units():
    d = load_declaration(EXAMPLE_COPY)
    assert d.base.tier == "provincial"
    assert d.technical.egress_bandwidth == 600
    assert d.technical.storage_capacity == 12
    assert d.technical.fp16_peak == 1100
    assert d.technical.pue == Fraction(32, 25)
    assert d.technical.fault_detection_rate == Fraction(992, 1000)
    assert d.industrial_value.rnd_spend == 6_000_000
    assert d.industrial_value.industrial_compute_share == Fraction(45, 100)
    assert [i.count for i in d.inventory] == [300, 2600]
    assert d.inventory[1].domestic is True and d.inventory[0].domestic is None


def _issues(data) -> dict[str, str]:
    with pytest.raises(DeclarationError) as exc:
        parse_declaration(data, "site.yaml")
    return {i.path: str(i) for i in exc.value.issues}


def test_all_errors_of_a_file_at_once():
    data = example_dict()
    data["base"]["tier"] = "national"
    data["industrial_value"]["rnd_spend"] = "lots"
    data["technical"]["rer"] = 12
    data["technical"]["racks_in_use"] = 1700
    data["data_access"]["cloud_platform"] = "yes"
    del data["data_access"]["adhoc_push"]
    data["inventory"][1]["count"] = 0
    issues = _issues(data)
    assert set(issues) == {
        "base.tier", "industrial_value.rnd_spend", "technical.rer", "technical.racks_in_use",
        "data_access.cloud_platform", "data_access.adhoc_push", "inventory[1].count",
    }
    assert "'national'" in issues["base.tier"] and "provincial" in issues["base.tier"]
    assert "'lots'" in issues["industrial_value.rnd_spend"] and "600万" in issues["industrial_value.rnd_spend"]
    assert "12" in issues["technical.rer"] and "'12%'" in issues["technical.rer"]
    assert "1700" in issues["technical.racks_in_use"] and "racks_total (1600)" in issues["technical.racks_in_use"]
    assert "true or false" in issues["data_access.cloud_platform"]
    assert "(missing)" in issues["data_access.adhoc_push"] and "required" in issues["data_access.adhoc_push"]


def test_contradiction_alone():
    data = example_dict()
    data["technical"]["racks_in_use"] = 1601
    assert set(_issues(data)) == {"technical.racks_in_use"}


def test_pue_below_one_is_an_error():
    data = example_dict()
    data["technical"]["pue"] = 0.9
    assert "at least 1" in _issues(data)["technical.pue"]


@pytest.mark.parametrize(
    "path, value, fragment",
    [
        (("schema",), "icb-declaration/2", "icb-declaration/1"),
        (("spec",), "icb-eval/1999", "icb-eval/2024"),
        (("technical", "egress_bandwidth"), "600 GB/s", "bits per second"),
        (("technical", "storage_capacity"), "12 Pb", "bytes"),
        (("technical", "fp16_peak"), "1100 TFLOPS/W", "compute"),
        (("technical", "machine_room_grade"), "D", "A | B | C | none"),
        (("technical", "security_level"), 7, "less than or equal to 5"),
        (("technical", "dr_level"), 2.5, "whole number"),
        (("industrial_value", "enterprises_served"), -3, "not negative"),
        (("industrial_value", "virtualization"), True, "mapping"),
        (("inventory",), {"model": "x"}, "list"),
        (("base",), None, "mapping"),
    ],
)
def test_field_errors(path, value, fragment):
    data = example_dict()
    target = data
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    issues = _issues(data)
    key = ".".join(path)
    assert key in issues, issues
    assert fragment in issues[key]


def test_grade_is_case_insensitive_and_yaml_no_is_rejected():
    data = example_dict()
    data["technical"]["machine_room_grade"] = "a"
    assert parse_declaration(data).technical.machine_room_grade == "A"
    data["technical"]["backbone_link"] = False  # YAML's bare `no`
    assert "technical.backbone_link" in _issues(data)


def test_not_a_mapping():
    assert "(top level)" in _issues(["a", "list"])


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("schema: icb-declaration/1\nbase: [unclosed\n", encoding="utf-8")
    with pytest.raises(DeclarationError) as exc:
        load_declaration(p)
    assert "line" in exc.value.issues[0].path and "valid YAML" in exc.value.issues[0].expected


def test_duplicate_keys_are_rejected(tmp_path):
    text = EXAMPLE_COPY.read_text(encoding="utf-8").replace("  pue: 1.28", "  pue: 1.28\n  pue: 1.1")
    p = tmp_path / "dup.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DeclarationError, match="duplicate key 'pue'"):
        load_declaration(p)


def test_unsafe_yaml_tags_are_refused(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("!!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    with pytest.raises(DeclarationError, match="valid YAML"):
        load_declaration(p)


def test_missing_file():
    with pytest.raises(DeclarationError, match="existing declaration file"):
        load_declaration("/nonexistent/site.yaml")


def test_unknown_fields_are_kept_as_warnings(tmp_path):
    data = example_dict()
    data["technical"]["pue_annual"] = 1.3
    decl = load_declaration(write_decl(tmp_path, data))
    assert unknown_fields(decl) == ["technical.pue_annual"]


def test_error_message_is_readable():
    data = example_dict()
    data["technical"]["rer"] = 12
    with pytest.raises(DeclarationError) as exc:
        parse_declaration(data, "site.yaml")
    assert str(exc.value).splitlines() == [
        "site.yaml: 1 problem in the declaration",
        "  - technical.rer: 12 — expected a share as a fraction between 0 and 1 or with a percent sign; "
        "write '12%' if a percentage was meant",
    ]
