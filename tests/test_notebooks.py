"""The notebooks (notebooks/, jupytext percent files) run from the first cell to the last, and git keeps no outputs.

Each notebook is read with jupytext and executed by nbclient in a ``python3`` kernel of the interpreter running
the tests (ipykernel), from the notebooks folder, with matplotlib's Agg backend. A cell that raises fails the
test with the cell's source and traceback. How to open and run them by hand: notebooks/README.md.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reference import RULES

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: a percent-format notebook starts with jupytext's YAML header; other .py files there (nbtools.py) are helpers
HEADER = "# ---\n# jupyter:\n"
#: seconds any one cell may take (a whole notebook takes a few seconds; see notebooks/README.md)
CELL_TIMEOUT = 120
EXTRA = ("overview", "custom_variant")


def notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.py") if p.read_text(encoding="utf-8").startswith(HEADER))


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_every_cell(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")  # inherited by the kernel: figures are drawn, never shown
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        shutdown_kernel="immediate",  # the work is done; a graceful shutdown only waits (~3 s per notebook)
    )
    client.execute()  # raises CellExecutionError (source and traceback of the failing cell)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert all(cell.execution_count is not None for cell in code), f"{path.name}: a code cell did not run"
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors


def test_every_rule_has_its_notebook() -> None:
    """One notebook per registry rule (named after it), plus the overview and the custom-variant notebook."""
    names = {p.stem for p in notebooks()}
    missing = [n for n in (*RULES, *EXTRA) if n not in names]
    assert not missing, f"no notebook for {missing} in {NOTEBOOKS}"
    for name in RULES:
        text = (NOTEBOOKS / f"{name}.py").read_text(encoding="utf-8")
        assert f'RULES["{name}"]' in text, f"{name}.py does not take its rule from the registry"
        assert "../docs/errata.md" in text, f"{name}.py does not link to the errata"
        assert "inspect.getsource" in text and "agreement(" in text, f"{name}.py lacks the source or the torch check"


def test_notebooks_are_stored_without_outputs() -> None:
    """The percent files are the notebooks (they cannot hold outputs); an .ipynb in git must carry none."""
    assert notebooks(), f"no notebooks in {NOTEBOOKS}"
    for path in notebooks():
        nb = jupytext.read(path)
        assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), path.name
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not available to list the tracked files")
    listed = subprocess.run(
        [git, "ls-files", "--", "*.ipynb"], cwd=NOTEBOOKS, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    for name in listed.stdout.split():
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name} is stored with outputs"
