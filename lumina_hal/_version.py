"""The package version, with one source: pyproject.toml, read back from the installed metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lumina-hal")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
