"""Puts ``tests/`` on ``sys.path`` so that any test module can ``import helpers`` (``tests/helpers``),
whether it runs alone or with the whole suite. pytest's default ``prepend`` import mode already
inserts the folder of a conftest outside a package; done here explicitly so it does not rest on that."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
