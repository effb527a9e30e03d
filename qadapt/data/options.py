"""The ``task`` options (``configs/task/*.yaml``), one pydantic model each, beside the data loaders of their tasks
(``wikitext.py``: :class:`WikitextPPLTask`, :class:`CompressionRecoveryTask`; ``multiple_choice.py``: :class:`MCTask`,
:class:`MCBlock`; ``glue.py``: :class:`GlueOptions`; ``images.py``: :class:`VtabTask`). Code that reads a default
imports the class (``eval/windows.py``: :class:`WikitextPPLTask`) or finds it through ``qadapt.config.option_class``.

A module of its own, without torch, because every command's config check (``qadapt.config.compose``) reads it; the
code that uses the options imports them from here (:mod:`qadapt.schema` has the base class and the shared types).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..models.options import CompressionBlock
from ..schema import Number, Option, PosInt, Text, added_later, name_field


class MCBlock(Option):
    """Multiple-choice benchmarks scored by answer log-likelihood (``task.mc``; ``qadapt/data/multiple_choice.py``)."""

    benchmarks: list[Literal["mmlu", "arc_easy", "arc_challenge"]] = Field(
        description="benchmarks to score; [] = none (task=compression_recovery: perplexity only)"
    )
    format: Literal["continuation", "letters"] = Field(
        description="continuation: each answer's text is scored (lm-eval mmlu_continuation / arc); letters: ' A'..' D' "
        "(lm-eval mmlu)"
    )
    subjects: Annotated[list[Text], Field(min_length=1)] | None = Field(
        description="MMLU subjects, e.g. [astronomy, college_biology]; null = all 57"
    )
    mmlu_shots: list[Annotated[int, Field(ge=0, le=5)]] = Field(
        description="one MMLU suite per entry: its few-shot examples from the dev split (shots)"
    )
    mmlu_per_subject: list[PosInt | None] = Field(
        description="test questions per subject of each MMLU suite (one entry per mmlu_shots entry; a seeded sample; "
        "null = all)"
    )
    arc_questions: PosInt | None = Field(description="ARC test questions per set (seeded sample); null = all")
    full: bool = Field(description="true = every cap above lifted (the full benchmarks)")
    batch_tokens: PosInt = Field(description="padded context tokens per forward pass (memory bound; tokens)")
    max_length: Annotated[int, Field(ge=2)] = Field(description="model window contexts are cut to (tokens)")


class MCTask(Option):
    """MMLU and ARC by answer log-likelihood (``task=mc``, ``qadapt eval mc``)."""

    name: Literal["mc"] = name_field("mc", "task")
    mc: MCBlock = Field(description="the benchmarks, format and question caps")


class WikitextPPLTask(Option):
    """WikiText-2 (raw) perplexity (``task=wikitext_ppl``; ``qadapt/eval/perplexity.py``)."""

    name: Literal["wikitext_ppl"] = name_field("wikitext_ppl", "task")
    dataset: Literal["wikitext-2"] = Field(
        description="the corpus, WikiText-2 raw in data_dir/wikitext-2 (the only one; recorded, not chosen)"
    )
    split: Literal["test", "valid", "train", "valid_holdout"] = Field(
        description="the split scored; valid_holdout = the held-out slice of valid (train.valid_holdout), for selection"
    )
    mode: Literal["sliding", "documents"] = Field(
        description="sliding: one token stream, windows of max_length advanced by stride, only new tokens scored; "
        "documents: each article alone in rolling windows (lm-evaluation-harness)"
    )
    max_length: Annotated[int, Field(ge=2)] = Field(description="window length (tokens)")
    stride: PosInt = Field(description="sliding mode: window advance (tokens, at most max_length)")
    score_first: bool = added_later(
        False,
        description="sliding mode: score every token of the text, a window's first token with the previous token (the "
        "text's first with BOS, else EOS) as context, so word perplexity and bits per byte cover the scored"
        " text for every model; absent = false (runs recorded before it: each window's first token unscored"
        " unless BOS leads it)",
    )
    batch_size: PosInt = Field(description="windows per forward pass")
    max_tokens: PosInt | None = Field(
        description="evaluate only the first N tokens of the stream (tokens); null = the whole split"
    )
    detokenize: bool = added_later(
        False,
        description="documents mode: score lm-evaluation-harness's wikitext_detokenizer(page) (its wikitext task), "
        "words and bytes still counted on the page; absent = false (the raw page)",
    )
    max_bytes: PosInt | None = Field(
        description="sliding mode: evaluate only the text's first N UTF-8 bytes, cut at whitespace, the same "
        "text for every tokenizer (bytes); null = all"
    )
    cache_activations: bool = Field(
        description="reuse the frozen layers' hidden states below the first adapted layer from the base "
        "evaluation for the adapted one (identical results, less compute)"
    )
    cache_max_gib: Annotated[Number, Field(ge=0)] = Field(
        description="activation caches larger than this live on disk ($QADAPT_CACHE) (GiB)"
    )


class CompressionRecoveryTask(WikitextPPLTask):
    """Compression recovery (``task=compression_recovery``; ``qadapt/experiments/compression_recovery.py``):
    compress the projections classically, recover with adapters distilled from the uncompressed model, score
    WikiText perplexity (wikitext_ppl's keys) and MMLU / ARC (``mc``)."""

    name: Literal["compression_recovery"] = name_field("compression_recovery", "task")
    compression: CompressionBlock = Field(description="how the model is compressed")
    mc: MCBlock = Field(description="the multiple-choice benchmarks every model is scored on")


class GlueOptions(Option):
    """GLUE fine-tuning (``task=glue``; ``qadapt/training/classifier.py``, ``qadapt/data/glue.py``): official TSVs in
    data_dir/glue, else the hub's nyu-mll/glue."""

    name: Literal["glue"] = name_field("glue", "task")
    subtask: Literal["sst2", "cola", "mrpc", "rte", "stsb", "qnli"] = Field(
        description="the GLUE task (QNLI offline: dev only, a fixed 1,000-row hold-out is evaluated, the rest trains)"
    )
    max_length: PosInt = Field(description="tokens per example after truncation (tokens)")
    max_train: PosInt | None = Field(
        description="training examples (a fixed subset, the same for every seed and method); null = the whole train "
        "split"
    )
    max_eval: PosInt | None = Field(description="evaluation examples from the start of the split scored; null = all")
    split: Literal["test", "valid"] = Field(
        description="test: the reported split (the official dev split); valid: the selection slice of the train split"
    )
    valid_examples: Annotated[int, Field(ge=1)] = Field(
        description="size of the selection slice: the last N of a fixed shuffle of the train split, never trained on"
    )


class VtabTask(Option):
    """VTAB-1k-protocol image classification (``task=vtab``; ``qadapt/data/images.py``): 800 training images per set,
    scored on the test part."""

    name: Literal["vtab"] = name_field("vtab", "task")
    subtask: Literal["mnist", "digits", "animal_mnist", "elpv"] = Field(description="the image set")
    image_size: PosInt = Field(description="input resolution (pixels per side; VTAB uses 224)")
    max_test: PosInt | None = Field(description="test images scored; null = all the rest of the set")
    split: Literal["test", "valid"] = Field(
        description="test: the test part (reported); valid: VTAB-1k's 200 validation images (selection)"
    )
