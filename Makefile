# `make demo` and `make test` work on a fresh clone: each creates .venv first. `demo` installs mae
# and its base dependencies only; `test`, `lint` and `bench` add the test extra (pytest, ruff,
# transformers, scikit-image ...). Each install happens once, and again after pyproject.toml or
# constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
TEST := $(VENV)/.installed-test

# constraints.txt pins the torch build so that pip never pulls CUDA wheels on a CPU machine.
PIP_INSTALL := $(BIN)/pip install -c constraints.txt
TORCH_PIN := $(shell sed -n 's/^torch==//p' constraints.txt)
# after every install: torch is still the pinned build (no extra may have made pip replace it)
CHECK_TORCH := $(BIN)/python -c "import sys, torch; found = torch.__version__; print('torch', found); \
	sys.exit(found.split('+')[0] != sys.argv[1] and f'error: pip replaced torch: {found} is installed, \
	constraints.txt pins {sys.argv[1]}')" '$(TORCH_PIN)'

.PHONY: install demo test bench lint clean

install: $(BASE)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BASE): pyproject.toml constraints.txt | $(BIN)/python
	@echo "installing mae and its base dependencies (torch, numpy, pillow ...) into $(VENV) ..."
	$(PIP_INSTALL) -e .
	$(CHECK_TORCH)
	touch $@

$(TEST): $(BASE) pyproject.toml constraints.txt
	@echo "installing the test extra (pytest, ruff, transformers, scikit-image ...) into $(VENV) ..."
	$(PIP_INSTALL) -e '.[test]'
	$(CHECK_TORCH)
	touch $@

demo: $(BASE)
	$(BIN)/mae pretrain --config configs/demo.yaml

test: $(TEST)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# The slow tests, then the CPU benchmarks (minutes; results land in runs/bench/).
# docs/benchmarks.md lists the larger runs (Table 2, the GPU script) and their results.
bench: $(TEST)
	$(BIN)/python -m pytest -q -m slow
	$(BIN)/mae bench --model mae_vit_tiny_patch16 --batch 32 --precision bf16 --compare hf \
		--compare mask-token --out runs/bench/tiny_bf16.json
	$(BIN)/python benchmarks/vs_huggingface.py --models mae_vit_tiny_patch16 --batch 8 \
		--out runs/bench/vs_hf_tiny.json
	$(BIN)/python benchmarks/data_pipeline.py --workers 0 1 2 --out runs/bench/data_pipeline.json

lint: $(TEST)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
