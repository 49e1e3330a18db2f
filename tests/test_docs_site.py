"""The documentation site: built with no warning, and read in a real browser with the network off.

The site is built once per session (the ``docs_site`` fixture, tests/_docs.py: ``make docs``'s Sphinx build into a
temporary folder, which also executes the notebooks). Debian's Chromium (``/usr/bin/chromium``, installed by
``make setup``; no browser is downloaded) is driven headless by Playwright and opens the pages from a server on
127.0.0.1; every request to any other address is refused and recorded. Checked:

- every rule page shows its math rendered by the bundled MathJax (``mjx-container`` elements, no ``mjx-merror``)
  and no raw TeX is left in its text; the algorithm box and the registry's table are there;
- every notebook page shows each figure its executed notebook holds, loaded (non-zero natural size);
- every internal link (href/src of every built page, with its #fragment) resolves to a file and an id;
- no page asks for anything from another host, and nothing it asks for is missing.

Screenshots of a rule page and a notebook page are written to this test's temporary folder.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from reference import RULES

CHROMIUM = Path("/usr/bin/chromium")
#: what works as root on these machines, with no network (see the environment notes): no sandbox, no GPU, and no
#: background connections (updates, sync, QUIC) that a closed network refuses many at a time
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
NOTEBOOK_NAMES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))
#: TeX that would be left in a page's text if the math were not rendered
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\(?:frac|beta|alpha|theta|begin|end|hat|sqrt|lVert|epsilon|lambda)\b")


def test_the_site_builds_without_a_warning(docs_site) -> None:
    assert docs_site.returncode == 0, f"the build failed or warned (-W):\n{docs_site.log[-6000:]}"
    assert "WARNING" not in docs_site.log and "ERROR" not in docs_site.log, docs_site.log[-6000:]
    for page in ["index.html", "cli.html", "errata.html", "benchmarks.html", "rules/index.html"]:
        assert (docs_site.html / page).is_file(), page
    assert (docs_site.html / "_static" / "mathjax" / "tex-chtml.js").is_file()


# ---- links, from the built files ------------------------------------------------------------------------------
class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            if value and ((key == "href" and tag in ("a", "link")) or (key == "src" and tag in ("img", "script"))):
                self.refs.append(value)


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_resolves(docs_site) -> None:
    pages = sorted(docs_site.html.rglob("*.html"))
    assert len(pages) >= len(RULES) + len(NOTEBOOK_NAMES) + 5
    parsed = {p: _parse(p) for p in pages}
    broken, checked = [], 0
    for page, links in parsed.items():
        for ref in links.refs:
            if urlparse(ref).scheme or ref.startswith("//") or ref.startswith("mailto:"):
                continue  # an external link: not fetched (and never loaded, see the browser test)
            parts = urlparse(ref)
            target, fragment = parts.path, parts.fragment
            path = (page.parent / unquote(target)).resolve() if target else page
            if path.is_dir():
                path = path / "index.html"
            checked += 1
            if not path.is_file():
                broken.append(f"{page.relative_to(docs_site.html)}: {ref} (no such file)")
            elif fragment and path.suffix == ".html":
                ids = parsed[path].ids if path in parsed else _parse(path).ids
                if unquote(fragment) not in ids:
                    broken.append(f"{page.relative_to(docs_site.html)}: {ref} (no id {fragment!r} there)")
    assert checked > 500
    assert not broken, "\n".join(broken)


# ---- the browser ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser_pages(docs_site) -> Iterator[tuple[object, str, list[str], list[str]]]:
    """A Chromium page, the site's base URL, and the lists of refused (external) and failed requests."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (make setup installs it, as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    if docs_site.returncode != 0 or not (docs_site.html / "index.html").is_file():
        pytest.fail(f"the site did not build:\n{docs_site.log[-3000:]}")
    handler = functools.partial(_QuietHandler, directory=str(docs_site.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    refused: list[str] = []
    failed: list[str] = []

    def route(r: object) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
            context.route("**/*", route)
            page = context.new_page()
            page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
            page.on("response", lambda res: res.status >= 400 and failed.append(f"{res.url} (HTTP {res.status})"))
            yield page, base, refused, failed
            browser.close()
    finally:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no line per request in the test output
        pass


def _open(page: object, url: str) -> None:
    page.goto(url, wait_until="load")
    if page.locator("script[src*='mathjax']").count() == 0:
        return  # Sphinx loads MathJax only on pages with math
    # MathJax 3 typesets after load; its startup promise resolves when the page is done
    try:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
    except Exception as e:  # Playwright's TimeoutError
        raise AssertionError(f"{url}: MathJax did not start (is _static/mathjax in the build?): {e}") from None
    page.evaluate("() => MathJax.startup.promise")


#: what MathJax made of each formula, as text (its assistive MathML): a macro it did not know stays there with "\\"
_MATH_TEXT_JS = "() => [...document.querySelectorAll('mjx-assistive-mml')].map(e => e.textContent)"

_TEXT_JS = """() => {
  const main = document.querySelector('article') || document.body;
  const copy = main.cloneNode(true);
  copy.querySelectorAll('pre, code, mjx-container, script, style, .headerlink').forEach(e => e.remove());
  return copy.innerText;
}"""


def _assert_no_macro_left(page: object, name: str) -> None:
    formulas = page.evaluate(_MATH_TEXT_JS)
    assert len(formulas) == page.locator("mjx-container").count(), f"{name}: formulas without their MathML"
    left = [f for f in formulas if "\\" in f]
    assert not left, f"{name}: TeX that MathJax did not typeset: {left[:3]}"


def test_rule_pages_show_rendered_math(browser_pages, tmp_path: Path) -> None:
    page, base, refused, failed = browser_pages
    for name, rule in RULES.items():
        _open(page, f"{base}rules/{name}.html")
        rendered = page.locator("mjx-container").count()
        in_box = page.locator(".algorithm mjx-container[display='true']").count()
        assert in_box >= 1, f"{name}: no displayed equation in the algorithm box"
        assert rendered >= 5, f"{name}: only {rendered} formulas rendered"
        assert page.locator("mjx-merror").count() == 0, f"{name}: MathJax reports a TeX error"
        _assert_no_macro_left(page, name)
        text = page.evaluate(_TEXT_JS)
        assert not RAW_TEX.search(text), f"{name}: raw TeX left: {RAW_TEX.search(text).group()!r}"
        for h in rule.hypers:  # the registry's table, default and range
            assert f"{h.name}" in text and h.range_text() in text, f"{name}: {h.name} or its range is missing"
        assert page.locator(f"a[href$='notebooks/{name}.html']").count() >= 1, f"{name}: no link to its notebook"
        assert page.locator("dl.py.class").count() == 1, f"{name}: no class API"
        if name == "lamb":
            page.screenshot(path=str(tmp_path / "rule-lamb.png"), full_page=True)
    assert not refused, f"requests to other hosts: {sorted(set(refused))}"
    assert not failed, f"failed requests: {sorted(set(failed))}"


def test_notebook_pages_show_their_figures(browser_pages, docs_site, tmp_path: Path) -> None:
    import nbformat

    page, base, refused, failed = browser_pages
    for name in NOTEBOOK_NAMES:
        executed = docs_site.executed(name)
        assert executed is not None, name
        nb = nbformat.read(executed, as_version=4)
        figures = sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
        assert figures >= 1, f"{name}: the executed notebook holds no figure"
        _open(page, f"{base}notebooks/{name}.html")
        shown = page.evaluate(
            "() => [...document.querySelectorAll('.cell_output img')].map(i => i.complete && i.naturalWidth > 0)"
        )
        assert len(shown) == figures, f"{name}: {len(shown)} images on the page, {figures} in the notebook"
        assert all(shown), f"{name}: {shown.count(False)} figure(s) did not load"
        assert page.locator("mjx-merror").count() == 0, f"{name}: MathJax reports a TeX error"
        _assert_no_macro_left(page, name)
        assert not RAW_TEX.search(page.evaluate(_TEXT_JS)), f"{name}: raw TeX left"
        if name == "lamb":
            page.screenshot(path=str(tmp_path / "notebook-lamb.png"), full_page=True)
    assert not refused, f"requests to other hosts: {sorted(set(refused))}"
    assert not failed, f"failed requests: {sorted(set(failed))}"


def test_landing_cli_and_errata_pages_open_offline(browser_pages) -> None:
    page, base, refused, failed = browser_pages
    for path in ["index.html", "cli.html", "errata.html", "benchmarks.html", "rules/index.html"]:
        _open(page, base + path)
        assert page.locator("article h1").count() == 1, path
    _open(page, base + "benchmarks.html")
    assert page.evaluate("() => [...document.images].some(i => i.src.includes('benchmarks') && i.naturalWidth > 0)")
    assert not refused, f"requests to other hosts: {sorted(set(refused))}"
    assert not failed, f"failed requests: {sorted(set(failed))}"


def test_the_landing_page_example_runs_and_trains(capsys: pytest.CaptureFixture[str]) -> None:
    """The 20-line example of docs/index.md, run as written: it trains (noise variance 0.01, start ~10)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "index.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    assert len(code.splitlines()) <= 20
    exec(compile(code, "docs/index.md", "exec"), {})
    final = float(re.search(r"final loss ([0-9.]+)", capsys.readouterr().out).group(1))
    assert final < 0.05, final
