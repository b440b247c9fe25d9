# The two commands of the README's quick start: `make demo` and `make test`.
# As root they also install the system packages they use (apt), as .ci/run does.
# Each creates .venv (Python 3.10-3.14; durable-rules compiles, so gcc and the Python headers
# are needed) and installs what it needs.

# The first of these that is Python 3.10-3.14; `make PYTHON=/path/to/python3.X` overrides.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python3.10 python3.14; do \
	command -v $$p >/dev/null 2>&1 && \
	$$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 14))' 2>/dev/null && \
	echo $$p && break; done)
# durable-rules 2.0.28 calls PyEval_CallObject, which Python 3.13 removed; its setup.py overwrites
# CFLAGS, so the replacement reaches the compiler through CPPFLAGS (harmless on 3.10-3.12).
DURABLE_CPPFLAGS := -DPyEval_CallObject=PyObject_CallObject
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-pythons bench lint check-build-deps clean

$(BIN)/.installed: setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory check-build-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CPPFLAGS="$(DURABLE_CPPFLAGS) $$CPPFLAGS" $(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

check-build-deps:
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: need Python 3.10 to 3.14 (none of python3, python3.10 ... python3.14 is);" \
		     "install one, or set PYTHON=/path/to/python3.x" >&2; exit 1; fi
	@command -v gcc >/dev/null 2>&1 || { \
		echo "error: gcc not found; durable-rules compiles a C extension." \
		     "Debian/Ubuntu: apt-get install gcc" >&2; exit 1; }
	@$(PYTHON) -c 'import os, sys, sysconfig; \
		sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || { \
		echo "error: Python headers (Python.h) not found for $(PYTHON); durable-rules compiles" \
		     "against them. Debian/Ubuntu: apt-get install python3-dev" >&2; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
		echo "error: $(PYTHON) has no venv module. Debian/Ubuntu: apt-get install python3-venv" >&2; \
		exit 1; }

demo: $(BIN)/.installed
	@# As root: install the demo's system packages (sudo, net-tools, iproute2, iputils-arping)
	@# if missing, and say so; `make test` installs the rest (gcc, a JDK, PostgreSQL...).
	@.ci/install-system-packages demo
	$(BIN)/python examples/demo.py

lint: $(BIN)/.installed
	$(BIN)/ruff check floatingip rules examples benchmarks tests
	$(BIN)/ruff format --check floatingip rules examples benchmarks tests
	$(BIN)/mypy

test: lint
	@.ci/install-system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tests on every other Python 3.10-3.14 found here (pyenv's, the system's); .ci/run runs it.
test-pythons:
	@$(MAKE) --no-print-directory check-build-deps
	.ci/test-other-pythons $(PYTHON)

# The edit-test loop: unit tests only, without tests/integration (network namespaces, sudo,
# java, postgres) and without the tests marked slow; well under a minute.  `make test` runs all.
.PHONY: quick
quick: $(BIN)/.installed
	$(BIN)/python -m pytest -m 'not integration and not slow' $(PYTEST_ARGS)

# Full benchmark runs (minutes); CI runs them in --short mode through the tests.
BENCHMARKS := engine_throughput dispatch_latency memory scale vip_move etcd_switch etcd_idle input_limits manager_idle patroni_switch
bench: $(BIN)/.installed
	@for name in $(BENCHMARKS); do $(BIN)/python benchmarks/$$name.py $(BENCH_ARGS) || exit 1; echo; done

clean:
	rm -rf $(VENV) .venv-others build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
