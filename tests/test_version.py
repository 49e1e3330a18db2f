"""``holocron_torch.__version__`` is the installed distribution's version, the one pyproject.toml declares."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

import holocron_torch

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_pyprojects() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert holocron_torch.__version__ == declared == version("holocron-torch")
    assert isinstance(holocron_torch.__version__, str)
