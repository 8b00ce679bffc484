# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs. torch is pinned to the CPU build here (never in the library's metadata).
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.qsafe-installed
NODEDIRS := tests/interop/node tests/interop/sigstore

.PHONY: demo test test-slow test-all lint peers bench fuzz fuzz-seeds clean liboqs plugins

# liboqs (C) for the qsafe-liboqs plugin: no package registry ships it, so it is built from the unmodified
# 0.16.0 source beside the project (../shared/vendor, or LIBOQS_TARBALL=...) into build/oqs-prefix, with only
# the algorithms the plugin registers. liboqs-python finds it through OQS_INSTALL_PATH.
LIBOQS_VERSION := 0.16.0
LIBOQS_TARBALL ?= $(firstword $(wildcard ../shared/vendor/liboqs-$(LIBOQS_VERSION).tar.xz \
                    ../../shared/vendor/liboqs-$(LIBOQS_VERSION).tar.xz shared/vendor/liboqs-$(LIBOQS_VERSION).tar.xz))
LIBOQS_SHA256  := 2acc56cacf93d053b5a4d6da916e7a785b095a44222c13cbdf00d7d644f989c6
OQS_PREFIX     := $(CURDIR)/build/oqs-prefix
OQS_LIB        := $(OQS_PREFIX)/lib/liboqs.so
SLH_DSA_SETS   := sha2_128s sha2_128f sha2_192s sha2_192f sha2_256s sha2_256f \
                  shake_128s shake_128f shake_192s shake_192f shake_256s shake_256f
LIBOQS_ALGS    := $(subst $(eval) ,;,$(strip SIG_ml_dsa_44 SIG_ml_dsa_65 SIG_ml_dsa_87 SIG_falcon_512 SIG_falcon_1024 \
                    $(foreach s,$(SLH_DSA_SETS),SIG_slh_dsa_pure_$(s))))
export OQS_INSTALL_PATH := $(OQS_PREFIX)
PLUGIN_STAMP   := $(VENV)/.qsafe-plugins-installed
PLUGIN_TESTS   := plugins/qsafe-liboqs/tests plugins/qsafe-flower/tests

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH) -e '.[dev]'
	@touch $@

# Interop peers the tests talk to: Debian's age, SoftHSM (a PKCS#11 token for model-signing's pkcs11 signers),
# the npm age-encryption package, and Sigstore's mock services (@sigstore/mock, served on loopback by
# tests/interop/sigstore/server.mjs).
peers:
	@command -v age >/dev/null 2>&1 && command -v softhsm2-util >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq age softhsm2; }
	@for d in $(NODEDIRS); do \
	  if [ -f $$d/package.json ] && [ ! -d $$d/node_modules ]; then \
	    (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; fi; done

$(OQS_LIB):
	@test -n "$(LIBOQS_TARBALL)" || { echo "liboqs $(LIBOQS_VERSION) source not found: set LIBOQS_TARBALL=PATH/liboqs-$(LIBOQS_VERSION).tar.xz" >&2; exit 5; }
	echo "$(LIBOQS_SHA256)  $(LIBOQS_TARBALL)" | sha256sum -c --quiet -
	rm -rf build/liboqs-src build/liboqs && mkdir -p build/liboqs-src
	tar xf $(LIBOQS_TARBALL) -C build/liboqs-src --strip-components=1
	cmake -S build/liboqs-src -B build/liboqs -GNinja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
	  -DOQS_BUILD_ONLY_LIB=ON -DOQS_USE_OPENSSL=OFF -DOQS_DIST_BUILD=ON -DOQS_MINIMAL_BUILD="$(LIBOQS_ALGS)" \
	  -DCMAKE_INSTALL_PREFIX="$(OQS_PREFIX)" -DCMAKE_INSTALL_LIBDIR=lib >build/liboqs-cmake.log
	ninja -C build/liboqs install >build/liboqs-ninja.log
	@test -f $@

liboqs: $(OQS_LIB)

# The plugins in plugins/ (each its own distribution), installed into the venv beside qsafe, with liboqs.
# qsafe-flower brings flwr[simulation] 1.42 (Ray) for the Flower tests.
$(PLUGIN_STAMP): $(STAMP) $(OQS_LIB) plugins/qsafe-liboqs/pyproject.toml plugins/qsafe-flower/pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -e './plugins/qsafe-liboqs[test]' -e ./plugins/qsafe-flower
	@touch $@

plugins: $(PLUGIN_STAMP)

demo: $(STAMP)
	$(PY) examples/demo/run.py

test: $(STAMP) $(PLUGIN_STAMP) peers
	QSAFE_REQUIRE_PEERS=1 $(PY) -m pytest -q -n 2 -m "not slow" tests $(PLUGIN_TESTS)

test-slow: $(STAMP) $(PLUGIN_STAMP) peers
	@rc=0; QSAFE_REQUIRE_PEERS=1 $(PY) -m pytest -q -n 2 -m slow tests $(PLUGIN_TESTS) || rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: test test-slow

# ruff over everything, mypy --strict over the package (CI runs it after the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check qsafe tests benchmarks examples scripts fuzz plugins
	$(VENV)/bin/mypy qsafe
	$(VENV)/bin/mypy plugins/qsafe-liboqs/qsafe_liboqs
	$(VENV)/bin/mypy plugins/qsafe-flower/qsafe_flower

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
	rm -rf $(VENV) $(addsuffix /node_modules,$(NODEDIRS)) .pytest_cache .hypothesis build/liboqs build/liboqs-src \
	  build/oqs-prefix
