"""The ``holocron-optim`` command line, through main(argv) and once through the installed console script."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from holocron_torch.cli import main
from reference import RULES

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 20_000  # two panels with curves, not an empty canvas


def assert_usage_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("holocron-optim")
    assert "error:" in lines[0]
    for word in words:
        assert word in lines[0]


# ---- help and list ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["list"], ["compare"], ["trajectories"], ["verify"]])
def test_every_subcommand_has_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith("usage: holocron-optim")


def test_list_shows_every_rule_with_defaults_and_ranges(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for rule in RULES.values():
        assert f"{rule.name}: holocron_torch.optim.{rule.cls}" in out
        for h in rule.hypers:
            assert h.name in out
            assert h.range_text() in out
    assert "lookahead_" in out  # how to compose a wrapper


def test_list_some(capsys):
    code, out, _ = run(capsys, "list", "Lamb,scout")
    assert code == 0
    assert "lamb:" in out
    assert "scout:" in out
    assert "adan:" not in out


# ---- compare ----------------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_compare_digits(capsys, tmp_path):
    out_dir = tmp_path / "new" / "folder"  # created with its parents
    code, out, err = run(
        capsys, "compare", "--dataset", "digits", "--optimizers", "lamb", "AdaBelief", "--steps", "4",
        "--out", str(out_dir), "--lr", "adabelief=0.005",
    )  # fmt: skip
    assert code == 0, err
    png = out_dir / "compare-digits.png"
    assert out.strip().splitlines()[-1] == str(png)  # the PNG's path comes last
    assert_png(png)
    assert "lamb" in err  # a progress bar per run
    assert "adabelief" in err
    rows = read_rows(out_dir / "compare-digits.csv")
    assert list(rows[0]) == ["optimizer", "step", "loss", "accuracy", "seconds"]
    assert [(r["optimizer"], int(r["step"])) for r in rows] == [
        (name, step) for name in ("lamb", "adabelief") for step in range(1, 5)
    ]
    for r in rows:
        assert float(r["loss"]) > 0
        assert 0 <= float(r["accuracy"]) <= 1
        assert float(r["seconds"]) > 0
    summary = json.loads((out_dir / "compare-digits.json").read_text())
    assert summary["dataset"] == "digits"
    assert summary["steps"] == 4
    assert [o["name"] for o in summary["optimizers"]] == ["lamb", "adabelief"]
    assert [o["hyperparameters"]["lr"] for o in summary["optimizers"]] == [0.01, 0.005]
    table = out.split("\n")
    assert any(line.startswith("lamb") for line in table)
    assert any(line.startswith("adabelief") for line in table)


def test_compare_breast_cancer_minibatches_wrapper_and_baseline(capsys, tmp_path):
    code, _, err = run(
        capsys, "compare", "--dataset", "breast_cancer", "--optimizers", "lookahead_lamb,adamw", "--epochs", "1",
        "--batch-size", "100", "--hp", "weight_decay=0.01", "--hp", "lookahead_lamb:sync_period=2",
        "--out", str(tmp_path), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # --no-progress
    rows = read_rows(tmp_path / "compare-breast_cancer.csv")
    per_epoch = 426 // 100  # 75% of 569 samples, whole batches
    assert [r["optimizer"] for r in rows] == ["lookahead_lamb"] * per_epoch + ["adamw"] * per_epoch
    summary = json.loads((tmp_path / "compare-breast_cancer.json").read_text())
    assert summary["optimizers"][0]["class"] == "Lookahead(LAMB)"
    assert summary["optimizers"][0]["hyperparameters"] == {"lr": 0.01, "weight_decay": 0.01, "sync_period": 2}
    assert_png(tmp_path / "compare-breast_cancer.png")


# ---- trajectories -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("function", ["rosen", "beale", "bowl"])
def test_trajectories(capsys, tmp_path, function):
    code, out, err = run(
        capsys, "trajectories", "--function", function, "--optimizers", "adan", "lookahead_lamb", "--steps", "30",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    png = tmp_path / f"trajectories-{function}.png"
    assert out.strip().splitlines()[-1] == str(png)
    assert_png(png)
    assert "adan" in out
    assert "lookahead_lamb" in out


def test_trajectories_follow_the_reference_rule(capsys, tmp_path):
    """The plotted path is the NumPy rule's: from the minimum, a zero gradient moves nothing."""
    code, out, _ = run(
        capsys, "trajectories", "--function", "bowl", "--start", "0,0", "--optimizers", "adabelief",
        "--steps", "5", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("adabelief"))
    assert row.split()[2:4] == ["0.000e+00", "0.000e+00"]


# ---- verify -----------------------------------------------------------------------------------------------
@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # verify imports from the current folder, as `holocron-optim verify` from the root
    return ROOT


def test_verify_the_lion_example_passes(capsys, repo_root):
    profile = settings.get_current_profile_name()
    code, out, err = run(
        capsys, "verify", "examples.lion:Lion", "examples.lion:lion_reference", "--state", "m",
        "--max-examples", "15",
    )  # fmt: skip
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("pass")
    assert "not compared" in out  # Lion keeps no step count: noticed, not failed
    assert settings.get_current_profile_name() == profile  # the test suite's Hypothesis profile is back


def test_verify_our_own_rule_against_its_reference_module(capsys, repo_root):
    code, out, err = run(
        capsys, "verify", "holocron_torch.optim:LAMB", "reference.lamb", "--state", "m,v", "--max-examples", "5",
        "--hyper", "lr=1e-4:0.1", "--hyper", "betas=0:0.99,0.5:0.999", "--hyper", "weight_decay=0.01",
    )  # fmt: skip
    assert code == 0, out + err
    assert "not compared" not in out  # LAMB keeps state["step"], so it is compared
    assert out.strip().splitlines()[-1].startswith("pass")


BAD_LION = """
from examples.lion import Lion


class SignBugLion(Lion):
    def __init__(self, params, **hp):
        super().__init__(params, sign_bug=True, **hp)
"""


def test_verify_a_wrong_optimizer_prints_the_counterexample(capsys, repo_root, tmp_path, monkeypatch):
    (tmp_path / "holocron_cli_test_bad_lion.py").write_text(BAD_LION)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(
        capsys, "verify", "holocron_cli_test_bad_lion:SignBugLion", "examples.lion:lion_reference", "--state", "m",
        "--max-examples", "30",
    )  # fmt: skip
    assert code == 1
    assert "Traceback" not in out + err
    assert "FAIL: mismatch: step" in out
    assert "parameter" in out
    assert "Case(" in out  # the shrunk scenario


# ---- bad arguments: exit code 2, one line on stderr, no traceback -----------------------------------------
@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["compare", "--optimizers", "lamb", "nosuch"], ["unknown optimizer 'nosuch'", "lamb", "adan"]),
        (["compare", "--optimizers", "lookahead"], ["is a wrapper"]),
        (["compare", "--optimizers", "lamb", "--hp", "betas=(1.5,0.9)"], ["lamb", "betas"]),
        (["compare", "--optimizers", "lamb", "--hp", "lamb:momentum=0.9"], ["momentum"]),
        (["compare", "--optimizers", "lamb", "--lr", "-0.1"], ["lr"]),
        (["compare", "--optimizers", "lookahead_adan", "--hp", "sync_period=0"], ["sync_period"]),
        (["compare", "--optimizers", "adamw", "--hp", "betas=(2,0.9)"], ["adamw"]),
        (["compare", "--optimizers", "lamb", "--lr", "adan=0.1"], ["adan"]),
        (["compare", "--hp", "lamb:betas=oops"], ["--hp"]),
        (["compare", "--steps", "0"], ["--steps"]),
        (["compare", "--steps", "3", "--epochs", "1"], ["--epochs"]),
        (["compare", "--dataset", "iris"], ["iris"]),
        (["trajectories", "--optimizers", "adamw"], ["unknown optimizer 'adamw'"]),
        (["trajectories", "--function", "himmelblau"], ["himmelblau"]),
        (["trajectories", "--start", "1"], ["--start"]),
        (["trajectories", "--optimizers", "tadam", "--hp", "betas=(0.1,0.9)"], ["betas"]),
        (["verify", "examples.lion", "examples.lion:lion_reference"], ["MODULE:NAME"]),
        (["verify", "no_such_module:X", "examples.lion:lion_reference"], ["no_such_module"]),
        (["verify", "examples.lion:Nope", "examples.lion:lion_reference"], ["Nope"]),
        (["verify", "examples.lion:Lion", "examples.lion:Lion"], ["init() and step()"]),
        (["verify", "examples.lion:Lion", "examples.lion:lion_reference", "--hyper", "lr=0.1:0.01"], ["lr"]),
        (["list", "nosuch"], ["nosuch"]),
        (["nosuch"], ["nosuch"]),
        ([], ["required"]),
    ],
)
def test_bad_arguments(capsys, repo_root, argv, words):
    code, out, err = run(capsys, *argv)
    assert_usage_error(code, out, err, *words)


@pytest.mark.parametrize("command", ["compare", "trajectories"])
@pytest.mark.parametrize("under", ["a-file", "a-file/sub"])
def test_an_unwritable_out_folder(capsys, a_file, command, under):
    target = a_file.parent / under
    code, out, err = run(capsys, command, "--optimizers", "lamb", "--out", str(target))
    assert_usage_error(code, out, err, "--out", str(target))
    assert out == ""  # refused before any work


# ---- the installed console script -------------------------------------------------------------------------
def test_the_console_script(tmp_path, a_file):
    script = shutil.which("holocron-optim", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("holocron-optim is not installed next to this Python (pip install -e '.[cli]')")
    done = subprocess.run(
        [script, "compare", "--optimizers", "adan,lamb", "--steps", "3", "--out", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    png = tmp_path / "compare-digits.png"
    assert done.stdout.strip().splitlines()[-1] == str(png)
    assert_png(png)
    assert len(read_rows(tmp_path / "compare-digits.csv")) == 2 * 3
    bad = subprocess.run(
        [script, "compare", "--optimizers", "adan", "--out", str(a_file / "sub")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert_usage_error(bad.returncode, bad.stdout, bad.stderr, "--out")
