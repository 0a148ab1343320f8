# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
# Use a virtual screen for napari when there is no display.
XVFB   := $(if $(DISPLAY),,$(shell command -v xvfb-run >/dev/null 2>&1 && echo 'xvfb-run -a -s "-screen 0 1600x1000x24"'))
export HF_HUB_OFFLINE ?= 1
export OMP_NUM_THREADS ?= 1
# Cache bytecode: recompiling napari and torch on every run costs tens of seconds.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint clean-venv

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -q -e ".[pyqt6]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -q -e ".[dev,pyqt6]"
	touch $@

demo: $(VENV)/.installed
	$(XVFB) $(VENV)/bin/cliprl demo $(DEMO_ARGS)

test: $(VENV)/.installed-dev
	$(XVFB) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
