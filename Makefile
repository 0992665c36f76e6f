# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test redis-server chromium bench clean

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

# The benchmark report (docs/benchmarks.md) with its plots: matplotlib is in `bench`.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV)
