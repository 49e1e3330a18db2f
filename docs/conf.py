"""Sphinx configuration of the holocron-torch site: ``make docs`` builds it into docs/_build/html.

Sources: the hand-written pages here (index, errata, benchmarks, reliability, soak, distributed, conformance when it
exists), and the pages ``_ext/holocron_docs.py`` generates at each build (rules/, notebooks/, cli.md; ignored by
git). Math is rendered by the copy of MathJax 3 that ``make setup`` installs (npm package ``mathjax``), copied into
``_static/mathjax``: no page loads anything from another host. Warnings are errors (``-W`` in the Makefile).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

project = "holocron-torch"
author = "holocron-torch contributors"
copyright = "holocron-torch contributors"
release = "0.1.0"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "holocron_docs"]
exclude_patterns = ["_build", "_ext", "**/.ipynb_checkpoints", "**/*.tmp"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# MyST: $...$ and $$...$$ math, \begin{aligned} blocks, ::: fences (the algorithm boxes)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# the notebooks are executed by holocron_docs (in parallel, cached) before Sphinx reads them
nb_execution_mode = "off"
nb_merge_streams = True
# Markdown outputs (the overview's table) are MyST too: their links are cross-references Sphinx checks
nb_render_markdown_format = "myst"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# MathJax 3 from _static/mathjax (copied there by holocron_docs at the end of the build)
mathjax_path = "mathjax/tex-chtml.js"
# \text{wd\_ratio}: macros inside \text (MathJax's textmacros extension, in the same copy)
mathjax3_config = {"loader": {"load": ["[tex]/textmacros"]}, "tex": {"packages": {"[+]": ["textmacros"]}}}

html_theme = "furo"
html_title = "holocron-torch"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_copy_source = False
