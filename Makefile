# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test redis-server chromium wrk bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m runtime demo

# The Redis tier's tests run against a real redis-server on loopback. Install Debian's
# package when it is missing and we may (root with apt-get); otherwise those tests skip
# locally with a hint -- and fail in CI (CI=true), where a skip would hide them.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (Debian package)"; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null; \
	  else echo "note: redis-server not found; the Redis tier tests will skip"; fi; }

# The report and dashboard pages are checked in a real browser: Debian's chromium, the
# same way (installed when missing and we may; else those tests skip locally, fail in CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package)"; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not found; the browser tests will skip"; fi; }

test: $(STAMP) redis-server chromium
	$(BIN)/ruff check runtime tests benchmarks docs
	$(BIN)/ruff format --check runtime tests benchmarks docs
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# scaleout_bench's load generator: Debian's wrk, installed the same way for `make bench`
# only (without it the benchmark falls back to a costlier Python generator, and says so).
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing wrk (Debian package)"; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; \
	  else echo "note: wrk not found; scaleout_bench uses its Python load generator"; fi; }

# The benchmark report (docs/benchmarks.md) with its plots: matplotlib is in `bench`.
bench: $(STAMP) redis-server wrk
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV)
