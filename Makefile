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
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/python -m compileall -q src tests

clean:
	rm -rf $(VENV) runs
