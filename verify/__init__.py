"""The evaluation specification as code: `bench score` and `bench verify`.

Pure data: this package never imports torch or a vendor library. Rules and datasheet peaks are
YAML files under ``rules/``; records of `bench run` are read through
:mod:`icb_bench.bench.record` only.

Core API (no Typer needed)::

    from icb_bench.verify import load_declaration, load_rules, score, verify, load_records, render
    decl = load_declaration("site.yaml")            # DeclarationError lists every problem
    card = score(decl)                              # Scorecard: a1, a2, a3, total, certified …
    v = verify(decl, load_records(["results/"]))    # Verification: scorecard + claims
    print(render(v, "json"))
"""

from .declaration import Declaration, DeclarationError, Issue, load_declaration, parse_declaration
from .measured import Verification, load_records, verify
from .report import render, to_dict
from .rules import RulesError, load_peaks, load_rules
from .scoring import Override, Scorecard, score

__all__ = [
    "Declaration",
    "DeclarationError",
    "Issue",
    "load_declaration",
    "parse_declaration",
    "load_rules",
    "load_peaks",
    "RulesError",
    "score",
    "Scorecard",
    "Override",
    "verify",
    "Verification",
    "load_records",
    "render",
    "to_dict",
]
