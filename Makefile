# Two commands do all the set-up on a fresh machine (see README.md):
#   make lab    JupyterLab on the lessons, replay mode, no key needed
#   make test   every test: lint, unit tests, then nbval on every notebook
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3
# Tests replay at speed 0 and never use real keys.
TESTENV := LLMKIT_MODE=replay LLMKIT_SPEED=0 OPENAI_API_KEY= ANTHROPIC_API_KEY= GEMINI_API_KEY= GOOGLE_API_KEY=

.PHONY: lab test lint unit notebooks sysdeps venv execute clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	# torch first and explicitly: a CPU build is available here; unpinned it pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	bash scripts/sysdeps.sh

lab: $(STAMP)
	cd notebooks && LLMKIT_MODE=$${LLMKIT_MODE:-replay} ../$(VENV)/bin/jupyter lab

lint: $(STAMP)
	$(VENV)/bin/ruff check llmkit tests benchmarks scripts

unit: $(STAMP) sysdeps
	$(TESTENV) $(PY) -m pytest -q tests

notebooks: $(STAMP)
	$(TESTENV) $(PY) -m pytest -q -p no:python --nbval --nbval-current-env \
	  --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=120 \
	  -n 2 --dist loadscope notebooks

test: lint unit notebooks

# Re-run lessons in replay mode and save their outputs: make execute NB="notebooks/00_*.ipynb"
execute: $(STAMP)
	$(PY) scripts/execute_notebook.py $(NB)

clean-venv:
	rm -rf $(VENV)
