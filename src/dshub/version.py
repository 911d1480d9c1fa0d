"""The package version, importable without importing anything else of dshub."""

__version__ = "0.1.0"
