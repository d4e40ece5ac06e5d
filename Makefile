# Two commands do all the set-up on a fresh machine:
#   make lab    JupyterLab on the lessons, replay mode, no key needed
#   make test   every test: unit tests, then nbval on every notebook
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYVER  ?= python3

.PHONY: lab test unit notebooks lint venv clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYVER) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	# torch first and explicitly: a CPU build is available here; unpinned it pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

lab: $(STAMP)
	cd notebooks && LLMKIT_MODE=$${LLMKIT_MODE:-replay} ../$(VENV)/bin/jupyter lab

unit: $(STAMP)
	$(PY) -m pytest -q tests

notebooks: $(STAMP)
	$(PY) -m pytest -q -p no:python --nbval --nbval-current-env \
	  --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=120 \
	  -n 2 --dist loadscope notebooks

lint: $(STAMP)
	$(VENV)/bin/ruff check llmkit tests

test: lint unit notebooks

clean-venv:
	rm -rf $(VENV)
