# The two commands of the README:
#   make demo   -- the main job on built-in synthetic data (no downloads)
#   make test   -- the test suite
# Both create or reuse .venv and install descnet into it (torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.descnet-installed

.PHONY: install test demo clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,onnx]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/descnet demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) results/demo
