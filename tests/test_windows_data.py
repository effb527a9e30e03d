"""Perplexity windows (both modes), WikiText parsing, the hub-download layout, the results store."""

import multiprocessing as mp
import re

import pandas as pd
import pytest

from qadapt.data.fetch import download_wikitext, fill, rows_to_upstream
from qadapt.data.wikitext import handle_unk, load_eval_text, load_train_text, split_articles
from qadapt.errors import ConfigError, DataMissing
from qadapt.eval.windows import rolling_windows, sliding_windows, truncate_bytes
from qadapt.results import append_row, load_rows


def _scored_positions(windows, offsets):
    out = []
    for w, off in zip(windows, offsets):
        out += list(range(off + w.first_target, off + len(w.tokens)))
    return out


@pytest.mark.parametrize("n,max_length,stride", [(1000, 128, 64), (1000, 128, 100), (129, 128, 32), (50, 128, 16)])
def test_sliding_windows_score_every_token_once(n, max_length, stride):
    tokens = list(range(n))
    windows = sliding_windows(tokens, max_length, stride)
    assert all(len(w.tokens) <= max_length for w in windows)
    offsets = [w.tokens[0] for w in windows]
    assert sorted(_scored_positions(windows, offsets)) == list(range(1, n))


def test_sliding_windows_with_stride_equal_max_length_skip_each_first_token():
    windows = sliding_windows(list(range(300)), 100, 100)
    assert [w.first_target for w in windows] == [1, 1, 1]
    assert sum(w.n_scored for w in windows) == 297


@pytest.mark.parametrize("n,max_length,stride", [(1000, 128, 64), (300, 100, 100)])
def test_sliding_windows_with_bos_score_every_token_once_with_bos_first(n, max_length, stride):
    bos = -1
    windows = sliding_windows(list(range(n)), max_length, stride, bos_id=bos)
    assert all(w.tokens[0] == bos and len(w.tokens) <= max_length + 1 for w in windows)
    scored = [t for w in windows for t in w.tokens[w.first_target :]]
    assert sorted(scored) == list(range(n))  # token 0 too: it has BOS as context


def test_truncate_bytes_keeps_whole_words_and_utf8():
    text = "Valkyria Chronicles III — a game of 2011 .\n Ça va"
    cut = truncate_bytes(text, 30)
    assert len(cut.encode("utf-8")) <= 30 and text.startswith(cut) and cut.endswith(" ")
    assert truncate_bytes(text, 10_000) == text
    assert truncate_bytes("é" * 10, 5) == "éé"  # no whitespace: cut at a character boundary


def test_bad_stride():
    with pytest.raises(ConfigError, match="task.stride"):
        sliding_windows(list(range(10)), 4, 5)


@pytest.mark.parametrize("n,max_length", [(1, 8), (8, 8), (9, 8), (100, 8), (17, 16)])
def test_rolling_windows_score_every_document_token_once(n, max_length):
    tokens = list(range(1000, 1000 + n))
    windows = rolling_windows(tokens, -1, max_length)
    assert windows[0].tokens[0] == -1
    assert all(len(w.tokens) - 1 <= max_length for w in windows)  # model input length
    scored = [t for w in windows for t in w.tokens[w.first_target :]]
    assert scored == tokens


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


def test_missing_data_names_make_data(tmp_path):
    with pytest.raises(DataMissing, match="make data"):
        load_eval_text(tmp_path)


@pytest.mark.parametrize(
    ("content", "said"), [(b"\xff\xfe\x00 not text", "is not UTF-8 text (byte 0"), (b" \n\n", "is empty")]
)
def test_a_damaged_wikitext_file_is_named_with_what_to_do(tmp_path, content, said):
    """Not UTF-8, or empty: one line naming the file and how to fetch it again, through the CLI exit 1 and no
    traceback (an empty file ended in ZeroDivisionError, a binary one in UnicodeDecodeError)."""
    from typer.testing import CliRunner

    from qadapt.cli import app

    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "wiki.test.raw").write_bytes(content)
    with pytest.raises(DataMissing, match=re.escape(f"wiki.test.raw {said}") + ".*make data"):
        load_eval_text(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "ppl",
            "adapter=none",
            f"data_dir={tmp_path}",
            f"results_dir={tmp_path / 'r'}",
            f"runs_dir={tmp_path / 'runs'}",
        ],  # fmt: skip
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert said in " ".join(result.output.split())
    assert not (tmp_path / "r" / "runs.csv").exists() and not any((tmp_path / "runs").glob("*/*"))


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


def _writer(args):
    results_dir, worker = args
    for i in range(10):
        append_row(results_dir, {"worker": worker, "i": i, "payload": "x" * 2000, f"metric_{worker}": i / 3})


def test_concurrent_appends_lose_no_rows(tmp_path):
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_writer, [(tmp_path, w) for w in range(4)])
    rows = load_rows(tmp_path)
    assert len(rows) == 40
    assert sorted(zip(rows["worker"], rows["i"])) == [(w, i) for w in range(4) for i in range(10)]
    assert (rows["payload"].str.len() == 2000).all()
    assert isinstance(rows, pd.DataFrame)


def test_results_summary_pivots_seeds_into_mean_and_std():
    from qadapt.results.tables import summary

    rows = pd.DataFrame(
        [
            {
                "command": "train",
                "task": "wikitext_ppl",
                "model": "m",
                "adapter_desc": "cua(q=2)",
                "device": "exact",
                "mode": "sliding",
                "seed": s,
                "perplexity": p,
                "base_perplexity": 20.0,
                "delta_ppl_pct": 100 * (p / 20 - 1),
            }
            for s, p in [(0, 19.0), (1, 19.2), (2, 19.4)]
        ]
    )
    table = summary(rows)
    assert "### train · wikitext_ppl" in table
    assert "19.2 ± 0.2" in table and "-4 ± 1" in table
    assert re.search(r"\|\s+3\s+\|", table)  # three seeds pooled into one row
    assert "No results yet" in summary(pd.DataFrame())


@pytest.mark.parametrize("n,max_length,stride", [(300, 100, 100), (1000, 128, 64), (257, 128, 128), (5, 128, 128)])
def test_sliding_windows_with_a_context_token_score_every_token_once(n, max_length, stride):
    """task.score_first: each token of the stream is scored exactly once, every window predicts at most max_length
    tokens from at most max_length inputs, the stream's first token from the prefix and a window's first new token
    from the stream's previous token."""
    prefix = -1
    windows = sliding_windows(list(range(n)), max_length, stride, prefix_id=prefix)
    scored = [t for w in windows for t in w.tokens[w.first_target :]]
    assert sorted(scored) == list(range(n))
    assert all(len(w.tokens) - 1 <= max_length for w in windows)
    assert windows[0].tokens[:2] == [prefix, 0]
    for w in windows:
        first = w.tokens[w.first_target]
        before = w.tokens[w.first_target - 1]
        assert before == (prefix if first == 0 else first - 1)


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
