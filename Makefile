# Two commands do all the set-up on a fresh machine (see README.md):
#   make lab    JupyterLab on the lessons, replay mode, no key needed
#   make test   every test: lint, unit tests, then nbval on every notebook
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3
# PyTorch wheel index. Empty: PyPI, whose Linux wheels bundle CUDA (several GB). On a Linux machine
# without an NVIDIA GPU, use the CPU-only wheels instead:
#   make venv TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
# Tests replay at speed 0 and never use real keys.
TESTENV := LLMKIT_MODE=replay LLMKIT_SPEED=0 OPENAI_API_KEY= ANTHROPIC_API_KEY= GEMINI_API_KEY= GOOGLE_API_KEY=

.PHONY: lab test lint unit notebooks sysdeps venv execute clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	# torch first, on its own, so TORCH_INDEX_URL decides which build (CPU or CUDA) the pin resolves to.
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) torch==2.13.0
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

# Inside a loopback-only network namespace when the OS allows it (scripts/netns.sh says which).
notebooks: $(STAMP)
	$(TESTENV) bash scripts/netns.sh $(PY) -m pytest -q -p no:python --nbval --nbval-current-env \
	  --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=120 \
	  -n 2 --dist loadscope notebooks

test: lint unit notebooks

# Re-run lessons in replay mode and save their outputs: make execute NB="notebooks/00_*.ipynb"
execute: $(STAMP)
	$(PY) scripts/execute_notebook.py $(NB)

clean-venv:
	rm -rf $(VENV)
