# Two commands on a fresh machine: `make up` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up test test-cluster install lint typecheck fmt clean screenshots

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and exactly pinned, so no resolver ever reaches for CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# The browser tests drive Debian's Chromium (Playwright never downloads a browser).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/daguerre up

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src
	$(PY) -m pytest -q

# The network-namespace cluster test (root; ~30 s): a worker host cut mid-load.
test-cluster: $(STAMP)
	DAGUERRE_TEST_CLUSTER=1 $(PY) -m pytest -q -s -m cluster tests/cluster

# The pictures of docs/web.md, taken by the browser tests: the one command that writes them
# into the tree (`make test` takes them into a scratch folder).
screenshots: $(STAMP)
	DAGUERRE_SCREENSHOTS=1 $(PY) -m pytest -q -m browser tests/browser

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src

fmt: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .daguerre .pytest_cache .mypy_cache .ruff_cache
