"""Perplexity windows (both modes), WikiText parsing, the hub-download layout, the results store.
(Split by kind: its unit tests are in tests/unit/test_windows_data.py.)"""

import re

import pytest

from qadapt.data.fetch import download_wikitext, fill, rows_to_upstream
from qadapt.data.wikitext import handle_unk, load_eval_text, load_train_text, split_articles
from qadapt.errors import ConfigError
from qadapt.eval.windows import rolling_windows


def test_split_articles_on_the_real_test_split(data_dir):
    text = load_eval_text(data_dir).text
    articles = split_articles(text)
    assert len(articles) == 62
    assert articles[0].startswith(" = Robert Boulter = ")
    assert "".join(articles).strip() == text.strip()


def test_train_text_falls_back_to_validation_with_unk_handled(data_dir, monkeypatch, tmp_path):
    import qadapt.hub

    monkeypatch.setenv("QADAPT_CACHE", str(tmp_path))
    monkeypatch.setattr(qadapt.hub, "hub_reachable", lambda timeout=3.0: False)  # as on a machine without the hub
    text = load_train_text(data_dir, "auto", "drop")
    assert "<unk>" not in text.text and "unk=drop" in text.source
    assert "<unk>" in load_train_text(data_dir, "valid", "keep").text
    assert handle_unk("a <unk> b", "drop") == "a b"
    with pytest.raises(ConfigError, match="valid choices: drop, keep"):
        handle_unk("x", "mask")


def test_train_split_comes_from_the_hub_when_reachable(data_dir, monkeypatch, tmp_path):
    """The hub branch of `train.text=auto`, fed hub-format rows built from a real local split."""
    import qadapt.data.fetch
    import qadapt.hub

    lines = (data_dir / "wikitext-2" / "wiki.valid.tokens").read_text(encoding="utf-8").splitlines(keepends=True)
    monkeypatch.setenv("QADAPT_CACHE", str(tmp_path))
    monkeypatch.setattr(qadapt.hub, "hub_reachable", lambda timeout=3.0: True)
    real = qadapt.data.fetch.download_wikitext
    monkeypatch.setattr(
        qadapt.data.fetch,
        "download_wikitext",
        lambda target, only=None: real(
            target,
            load_dataset=lambda name, config, split: {"text": ["" if line == " \n" else line for line in lines]},
            only=only,
        ),
    )
    text = load_train_text(data_dir, "auto", "drop")
    assert text.source.startswith("hub:") and text.text == "".join(lines)
    assert (tmp_path / "data" / "wikitext-2" / "wiki.train.raw").exists()


def test_hub_download_writes_the_upstream_layout(data_dir, tmp_path):
    """The hub path, fed the hub's row format built from the local copy, must rebuild the local file."""
    lines = (data_dir / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8").splitlines(keepends=True)
    rows = ["" if line == " \n" else line for line in lines]  # the hub stores blank lines as ""
    assert rows_to_upstream(rows) == "".join(lines)
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return {"text": rows}

    download_wikitext(tmp_path, load_dataset=fake_load_dataset)
    assert (tmp_path / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8") == "".join(lines)
    assert ("Salesforce/wikitext", "wikitext-2-raw-v1", "test") in calls
    assert not list((tmp_path / "wikitext-2").glob(".*.tmp"))


def test_fill_links_shared_data(data_dir, tmp_path):
    target = tmp_path / "data"
    assert "linked" in fill(target, shared=data_dir.resolve())
    assert (target / "wikitext-2" / "wiki.test.raw").exists()
    assert "already" in fill(target, shared=data_dir.resolve())


def test_documents_mode_windows_and_counts_are_the_harness_own(data_dir):
    """Documents mode = lm-evaluation-harness's loglikelihood_rolling: the same (input, predicted) windows as its
    get_rolling_token_windows + make_disjoint_window (context length 1), words and bytes counted on the page as its
    wikitext task counts them, and its wikitext_detokenizer, on the real WikiText-2 test text."""
    import random

    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer as harness_detokenizer
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    from qadapt.eval.windows import page_counts, wikitext_detokenizer

    rng = random.Random(0)
    for n, max_length in [(1, 8), (8, 8), (9, 8), (100, 8), (17, 16), (5000, 2048)]:
        tokens = [rng.randrange(1000) for _ in range(n)]
        theirs = [make_disjoint_window(p) for p in get_rolling_token_windows(tokens, -1, max_length, 1)]
        ours = rolling_windows(tokens, -1, max_length)
        assert [(w.tokens[:-1], w.tokens[w.first_target :]) for w in ours] == [
            (ctx + pred[:-1], pred) for ctx, pred in theirs
        ]
    pages = split_articles((data_dir / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8"))
    for page in pages[:20]:
        assert wikitext_detokenizer(page) == harness_detokenizer({"page": page})
        assert page_counts(page) == (len(re.split(r"\s+", page)), len(page.encode("utf-8")))


@pytest.mark.parametrize("file", ["wiki.test.raw", "wiki.valid.tokens"])
def test_a_token_cap_tokenises_a_prefix_and_keeps_the_whole_texts_tokens(smollm2, data_dir, file):
    """leading_token_ids (a capped evaluation tokenises a prefix of the text, cut at a line end) gives exactly the
    first n ids of the whole text's tokenisation on real WikiText-2 with SmolLM2's tokenizer, at the caps the studies
    use and at caps whose prefix cut falls right at the lookahead's edge."""
    from qadapt.eval.windows import LOOKAHEAD_TOKENS, leading_token_ids, token_ids

    _, tokenizer = smollm2
    text = (data_dir / "wikitext-2" / file).read_text(encoding="utf-8")
    whole = token_ids(tokenizer, text)
    for n in (1, 96, 1536, 8192, 65536, len(whole) - LOOKAHEAD_TOKENS, len(whole) - 1, len(whole), len(whole) + 5):
        ids, more = leading_token_ids(tokenizer, text, n)
        assert ids == whole[:n] and more == (len(whole) > n), n
