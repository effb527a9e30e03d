"""What one process keeps between the runs it makes, passed in by whoever makes several (a study's cells, a sweep):
the base model's evaluation, the last in-memory activation cache, a compressed model's evaluations and its SVDs, the
training text's token ids. A run given none keeps nothing; no module of qadapt holds such state itself."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Memo:
    """One process's reusable results, each keyed by everything it depends on.

    Attributes:
        base_evals: key (model, task, text, cache layer) -> (the base model's perplexity result, the activation cache
            that pass filled); qadapt/experiments/wikitext_ppl.py.
        activations: the last in-memory training activation cache (at most one), kept for the next run with the same
            frozen prefix; qadapt/training/lm.py.
        recovery_evals: key -> (perplexity metrics, multiple-choice metrics, per-question frame, perplexity result) of
            a base or compressed model; qadapt/experiments/compression_recovery.py.
        decompositions: (model, method, calibration) -> the SVDs of the uncompressed projections, shared by every
            ratio; qadapt/experiments/compression_recovery.py.
        token_ids: (model, text) -> the training text's token ids; qadapt/experiments/wikitext_ppl.py.
    """

    base_evals: dict = field(default_factory=dict)
    activations: list = field(default_factory=list)
    recovery_evals: dict = field(default_factory=dict)
    decompositions: dict = field(default_factory=dict)
    token_ids: dict = field(default_factory=dict)
