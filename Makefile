# `make demo` and `make test` work on a fresh clone: each creates .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

install: $(STAMP)

# constraints.txt pins the torch build so that pip never pulls CUDA wheels on a CPU machine.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -c "import torch; print('torch', torch.__version__)"
	touch $(STAMP)

demo: install
	$(BIN)/mae pretrain --config configs/demo.yaml

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# The slow tests, then the CPU benchmarks (minutes; results land in runs/bench/).
# docs/benchmarks.md lists the larger runs (Table 2, the GPU script) and their results.
bench: install
	$(BIN)/python -m pytest -q -m slow
	$(BIN)/mae bench --model mae_vit_tiny_patch16 --batch 32 --precision bf16 --compare hf \
		--compare mask-token --out runs/bench/tiny_bf16.json
	$(BIN)/python benchmarks/vs_huggingface.py --models mae_vit_tiny_patch16 --batch 8 \
		--out runs/bench/vs_hf_tiny.json
	$(BIN)/python benchmarks/data_pipeline.py --workers 0 1 2 --out runs/bench/data_pipeline.json

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
