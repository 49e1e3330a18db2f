"""holocron-torch: modern PyTorch optimizers (drop-in for ``holocron.optim``), each proven step for step against a
float64 NumPy reference. The optimizers are in :mod:`holocron_torch.optim`, the verify harness in
:mod:`holocron_torch.testing`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version(
        "holocron-torch"
    )  # the installed distribution's, i.e. pyproject.toml's [project] version
except PackageNotFoundError:  # a source tree on sys.path that was never installed (pip install -e . fixes it)
    __version__ = "0+unknown"
