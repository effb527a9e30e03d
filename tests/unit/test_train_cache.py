"""Training-time activation caching (qadapt/training/lm.py): the frozen prefix's output is computed once per chunk, and
training with the cache gives the losses and adapter weights of training without it."""

from __future__ import annotations

import pytest
import torch
from helpers.tiny import tiny_llama as _tiny_llama

from qadapt import adapters, devices
from qadapt.config import compose
from qadapt.errors import ConfigError, TrainingInterrupted
from qadapt.training.lm import ChunkActivations, first_trainable_layer, fit


def _adapted(layers: str = "[2,3]"):
    cfg = compose([f"adapter.layers={layers}", "adapter.modules=[v_proj,down_proj]"])
    model = _tiny_llama()
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    return model


def _train_cfg(*extra):
    return compose(
        [
            "train.max_steps=6",
            "train.batch_size=2",
            "train.lr=0.05",
            "train.warmup_steps=0",
            "train.log_every=1",
            *extra,
        ]
    ).train


CHUNKS = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(1))  # 3 chunks, 12 visits: repeats


@pytest.mark.parametrize("max_gib", [2.0, 0.0])  # in memory, and spilled to a memory-mapped file
def test_cached_training_equals_uncached(tmp_path, max_gib):
    plain, cached = _adapted(), _adapted()
    (tmp_path / "a").mkdir()
    a = fit(plain, CHUNKS, _train_cfg("train.cache_activations=false"), tmp_path / "a", seed=0, resume=False)
    (tmp_path / "b").mkdir()
    b = fit(
        cached,
        CHUNKS,
        _train_cfg("train.cache_activations=true", f"train.cache_max_gib={max_gib}"),
        tmp_path / "b",
        seed=0,
        resume=False,
    )
    assert a.cache_layer is None and b.cache_layer == 2
    assert b.cache_storage == ("memory" if max_gib else "disk")
    assert not (tmp_path / "b" / "activations.bin").exists()  # the spill file goes with the run
    assert b.losses == pytest.approx(a.losses, rel=1e-5, abs=1e-6)
    assert a.losses[-1] < a.losses[0] - 0.01  # it trained: equality is not two untouched models
    mine, theirs = adapters.adapter_state_dict(cached), adapters.adapter_state_dict(plain)
    for name in theirs:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-6)


def test_auto_caches_only_when_a_chunk_comes_back(tmp_path):
    once = fit(_adapted(), CHUNKS, _train_cfg("train.max_steps=1"), tmp_path, seed=0, resume=False)
    again = fit(_adapted(), CHUNKS, _train_cfg("train.max_steps=3"), tmp_path, seed=0, resume=False)
    assert once.cache_layer is None and again.cache_layer == 2
    with pytest.raises(ConfigError, match="auto, true, false"):
        fit(_adapted(), CHUNKS, _train_cfg("train.cache_activations=sometimes"), tmp_path, seed=0, resume=False)


def test_first_trainable_layer():
    assert first_trainable_layer(_adapted("[2,3]")) == 2
    assert first_trainable_layer(_adapted("[0,3]")) is None  # nothing frozen below layer 0
    model = _adapted("[3]")
    assert first_trainable_layer(model) == 3
    model.get_input_embeddings().weight.requires_grad_(True)
    assert first_trainable_layer(model) is None  # the embeddings train: every layer sees new inputs
    frozen = _tiny_llama().requires_grad_(False)
    assert first_trainable_layer(frozen) is None


def test_the_cache_computes_each_chunk_once(tmp_path, monkeypatch):
    import qadapt.training.lm as train

    model, calls = _adapted(), []
    real = train.hidden_at
    monkeypatch.setattr(
        train, "hidden_at", lambda m, ids, mask, layer: calls.append(ids.shape[0]) or real(m, ids, mask, layer)
    )
    cache = ChunkActivations(model, CHUNKS, torch.tensor([0, 2, 2, 0]), 2, 1.0, tmp_path)
    first = cache.stream(torch.tensor([0, 2]), "cpu")
    again = cache.stream(torch.tensor([2, 0]), "cpu")
    assert calls == [2]  # one pass for both chunks, none on the second visit
    assert torch.equal(again, first.flip(0))
    with torch.no_grad():
        torch.testing.assert_close(first, real(model, CHUNKS[[0, 2]], None, 2))
    with pytest.raises(ValueError, match="batch order"):
        cache.stream(torch.tensor([1]), "cpu")


def test_learning_curve_points_survive_a_resume(tmp_path):
    """train.eval_every: a point before the first step, every eval_every steps and after the last, taken in eval mode
    (the mode is restored); a run interrupted after a checkpoint and resumed has the uninterrupted run's curve."""
    modes = []

    def run(model, directory, resume=False, fail_at=None):
        def validate():
            modes.append(model.training)
            if len(modes) == fail_at:
                raise KeyboardInterrupt
            return float(sum(p.detach().double().square().sum() for p in model.parameters() if p.requires_grad))

        cfg = _train_cfg("train.max_steps=5", "train.save_every=2", "++train.eval_every=2")
        directory.mkdir(exist_ok=True)
        return fit(model, CHUNKS, cfg, directory, seed=0, resume=resume, validate=validate)

    model = _adapted().train()
    whole = run(model, tmp_path / "a")
    assert [s for s, _ in whole.curve] == [0, 2, 4, 5]
    assert modes == [False] * 4 and model.training
    modes.clear()
    part = _adapted().train()
    with pytest.raises(TrainingInterrupted):
        run(part, tmp_path / "b", fail_at=3)  # stops at the step-4 point; the step-2 checkpoint holds [0, 2]
    resumed = run(_adapted().train(), tmp_path / "b", resume=True)
    assert [s for s, _ in resumed.curve] == [0, 2, 4, 5]
    torch.testing.assert_close(torch.tensor(resumed.curve), torch.tensor(whole.curve), rtol=1e-6, atol=0)


def test_the_last_steps_checkpoint_holds_the_weights_without_optimizer_state(tmp_path):
    """After the last step nothing steps again: the checkpoint keeps the weights, losses and step but not AdamW's
    moments; resuming from it trains nothing and gives the finished weights; a run_name asking for more steps than
    it holds is told what to do instead of training on without its optimizer state."""
    from qadapt.errors import QadaptError
    from qadapt.training.lm import CHECKPOINT, load_checkpoint

    cfg = _train_cfg("train.max_steps=3", "train.save_every=2")
    model = _adapted()
    done = fit(model, CHUNKS, cfg, tmp_path, seed=0, resume=False)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["step"] == 3 and state["optimizer"] is None and state["scheduler"] is None
    assert state["losses"] == done.losses
    trained = adapters.adapter_state_dict(model)
    torch.testing.assert_close(state["adapter"], {n: t for n, t in trained.items() if n in state["adapter"]})
    fresh = _adapted()
    again = fit(fresh, CHUNKS, cfg, tmp_path, seed=0, resume=True)
    assert again.losses == done.losses
    torch.testing.assert_close(adapters.adapter_state_dict(fresh), trained, rtol=0, atol=0)
    with pytest.raises(QadaptError, match=r"holds a finished run of 3 steps.*train.max_steps=4"):
        fit(_adapted(), CHUNKS, _train_cfg("train.max_steps=4"), tmp_path, seed=0, resume=True)


def test_a_memo_tokenises_a_training_text_once_per_model():
    """A study's cells share the training text's token ids through their Memo; another model or text tokenises
    again, and without a memo every run tokenises."""
    from types import SimpleNamespace

    from qadapt.data.wikitext import Text
    from qadapt.experiments.wikitext_ppl import train_ids
    from qadapt.memo import Memo

    calls = []

    def tokenizer(text, add_special_tokens):
        calls.append(text)
        return SimpleNamespace(input_ids=[len(text), int(add_special_tokens)])

    cfg, other = compose([]), compose(["model=gemma3_270m"])
    text, memo = Text("one two three", "local:wikitext-2/wiki.valid.tokens (unk=drop)"), Memo()
    assert train_ids(cfg, tokenizer, text, memo) == [13, 0] and len(calls) == 1
    assert train_ids(cfg, tokenizer, text, memo) is train_ids(cfg, tokenizer, text, memo) and len(calls) == 1
    train_ids(other, tokenizer, text, memo)
    train_ids(cfg, tokenizer, Text("four five", "local:wikitext-2/wiki.train.raw"), memo)
    assert len(calls) == 3
    train_ids(cfg, tokenizer, text)
    train_ids(cfg, tokenizer, text)
    assert len(calls) == 5
