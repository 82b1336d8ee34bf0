# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# Benchmarks run against PostgreSQL (a database of their own, created when missing) and print JSON last.
BENCH_PG ?= postgres://postgres@127.0.0.1:5432
BENCH_ARGS ?=
ensure-db = psql "$(BENCH_PG)/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$(1)'" | grep -q 1 \
	|| psql "$(BENCH_PG)/postgres" -qc 'CREATE DATABASE "$(1)"'

.PHONY: demo test lint typecheck format worker beat browser-deps clean \
	bench-scoring bench-ml bench-chat bench-pages eval-intents eval-sentiment

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

test: $(VENV)/.installed browser-deps  ## set up, lint, type-check, and run the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 $(VENV)/bin/mypy
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

typecheck: $(VENV)/.installed  ## mypy with django-stubs over the non-test code
	DEBUG=1 $(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

worker: $(VENV)/.installed  ## production shape: needs DATABASE_URL and REDIS_URL
	$(VENV)/bin/celery -A config worker -l info --concurrency 2

beat: $(VENV)/.installed
	$(VENV)/bin/celery -A config beat -l info

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache

# --- Benchmarks and evaluations (docs/benchmarks.md records their figures) ---------------------
bench-scoring: $(VENV)/.installed  ## rule scoring: single-lead, event-to-score, full recompute
	$(call ensure-db,bench)
	DATABASE_URL=$(BENCH_PG)/bench DEBUG=1 $(PY) manage.py bench_scoring $(BENCH_ARGS)

bench-ml: $(VENV)/.installed  ## predictive scoring: training time and the prediction path's rows/s
	$(call ensure-db,bench_ml)
	DATABASE_URL=$(BENCH_PG)/bench_ml DEBUG=1 $(PY) manage.py bench_ml $(BENCH_ARGS)

bench-chat: $(VENV)/.installed  ## live chat: many visitors against an ASGI server (REDIS_URL: Redis layer)
	$(call ensure-db,bench_chat)
	DATABASE_URL=$(BENCH_PG)/bench_chat DEBUG=1 $(PY) manage.py bench_chat $(BENCH_ARGS)

bench-pages: $(VENV)/.installed  ## the queue and the lead panel under concurrent salespeople
	$(call ensure-db,bench_dash)
	DATABASE_URL=$(BENCH_PG)/bench_dash DEBUG=1 $(PY) manage.py bench_pages $(BENCH_ARGS)

eval-intents: $(VENV)/.installed  ## the FAQ matcher on ../shared/data/banking77_intents.csv
	DEBUG=1 $(PY) manage.py eval_intents $(BENCH_ARGS)

eval-sentiment: $(VENV)/.installed  ## the chat's frustration detector on ../shared/data (measure only)
	DEBUG=1 $(PY) manage.py eval_sentiment $(BENCH_ARGS)
