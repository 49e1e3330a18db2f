"""Every Python example in the documentation runs, as written: the README, notebooks/README.md, and every Markdown
or reStructuredText source under docs/ (the built site, docs/_build, excluded).

A block is a fenced block whose info string is ``python`` or ``py`` (also MyST's ``{code-block} python``) in
Markdown, or a ``.. code-block:: python`` / ``.. code:: python`` directive in reStructuredText. Every such block
runs, none is skipped: one that is not meant to run (shell, output, a layout) must not be tagged python. Each
block runs on its own, in a fresh namespace that holds only what PREAMBLE defines (the names a fragment in the
docs may take as given), from a temporary working directory. A traceback points at the document's own line.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What a documentation fragment may use without defining it. ``model`` has ``blocks`` (docs/distributed.md shards
#: them), weights, biases and a norm layer (weight-decay groups); ``loader`` is four batches of ``(x, y)``;
#: ``loss_fn(model(x), y)`` is a scalar; ``path`` is a fresh checkpoint folder. docs/distributed.md's fragments run
#: in a one-process gloo group (DDP, FSDP2, ZeRO and DCP all work at world size 1).
PREAMBLE = """
import torch
import torch.distributed as dist
from torch import nn

from holocron_torch import optim


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Tanh()) for _ in range(2))
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


torch.manual_seed(0)
model = TinyNet()
loader = [(torch.randn(16, 8), torch.randint(0, 3, (16,))) for _ in range(4)]
loss_fn = nn.functional.cross_entropy
path = "checkpoint"
if not dist.is_initialized():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
"""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first code line in its document
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_MD_PYTHON = re.compile(r"^(python|py|python3|\{code-block\}[ \t]+python|\{code-block\}[ \t]+py)\b")
_RST_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\.[ \t]+(code-block|code|sourcecode)::[ \t]*(python|py|python3)[ \t]*$"
)


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced Python blocks of a Markdown file (CommonMark fences, indented ones dedented)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence = m["fence"]
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if _MD_PYTHON.match(m["info"]):
            body = [ln[len(m["indent"]) :] if ln.startswith(m["indent"]) else ln for ln in lines[i + 1 : j]]
            blocks.append(Block(path, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def rst_blocks(path: Path) -> list[Block]:
    """The ``code-block:: python`` directives of a reStructuredText file (options skipped, content dedented)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        m = _RST_DIRECTIVE.match(line)
        if m is None:
            continue
        j = i + 1
        while j < len(lines) and re.match(rf"^{m['indent']}[ \t]+:[\w-]+:", lines[j]):  # directive options
            j += 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        start, k = j, j
        base = len(m["indent"])
        while k < len(lines) and (not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > base):
            k += 1
        body = textwrap.dedent("\n".join(lines[start:k])).strip("\n")
        if body:
            blocks.append(Block(path, start + 1, body + "\n"))
    return blocks


def documents() -> list[Path]:
    """README.md, notebooks/README.md and every .md / .rst source under docs/: the files git tracks or would
    track (not what .gitignore names: the built site, pages a docs build generates); outside a git checkout,
    every one but docs/_build's."""
    docs = ROOT / "docs"
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "docs/*.md", "docs/*.rst"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        sources = [ROOT / p for p in listed if (ROOT / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        sources = [p for ext in ("md", "rst") for p in docs.rglob(f"*.{ext}") if "_build" not in p.parts]
    return [ROOT / "README.md", ROOT / "notebooks" / "README.md", *sorted(set(sources))]


def blocks() -> list[Block]:
    return [b for p in documents() for b in (rst_blocks(p) if p.suffix == ".rst" else markdown_blocks(p))]


BLOCKS = blocks()


@pytest.fixture
def fresh_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The preamble's names, run from an empty working directory; the process group is gone afterwards."""
    import torch.distributed as dist

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    exec(compile(PREAMBLE, "<doc-examples preamble>", "exec"), namespace)
    yield namespace
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_doc_example_runs(block: Block, fresh_namespace: dict) -> None:
    # padded so that a traceback's line numbers are the document's own
    code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
    exec(code, fresh_namespace)


def test_the_extraction_finds_the_examples(tmp_path: Path) -> None:
    """The parsers find what they should: the README's examples, fences of any length and indent, rST directives;
    and they leave shell and untagged blocks alone."""
    readme = [b.code for b in BLOCKS if b.path == ROOT / "README.md"]
    assert any("OneCycleLR" in c for c in readme) and any("verify(" in c for c in readme), readme
    md = tmp_path / "x.md"
    md.write_text(
        "```bash\nmake test\n```\n\n- item\n\n  ````python\n  a = 1\n  ```\n  b = a\n  ````\n\n```\nnot code\n```\n"
        "~~~py\nc = 3\n~~~\n",
        encoding="utf-8",
    )
    assert [(b.line, b.code) for b in markdown_blocks(md)] == [(8, "a = 1\n```\nb = a\n"), (17, "c = 3\n")]
    rst = tmp_path / "x.rst"
    rst.write_text(
        "Text::\n\n    not python\n\n.. code-block:: python\n   :caption: x\n\n   d = 4\n\n   e = d\n\nAfter.\n"
        ".. code-block:: bash\n\n   make\n",
        encoding="utf-8",
    )
    assert [(b.line, b.code) for b in rst_blocks(rst)] == [(8, "d = 4\n\ne = d\n")]
