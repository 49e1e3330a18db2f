r"""Sphinx extension: the generated pages of the holocron-torch site.

At ``builder-inited`` it writes, into the source folder (all ignored by git, rewritten only when they change):

- ``rules/<name>.md``, one page per rule and wrapper of the registry (``reference.RULES``): a torch-style algorithm
  box (inputs with their arguments and defaults, initialisation, the loop), the symbol-to-argument table with
  defaults and valid ranges (from the registry, never retyped), the rule's rows of ``errata.md`` (parsed), the
  class API (autodoc), the reference source (literalinclude) and a link to the rule's notebook. The loop's
  equations, the introduction and the notes are the rule notebook's (``notebooks/<name>.py``), the one LaTeX copy
  of each rule;
- ``notebooks/<name>.ipynb``: every notebook of ``notebooks/`` (jupytext percent files), executed, with its
  outputs and figures (matplotlib's inline backend), links rewritten for the site; executed in parallel, one
  kernel per notebook, and cached in ``_build/.notebooks`` under a hash of the notebook and of every source file
  it can import (``HOLOCRON_DOCS_EXECUTE=always`` ignores the cache). A cell that raises is a build warning
  (an error under ``-W``) with the notebook, the cell and the traceback;
- ``cli.md``: the ``holocron-optim`` reference, from its argparse parser.

It also copies MathJax (the npm package ``make setup`` installs; ``HOLOCRON_MATHJAX`` overrides where) into
``_static/mathjax`` of the build, and leaves ``conformance`` out of the landing page's table of contents when
``conformance.md`` does not exist.

``python holocron_docs.py --execute SRC.py DST.ipynb`` executes one notebook (what each worker runs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "notebooks"
#: a percent-format notebook starts with jupytext's YAML header
HEADER = "# ---\n# jupyter:\n"
#: seconds any one cell may take
CELL_TIMEOUT = 120
#: where the build finds MathJax 3 (its es5 folder): the npm package that `make setup` installs
MATHJAX = Path(os.environ.get("HOLOCRON_MATHJAX", ROOT / ".venv" / "npm" / "node_modules" / "mathjax" / "es5"))
#: the parts of MathJax's es5 folder the pages can load (the TeX input, CommonHTML output and its fonts, the menu)
MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "a11y", "ui", "sre", "adaptors")


# ---- small helpers -------------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    """Write only when the text changes (Sphinx then rebuilds only what changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def notebook_paths() -> list[Path]:
    """The notebooks: every ``notebooks/*.py`` that starts with jupytext's header."""
    return sorted(p for p in NOTEBOOKS.glob("*.py") if p.read_text(encoding="utf-8").startswith(HEADER))


_GREEK = dict(
    α=r"\alpha", β=r"\beta", γ=r"\gamma", δ=r"\delta", ε=r"\epsilon", η=r"\eta", λ=r"\lambda", ν=r"\nu", ρ=r"\rho",
    τ=r"\tau", φ=r"\phi", θ=r"\theta", μ=r"\mu",
)  # fmt: skip


def tex(symbol: str) -> str:
    """A symbol as the reference docstrings write it (``β1``, ``T_α``, ``v^max``) in TeX (``\\beta_1``, ...)."""
    out = []
    for part in (s.strip() for s in symbol.split(",")):
        base, _, sub = part.partition("_")
        sup = ""
        if "^" in base:
            base, sup = base.split("^", 1)
        m = re.fullmatch(r"(\D+?)(\d+)", base)
        if m and not sub:
            base, sub = m.groups()
        base = "".join(_GREEK.get(c, c) for c in base)
        sub = "".join(_GREEK.get(c, c) + " " if c in _GREEK else c for c in sub).strip()
        text = base + (f"_{{{sub}}}" if sub else "") + (r"^{\max}" if sup == "max" else (f"^{{{sup}}}" if sup else ""))
        out.append(text)
    return ", ".join(out)


# ---- the reference docstrings' symbol tables -----------------------------------------------------------------
def symbols(module_doc: str, names: list[str]) -> dict[str, str]:
    """``{argument or State.field: symbol}`` from the "symbol  argument" table that ends every reference docstring.

    Cells are separated by two or more spaces; a cell that names an argument (or ``State.x``) takes the cell
    before it as its symbol.
    """
    lines = module_doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("symbol ")), None)
    found: dict[str, str] = {}
    if start is None:
        return found
    for line in lines[start + 1 :]:
        cells = [c.strip().rstrip(";") for c in re.split(r"\s{2,}|;\s+", line.strip()) if c.strip()]
        for i, cell in enumerate(cells[1:], start=1):
            words = re.findall(r"[A-Za-z_][A-Za-z_0-9.]*", cell)
            for name in names:
                if name in words and name not in found:
                    found[name] = cells[i - 1]
            fields = [w for w in words if w.startswith("State.")]
            syms = [s.strip() for s in cells[i - 1].split(",")]
            if fields and len(syms) == len(fields):
                for sym, f in zip(syms, fields):
                    found.setdefault(f, sym)
    # "m, v, W State.m, State.v, State.W" (one space before State.): split it by hand
    for line in lines[start + 1 :]:
        for m in re.finditer(r"((?:[^\s,]+, )*[^\s,]+) (State\.\w+(?:, State\.\w+)*)", line):
            syms, fields = m.group(1).split(", "), m.group(2).split(", ")
            if len(syms) == len(fields):
                for sym, f in zip(syms, fields):
                    found.setdefault(f, sym)
    return found


# ---- errata.md -----------------------------------------------------------------------------------------------
def _cells(line: str) -> list[str]:
    """The cells of a markdown table row (``\\|`` is a literal bar)."""
    parts = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in parts[1:-1]]


def errata_rows() -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the main table of errata.md."""
    text = (DOCS / "errata.md").read_text(encoding="utf-8").splitlines()
    header: list[str] = []
    rows: list[list[str]] = []
    for i, line in enumerate(text):
        if not line.startswith("|"):
            if header and rows:
                break
            continue
        if not header and i + 1 < len(text) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", text[i + 1].strip()):
            header = _cells(line)
        elif header and not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            rows.append(_cells(line))
    return header, rows


def rows_for(rule: Any, header: list[str], rows: list[list[str]]) -> list[list[str]]:
    """The errata rows whose topic names the rule's class (a whole word, any case: LARS is not RaLars)."""
    topic = next((i for i, h in enumerate(header) if "rule" in h.lower()), 1)
    word = re.compile(rf"(?<![A-Za-z]){re.escape(rule.cls)}(?![A-Za-z])", re.IGNORECASE)
    return [r for r in rows if len(r) > topic and word.search(r[topic])]


# ---- the notebooks' text -------------------------------------------------------------------------------------
def _first_markdown(path: Path) -> str:
    """The first markdown cell of a percent notebook, without the comment marks."""
    import jupytext

    nb = jupytext.read(path)
    return next(c.source for c in nb.cells if c.cell_type == "markdown")


def notebook_parts(path: Path) -> dict[str, str]:
    """From a rule notebook's first cell: intro (first paragraph), init, the loop's display math, the notes."""
    text = _first_markdown(path)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    title = paragraphs[0].lstrip("# ").strip()
    intro = paragraphs[1] if len(paragraphs) > 1 else ""
    i_math = next((i for i, p in enumerate(paragraphs) if p.startswith("$$")), None)
    loop, before, notes = "", "", []
    if i_math is not None:
        loop = paragraphs[i_math].strip("$").strip()
        before = paragraphs[i_math - 1]
        for p in paragraphs[i_math + 1 :]:
            if p.startswith("**Where this differs"):
                break
            notes.append(p)
    init = [m for m in re.findall(r"\$([^$]+)\$", before) if "_0" in m]
    return {"title": title, "intro": intro, "loop": loop, "init": ", \\quad ".join(init), "notes": "\n\n".join(notes)}


def site_links(markdown: str) -> str:
    """Links written for the repository, rewritten for the site: ../docs/x.md -> ../x.md, notebook.py -> .ipynb."""
    names = {p.stem for p in notebook_paths()}

    def fix(m: re.Match) -> str:
        target = m.group(1)
        if target.startswith("../docs/"):
            target = "../" + target[len("../docs/") :]
        elif target.endswith(".py") and target[:-3] in names:
            target = target[:-3] + ".ipynb"
        return f"]({target})"

    return re.sub(r"\]\(((?!https?:|#)[^)\s]+)\)", fix, markdown)


# ---- rule pages ----------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def rule_page(rule: Any, header: list[str], rows: list[list[str]]) -> str:
    module = rule.module
    names = [h.name for h in rule.hypers]
    table = symbols(module.__doc__ or "", names)
    for h in rule.hypers:  # not in the docstring's table: the symbol the registry's text starts with or clamps
        greek = re.match(r"\(?([α-ω]\w*)", h.doc) or re.search(r"clamp ([α-ω])", h.doc)
        if h.name not in table and greek:
            table[h.name] = greek.group(1)
    parts = notebook_parts(NOTEBOOKS / f"{rule.name}.py")
    kind = "wrapper around any torch optimizer" if rule.wrapper else "update rule"
    src = Path(module.__file__).relative_to(ROOT).as_posix()

    inputs = [r"$\theta_0$ (params)"]
    if rule.wrapper:
        inputs.append("a base optimizer (any `torch.optim.Optimizer`) and its step")
    else:
        inputs.append(r"$f_t(\theta)$ (the loss; $g_t = \nabla_\theta f_t(\theta_{t-1})$)")
    for h in rule.hypers:
        sym = table.get(h.name, "")
        sym_tex = f"${tex(sym)}$ " if sym and re.fullmatch(r"[\w^,\s]+", sym) else ""
        inputs.append(f"{sym_tex}(`{h.name}` = `{h.default_text()}`)")
    lines = [
        f"# {rule.cls}",
        "",
        f"`holocron_torch.optim.{rule.cls}`, {kind}; paper: {rule.paper}. Notebook: {{doc}}`../notebooks/{rule.name}`;"
        f" reference: `{src}`. Registry name: `{rule.name}`.",
        "",
        site_links(parts["intro"]),
        "",
        "## Algorithm",
        "",
        ":::{container} algorithm",
        "",
        f"**Algorithm: {rule.cls}**",
        "",
        "**input:** " + ", ".join(inputs),
        "",
    ]
    if parts["init"]:
        lines += [f"**initialize:** ${parts['init']}$", ""]
    if rule.wrapper:  # the block has the initialisation, the base step and the sync
        lines += ["**the rule** (the counter $n$ starts at 0):", "", "$$", parts["loop"], "$$", "", ":::", ""]
    else:
        lines += [r"**for** $t = 1, 2, \ldots$ **do**, for each parameter tensor", ""]
        lines += ["$$", parts["loop"], "$$", "", "**end for**", "", r"**return** $\theta_t$", "", ":::", ""]
    if parts["notes"]:
        lines += [site_links(parts["notes"]), ""]

    lines += [
        "## Arguments, symbols, defaults and valid ranges",
        "",
        f'Generated from the registry (`reference.RULES["{rule.name}"]`): the same data validates the '
        "constructor's arguments and drives the property tests.",
        "",
        "| argument | symbol | default | valid range | meaning |",
        "|---|---|---|---|---|",
    ]
    for h in rule.hypers:
        sym = table.get(h.name, "")
        lines.append(
            f"| `{h.name}` | {_cell(sym) or '—'} | `{h.default_text()}` | {_cell(h.range_text())} | {_cell(h.doc)} |"
        )
    lines += ["", "State kept per parameter tensor (`optimizer.state[p]`, and the reference's `State`):", ""]
    lines += ["| buffer | symbol | exists |", "|---|---|---|"]
    for name in rule.state:
        lines.append(f"| `{name}` | {_cell(table.get('State.' + name, '—'))} | always |")
    for name, flag in rule.optional_state.items():
        lines.append(f"| `{name}` | {_cell(table.get('State.' + name, '—'))} | with `{flag}=True` |")
    if rule.constraints:
        lines += [
            "",
            "Checks across arguments: "
            + "; ".join(c.__name__.strip("_").replace("_", " ") for c in rule.constraints)
            + ".",
        ]

    mine = rows_for(rule, header, rows)
    lines += ["", "## Where the spec, the papers and holocron 0.3.0 disagree", ""]
    if mine:
        lines += [
            f"The rows of the [errata](../errata.md) about {rule.cls} ({len(mine)} of {len(rows)}), as they stand "
            "there, one block per row:",
            "",
        ]
        for row in mine:
            number, topic, *rest = row
            lines += [":::{container} erratum", "", f"**Row {number}: {topic}**", ""]
            lines += [f"- *{name}*: {cell}" for name, cell in zip(header[2:], rest)]
            lines += ["", ":::", ""]
    else:
        lines.append(f"No row of the [errata](../errata.md) is about {rule.cls}.")

    lines += [
        "",
        "## API",
        "",
        "```{eval-rst}",
        f".. autoclass:: holocron_torch.optim.{rule.cls}",
        "   :members: step",
        "```",
        "",
        "## Reference source",
        "",
        f"`{src}`, the float64 NumPy equations the torch class is tested against step for step:",
        "",
        f"```{{literalinclude}} ../../{src}",
        ":language: python",
        "```",
        "",
        "## Notebook",
        "",
        f"{{doc}}`../notebooks/{rule.name}`: the equations at work, one step traced symbol by symbol, trajectories "
        "against Adam, the rule's own hyperparameters, and the torch class checked against the reference.",
        "",
    ]
    return "\n".join(lines)


def write_rule_pages() -> None:
    from reference import BASE_RULES, RULES, WRAPPERS

    header, rows = errata_rows()
    for rule in RULES.values():
        _write(DOCS / "rules" / f"{rule.name}.md", rule_page(rule, header, rows))
    lines = [
        "# The rules",
        "",
        "One page per rule of the registry (`reference.RULES`): the algorithm, the arguments with their symbols, "
        "defaults and valid ranges, where the spec is wrong, the API, the reference source and the notebook.",
        "",
        "| rule | class | paper | state |",
        "|---|---|---|---|",
    ]
    for rule in RULES.values():
        lines.append(f"| {{doc}}`{rule.name}` | `{rule.cls}` | {rule.paper} | {', '.join(rule.state)} |")
    lines += ["", "```{toctree}", ":caption: Update rules", ":maxdepth: 1", "", *BASE_RULES, "```", ""]
    lines += ["```{toctree}", ":caption: Wrappers", ":maxdepth: 1", "", *WRAPPERS, "```", ""]
    _write(DOCS / "rules" / "index.md", "\n".join(lines))


# ---- the CLI reference ---------------------------------------------------------------------------------------
def write_cli_page() -> None:
    from holocron_torch import cli

    os.environ["COLUMNS"] = "88"  # argparse wraps help text at this width (a code block of the theme shows ~90)
    parser = cli._parser()
    lines = [
        "# Command line: `holocron-optim`",
        "",
        f"Generated from the parser (`holocron_torch.cli`). {(cli.__doc__ or '').strip().splitlines()[0]}",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        lines += [f"## `{name}`", "", "```text", p.format_help().rstrip(), "```", ""]
    _write(DOCS / "cli.md", "\n".join(lines))


# ---- notebooks -----------------------------------------------------------------------------------------------
def _sources_hash(path: Path) -> str:
    """What a notebook's outputs depend on: its text and every source file it can import."""
    digest = hashlib.sha256(path.read_bytes())
    for folder in ("reference", "holocron_torch", "examples"):
        for src in sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.cpp")):
            digest.update(src.relative_to(ROOT).as_posix().encode())
            digest.update(src.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def execute_one(src: Path, dst: Path) -> None:
    """Read a percent notebook, rewrite its links for the site, execute it (errors kept as outputs), write .ipynb."""
    import jupytext
    import nbclient
    import nbformat

    from reference import RULES

    nb = jupytext.read(src)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = site_links(cell.source)
    if src.stem in RULES:  # the way back to the rule's page, after the notebook's first cell
        rule = RULES[src.stem]
        note = (
            f"The algorithm, the arguments with their ranges, the errata rows: [{rule.cls}](../rules/{rule.name}.md)."
        )
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(note))
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # inherited by the kernel: inline PNGs
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        shutdown_kernel="immediate",
    )
    client.execute()
    for cell in nb.cells:  # a Markdown output (the overview's table) links like a markdown cell
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = site_links(data["text/markdown"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dst)


def errors_of(path: Path) -> list[str]:
    """The error outputs of an executed notebook, as text: the cell's first line and the traceback."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", [])))
                found.append(f"cell {i} ({cell.source.splitlines()[0] if cell.source else ''}):\n{tb}")
    return found


def execute_notebooks(cache: Path, always: bool, workers: int) -> dict[str, float]:
    """Execute every notebook into docs/notebooks/<name>.ipynb (cached); returns the seconds each took (0: cached)."""
    import time

    cache.mkdir(parents=True, exist_ok=True)
    todo = []
    for src in notebook_paths():
        cached = cache / f"{src.stem}-{_sources_hash(src)}.ipynb"
        if always or not cached.exists():
            todo.append((src, cached))
        else:
            shutil.copyfile(cached, DOCS / "notebooks" / f"{src.stem}.ipynb.tmp")
            (DOCS / "notebooks" / f"{src.stem}.ipynb.tmp").replace(DOCS / "notebooks" / f"{src.stem}.ipynb")
    seconds = {p.stem: 0.0 for p in notebook_paths()}

    def run(item: tuple[Path, Path]) -> tuple[str, float, str]:
        src, cached = item
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--execute", str(src), str(cached)], capture_output=True, text=True, check=False
        )
        return src.stem, time.perf_counter() - start, "" if done.returncode == 0 else done.stderr[-3000:]

    failures = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for name, took, err in pool.map(run, todo):
            seconds[name] = took
            if err:
                failures[name] = err
    for src, cached in todo:
        if cached.exists() and src.stem not in failures:
            for old in cache.glob(f"{src.stem}-*.ipynb"):
                if old != cached:
                    old.unlink()
            shutil.copyfile(cached, DOCS / "notebooks" / f"{src.stem}.ipynb")
    if failures:
        raise RuntimeError("notebook execution failed:\n" + "\n".join(f"{k}: {v}" for k, v in failures.items()))
    return seconds


def write_notebook_index() -> None:
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8").splitlines()
    table = [site_links(line) for line in readme if line.startswith("|")]
    from reference import RULES

    order = [p.stem for p in notebook_paths()]
    first = [n for n in ("overview",) if n in order]
    last = [n for n in ("custom_variant",) if n in order]
    middle = [n for n in RULES if n in order] + sorted(n for n in order if n not in [*RULES, *first, *last])
    lines = [
        "# Notebooks",
        "",
        "Every notebook of `notebooks/` (jupytext percent files), executed when this site was built: the outputs "
        "and figures below are the ones the code produced then. To run one yourself, see `notebooks/README.md`.",
        "",
        *table,
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *first,
        *middle,
        *last,
        "```",
        "",
    ]
    _write(DOCS / "notebooks" / "index.md", "\n".join(lines))


# ---- Sphinx hooks --------------------------------------------------------------------------------------------
def _builder_inited(app: Any) -> None:
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    write_rule_pages()
    write_cli_page()
    write_notebook_index()
    always = os.environ.get("HOLOCRON_DOCS_EXECUTE", "") == "always"
    workers = int(os.environ.get("HOLOCRON_DOCS_WORKERS", "0")) or min(4, os.cpu_count() or 1)
    seconds = execute_notebooks(Path(app.outdir).parent / ".notebooks", always, workers)
    ran = {k: v for k, v in seconds.items() if v}
    log.info(
        f"notebooks: {len(ran)} executed ({sum(ran.values()):.0f} s of kernel time), {len(seconds) - len(ran)} cached"
    )
    for path in sorted((DOCS / "notebooks").glob("*.ipynb")):
        for error in errors_of(path):
            log.warning(f"notebook {path.stem} raised in {error}", location=str(path))


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    """The landing page's last table of contents: without conformance when it does not exist, and with every
    other top-level page (a new docs/*.md, e.g. benchmarks-cuda.md) that the page does not list yet."""
    if docname != "index":
        return
    text = source[0]
    if not (DOCS / "conformance.md").exists():
        text = re.sub(r"(?m)^conformance\n", "", text)
    listed = set(re.findall(r"(?m)^([\w/-]+)$", text))
    extra = sorted(p.stem for p in DOCS.glob("*.md") if p.stem not in listed and p.stem != "index")
    if extra:
        head, sep, tail = text.rpartition("```")  # the closing fence of the last toctree
        text = head + "".join(f"{name}\n" for name in extra) + sep + tail
    source[0] = text


def _build_finished(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    for part in MATHJAX_PARTS:
        src = MATHJAX / part
        if src.is_dir():
            shutil.copytree(src, target / part)
        elif src.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target / part)


def setup(app: Any) -> dict[str, Any]:
    if not (MATHJAX / "tex-chtml.js").exists():
        raise RuntimeError(
            f"MathJax is not at {MATHJAX} (make setup installs it: npm install --prefix .venv/npm mathjax@3); "
            "HOLOCRON_MATHJAX may point at another copy of its es5 folder"
        )
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
    app.connect("build-finished", _build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 3 or args[0] != "--execute":
        sys.exit("usage: holocron_docs.py --execute SRC.py DST.ipynb")
    sys.path.insert(0, str(ROOT))
    execute_one(Path(args[1]), Path(args[2]))
