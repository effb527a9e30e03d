"""The hook of the QuIC studies (configs/study/glue.yaml, vtab.yaml, glue_ablation.yaml): the parameter-score
Pareto front with its figure, and the QuIC paper's figures beside ours (the paper's numbers are data here, quoted from
../shared/papers/NOTES.md: the paper's GLUE and VTAB tables and its STS-B ablation)."""

from __future__ import annotations

from ...results import save_figure_atomic

# paper: arm -> (trainable parameters, score) as the paper prints them, and the setting it ran
PAPER = {
    "glue": (
        "DeBERTaV3-base, 184M, 5 GLUE tasks, full training",
        {"quic": ("0.03M", 85.57), "lora_r8": ("1.33M", 86.30), "boft": ("0.75M", 88.50)},
    ),  # fmt: skip
    "vtab": (
        "DINOv2-L, 304M, VTAB-1k's 19 tasks",
        {"quic": ("0.13M", 82.61), "lora_r8": ("1.77M", 83.24), "boft": ("1.99M", 83.82)},
    ),  # fmt: skip
    "glue_ablation": (
        "DeBERTaV3-base, STS-B",
        {"c1": ("1.8M", 91.68), "c1c2": ("33K", 88.85), "c1c2c3": ("13K", 88.48), "free": ("-", "collapses")},
    ),  # fmt: skip
}
WHY = {
    "glue": "the backbone is all-MiniLM-L6-v2 (22.7M parameters, 6 layers, width 384; a sentence-embedding model) "
    "instead of DeBERTaV3-base (184M, width 768), so every adapter has fewer sites and narrower blocks; QNLI is "
    "trained and scored on a fixed split of its dev set (no offline train split); the budget is a few CPU epochs; "
    "peft's BOFT runs one butterfly factor without its CUDA extension",
    "vtab": "no VTAB-1k image is available offline, so the suite is MNIST, scikit-learn's digits, Animal-MNIST "
    "silhouettes and ELPV solar-cell defects (qadapt/data/images.py) under VTAB-1k's 800 + 200 protocol, greyscale "
    "images upsampled to the budget's resolution; the backbone is a 4.7M-parameter ImageNet CNN instead of DINOv2-L "
    "(304M ViT), so QuIC and OFT act on 1x1 convolutions, not attention projections; BatchNorm statistics stay frozen; "
    "peft's BOFT runs one butterfly factor without its CUDA extension",
}
WHY["glue_ablation"] = (
    WHY["glue"]
    .replace("; QNLI is trained and scored on a fixed split of its dev set (no offline train split)", "")
    .replace("; peft's BOFT runs one butterfly factor without its CUDA extension", "")
)


def params(study, result, arm: str) -> int:
    """An arm's trainable parameters, adapter and head (from its scored cells)."""
    test = result.cells[result.cells["phase"] == "test"]
    test = test[test["arm"].map(lambda k: (study.arms[k].root or k) == arm)]
    return int(test["adapter_params"].max() + test["head_params"].max())


def extra_lines(study, result) -> list[str]:
    """The lines after the table: the significance-aware Pareto front of trainable parameters (adapter + head)
    against the mean score (an arm is dominated where one with no more parameters scores higher with the interval of
    the paired difference above zero) with its figure, and the QuIC paper's figures beside ours (arXiv 2502.06916:
    its GLUE and VTAB-1k means, its STS-B ablation); none before the reported split is scored."""
    e = result.estimates
    if e is None:
        return []
    from ..scores import label

    labels = {a: label(study, a) for a in e.arms}
    arms = list(e.arms)
    lines = []
    if study.final.mean is not None or study.axis is None:
        # significance-aware Pareto front: an arm is dominated where another with no more parameters scores higher
        # with the interval of the difference above zero
        size = {a: params(study, result, a) for a in arms}
        dominated = {
            a: [o for o in arms if o != a and size[o] <= size[a] and e.difference(o, a).difference.low > 0]
            for a in arms
        }
        front = [a for a in arms if not dominated[a]]
        lines += [
            "",
            "On the Pareto front of trainable parameters (adapter and head) against the score (no arm with as few or "
            f"fewer parameters scores higher with an interval above zero): {', '.join(labels[a] for a in front)}.",
            *[f"{labels[a]} is dominated by {', '.join(labels[o] for o in by)}." for a, by in dominated.items() if by],
        ]
        if result.table is not None:
            plot(study, result, size, front)
            lines += ["", f"![parameters vs score]({result.table.stem}.png)"]
    # the table a variant of a spec reproduces (glue_paper: glue; a test's glue_quick: glue)
    table = next((k for k in sorted(PAPER, key=len, reverse=True) if study.name.startswith(k)), None)
    if table is None:
        return lines
    setting, paper = PAPER[table]
    labels.update({a: a for a in paper if a not in labels})
    lines += [
        "",
        f"Paper ({setting}): "
        + "; ".join(
            f"{labels[a]} {f'{p} params, ' if p != '-' else ''}{'mean ' if study.axis else ''}{s}"
            for a, (p, s) in paper.items()
        )  # fmt: skip
        + ".",
        "",
        f"Why it may differ from the paper: {WHY[table]}. Every number here is as measured.",
    ]
    return lines


def plot(study, result, size: dict, front: list[str]) -> None:
    """``<table>.png``: each arm's score (x100, 95 % interval as error bar) against its trainable parameters (log
    scale), the Pareto front drawn through ``front``."""
    import matplotlib

    from ..scores import label

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = result.estimates
    arms = list(e.arms)
    x = [size[a] for a in arms]
    y = [e.arms[a].estimate for a in arms]
    half = [(e.arms[a].high - e.arms[a].low) / 2 for a in arms]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.errorbar(x, y, yerr=half, fmt="o", color="tab:blue", ecolor="lightgrey", capsize=3)
    on = sorted(front, key=size.get)
    ax.plot([size[a] for a in on], [e.arms[a].estimate for a in on], "-", color="tab:red", linewidth=1,
            label="Pareto front")  # fmt: skip
    for a, xi, yi in zip(arms, x, y):
        ax.annotate(label(study, a), (xi, yi), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (adapter + head), log scale")
    ax.set_ylabel(f"{'mean ' if study.axis else ''}score x100 (95 % interval)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, result.table.with_suffix(".png"))
