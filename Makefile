# Two commands for readers: `make book` and `make test`. Both create .venv when it is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed
SITE   ?= _build/html
ASSETS := _extra/offline/VERSIONS.json

.PHONY: setup book book-fast test bench check-site clean assets strip

# A new .venv takes 6.2 GB (pip's torch wheel brings its NVIDIA libraries): say so before pip fills the disk.
$(STAMP): requirements.txt pyproject.toml
	@if [ ! -x $(PY) ]; then free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt 8 ]; then \
	    echo "setup: a new $(VENV) needs about 8 GB free (torch with its NVIDIA libraries, then the book's packages);" \
	         "only $$free GB is free on $$(df -P . | awk 'NR==2 {print $$6}'). Free some space and rerun." >&2; exit 1; fi; fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## The whole book, full settings, into _build/html (cached: only changed chapters re-run).
## LOCALITY_BOOK_BUILD=1: locality_lib.plotting.interactive draws its static animation (a page has no kernel).
book: $(STAMP) $(ASSETS)
	LOCALITY_BOOK_BUILD=1 $(JB) build -W -n --keep-going .

## The book in fast mode (LOCALITY_FAST=1) into _build/fast/_build/html.
book-fast: $(STAMP) $(ASSETS)
	LOCALITY_FAST=1 LOCALITY_BOOK_BUILD=1 $(JB) build -W -n --keep-going --path-output _build/fast .

## Library tests, then every chapter executed in fast mode (the book-fast build).
test: $(STAMP) $(ASSETS)
	$(PY) -m pytest -q

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

## Offline copies of MathJax, RequireJS and the widget manager (npm), served by the site itself.
$(ASSETS): tools/fetch_assets.py tools/widgets_config.js tools/colab_badge.svg | $(STAMP)
	$(PY) tools/fetch_assets.py

assets: $(ASSETS)

## The rendered site in headless Chromium: math, images, outputs, Colab links, widgets, links,
## no CDN request; screenshots in _build/screenshots. CI: make check-site SITE=_build/fast/_build/html
check-site: $(STAMP)
	$(PY) tools/check_site.py --self-test $(SITE)

## Remove outputs from the chapters before committing (tools/strip_outputs.py --check only reports).
strip: $(STAMP)
	$(PY) tools/strip_outputs.py

clean:
	rm -rf _build
