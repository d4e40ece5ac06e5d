# Two commands do all the set-up on a fresh machine (see README.md):
#   make lab    JupyterLab on the lessons, replay mode, no key needed
#   make test   every test: lint, unit tests, nbval on every notebook, then lessons 0, 2, 3 and 4 live against the simulator
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Arize Phoenix, lesson 12's trace UI, gets a venv of its own inside this one: it pins anthropic<2 and the lessons
# pin anthropic 2. llmkit.phoenix runs it as a program and talks to it over HTTP; nothing imports it.
PHOENIX_STAMP := $(VENV)/phoenix/.installed
PYTHON ?= python3
# PyTorch wheel index. Empty: PyPI, whose Linux wheels are the CUDA build (~2.7 GB to download with the NVIDIA
# wheels, against a 192 MB CPU wheel; README.md). On a Linux machine
# without an NVIDIA GPU, use the CPU-only wheels instead:
#   make venv TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
# make lab: loopback address, port and token of the server (empty token: Jupyter makes one and prints the URL).
# In a container whose port is published to the host, use JUPYTER_IP=0.0.0.0. LAB_ARGS=--no-browser for a server
# without a browser window.
JUPYTER_IP    ?= 127.0.0.1
JUPYTER_PORT  ?= 8888
JUPYTER_TOKEN ?=
export JUPYTER_TOKEN  # Jupyter reads it from the environment: the token never shows on a command line
LAB_ARGS      ?=
# JupyterLab settings the lessons need (no news pop-up over lesson 0), installed into the venv, not into $$HOME.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
# Jupyter refuses to start as root unless told to; containers and many cloud notebooks run as root.
AS_ROOT := $(filter 0,$(shell id -u))
# make book writes the static site here (build/ is ignored by git). BOOK_OPTS="-W --keep-going" (the tests) turns
# every warning, such as a lesson's broken link, into a failure.
BOOK_DIR  ?= build/book
BOOK_OPTS ?=
# make notebooks NBVAL_JUNIT=report.xml also writes a JUnit XML report of the notebook checks (CI uploads it).
NBVAL_JUNIT ?=
# More pytest options for make notebooks, e.g. NBVAL_ARGS=--durations=0 for each cell's time.
NBVAL_ARGS ?=
# Tests replay at speed 0 and never use real keys.
TESTENV := LLMKIT_MODE=replay LLMKIT_SPEED=0 OPENAI_API_KEY= ANTHROPIC_API_KEY= GEMINI_API_KEY= GOOGLE_API_KEY=

.PHONY: lab book test lint unit notebooks sysdeps venv venv-phoenix execute clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	# torch first, on its own, so TORCH_INDEX_URL decides which build (CPU or CUDA) the pin resolves to.
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

$(PHOENIX_STAMP): scripts/phoenix-constraints.txt $(STAMP)
	test -x $(VENV)/phoenix/bin/python || $(PYTHON) -m venv $(VENV)/phoenix
	$(VENV)/phoenix/bin/python -m pip install --quiet --upgrade pip==26.3
	$(VENV)/phoenix/bin/python -m pip install --quiet -c scripts/phoenix-constraints.txt arize-phoenix==20.26.1
	touch $(PHOENIX_STAMP)

venv-phoenix: $(PHOENIX_STAMP)

sysdeps:
	bash scripts/sysdeps.sh

$(LAB_OVERRIDES): scripts/jupyterlab-overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp scripts/jupyterlab-overrides.json $@

lab: $(STAMP) $(LAB_OVERRIDES) $(PHOENIX_STAMP)
	@echo "JupyterLab on the lessons: http://$(JUPYTER_IP):$(JUPYTER_PORT)/lab (mode $${LLMKIT_MODE:-replay})"
	@echo "$(if $(AS_ROOT),Running as root: passing --allow-root to Jupyter (normal in a container).,Running as $$(id -un).)"
	@echo "$(if $(JUPYTER_TOKEN),Token: from JUPYTER_TOKEN.,Token: Jupyter prints the URL with its token below.) Stop it with Ctrl-C."
	cd notebooks && LLMKIT_MODE=$${LLMKIT_MODE:-replay} $(abspath $(VENV))/bin/jupyter lab --ip=$(JUPYTER_IP) \
	  --port=$(JUPYTER_PORT) $(if $(AS_ROOT),--allow-root) $(LAB_ARGS)

# A static HTML site of every lesson from its saved outputs (nothing is re-executed): $(BOOK_DIR)/html/index.html
# Lessons are notebooks/NN_name.ipynb, and NNb_name.ipynb for the second part of a split lesson.
book: $(STAMP)
	rm -rf $(BOOK_DIR)/src $(BOOK_DIR)/html $(BOOK_DIR)/jupyter_execute
	mkdir -p $(BOOK_DIR)/src
	cp -R docs/book/. $(BOOK_DIR)/src/
	cp notebooks/[0-9][0-9]*_*.ipynb $(BOOK_DIR)/src/
	for d in images solutions; do if [ -d notebooks/$$d ]; then cp -R notebooks/$$d $(BOOK_DIR)/src/; fi; done
	$(PY) -m sphinx -b html -q $(BOOK_OPTS) $(BOOK_DIR)/src $(BOOK_DIR)/html
	@echo "The book: $(BOOK_DIR)/html/index.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check llmkit tests benchmarks scripts docs/book
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

unit: $(STAMP) $(PHOENIX_STAMP) sysdeps
	$(TESTENV) $(PY) -m pytest -q tests

# Inside a loopback-only network namespace when the OS allows it (scripts/netns.sh says which).
# Each pytest process loads only what nbval needs: scripts/nbval_startup.py and no hypothesis or anyio plugin
# save ~2.5 s of CPU in each of the three processes of -n 2 (docs/notebooks.md, "Running many notebooks at once").
notebooks: $(STAMP) $(PHOENIX_STAMP)
	$(TESTENV) bash scripts/netns.sh $(PY) -m pytest -q -p scripts.nbval_startup -p no:hypothesispytest -p no:anyio \
	  -p no:python --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=120 \
	  -n 2 --dist loadscope $(if $(NBVAL_JUNIT),--junitxml=$(NBVAL_JUNIT)) $(NBVAL_ARGS) notebooks

test: lint unit notebooks rehearse-ci

# Re-run lessons in replay mode and save their outputs: make execute NB="notebooks/00_*.ipynb"
execute: $(STAMP)
	$(PY) scripts/execute_notebook.py $(NB)

# Every lesson and solution run live, and recorded then replayed, against the provider simulator (temporary
# copies only): make rehearse REHEARSE_ARGS="--seed 7 --profile chat-completions-only --modes live"
.PHONY: rehearse rehearse-ci
REHEARSE_ARGS ?=
rehearse: $(STAMP) $(PHOENIX_STAMP)
	$(PY) scripts/rehearse.py $(REHEARSE_ARGS)

# Lessons 0, 2, 3 and 4 live only: the quick rehearsal.
rehearse-ci: $(STAMP) $(PHOENIX_STAMP)
	$(PY) scripts/rehearse.py --modes live --notebooks notebooks/00_*.ipynb notebooks/02_*.ipynb \
	  notebooks/03_*.ipynb notebooks/04_*.ipynb $(REHEARSE_ARGS)

clean-venv:
	rm -rf $(VENV)
