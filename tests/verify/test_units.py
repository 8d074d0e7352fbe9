"""Units: every kind, its conversions and its errors."""

from fractions import Fraction

import pytest

from icb_bench.verify import units
from icb_bench.verify.units import UnitError, parse


@pytest.mark.parametrize(
    "kind, raw, expected",
    [
        ("bandwidth", "600 Gbps", Fraction(600)),
        ("bandwidth", "1 Tbps", Fraction(1000)),
        ("bandwidth", "1Tbps", Fraction(1000)),
        ("bandwidth", "500000 Mbps", Fraction(500)),
        ("bandwidth", "100 Gb/s", Fraction(100)),
        ("bandwidth", 600, Fraction(600)),
        ("storage", "12 PB", Fraction(12)),
        ("storage", "15000 TB", Fraction(15)),
        ("storage", "1 EB", Fraction(1000)),
        ("storage", "10 PiB", Fraction(10 * 2**50, 10**15)),
        ("storage", "1024 TiB", Fraction(2**50, 10**15)),
        ("storage", 12.5, Fraction(25, 2)),
        ("compute", "1100 PFLOPS", Fraction(1100)),
        ("compute", "2 EFLOPS", Fraction(2000)),
        ("compute", "2 EFlops", Fraction(2000)),
        ("compute", "989000 TFLOPS", Fraction(989)),
        ("compute", 1100, Fraction(1100)),
        ("device", "989 TFLOPS", Fraction(989)),
        ("device", 313, Fraction(313)),
        ("efficiency", "120 GFLOPS/W", Fraction(120)),
        ("efficiency", "0.12 TFLOPS/W", Fraction(120)),
        ("money", "600万", Fraction(6_000_000)),
        ("money", "600 万元", Fraction(6_000_000)),
        ("money", "0.1亿", Fraction(10_000_000)),
        ("money", "6,000,000", Fraction(6_000_000)),
        ("money", "¥6000000", Fraction(6_000_000)),
        ("money", 6000000, Fraction(6_000_000)),
        ("share", "45%", Fraction(45, 100)),
        ("share", "99.2%", Fraction(992, 1000)),
        ("share", "100%", Fraction(1)),
        ("share", 0.45, Fraction(45, 100)),
        ("share", 1, Fraction(1)),
        ("share", 0, Fraction(0)),
        ("number", 1.28, Fraction(32, 25)),
        ("number", "1.2", Fraction(6, 5)),
        ("count", 26, Fraction(26)),
        ("count", "1,600", Fraction(1600)),
        ("count", 26.0, Fraction(26)),
    ],
)
def test_parse(kind, raw, expected):
    assert parse(kind, raw) == expected


def test_yaml_float_is_read_exactly():
    # 0.1 + 0.2 style errors must not leak in: 1.3 parsed from a float is exactly 13/10
    assert parse("number", 1.3) == Fraction(13, 10)
    assert parse("share", 0.7) == Fraction(7, 10)


@pytest.mark.parametrize(
    "kind, raw, fragment",
    [
        ("share", 45, "'45%'"),  # a bare number above 1 suggests the % form
        ("share", "45", "'45%'"),
        ("share", 1.5, "'1.5%'"),
        ("share", "101%", "at most 100%"),
        ("share", "-5%", "not negative"),
        ("share", "45 percent", "share"),
        ("bandwidth", "600 GB/s", "bits per second"),
        ("bandwidth", "600 furlongs", "bandwidth"),
        ("storage", "12 Pb", "bytes"),
        ("storage", "twelve PB", "storage"),
        ("compute", "1100 PFLOPS/W", "compute"),
        ("compute", "-1 PFLOPS", "not negative"),
        ("efficiency", "120 GFLOPS", "efficiency"),
        ("money", "600美元", "CNY"),
        ("money", "lots", "CNY"),
        ("count", 2.5, "whole number"),
        ("count", True, "number"),
        ("number", float("nan"), "number"),
        ("number", float("inf"), "number"),
        ("number", None, "number"),
        ("number", [1], "number"),
        ("number", "1.2 x", "number"),
    ],
)
def test_errors_say_what_was_expected(kind, raw, fragment):
    with pytest.raises(UnitError) as exc:
        parse(kind, raw)
    assert fragment in str(exc.value)


def test_bool_is_not_a_number():
    with pytest.raises(UnitError, match="true/false"):
        parse("compute", True)


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown quantity kind"):
        parse("volume", "1 l")


@pytest.mark.parametrize(
    "kind, value, text",
    [
        ("share", Fraction(7, 10), "70%"),
        ("share", Fraction(7328, 10000), "73.28%"),
        ("money", Fraction(6_000_000), "600万"),
        ("money", Fraction(200_000_000), "2亿"),
        ("money", Fraction(500), "500元"),
        ("compute", Fraction(2221, 2), "1110.5 PFLOPS"),
        ("bandwidth", Fraction(1000), "1000 Gbps"),
        ("number", Fraction(32, 25), "1.28"),
        (None, None, "—"),
    ],
)
def test_format(kind, value, text):
    assert units.fmt_quantity(kind, value) == text
