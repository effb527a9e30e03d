"""Statistics every table uses: paired tests on the same questions (McNemar's exact test).

Source: McNemar (1947); the exact form is a two-sided binomial test with p = 1/2 on the discordant pairs
(``scipy.stats.binomtest``), as recommended for small discordant counts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class McNemar:
    """Two models scored on the same n questions.

    Attributes:
        n: questions both answered. a_only: right for A, wrong for B. b_only: right for B, wrong for A.
        net: b_only - a_only (questions B gains over A). p: two-sided exact p-value (1.0 with no discordant pair).
    """

    n: int
    a_only: int
    b_only: int
    net: int
    p: float


def mcnemar(a_correct, b_correct) -> McNemar:
    """McNemar's exact test of two paired boolean sequences (question i right or wrong for A and for B).

    Raises:
        ValueError: the sequences differ in length.
    """
    from scipy.stats import binomtest

    a, b = [bool(x) for x in a_correct], [bool(x) for x in b_correct]
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} != {len(b)}")
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return McNemar(len(a), a_only, b_only, b_only - a_only, float(p))
