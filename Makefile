# Two commands set everything up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: test test-random test-long demo demos notebooks bench images graphviz chromium torch clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.test-installed: setup.cfg pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[test]'
	@touch $@

$(VENV)/.demo-installed: setup.cfg pyproject.toml $(VENV)/.test-installed
	$(PIP) install --quiet -e '.[demo]'
	@touch $@

graphviz:
	@sh scripts/install_graphviz.sh

# headless Chromium and chromedriver, for the explorer page's browser tests (skipped without them)
chromium:
	@sh scripts/install_chromium.sh

## make test: set up .venv and run the test suite (a few minutes; the demos' quick runs and the browser tests are in it)
test: $(VENV)/.demo-installed graphviz chromium
	$(PY) -m pytest

## make test-random: the suite in a random order, printed as its seed; SEED=N runs that order again
test-random: $(VENV)/.demo-installed graphviz chromium
	$(PY) -m pytest -p randomly $(if $(SEED),--randomly-seed=$(SEED))

## make test-long: the property tests with many more examples, plus the slow checks
test-long: $(VENV)/.demo-installed graphviz chromium
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -m "slow or not slow"

## make demo: set up .venv and run the quick demo tour
demo: $(VENV)/.demo-installed graphviz
	$(PY) demos/tour.py

## make torch: add PyTorch (CPU build) to .venv for the parity tests and benchmarks
torch: $(VENV)/.test-installed
	$(PIP) install --quiet 'torch==2.13.0'

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis

## make images: regenerate the pictures shown in README (docs/images/; the demo plots take a few minutes)
images: $(VENV)/.demo-installed graphviz chromium
	$(PY) scripts/make_images.py
	$(PY) demos/03_vanishing_exploding.py && cp out/03_gradient_norms.png docs/images/demo_gradient_norms.png
	$(PY) demos/04_long_term.py && cp out/04_adding.png docs/images/demo_adding_problem.png \
		&& cp out/04_gates.png docs/images/bptt_gates.png
	$(PY) demos/06_time_series.py && cp out/06_forecast.png docs/images/demo_forecast.png
	$(PY) demos/09_what_units_learn.py && cp out/09_depth_unit.png docs/images/demo_depth_unit.png \
		&& $(PY) scripts/screenshot_sequence.py

## make demos: every demo in full
demos: $(VENV)/.demo-installed graphviz
	for demo in demos/[0-9][0-9]_*.py; do $(PY) $$demo || exit 1; done

## make notebooks: run every demo as a notebook (its --quick settings) in a Jupyter kernel and
## write it, outputs and pictures included, into docs/notebooks/
notebooks: $(VENV)/.demo-installed graphviz
	$(PY) scripts/make_notebooks.py

$(VENV)/.bench-installed: setup.cfg pyproject.toml $(VENV)/.demo-installed
	$(PIP) install --quiet -e '.[demo,bench]'
	@touch $@

## make bench: speed and memory against hand-written numpy, DeZero and PyTorch (`make torch` first)
# glibc keeps freed memory, so every implementation meets the same allocator whatever ran before it.
bench: $(VENV)/.bench-installed
	MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
		$(PY) benchmarks/bench.py --threads 1
