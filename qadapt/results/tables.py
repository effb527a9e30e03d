"""Markdown tables from the tidy store: mean ± std over seeds, one table per task."""

from __future__ import annotations

import pandas as pd

GROUP = ["model", "adapter_desc", "device", "task", "mode"]
METRICS = ["base_perplexity", "perplexity", "delta_ppl_pct", "word_perplexity", "bits_per_byte", "trainable_params"]


def _fmt(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return ""
    mean = values.mean()
    if abs(mean) >= 1e4 and float(mean).is_integer():
        return f"{int(mean):,}"
    if len(values) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {values.std(ddof=1):.2g}"


def summary(rows: pd.DataFrame) -> str:
    """One markdown table per (command, task): configurations as rows, metrics mean ± std over seeds."""
    if rows.empty:
        return "No results yet. Run `qadapt train` or `qadapt eval ppl`."
    out = []
    for (command, task), part in rows.groupby(["command", "task"], sort=False):
        keys = [k for k in GROUP if k in part.columns]
        metrics = [m for m in METRICS if m in part.columns and part[m].notna().any()]
        table = []
        for key, grp in part.groupby(keys, sort=False, dropna=False):
            rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            rec["seeds"] = grp["seed"].nunique() if "seed" in grp else len(grp)
            rec.update({m: _fmt(grp[m]) for m in metrics})
            table.append(rec)
        out.append(f"### {command} · {task}\n\n" + pd.DataFrame(table).to_markdown(index=False))
    return "\n\n".join(out)
