"""Classifier studies (``final.statistic: score``): configs/study/glue.yaml, vtab.yaml, glue_ablation.yaml and their
paper-scale variants; the selection rule (1-3 ladder, ties to the lower rate), the per-task and mean estimates, the
bars, collapsed runs, and a tiny real study of every arm on all-MiniLM-L6-v2 and EfficientNet-Lite0.
(Split by kind: its unit tests are in tests/unit/test_study_scores.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from qadapt.studies import spec as spec_module

ROOT = Path(__file__).resolve().parents[2]

QUICK = {
    "glue": (
        "rte",
        [
            "task.max_train=32",
            "task.max_eval=32",
            "task.valid_examples=32",
            "task.max_length=32",
            "train.max_steps=2",
            "train.batch_size=8",
            "train.epochs=1",
        ],
    ),  # fmt: skip
    "vtab": ("digits", ["task.max_test=32", "task.image_size=32", "train.max_steps=2", "train.batch_size=8"]),
}


@pytest.mark.parametrize("suite", ["glue", "vtab"])
def test_a_tiny_real_study_trains_every_arm_and_reuses_its_cells(tmp_path, data_dir, suite):
    """configs/study/<suite>.yaml cut to one task, one rate per family, 2 steps per run and seed 0 of the final
    phase, given as a path: every arm trains through the one pipeline on the real backbone, the table has every row,
    the parameter counts follow the documented formulas, and a second run trains nothing."""
    from typer.testing import CliRunner

    from qadapt.cli import app

    task, quick = QUICK[suite]
    data = yaml.safe_load((ROOT / "configs" / "study" / f"{suite}.yaml").read_text())
    data["name"] = f"{suite}_quick"
    data["shared"] = [o for o in data["shared"] if not o.startswith(("train.max_steps", "task.max_test"))] + quick
    data["axis"] = {**data["axis"], "values": [task], "overrides": {}}
    data["select"]["grid"] = {family: {"train.lr": values["train.lr"][1:2]} for family, values in
                              data["select"]["grid"].items()}  # fmt: skip
    data["select"].pop("widen")
    data["final"]["seeds"] = [0, 1]
    data["final"].pop("mean", None)
    path = tmp_path / f"{suite}_quick.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    where = [f"runs_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}"]
    done = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert done.exit_code == 0, done.output[-3000:]
    cells = pd.read_csv(tmp_path / "results" / f"{suite}_quick_cells.csv")
    sel = cells[cells["phase"] == "select"].set_index("arm")
    assert sel["done"].all() and len(sel) == len(data["arms"])  # every arm trained through the one pipeline
    params = {k.removesuffix(f"_task{task}"): int(v) for k, v in sel["adapter_params"].items()}
    assert params["head"] == 0 and params["full"] > 3_000_000 and params["quic"] < params["lora_r8"]
    if suite == "glue":
        sites, d = 12, 384  # query and value in 6 layers, width 384
        assert params["quic"] == sites * (d // 36) * 28  # n = 8: C(8,1) + C(8,2) = 36 per block, 28 angles
        assert params["lora_r8"] == sites * 8 * (d + d) and params["lora_r1"] == sites * (d + d)
        assert params["oft_b32"] == sites * (d // 32) * (32 * 31 // 2) and params["oft_b2"] == sites * (d // 2)
        assert params["boft"] == sites * ((d // 8) * 64 + d)
    # 2 steps can leave an arm predicting one class for every selection example: never chosen, never trained on the
    # reported split, and named; every other arm has its seed-0 final cell and no seed-1 one (seeds=0)
    text = (tmp_path / "results" / f"{suite}_quick.md").read_text()
    test = cells[cells["phase"] == "test"]
    collapsed = [a for a in data["arms"] if isinstance(sel.loc[f"{a}_task{task}", "collapse"], str)]
    for arm in data["arms"]:
        mine = test[test["arm"] == f"{arm}_task{task}"]
        finished = mine["done"].fillna(False).astype(bool)
        if arm in collapsed:
            assert mine.empty and data["arms"][arm]["label"] in text.split("No point chosen")[1].split("\n")[0]
        else:
            assert set(mine[finished]["seed"]) == {0}, arm
    assert all(a["label"] in text for a in data["arms"].values())
    if "quic" not in collapsed:
        assert "1 of 2 seeds so far" in text and "Paper (" in text
        units = pd.read_csv(tmp_path / "results" / f"{suite}_quick_units.csv")
        quic = units[units["arm"] == f"quic_task{task}"]
        row = test[(test["arm"] == f"quic_task{task}") & (test["seed"] == 0)].iloc[0]
        if row["metric"] == "accuracy":  # the table's figure is the run's own score, recomputed from its predictions
            assert (np.rint(quic["prediction"]) == np.rint(quic["label"])).mean() == pytest.approx(row["score"])
    rows = len(pd.read_csv(tmp_path / "results" / "runs.csv"))
    again = CliRunner().invoke(app, ["study", "run", str(path), "seeds=0", *where])
    assert again.exit_code == 0 and len(pd.read_csv(tmp_path / "results" / "runs.csv")) == rows


@pytest.mark.parametrize("name,model,task,epochs", [("glue_paper", "deberta_v3_base", "rte", 10),
                                                    ("vtab_paper", "dinov2_large", "digits", 100)])  # fmt: skip
def test_paper_scale_is_one_spec_away_and_fails_at_once_without_the_hub(name, model, task, epochs, monkeypatch):
    """configs/study/<suite>_paper.yaml (make reproduce-<suite> SCALE=paper): the QuIC paper's backbone and budget on
    the CPU spec's arms, every arm's overrides composing; `qadapt plan` prices it without the weights; offline, the
    first cell stops at once with what to do."""
    from typer.testing import CliRunner

    from qadapt.classifier_plan import plan_classifier
    from qadapt.cli import app
    from qadapt.config import compose

    study = spec_module.load(name)
    base = spec_module.load(name.removesuffix("_paper"))
    assert [a.label for a in study.arms.values()] == [a.label for a in base.arms.values()]
    assert study.select.grid["default"]["train.lr"] == [2e-4, 4e-4, 8e-4]  # the paper's range (NOTES.md)
    arm = study.arms[f"quic_task{task}"]
    overrides = [*study.shared, *arm.overrides, "task.split=valid"]
    cfg = compose(overrides)
    assert cfg.model.name == model and int(cfg.train.epochs) == epochs
    priced = plan_classifier(cfg)
    steps = epochs * -(-(1990 if "glue" in name else 800) // (32 if "glue" in name else 64))
    assert priced.sites == (24 if "glue" in name else 48) and priced.train_steps == steps
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = CliRunner().invoke(app, ["train", *overrides, "runs_dir=/nonexistent"])
    said = " ".join(done.output.split())
    assert done.exit_code != 0 and cfg.model.hub_id in said and "model.path=" in said and "Traceback" not in said
    import huggingface_hub.constants

    from qadapt import hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    done = CliRunner().invoke(app, ["train", *overrides, "runs_dir=/nonexistent"])
    said = " ".join(done.output.split())
    assert done.exit_code != 0 and "not in the local Hugging Face cache" in said and "model.path=" in said
