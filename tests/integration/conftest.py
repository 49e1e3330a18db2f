"""The framework integration tests: offline, and a framework x feature table (ours vs AdamW) in the summary."""

from __future__ import annotations

import os

# no hub, no telemetry: every model here is built from a config
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gc  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="package", autouse=True)
def _small_and_quiet():
    """Tiny models run fastest on one thread (no pool to wake on a busy 2-core machine), and the frameworks call
    gc.collect() after each run (accelerate's free_memory): with the heap that importing them built frozen out of
    the collector, that takes milliseconds instead of a second. Both are put back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gc.freeze()
    yield
    gc.unfreeze()
    torch.set_num_threads(threads)


# ---- the framework x feature table ------------------------------------------------------------------------
#: (framework, feature) -> {optimizer name: outcome}; filled as the tests here run, printed after the run
_TABLE: dict[tuple[str, str], dict[str, str]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    report = (yield).get_result()
    params = dict(getattr(getattr(item, "callspec", None), "params", {}))
    name = next((params.pop(k) for k in ("name", "run", "resumed") if k in params), None)
    if name is None or not (report.when == "call" or report.failed or report.skipped):
        return
    framework = item.path.stem.removeprefix("test_")
    feature = item.originalname.removeprefix("test_") + "".join(f"[{v}]" for v in params.values())
    outcome = "ok" if report.passed else "skip" if report.skipped else "FAIL" if report.when == "call" else "ERROR"
    _TABLE.setdefault((framework, feature), {})[name] = outcome


def pytest_terminal_summary(terminalreporter: object) -> None:
    if not _TABLE:
        return
    from tests.integration._common import NAMES

    lines = ["| framework | feature | " + " | ".join(NAMES) + " |", "|---|---|" + "---|" * len(NAMES)]
    for (framework, feature), row in _TABLE.items():
        lines.append(f"| {framework} | {feature} | " + " | ".join(row.get(n, "") for n in NAMES) + " |")
    terminalreporter.write_sep("=", "framework x feature (ours vs torch.optim.AdamW)")  # type: ignore[attr-defined]
    terminalreporter.write_line("\n".join(lines))  # type: ignore[attr-defined]
