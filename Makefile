# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: demo test lint format migrate seed worker beat bench browser-deps clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

demo: $(VENV)/.installed  ## set up and run the product on embedded defaults (SQLite, eager Celery)
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py seed_demo --site-origin http://$(HOST):$(PORT)
	@echo ""
	@echo "  LeadCRM is starting on http://$(HOST):$(PORT)/"
	@echo "  Log in as manager / demo (admin and reports) or sales1, sales2, sales3 / demo."
	@echo "  Demo website with the chat widget: http://$(HOST):$(PORT)/chat/demo/site/"
	@echo ""
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

test: $(VENV)/.installed browser-deps  ## set up, lint, and run the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	DEBUG=1 $(PY) manage.py check
	$(VENV)/bin/pytest $(PYTEST_ARGS)

browser-deps:  ## Debian's Chromium for the Playwright tests (installed when missing and we are root)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else echo "Browser tests need /usr/bin/chromium: sudo apt-get install chromium (they are skipped without it)"; fi; \
	fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

worker: $(VENV)/.installed  ## production shape: needs DATABASE_URL and REDIS_URL
	$(VENV)/bin/celery -A config worker -l info --concurrency 2

beat: $(VENV)/.installed
	$(VENV)/bin/celery -A config beat -l info

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache
