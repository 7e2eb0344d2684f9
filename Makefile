# h2ws: the single entry point. `make demo` and `make test` set up everything
# they need (Debian packages, .venv) and skip what is already there.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMPS  := .stamps
CLANG   ?= clang
FUZZ_SECONDS ?= 60

CORE_SRC := $(wildcard csrc/core/*.c)
ALL_C    := $(wildcard csrc/*/*.c csrc/*/*.h)
PY_SRC   := $(wildcard h2ws/*.py h2ws/*.pyi)

.PHONY: demo echo-demo codec-demo test setup sysdeps venv build test-release test-asan fuzz bench lint typecheck clean

DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8443
CERT_DIR  := build/demo-cert

demo: build $(CERT_DIR)/cert.pem
	@echo "demo: open https://$(DEMO_HOST):$(DEMO_PORT)/ (self-signed certificate)"
	$(VENV)/bin/h2ws examples.demo:app --host $(DEMO_HOST) --port $(DEMO_PORT) \
	  --certfile $(CERT_DIR)/cert.pem --keyfile $(CERT_DIR)/key.pem

echo-demo: build $(CERT_DIR)/cert.pem
	$(PY) examples/echo_server.py --host $(DEMO_HOST) --port $(DEMO_PORT) \
	  --certfile $(CERT_DIR)/cert.pem --keyfile $(CERT_DIR)/key.pem

# A self-signed certificate for 127.0.0.1 and localhost, for the demo.
$(CERT_DIR)/cert.pem: $(STAMPS)/sysdeps
	@mkdir -p $(CERT_DIR)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
	  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	  -keyout $(CERT_DIR)/key.pem -out $@ 2>/dev/null

codec-demo: build
	$(PY) examples/codec_demo.py

test: build lint typecheck test-release test-asan fuzz
	@echo "make test: all stages passed"

setup: $(STAMPS)/venv

sysdeps: $(STAMPS)/sysdeps

$(STAMPS)/sysdeps: scripts/sysdeps.sh
	bash scripts/sysdeps.sh
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: $(STAMPS)/sysdeps pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install -q -e '.[test,bench,dev]'
	@touch $@

# The release build, in place (what `pip install` gives users).
build: $(STAMPS)/venv $(STAMPS)/build
$(STAMPS)/build: $(ALL_C) setup.py
	$(PY) setup.py -q build_ext --inplace
	@touch $@

# Debug (-Werror, allocation counting) + ASan/UBSan build, in a copy of the
# tree under build/asan, so that the suite run from there imports that build.
ASAN_TREE := build/asan
$(STAMPS)/asan: $(STAMPS)/venv $(ALL_C) $(PY_SRC) setup.py
	rm -rf $(ASAN_TREE) && mkdir -p $(ASAN_TREE)
	cp -r h2ws csrc setup.py pyproject.toml README.md $(ASAN_TREE)/
	rm -f $(ASAN_TREE)/h2ws/_core*.so
	cd $(ASAN_TREE) && H2WS_DEBUG=1 H2WS_SANITIZE=1 ../../$(PY) setup.py -q build_ext --inplace --force
	@touch $@

test-release: build
	$(PY) -m pytest

# The suite against the sanitizer build (tests copied fresh each run).
test-asan: $(STAMPS)/asan
	rm -rf $(ASAN_TREE)/tests $(ASAN_TREE)/examples $(ASAN_TREE)/docs && cp -r tests examples docs $(ASAN_TREE)/
	cd $(ASAN_TREE) && H2WS_EXPECT_BUILD=asan \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	PYTHONMALLOC=malloc \
	../../$(PY) -m pytest -p no:cacheprovider -q $(ASAN_PYTEST_ARGS)

# libFuzzer with ASan+UBSan+LSan over the codec and the session glue, bounded in time.
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -DH2WS_DEBUG -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Icsrc/core
build/fuzz/%: csrc/fuzz/%.c $(CORE_SRC) $(wildcard csrc/core/*.h) $(STAMPS)/sysdeps
	@mkdir -p build/fuzz
	$(CLANG) $(FUZZ_CFLAGS) $< $(CORE_SRC) $$(pkg-config --libs libnghttp2 libcrypto) -o $@

fuzz: build/fuzz/fuzz_ws build/fuzz/fuzz_session
	@mkdir -p build/fuzz/corpus-ws build/fuzz/corpus-session
	build/fuzz/fuzz_ws -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) -rss_limit_mb=2048 -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-ws csrc/fuzz/seeds
	build/fuzz/fuzz_session -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) -rss_limit_mb=2048 -max_len=8192 \
	  -print_final_stats=1 build/fuzz/corpus-session csrc/fuzz/seeds-session

# The WebSocket load generator (benchmarks/loadgen, docs/loadgen.md): plain C on
# libnghttp2 + OpenSSL, independent of csrc/.
.PHONY: loadgen
LOADGEN_SRC := $(wildcard benchmarks/loadgen/*.c benchmarks/loadgen/*.h)
LOADGEN_CFLAGS ?= -O2 -g
loadgen: build/loadgen
build/loadgen: $(LOADGEN_SRC) $(STAMPS)/sysdeps
	@mkdir -p build
	$(CC) -std=c11 -D_GNU_SOURCE $(LOADGEN_CFLAGS) -Wall -Wextra -Werror \
	  $$(pkg-config --cflags libnghttp2 libssl libcrypto) $(filter %.c,$(LOADGEN_SRC)) \
	  $$(pkg-config --libs libnghttp2 libssl libcrypto) -lm -o $@

# Benchmarks: the codec next to its peers (bench-codec), then the servers side by
# side under build/loadgen (benchmarks/run.py, docs/benchmarking.md), which writes
# docs/benchmarks.md. bench-smoke: a fraction of a second per run, into build/bench-smoke/.
.PHONY: bench-codec bench-servers bench-smoke tcp_echo
bench: bench-codec bench-servers

bench-codec: build
	$(PY) benchmarks/bench_codec.py

bench-servers: build loadgen tcp_echo
	$(PY) benchmarks/run.py $(BENCH_ARGS)

bench-smoke: build loadgen tcp_echo
	$(PY) benchmarks/run.py --smoke $(BENCH_ARGS)

tcp_echo: build/tcp_echo
build/tcp_echo: benchmarks/servers/tcp_echo.c
	@mkdir -p build
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror $< -o $@

lint: $(STAMPS)/venv
	$(PY) -m ruff check h2ws tests benchmarks examples
	$(PY) -m ruff format --check h2ws examples

typecheck: build
	$(PY) -m mypy
	$(PY) -m mypy.stubtest h2ws._core

clean:
	rm -rf build $(STAMPS) h2ws/_core*.so
