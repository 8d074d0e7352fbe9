"""Helpers shared by test folders that cannot import each other (``tests/verify`` is a package,
``tests/bench`` is not). Importable as ``helpers`` because ``tests/conftest.py`` puts ``tests/`` on
``sys.path``."""
