# Two commands for readers: `make book` and `make test`. Both create .venv when it is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed
SITE   ?= _build/html

.PHONY: setup book book-fast test bench check-site clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## The whole book, full settings, into _build/html (cached: only changed chapters re-run).
book: $(STAMP)
	$(JB) build -W -n --keep-going .

## The book in fast mode (LOCALITY_FAST=1) into _build/fast/_build/html.
book-fast: $(STAMP)
	LOCALITY_FAST=1 $(JB) build -W -n --keep-going --path-output _build/fast .

## Library tests, then every chapter executed in fast mode (the book-fast build).
test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf _build
