"""Quantities with units, parsed into exact :class:`~fractions.Fraction` values in a canonical unit.

Each *kind* has one canonical unit, the one a bare number is read in:

=============  ==========  ===================================================
kind           canonical   accepted
=============  ==========  ===================================================
``bandwidth``  Gbps        bps, Kbps, Mbps, Gbps, Tbps, Pbps (also ``Gb/s``, ``Gbit/s``)
``storage``    PB          B … EB (SI, ×1000) and KiB … EiB (×1024, converted)
``compute``    PFLOPS      FLOPS, GFLOPS, TFLOPS, PFLOPS, EFLOPS
``device``     TFLOPS      the same units as ``compute`` (a per-device figure)
``efficiency`` GFLOPS/W    MFLOPS/W, GFLOPS/W, TFLOPS/W
``money``      CNY         ``600万``, ``0.1亿``, ``6,000,000``, ``600万元``, ``¥6000000``
``share``      fraction    ``45%`` or a fraction in [0, 1]; a bare number above 1 is an error
``number``     —           a non-negative finite number (PUE)
``count``      —           a non-negative whole number
=============  ==========  ===================================================

Parsing never goes through binary floating point when the input is text; a YAML float is read
through its shortest decimal ``repr`` (``1.28`` → ``Fraction(32, 25)``), so it is exact too.
"""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal
from fractions import Fraction
from typing import Any

__all__ = ["UnitError", "KINDS", "parse", "parse_number", "fmt_number", "fmt_quantity", "CANONICAL"]


class UnitError(ValueError):
    """A value that is not a quantity of the expected kind; the message says what was expected."""


_SI = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18}
_BIN = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50, "ei": 2**60}

CANONICAL: dict[str, str] = {
    "bandwidth": "Gbps",
    "storage": "PB",
    "compute": "PFLOPS",
    "device": "TFLOPS",
    "efficiency": "GFLOPS/W",
    "money": "CNY",
    "share": "",
    "number": "",
    "count": "",
}

_EXPECTED: dict[str, str] = {
    "bandwidth": "a bandwidth such as '600 Gbps' or '1 Tbps' (a bare number is Gbps)",
    "storage": "a storage capacity such as '12 PB', '15000 TB' or '10 PiB' (a bare number is PB)",
    "compute": "a compute figure such as '1100 PFLOPS' or '2 EFLOPS' (a bare number is PFLOPS)",
    "device": "a per-device compute figure such as '989 TFLOPS' (a bare number is TFLOPS)",
    "efficiency": "an efficiency such as '120 GFLOPS/W' (a bare number is GFLOPS/W)",
    "money": "an amount in CNY such as '600万', '0.1亿' or '6,000,000'",
    "share": "a share such as '45%' or a fraction between 0 and 1 (0.45)",
    "number": "a non-negative number",
    "count": "a non-negative whole number",
}

KINDS = tuple(CANONICAL)

_NUM = r"[+-]?(?:[0-9][0-9,_]*(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_QTY = re.compile(rf"^\s*(?P<num>{_NUM})\s*(?P<unit>.*?)\s*$")
_NUMBER = re.compile(r"(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?:[eE](?P<exp>[+-]?[0-9]+))?", re.ASCII)

#: numbers are parsed without building huge intermediates: at most this many significant digits
MAX_DIGITS = 50
#: and a magnitude below 10**MAX_EXPONENT (far beyond any physical figure; plausibility bounds
#: per field are data, in rules/plausibility.yaml)
MAX_EXPONENT = 100
_LIMIT = 10**MAX_EXPONENT
_TOO_BIG = f"a number below 1e{MAX_EXPONENT}"


def _text_number(text: str) -> Fraction:
    """Decimal text as a Fraction, refusing long mantissas and large exponents before any
    arithmetic (``1e100000000`` must not build 10**100000000)."""
    m = _NUMBER.fullmatch(text)
    if not m or not (m.group("int") or m.group("frac")):
        raise UnitError("a number")
    digits = (m.group("int") + (m.group("frac") or "")).lstrip("0")
    if len(digits) > MAX_DIGITS:
        raise UnitError(f"a number of at most {MAX_DIGITS} significant digits")
    exp_text = (m.group("exp") or "0").lstrip("+")
    if len(exp_text.lstrip("-").lstrip("0")) > 4:
        raise UnitError(_TOO_BIG if not exp_text.startswith("-") else "a number of a sensible magnitude")
    exp = int(exp_text) - len(m.group("frac") or "")
    if not digits:
        return Fraction(0)
    if len(digits) + exp > MAX_EXPONENT:  # the value has at least len(digits) + exp integer digits
        raise UnitError(_TOO_BIG)
    if exp < -2 * MAX_EXPONENT:
        raise UnitError("a number of a sensible magnitude")
    value = Fraction(int(digits) * 10**exp) if exp >= 0 else Fraction(int(digits), 10**-exp)
    return -value if m.group("sign") == "-" else value


def _bounded(f: Fraction) -> Fraction:
    if abs(f) >= _LIMIT:
        raise UnitError(_TOO_BIG)
    return f


def parse_number(raw: Any) -> Fraction:
    """A finite number (int, float, Decimal, Fraction or numeric text) as an exact Fraction.

    Text may use full-width digits (NFKC-normalised) and ``,``/``_`` separators; its magnitude is
    bounded (:data:`MAX_DIGITS`, :data:`MAX_EXPONENT`) before any arithmetic."""
    if isinstance(raw, bool):
        raise UnitError("a number, not true/false")
    if isinstance(raw, Fraction):
        return _bounded(raw)
    if isinstance(raw, int):
        return _bounded(Fraction(raw))  # a comparison, never str(): no digit-limit error
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise UnitError("a finite number")
        return _bounded(Fraction(repr(raw)))  # shortest decimal that round-trips: 1.28 -> 32/25
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise UnitError("a finite number")
        if raw != 0 and raw.adjusted() >= MAX_EXPONENT:
            raise UnitError(_TOO_BIG)
        return parse_number(str(raw))
    if isinstance(raw, str):
        if len(raw) > 200:
            raise UnitError("a number (at most 200 characters)")
        text = unicodedata.normalize("NFKC", raw).strip().replace(",", "").replace("_", "")
        return _text_number(text)
    raise UnitError("a number")


def _split(raw: Any, kind: str) -> tuple[Fraction, str]:
    """Split ``raw`` into (number, unit text); a non-string is a bare number."""
    if isinstance(raw, str):
        if len(raw) > 200:
            raise UnitError(_EXPECTED[kind] + " (at most 200 characters)")
        m = _QTY.match(unicodedata.normalize("NFKC", raw))
        if not m:
            raise UnitError(_EXPECTED[kind])
        try:
            return parse_number(m.group("num")), m.group("unit")
        except UnitError as exc:
            detail = str(exc)
            raise UnitError(_EXPECTED[kind] + ("" if detail == "a number" else f" ({detail})")) from None
    try:
        return parse_number(raw), ""
    except UnitError as exc:
        detail = str(exc)
        raise UnitError(_EXPECTED[kind] if detail == "a number" else f"{_EXPECTED[kind]} ({detail})") from None


def _rate_unit(unit: str, kind: str, suffixes: tuple[str, ...]) -> Fraction:
    """Scale of '<prefix><suffix>' relative to the base (no prefix) unit, for SI prefixes."""
    u = unit.replace(" ", "").lower()
    for suffix in suffixes:
        if u.endswith(suffix):
            prefix = u[: -len(suffix)]
            if prefix in _SI:
                return Fraction(_SI[prefix])
    raise UnitError(_EXPECTED[kind])


def parse(kind: str, raw: Any) -> Fraction:
    """Parse ``raw`` as a quantity of ``kind`` in its canonical unit (see the module table).

    Raises :class:`UnitError` whose message says what was expected.
    """
    if kind not in CANONICAL:
        raise ValueError(f"unknown quantity kind {kind!r}")
    if raw is None:
        raise UnitError(_EXPECTED[kind])
    if kind == "money":
        value = _parse_money(raw)
    elif kind == "share":
        value = _parse_share(raw)
    elif kind in ("number", "count"):
        number, unit = _split(raw, kind)
        if unit:
            raise UnitError(_EXPECTED[kind])
        if kind == "count" and number.denominator != 1:
            raise UnitError(_EXPECTED[kind])
        value = number
    else:
        number, unit = _split(raw, kind)
        value = number * _unit_scale(kind, unit)
    if value < 0:
        raise UnitError(f"{_EXPECTED[kind]}, not negative")
    return value


def _unit_scale(kind: str, unit: str) -> Fraction:
    """Factor from ``unit`` to the canonical unit of ``kind`` (1 for an empty unit)."""
    if not unit:
        return Fraction(1)
    if kind == "bandwidth":
        if "B" in unit.replace("bps", ""):
            raise UnitError(_EXPECTED[kind] + " (bits per second, not bytes)")
        return _rate_unit(unit, kind, ("bps", "b/s", "bit/s", "bits/s")) / 10**9
    if kind == "storage":
        u = unit.replace(" ", "").lower()
        if u.endswith("ib") and u[:-1] in _BIN:
            return Fraction(_BIN[u[:-1]], 10**15)
        if u.endswith("b") and u[:-1] in _SI and unit.strip()[-1] == "B":
            return Fraction(_SI[u[:-1]], 10**15)
        raise UnitError(_EXPECTED[kind] + " (bytes: B, TB, PB, PiB …; not bits)")
    if kind in ("compute", "device"):
        base = 10**15 if kind == "compute" else 10**12
        return _rate_unit(unit, kind, ("flops", "flop/s")) / base
    if kind == "efficiency":
        return _rate_unit(unit, kind, ("flops/w", "flop/s/w", "flops/watt")) / 10**9
    raise UnitError(_EXPECTED[kind])  # pragma: no cover - kinds are checked above


_MONEY_SCALE = {"": 1, "元": 1, "万": 10**4, "万元": 10**4, "亿": 10**8, "亿元": 10**8, "cny": 1, "rmb": 1, "yuan": 1}


def _parse_money(raw: Any) -> Fraction:
    if isinstance(raw, str):
        text = raw.strip()
        for sym in ("¥", "￥"):
            text = text.replace(sym, "")
        number, unit = _split(text, "money")
        scale = _MONEY_SCALE.get(unit.replace(" ", "").lower())
        if scale is None:
            raise UnitError(_EXPECTED["money"])
        return number * scale
    number, _ = _split(raw, "money")
    return number


def _parse_share(raw: Any) -> Fraction:
    number, unit = _split(raw, "share")
    if unit == "%":
        if number > 100:
            raise UnitError("a share of at most 100%")
        return number / 100
    if unit:
        raise UnitError(_EXPECTED["share"])
    if number > 1:
        raise UnitError(
            f"a share as a fraction between 0 and 1 or with a percent sign; write '{fmt_number(number)}%' "
            "if a percentage was meant"
        )
    return number


# ----------------------------------------------------------------------------------------- output


def fmt_number(value: Fraction | int | float | None, digits: int = 4) -> str:
    """A readable decimal: integers as such, others to ``digits`` significant decimals, trailing 0s cut."""
    if value is None:
        return "—"
    if isinstance(value, Fraction) and value.denominator == 1:
        return str(value.numerator)
    if isinstance(value, int):
        return str(value)
    try:
        f = float(value)
    except OverflowError:
        return f"{Decimal(value.numerator) / Decimal(value.denominator):.{digits}E}"  # type: ignore[union-attr]
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    text = f"{f:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def fmt_quantity(kind: str | None, value: Any) -> str:
    """A value of ``kind`` in its canonical unit, for reports (``72%``, ``600万``, ``1110.5 PFLOPS``)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (int, float, Fraction)):
        return str(value)
    if kind == "share":
        return f"{fmt_number(Fraction(value) * 100, 2)}%"
    if kind == "money":
        v = Fraction(value)
        if v >= 10**8 and (v / 10**8).denominator <= 10**4:
            return f"{fmt_number(v / 10**8)}亿"
        if v >= 10**4:
            return f"{fmt_number(v / 10**4)}万"
        return f"{fmt_number(v)}元"
    unit = CANONICAL.get(kind or "", "")
    return f"{fmt_number(value)} {unit}".strip()
