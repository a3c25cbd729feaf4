# Tradefleet: `make run` brings the platform up on this machine; `make test` runs the whole suite.
# Both install what they need first (a virtual environment in .venv from backend/pyproject.toml).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench install clean system-deps sandbox-deps

$(STAMP): backend/pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'backend[test,bench]'
	touch $(STAMP)

install: $(STAMP)

## Debian packages: chromium and nginx (browser tests), bubblewrap and python3-seccomp (the strategy
## sandbox), installed with apt-get only when missing (as root, or through sudo); a machine that has them
## is left alone. sandbox-deps installs only the last two (make run needs them).
SANDBOX_PKGS_CHECK = command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	ls /usr/lib/python3/dist-packages/seccomp.cpython-*.so >/dev/null 2>&1 || missing="$$missing python3-seccomp";
APT_INSTALL = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	  else echo "system-deps: root is needed to install:$$missing" >&2; exit 1; fi; \
	  echo "system-deps: installing$$missing"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	$(SANDBOX_PKGS_CHECK) \
	$(APT_INSTALL)

sandbox-deps:
	@missing=""; \
	$(SANDBOX_PKGS_CHECK) \
	$(APT_INSTALL)

## Migrate, then start the exchange simulator, the API on http://127.0.0.1:8000, a Celery worker and beat,
## and create the demo account. SQLite and an embedded broker unless DATABASE_URL / REDIS_URL are set.
run: $(STAMP) sandbox-deps
	$(BIN)/tradefleet dev

## The whole test suite (PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 are used for real;
## the browser tests run chromium and nginx, installed by system-deps). It runs in TEST_WORKERS
## pytest-xdist processes (backend/tests/support/parallel.py keeps each one isolated; 0: in this one
## process). The default, 2: most of the slow tests wait on real processes and simulated time, so two
## workers overlap them even on a 2-core machine; more would exceed PostgreSQL's 100 connections.
TEST_WORKERS ?= 2
test: $(STAMP) system-deps
	cd backend && ../$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## Benchmarks (print figures; not tests).
bench: $(STAMP)
	$(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) var backend/*.egg-info
