"""The `bench` CLI and orchestration: run plans, power readers, multi-device coordination, records."""

__version__ = "0.1.0"
