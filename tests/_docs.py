"""Build the documentation site once per test session (the ``docs_site`` fixture of conftest.py).

The build is ``make docs``'s (Sphinx, warnings are errors, ``--keep-going`` so that every warning is listed) into a
temporary folder. It executes every notebook (docs/_ext/holocron_docs.py): tests/test_notebooks.py checks the
executed notebooks it leaves in ``<site>/.notebooks``, tests/test_docs_site.py opens the pages in Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Site:
    root: Path  # the temporary folder: html/, doctrees/, .notebooks/
    returncode: int
    log: str
    seconds: float

    @property
    def html(self) -> Path:
        return self.root / "html"

    def executed(self, name: str) -> Path | None:
        """The executed notebook ``name`` of this build (None if the build did not get to write it)."""
        found = sorted((self.root / ".notebooks").glob(f"{name}-*.ipynb"))
        return found[-1] if found else None


def build_site(root: Path) -> Site:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(root / "doctrees"),
         str(ROOT / "docs"), str(root / "html")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    return Site(root, done.returncode, done.stdout + done.stderr, time.perf_counter() - start)
