"""Config composition, sweep expansion and the CLI's handling of bad input."""

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.config import compose, config_hash, expand_sweep, group_choices
from qadapt.errors import ConfigError

runner = CliRunner()


def test_defaults_and_overrides():
    cfg = compose(["adapter.qubits_per_block=3", "seed=4"])
    names = (cfg.model.name, cfg.adapter.name, cfg.device.name, cfg.task.name)
    assert names == ("smollm2_135m", "cua", "exact", "wikitext_ppl")
    assert cfg.adapter.qubits_per_block == 3 and cfg.seed == 4
    assert config_hash(cfg) != config_hash(compose([]))
    assert config_hash(compose(["resume=true"])) == config_hash(compose([]))


MODELS = (
    "deberta_v3_base, dinov2_large, efficientnet_lite0, gemma3_270m, llama31_8b, llama_7b, minilm_l6, qwen_7b, "
    "smollm2_135m"
)


def test_groups_have_the_designed_options():
    assert group_choices("model") == MODELS.split(", ")
    assert {"none", "cua", "qffn", "ffn_lowrank", "rbs", "lora", "oft", "boft", "full"} <= set(group_choices("adapter"))
    assert group_choices("task") == ["compression_recovery", "glue", "mc", "vtab", "wikitext_ppl"]
    assert group_choices("train") == ["classify", "default", "new_blocks", "paper", "recovery"]


def test_unknown_option_lists_choices():
    with pytest.raises(ConfigError, match=f"valid choices: {MODELS}"):
        compose(["model=nope"])


def test_unknown_key_is_a_config_error():
    with pytest.raises(ConfigError):
        compose(["adapter.qubit_per_block=3"])


def test_sweep_expansion_is_a_cartesian_product():
    points = expand_sweep(["adapter.qubits_per_block=1,2,3", "seed=0,1", "task.max_tokens=100"])
    assert len(points) == 6
    assert points[0] == ["adapter.qubits_per_block=1", "seed=0", "task.max_tokens=100"]
    assert ["adapter.qubits_per_block=3", "seed=1", "task.max_tokens=100"] in points


def test_cli_train_unknown_model_exits_2_with_choices():
    result = runner.invoke(app, ["train", "model=nope"])
    assert result.exit_code == 2
    assert f"valid choices: {MODELS}" in " ".join(result.output.split())


def test_cli_multirun_checks_every_point_first():
    result = runner.invoke(app, ["train", "-m", "adapter=cua,nope"])
    assert result.exit_code == 2 and "unknown adapter 'nope'" in result.output


def test_cli_multirun_checks_every_points_types_first():
    result = runner.invoke(app, ["train", "-m", "adapter.qubits_per_block=1,abc"])
    assert result.exit_code == 2 and "adapter.qubits_per_block='abc': expected an integer >= 1" in result.output


def test_cli_config_bad_value_is_one_line_exit_2():
    result = runner.invoke(app, ["config", "task.mode=rolling"])
    assert result.exit_code == 2
    expected = "error: task.mode='rolling': expected one of the valid choices: sliding, documents"
    assert result.output.strip().splitlines() == [expected]


def test_cli_config_prints_resolved_yaml():
    result = runner.invoke(app, ["config", "adapter.qubits_per_block=3"])
    assert result.exit_code == 0
    assert "qubits_per_block: 3" in result.output


def test_cli_config_lora_targets_the_models_projections():
    result = runner.invoke(app, ["config", "adapter=lora"])  # SmolLM2 (Llama family): q_proj, v_proj, not BERT's names
    assert result.exit_code == 0
    adapter = result.output.split("\nadapter:\n", 1)[1]
    assert "  modules:\n  - q_proj\n  - v_proj\n" in adapter


def test_cli_params_llama_without_weights():
    result = runner.invoke(app, ["params", "model=llama31_8b", "adapter.layers=[0]"])
    assert result.exit_code == 0 and "6,144" in result.output


def test_cli_missing_data_names_make_data(tmp_path):
    result = runner.invoke(app, ["eval", "ppl", "adapter=none", f"data_dir={tmp_path}", "task.max_tokens=64"])
    assert result.exit_code == 1
    assert "make data" in result.output


def test_cli_export_bad_arguments_exit_2_with_what_it_accepts(tmp_path):
    no_format = runner.invoke(app, ["export", f"from_run={tmp_path}", f"out={tmp_path / 'x'}"])
    assert no_format.exit_code == 2 and "needs format=" in no_format.output and "peft, merged" in no_format.output
    bad = runner.invoke(app, ["export", f"from_run={tmp_path}", "format=onnx", f"out={tmp_path / 'x'}"])
    assert bad.exit_code == 2 and "unknown format 'onnx'; valid choices: peft, merged" in bad.output
    no_run = runner.invoke(app, ["export", "format=peft", f"out={tmp_path / 'x'}"])
    assert no_run.exit_code == 2 and "needs from_run=" in no_run.output
    exists = runner.invoke(app, ["export", f"from_run={tmp_path}", "format=peft", f"out={tmp_path}"])
    assert exists.exit_code == 2 and "exists" in exists.output
    not_a_run = runner.invoke(app, ["export", f"from_run={tmp_path}", "format=peft", f"out={tmp_path / 'x'}"])
    assert not_a_run.exit_code == 1 and "is not a finished training run" in not_a_run.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("given", "plain"),
    [
        (["task.mode=documents", "task.detokenize=false"], ["task.mode=documents"]),
        (["model.bos_in_windows=false"], []),
        (["adapter=qffn", "adapter.quantum_ffn=true"], ["adapter=qffn"]),
    ],
)
def test_documented_options_are_settable_and_their_default_keeps_old_hashes(given, plain):
    """Options docs/configs.md documents as "absent (default)" are in the YAML now, so `key=value` sets them; at their
    default they leave the config hash of the runs recorded before them unchanged (schema.added_later)."""
    assert config_hash(compose(given)) == config_hash(compose(plain))
    flipped = [o.replace("=false", "=true") if "=false" in o else o.replace("=true", "=false") for o in given]
    assert config_hash(compose(flipped)) != config_hash(compose(plain))


def test_a_recorded_run_keeps_its_directory():
    """results/mitigation_cells.csv's q = 2 exactly trained run (recorded 2026-12-02): the same overrides still name
    the same run directory, so the committed rows are reused."""
    from qadapt.runs import run_dir_for

    overrides = ["model=smollm2_135m", "adapter=cua", "task=wikitext_ppl", "seed=0", "device=exact",
                 "adapter.qubits_per_block=2", "task.max_tokens=8192", "train.max_steps=30"]  # fmt: skip
    assert run_dir_for(compose(overrides), "train").name == "smollm2_135m-cua-15102e67"


def _override_value(value) -> str | None:
    """``value`` in Hydra's override grammar (None: a value this test does not write, a nested section)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    return None


def test_every_declared_field_of_every_option_is_settable_as_key_value():
    """Each option's schema (qadapt.config.SCHEMAS) is what docs/configs.md documents: every scalar field is settable as
    `group.key=value` under that option, also where the option's YAML leaves the key out (so that runs recorded
    before it keep their hash: `train.eval_every` under `train=default`), and setting it at its default keeps the
    hash of the config without it; an undeclared key names the group's declared ones."""
    from qadapt.config import SCHEMAS, group_choices

    tried = absent = 0
    for group, options in SCHEMAS.items():
        names = [o for o in group_choices(group) if o in options]
        plains = {o: compose([f"{group}={o}"]) for o in names}
        # a key an option leaves out takes a value another option of the group writes (train=paper's eval_every)
        elsewhere = {
            k: v for p in plains.values() for k, v in p[group].items() if not OmegaConf.is_missing(p[group], k)
        }
        for option, plain in plains.items():
            present, missing = {}, {}
            for name in options[option].model_fields:
                here = name in plain[group]
                if here and OmegaConf.is_missing(plain[group], name):
                    continue  # a value the user must give (a hub model's package): nothing to set it back to
                expected = plain[group][name] if here else elsewhere.get(name)
                if _override_value(expected) is not None:
                    (present if here else missing)[name] = expected
            # every present key set to its own value at once: the same config, the same hash
            given = compose([f"{group}={option}", *[f"{group}.{k}={_override_value(v)}" for k, v in present.items()]])
            assert config_hash(given) == config_hash(plain), (group, option)
            # every key the YAML leaves out, set as documented
            given = compose([f"{group}={option}", *[f"{group}.{k}={_override_value(v)}" for k, v in missing.items()]])
            assert {k: given[group][k] for k in missing} == missing, (group, option)
            tried, absent = tried + len(present) + len(missing), absent + len(missing)
    assert tried > 200 and absent >= 10  # train.eval_every, eval_tokens, distill_heads, trainable under 3 options
    with pytest.raises(ConfigError, match=r"train\.bogus: unknown key; train declares: .*eval_every"):
        compose(["train.bogus=1"])
