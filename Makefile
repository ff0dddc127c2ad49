# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= etc/omnigate.toml

.PHONY: run test bench lint venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m omnigate run -c $(CONFIG)

test: venv
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check omnigate tests bench

bench: venv
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } \
	  || echo "wrk not installed: the load comes from a Python client (slower, it shares the CPU)"
	$(PY) bench/throughput.py
	$(PY) bench/accounts.py
	$(PY) bench/routing.py
	$(PY) bench/tcp.py
	$(PY) bench/smpp_server.py
	$(PY) bench/http_link.py
	$(PY) bench/modem.py
	$(PY) bench/spool.py
	$(PY) bench/oncall.py

clean:
	rm -rf $(VENV) var .pytest_cache
