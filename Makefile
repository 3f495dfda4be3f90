# Every target creates .venv on first use, so a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# .installed: everything `make test` needs (the dev extra); .installed-run: what `make run`
# needs, the runtime dependencies only (the test tools, playwright among them, are large).
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test lint typecheck test-unit pytest bench schemas clean venv

venv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "wecom-suite needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | venv
	@echo "Installing wecom-suite and its runtime dependencies into $(VENV) (first run only)..."
	$(BIN)/python -m pip install --upgrade --progress-bar on pip
	$(BIN)/python -m pip install --progress-bar on -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | venv
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/wecom-suite run

# The hooks of .pre-commit-config.yaml on every tracked file; no git hook needs installing.
# mypy is `typecheck`. detect-secrets runs on its own: exit 3 means it only moved line numbers
# in .secrets.baseline (rewritten in place, commit it); new secrets exit 1 and fail.
lint: $(STAMP)
	SKIP=mypy,detect-secrets $(BIN)/pre-commit run --all-files --show-diff-on-failure
	git ls-files -z | xargs -0 sh -c \
		'$(BIN)/detect-secrets-hook --baseline .secrets.baseline "$$@" || [ $$? -eq 3 ]' sh

typecheck: $(STAMP)
	$(BIN)/mypy .

pytest: $(STAMP)
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: lint typecheck pytest

schemas: $(STAMP)
	$(BIN)/python -m shared.schemas docs/schemas --events-doc docs/events.md

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 && command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk valgrind; }
	@# The gateway benchmark's peer (bench/peer_wechatpy.py): never a dependency of the product.
	$(BIN)/python -m pip install --quiet wechatpy
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
