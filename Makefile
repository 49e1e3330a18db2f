# The two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is the build these machines install from local disk (no download).
TORCH  := torch==2.13.0
HYPOTHESIS_PROFILE ?= ci
# the documentation site's MathJax (npm), installed into .venv/npm by setup
MATHJAX := mathjax@3.2.2

.PHONY: setup demo test lint thorough bench soak clean docs gpu gpu-wheels audit

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test,cli,notebooks,integration,docs]'
	@# the site's math: MathJax 3 from the npm registry, copied into the built site (no page loads another host)
	npm install --prefix $(VENV)/npm --no-audit --no-fund --silent $(MATHJAX)
	@# the browser test's Chromium, from Debian's packages (as root, as in CI; nothing to do when it is there)
	[ -x /usr/bin/chromium ] || [ "$$(id -u)" != 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-liberation; }
	@[ -x /usr/bin/chromium ] || echo "make setup: no /usr/bin/chromium (installing it needs root): the browser checks skip"
	$(BIN)/python -c "import torch; v = torch.__version__; assert v.split('+')[0] == '$(patsubst torch==%,%,$(TORCH))', v"
	touch $@

demo: setup
	$(BIN)/holocron-optim compare --dataset digits --optimizers lamb adabelief adan ademamix --out out/demo
	$(BIN)/holocron-optim verify examples.lion:Lion examples.lion:lion_reference --state m \
		--hyper lr=1e-4:0.1 --hyper betas=0:0.99,0:0.999 --hyper weight_decay=0:0.1
	@echo out/demo/compare-digits.png

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest

# The documentation site, into docs/_build/html (Sphinx; warnings are errors; executes the notebooks, cached in
# docs/_build/.notebooks). Opened offline in Chromium by tests/test_docs_site.py.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo docs/_build/html/index.html

thorough:
	$(MAKE) test HYPOTHESIS_PROFILE=thorough

# The optimizer-step benchmark: writes docs/benchmarks.md and docs/benchmarks.png (~10 min; BENCH_ARGS=--quick: ~40 s).
# Its peers are benchmark-only dependencies, installed here with --no-deps so that nothing (torchvision, a newer torch)
# replaces this torch; the check after the install proves it.
bench: setup
	$(BIN)/pip install --quiet --no-deps pytorch-optimizer==4.1.0 timm==1.0.31 heavyball==3.2.1 opt-einsum==3.4.0 \
		pylocron==0.3.0
	$(BIN)/python -c "import torch; v = torch.__version__; assert v.split('+')[0] == '$(patsubst torch==%,%,$(TORCH))', v"
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# `make gpu`: on a CUDA machine, the suite's CUDA tests, the CUDA checks of every rule and path and the benchmark on the
# device (benchmarks/gpu.py; budget 9 min, GPU_ARGS=--quick: under 3), writing docs/benchmarks-cuda.md/.png/.json.
# `make gpu DEVICE=cpu` is its dry run (small sets, a temporary folder; tests/test_gpu_dryrun.py runs it).
# Without .venv, a python3 whose torch sees CUDA runs it (a GPU machine without internet: see the README), with the
# peers' wheels from .gpu-wheels (`make gpu-wheels`) when that folder is there.
DEVICE   ?= cuda
GPU_ARGS ?=
gpu: $(if $(wildcard $(BIN)/python)$(filter cpu,$(DEVICE)),setup)
	@if [ -x $(BIN)/python ]; then \
		$(BIN)/python -m benchmarks.gpu --device $(DEVICE) $(GPU_ARGS); \
	elif [ "$(DEVICE)" = cuda ] && $(PYTHON) -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then \
		echo "make gpu: no $(VENV); $$(command -v $(PYTHON)) with torch $$($(PYTHON) -c 'import torch; print(torch.__version__)')"; \
		site=; if ls .gpu-wheels/*.whl >/dev/null 2>&1; then site=/tmp/holocron-gpu-site; \
			$(PYTHON) -m pip install -q --no-index --no-deps --no-compile --target $$site .gpu-wheels/*.whl || exit 1; fi; \
		PYTHONPATH=$(CURDIR)$${site:+:$$site} $(PYTHON) -m benchmarks.gpu --device cuda $(GPU_ARGS); \
	else \
		$(MAKE) --no-print-directory setup && $(BIN)/python -m benchmarks.gpu --device $(DEVICE) $(GPU_ARGS); \
	fi

# the benchmark's peers as wheels, for a GPU machine without internet (its own python3 has torch, timm, opt-einsum)
gpu-wheels: setup
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: -d .gpu-wheels pytorch-optimizer==4.1.0 heavyball==3.2.1 \
		pylocron==0.3.0

# The conformance audit: every implementation of our rules in six peer libraries, verified step for step against
# the reference; writes docs/conformance.md and docs/conformance.json (~4 min on 2 cores; AUDIT_ARGS=--examples N).
# The peers are audit-only dependencies, installed with --no-deps (none may replace this torch or pull torchvision;
# the check after the install proves it); the test suite does not need them.
audit: setup
	$(BIN)/pip install --quiet --no-deps timm==1.0.31 pytorch-optimizer==4.1.0 torch-optimizer==0.3.0 \
		heavyball==3.2.1 adabelief-pytorch==0.2.1 adamp==0.3.0 pytorch-ranger==0.1.1 opt-einsum==3.4.0 tabulate==0.10.0 colorama==0.4.6
	$(BIN)/python -c "import torch; v = torch.__version__; assert v.split('+')[0] == '$(patsubst torch==%,%,$(TORCH))', v"
	$(BIN)/python tools/audit.py $(AUDIT_ARGS)

# 10,000 float64 steps of every rule against the reference (~1-2 min); writes docs/soak.md
soak: setup
	$(BIN)/python tools/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
