r"""Evaluation windows for perplexity, in the two standard modes (what is scored; qadapt/eval/perplexity.py scores it).

- ``sliding``: the split is one token stream; windows of ``max_length`` tokens advance by ``stride`` and
  only tokens not scored by an earlier window are scored (transformers guide "Perplexity of
  fixed-length models"). ``task.score_first`` (true in the task configs): every token of the text is scored, so the
  scored set is the one the word and byte counts describe, for every model: a window whose first token would have no
  context gets one in front, the previous window's last token (the text's first window: the prefix token
  lm-evaluation-harness uses, BOS else EOS; models with ``bos_in_windows`` get BOS in front of every window as
  before). Absent or false (runs recorded before it existed): as in the guide, with stride = max_length the first
  token of each window is not scored.
- ``documents``: each article is scored on its own as lm-evaluation-harness's ``loglikelihood_rolling`` scores a
  document (its ``wikitext`` task): after the prefix token its HF model uses (BOS, else EOS), every token predicted,
  in non-overlapping rolling windows of ``max_length`` predicted tokens (context length 1); words counted as
  ``len(re.split(r"\s+", page))`` and UTF-8 bytes on the page as it is; ``task.detokenize``: the text scored is the
  harness's ``wikitext_detokenizer(page)`` (" @-@ " -> "-" ...), the counts still on the page, as the harness does.

Words and UTF-8 bytes of the scored text are counted here, for word perplexity and bits per byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omegaconf import DictConfig

from .. import schema
from ..data.options import WikitextPPLTask
from ..data.wikitext import split_articles
from ..errors import ConfigError

MODES = ("sliding", "documents")
IGNORE = -100


@dataclass
class Window:
    """One forward pass: ``tokens[f:]`` are scored, each predicted from the tokens before it in the window.

    Model input is ``tokens[:-1]``; labels are ``tokens[1:]`` with the first ``f - 1`` masked.
    """

    tokens: list[int]  # token ids of the window, context included
    first_target: int  # index in ``tokens`` of the first scored token

    @property
    def n_scored(self) -> int:
        return len(self.tokens) - self.first_target


@dataclass
class EvalSet:
    """The windows one perplexity evaluation scores, and what the metrics divide by.

    Attributes:
        windows: the forward passes (:class:`Window`), in text order.
        words: words of the scored text (whitespace-separated strings), for word perplexity.
        bytes: UTF-8 bytes of the scored text, for bits per byte.
        source: what the text is and where it came from (recorded in the row as ``eval_source``).
        mode: ``sliding`` (one token stream) or ``documents`` (each article alone), see the module docstring.
    """

    windows: list[Window]
    words: int
    bytes: int
    source: str
    mode: str

    @property
    def n_scored(self) -> int:
        return sum(w.n_scored for w in self.windows)


def sliding_windows(
    tokens: list[int], max_length: int, stride: int, bos_id: int | None = None, prefix_id: int | None = None
) -> list[Window]:
    """Windows over one stream, as the transformers perplexity guide builds them.

    ``bos_id``: models trained to see BOS first (Gemma; ``model.bos_in_windows``) get it in front of every
    window, and then the window's first new token is scored too (it has BOS as context).
    ``prefix_id`` (``task.score_first``, without ``bos_id``): a window whose first token is new gets a context token
    in front, the previous token of the stream or, for the stream's first token, ``prefix_id``; every token is then
    scored, each window predicting at most ``max_length`` tokens from at most ``max_length`` inputs.

    Raises:
        ConfigError: stride outside [1, max_length].
    """
    if not 1 <= stride <= max_length:
        raise ConfigError(f"task.stride must be in [1, max_length={max_length}], got {stride}")
    windows, prev_end = [], 0
    for begin in range(0, len(tokens), stride):
        end = min(begin + max_length, len(tokens))
        ids = tokens[begin:end]
        new = end - prev_end
        if bos_id is None and prefix_id is not None and new == len(ids):
            context = tokens[begin - 1] if begin > 0 else prefix_id
            windows.append(Window([context] + ids, 1))
        elif bos_id is None:
            windows.append(Window(ids, max(1, len(ids) - new)))
        else:
            windows.append(Window([bos_id] + ids, len(ids) - new + 1))
        prev_end = end
        if end == len(tokens):
            break
    return [w for w in windows if w.n_scored > 0]


def rolling_windows(tokens: list[int], prefix_id: int, max_length: int) -> list[Window]:
    """Disjoint rolling windows of one document (lm-evaluation-harness, context length 1).

    The first window predicts tokens[:max_length] from the prefix token; each later window predicts
    the next (up to) max_length tokens with as much preceding context as fits in max_length inputs.
    """
    if not tokens:
        return []
    first = min(max_length, len(tokens))
    windows = [Window([prefix_id] + tokens[:first], 1)]
    done = first
    while done < len(tokens):
        n_pred = min(len(tokens) - done, max_length)
        end = done + n_pred
        ids = tokens[max(0, end - max_length - 1) : end]
        windows.append(Window(ids, len(ids) - n_pred))
        done = end
    return windows


def harness_prefix_id(tokenizer) -> int:
    """The token lm-evaluation-harness's HF model puts before a text: BOS, else EOS (its ``prefix_token_id``)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _counts(text: str) -> tuple[int, int]:
    return len(text.split()), len(text.encode("utf-8"))


def page_counts(page: str) -> tuple[int, int]:
    r"""(words, UTF-8 bytes) of a page as lm-evaluation-harness's wikitext task counts them: ``re.split(r"\s+")``
    pieces (a leading or trailing blank counts one) and the page's bytes."""
    return len(re.split(r"\s+", page)), len(page.encode("utf-8"))


def wikitext_detokenizer(page: str) -> str:
    """lm-evaluation-harness's ``wikitext_detokenizer`` (tasks/wikitext/preprocess_wikitext.py, version 2.0): WikiText's
    tokenised spacing back to running text (" @-@ " -> "-", " , " -> ", ", brackets, quotes, headings ...)."""
    string = page
    string = string.replace("s '", "s'")
    string = re.sub(r"/' [0-9]/", r"/'[0-9]/", string)
    string = string.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    for mark in (":", ";", ".", "!", "?", ","):
        string = string.replace(f" {mark} ", f"{mark} ")
    string = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", string)
    string = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", string)
    string = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", string)
    string = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', string)
    string = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", string)
    string = string.replace("= = = =", "====").replace("= = =", "===").replace("= =", "==")
    string = string.replace(" " + chr(176) + " ", chr(176))
    string = string.replace(" \n", "\n").replace("\n ", "\n")
    string = string.replace(" N ", " 1 ").replace(" 's", "'s")
    return string


def truncate_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes that ends at whitespace (whole words), so
    models with different tokenizers can be scored on exactly the same text (``task.max_bytes``)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    cut = raw[:max_bytes].decode("utf-8", errors="ignore")
    end = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[: end + 1] if end >= 0 else cut


def token_ids(tokenizer, text: str) -> list[int]:
    """``tokenizer(text)``'s ids without special tokens."""
    return tokenizer(text, add_special_tokens=False).input_ids


# tokens tokenised past a token cap before the cut text is trusted: text after a cut can change only the last few
# tokens before it (a tokenizer's pre-tokens end at whitespace; tests/integration/test_windows_data.py checks it)
LOOKAHEAD_TOKENS = 64


def leading_token_ids(tokenizer, text: str, n: int) -> tuple[list[int], bool]:
    """(the first ``n`` ids of ``tokenizer(text)``, whether ``text`` has more than ``n`` tokens), tokenising only a
    prefix of a long ``text``: cut at a line end, far enough that at least ``n`` + :data:`LOOKAHEAD_TOKENS` tokens
    come out (the cut moves on by 4x until they do, up to the whole text). A
    device evaluation of 8,192 tokens then tokenises about 70 KB of WikiText-2 test instead of its 1.3 MB."""
    size = 8 * (n + LOOKAHEAD_TOKENS) + 4096
    while size < len(text):
        cut = text.rfind("\n", 0, size) + 1
        if cut > 0:
            ids = token_ids(tokenizer, text[:cut])
            if len(ids) >= n + LOOKAHEAD_TOKENS:
                return ids[:n], True
        size *= 4
    ids = token_ids(tokenizer, text)
    return ids[:n], len(ids) > n


def build_eval_set(tokenizer, text: str, source: str, task: DictConfig, bos_in_windows: bool = False) -> EvalSet:
    """Tokenise ``text`` and cut it into windows per ``task`` (mode, max_length, stride, max_tokens).

    ``bos_in_windows``: sliding windows start with the tokenizer's BOS (for models that expect it, e.g. Gemma:
    without it, Gemma 3's WikiText perplexity is about 45 % worse).

    Raises:
        ConfigError: unknown mode or bad window sizes.
    """
    mode, max_length, max_tokens = task.mode, int(task.max_length), task.get("max_tokens")
    if mode not in MODES:
        raise ConfigError(f"unknown task.mode '{mode}'; valid choices: {', '.join(MODES)}")
    if max_length < 2:
        raise ConfigError(f"task.max_length must be >= 2, got {max_length}")
    max_bytes = task.get("max_bytes")
    if max_bytes is not None and mode == "sliding":
        text = truncate_bytes(text, int(max_bytes))
    if mode == "sliding":
        if max_tokens is None:
            tokens = token_ids(tokenizer, text)
        else:
            tokens, cut = leading_token_ids(tokenizer, text, int(max_tokens))
            if cut:  # the words and bytes scored: those of the kept tokens
                text = tokenizer.decode(tokens)
        words, nbytes = _counts(text)
        bos = tokenizer.bos_token_id if bos_in_windows else None
        prefix = harness_prefix_id(tokenizer) if schema.value(task, WikitextPPLTask, "score_first") else None
        windows = sliding_windows(tokens, max_length, int(task.stride), bos, prefix)
        return EvalSet(windows, words, nbytes, source, mode)
    prefix = harness_prefix_id(tokenizer)
    detokenize = bool(schema.value(task, WikitextPPLTask, "detokenize"))
    windows, words, nbytes, total = [], 0, 0, 0
    for article in split_articles(text):
        scored = wikitext_detokenizer(article) if detokenize else article
        tokens = tokenizer(scored, add_special_tokens=False).input_ids
        windows += rolling_windows(tokens, prefix, max_length)
        w, b = page_counts(article)
        words, nbytes, total = words + w, nbytes + b, total + len(tokens)
        if max_tokens is not None and total >= max_tokens:
            break  # whole documents only, so word and byte counts stay exact
    return EvalSet(windows, words, nbytes, source, mode)
