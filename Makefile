# djepa: the two entry points named first in the README.
#   make run   set everything up (and espeak-ng, which the default voice speaks through), then the main job:
#              the service on http://127.0.0.1:8000 (Ctrl-C stops it)
#   make test  set everything up, then lint, type-check and run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# This machine's CPU build of torch lies on disk; pinning it here keeps pip from pulling a CUDA build.
# GPU users: make setup TORCH_SPEC="torch==<your CUDA build>" (pyproject.toml accepts a range).
TORCH_SPEC ?= torch==2.13.0
RUN_ARGS ?= --config deploy/serve.yaml --host 127.0.0.1 --port 8000

.PHONY: setup espeak sysdeps run test lint typecheck pytest parity clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup espeak
	$(VENV)/bin/djepa serve $(RUN_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy djepa_core service tests

# System packages of the tests: Debian's prometheus (prometheus + promtool: tests/deploy and
# tests/service/test_prometheus.py), installed when missing and root (CI is); without them those tests
# skip, or fail under DJEPA_REQUIRE_FIXTURES=1 (.ci/run)
# Debian's espeak-ng: the default voice speaks espeak-ng's phonemes (djepa_core/data/espeak_align.py), so the
# service needs it; the speech corpus, phoneme and loader tests too. Installed when root with apt-get, else named.
espeak:
	@if command -v espeak-ng >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng; \
	else echo "espeak: espeak-ng missing (the default voice needs it): apt-get install espeak-ng (as root)"; fi

sysdeps: espeak
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	else echo "sysdeps: prometheus/promtool missing: apt-get install prometheus (as root)"; fi
	@# Debian's chromium: tests/service/test_playground.py drives the playground page in it, headless; same
	@# rules (fails under DJEPA_REQUIRE_BROWSER=1, .ci/run, when missing)
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else echo "sysdeps: chromium missing: apt-get install chromium (as root)"; fi

pytest: setup sysdeps
	$(PY) -m pytest -q

parity: setup
	$(PY) -m djepa_core.compat.parity ../shared/fixtures/official

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
