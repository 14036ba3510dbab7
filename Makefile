# dtlsgate: `make serve` and `make test` set themselves up on a fresh machine that has
# only Python 3 (and apt-get for the real peers the interop tests start).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
INTEROP_STAMP := $(VENV)/.interop-stamp
# The benchmarks' interpreter: the distribution's python3 where there is one, built with
# profile-guided optimization as the Pythons that deployments run are; the development
# venv's may be a plain source build (pyenv's default), on which our interpreted code runs
# at 0.7-0.8 of that speed against the same C (bench/RESULTS.md, session 23).
BENCH_VENV ?= .venv-bench
BENCH_PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 4433
# Python sources the linters and type checker look at.
LINT_PATHS := src tests bench fuzz

.PHONY: serve serve-coap test coverage lint typecheck peers bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	sh scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/dtlsgate serve --host $(HOST) --port $(PORT)

# CoAP over DTLS on 5684 (self-signed certificate): `coap-client-openssl coaps://127.0.0.1/time`.
serve-coap: $(STAMP)
	$(VENV)/bin/dtlsgate coap-server --host $(HOST)

peers:
	sh scripts/install-peers.sh

# tinydtls (PyPI DTLSSocket) builds from source once the peers' build tools are there; when
# it cannot build, its test skips and says why.
$(INTEROP_STAMP): $(STAMP) scripts/install-peers.sh scripts/build-wolfssl.sh
	sh scripts/install-peers.sh
	$(PY) -m pip install -q -e ".[interop]" || echo "make: DTLSSocket did not build; the tinydtls interop test will skip" >&2
	touch $(INTEROP_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src

# The sources' bytecode is written first: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) every `python -m dtlsgate` the tests start compiled each module it imports
# again, about 0.8 s of CPU instead of 0.2, until a test that starts one with a bare
# environment happened to write it. compileall writes whatever that variable says, and
# imports still read what it wrote.
# The suite runs in TEST_JOBS processes (pytest-xdist), more than this 2-core machine's
# cores: more than half of its time is spent waiting (retransmission timers, peers starting,
# captures), not computing: 2,621 tests took 9 min 46 s in one process here, 3 min 17-44 s in 4.
# `make test TEST_JOBS=0` runs it in one.
# Then the event-loop and command-line tests under the newest newer CPython here, if any
# (scripts/test-newer-python.sh says why and which).
TEST_JOBS ?= 4
test: $(STAMP) peers $(INTEROP_STAMP) lint typecheck
	$(PY) -m compileall -q src
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist worksteal
	sh scripts/test-newer-python.sh $(PY) $(VENV)-newer

# Branch coverage of src/ over the whole suite (pytest-cov), the lines each module misses.
# The CLI tests start `python -m dtlsgate` as a subprocess, which coverage does not follow:
# io/cli.py and io/coap_cli.py read low for that reason.
coverage: $(STAMP) peers $(INTEROP_STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist worksteal \
		--cov=dtlsgate --cov-branch --cov-report=term-missing:skip-covered

$(BENCH_STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(BENCH_PYTHON) sh scripts/bootstrap.sh $(BENCH_VENV)
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	PY=$(BENCH_VENV)/bin/python sh bench/all.sh

clean:
	rm -rf $(VENV) $(VENV)-newer $(BENCH_VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
