"""The notebooks (notebooks/, jupytext percent files) run from the first cell to the last, and git keeps no outputs.

They are executed once per test session, by the documentation build (the ``docs_site`` fixture, tests/_docs.py):
docs/_ext/holocron_docs.py reads each with jupytext and executes it with nbclient in a ``python3`` kernel of the
interpreter running the tests (ipykernel), from the notebooks folder, with matplotlib's inline backend, one kernel
per notebook in parallel. Here each executed notebook is checked: every code cell ran, none raised (the failing
cell's source and traceback are shown), and every cell that shows a figure has one. How to open and run them by
hand: notebooks/README.md.
"""

from __future__ import annotations

import re
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
#: a percent-format notebook starts with jupytext's YAML header; other .py files there would be helpers
HEADER = "# ---\n# jupyter:\n"
EXTRA = ("overview", "custom_variant")


def notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.py") if p.read_text(encoding="utf-8").startswith(HEADER))


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_every_cell(path: Path, docs_site) -> None:
    executed = docs_site.executed(path.stem)
    assert executed is not None, f"the site build did not execute {path.name}:\n{docs_site.log[-3000:]}"
    nb = nbformat.read(executed, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert len(code) == sum(c.cell_type == "code" for c in jupytext.read(path).cells), "not the notebook's cells"
    assert all(cell.execution_count is not None for cell in code), f"{path.name}: a code cell did not run"
    errors = [
        f"cell:\n{cell.source}\n" + re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.traceback))
        for cell in code
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors, f"{path.name} raised:\n" + "\n".join(errors)
    for cell in code:
        if re.search(r"^\s*plt\.show\(\)", cell.source, re.MULTILINE):
            images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
            assert images, f"{path.name}: a cell that shows a figure has none:\n{cell.source}"


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
