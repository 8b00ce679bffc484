# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs. torch is pinned to the CPU build here (never in the library's metadata).
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.qsafe-installed
NODEDIRS := tests/interop/node tests/interop/sigstore

.PHONY: demo test test-slow test-all lint peers bench fuzz fuzz-seeds clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH) -e '.[dev]'
	@touch $@

# Interop peers the tests talk to: Debian's age, the npm age-encryption package, and Sigstore's mock services
# (@sigstore/mock, served on loopback by tests/interop/sigstore/server.mjs).
peers:
	@command -v age >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq age; }
	@for d in $(NODEDIRS); do \
	  if [ -f $$d/package.json ] && [ ! -d $$d/node_modules ]; then \
	    (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; fi; done

demo: $(STAMP)
	$(PY) examples/demo/run.py

test: $(STAMP) peers
	QSAFE_REQUIRE_PEERS=1 $(PY) -m pytest -q -n 2 -m "not slow"

test-slow: $(STAMP) peers
	@rc=0; QSAFE_REQUIRE_PEERS=1 $(PY) -m pytest -q -n 2 -m slow || rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: test test-slow

# ruff over everything, mypy --strict over the package (CI runs it after the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check qsafe tests benchmarks examples scripts fuzz
	$(VENV)/bin/mypy qsafe

bench: $(STAMP) peers
	$(PY) benchmarks/run_all.py

# Coverage-guided fuzzing (atheris): every harness in fuzz/harnesses for FUZZ_SECONDS each, FUZZ_JOBS at once.
# Fails on any crash (an exception outside qsafe's error tree), hang over 10 s or peak RSS over 256 MiB.
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
fuzz: $(STAMP)
	nice -n 10 $(PY) fuzz/run.py --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) $(FUZZ_ARGS)

# Regenerate the seed corpora from the test vectors and real qsafe outputs (review the diff before committing).
fuzz-seeds: $(STAMP)
	$(PY) -m fuzz.make_seeds

clean:
	rm -rf $(VENV) $(addsuffix /node_modules,$(NODEDIRS)) .pytest_cache .hypothesis
