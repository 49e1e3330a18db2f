# The two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is the build these machines install from local disk (no download).
TORCH  := torch==2.13.0
HYPOTHESIS_PROFILE ?= ci

.PHONY: setup demo test lint thorough bench soak clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test,cli,notebooks]'
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

# 10,000 float64 steps of every rule against the reference (~1-2 min); writes docs/soak.md
soak: setup
	$(BIN)/python tools/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
