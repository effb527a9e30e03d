"""Perplexity windows (both modes), WikiText parsing, the hub-download layout, the results store.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_windows_data.py.)"""

import multiprocessing as mp
import re

import pandas as pd
import pytest

from qadapt.data.wikitext import load_eval_text
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


class _WordTokenizer:
    """A word-level tokenizer that records the length of each text it is given."""

    name_or_path, bos_token_id = "words", 0

    def __init__(self):
        self.lengths = []

    def __call__(self, text, add_special_tokens=False):
        self.lengths.append(len(text))
        return type("Encoded", (), {"input_ids": [1 + len(w) for w in text.split()]})()

    def decode(self, ids):
        return " ".join("x" * (i - 1) for i in ids)


def test_a_token_cap_tokenises_a_prefix_and_gives_the_whole_texts_windows():
    from omegaconf import OmegaConf

    from qadapt.eval.windows import LOOKAHEAD_TOKENS, build_eval_set, leading_token_ids

    text = "\n".join(" ".join(f"w{'o' * ((i + j) % 7)}rd" for j in range(10)) for i in range(600))  # 6,000 words
    whole = [1 + len(w) for w in text.split()]
    tok = _WordTokenizer()
    task = OmegaConf.create(
        {"mode": "sliding", "max_length": 32, "stride": 16, "max_tokens": 100, "score_first": False}
    )
    capped = build_eval_set(tok, text, "test", task)
    assert max(tok.lengths) < len(text) / 2  # a prefix, cut at a line end, not the whole text
    uncapped = build_eval_set(tok, " ".join("x" * (i - 1) for i in whole[:100]), "test", task)
    assert [w.tokens for w in capped.windows] == [w.tokens for w in uncapped.windows]
    for n in (1, 100, len(whole) - LOOKAHEAD_TOKENS, len(whole), len(whole) + 1):
        ids, more = leading_token_ids(tok, text, n)
        assert ids == whole[:n] and more == (len(whole) > n), n
