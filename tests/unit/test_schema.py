"""Typed configs (qadapt/schema.py, the option classes of qadapt.config.SCHEMAS): wrong types and ranges exit 2 naming
the key, every option composes, every yaml key has a typed and documented field; default adapter targets per model
family fit the model."""

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.config import SCHEMAS, RootConfig, compose, config_hash, group_choices
from qadapt.errors import ConfigError
from qadapt.paths import CONFIG_DIR
from qadapt.schema import GROUPS, schema_keys

runner = CliRunner()

# options that only make sense with others: compose them with their natural partners
PARTNERS = {
    ("task", "glue"): ["model=minilm_l6", "train=classify"],
    ("task", "vtab"): ["model=efficientnet_lite0", "train=classify"],
    ("task", "compression_recovery"): ["train=recovery"],
    ("train", "classify"): ["model=minilm_l6", "task=glue"],
    ("train", "recovery"): ["task=compression_recovery"],
    ("train", "new_blocks"): ["adapter=qffn"],
    ("train", "paper"): ["adapter=qffn"],
    ("model", "minilm_l6"): ["task=glue", "train=classify", "adapter=rbs"],
    ("model", "deberta_v3_base"): ["task=glue", "train=classify", "adapter=lora"],
    ("model", "efficientnet_lite0"): ["task=vtab", "train=classify", "adapter=rbs"],
    ("model", "dinov2_large"): ["task=vtab", "train=classify", "adapter=lora"],
}


@pytest.mark.parametrize(
    "argv,key,accepts",
    [
        (["adapter.qubits_per_block=abc"], "adapter.qubits_per_block='abc'", "expected an integer >= 1"),
        (["train.max_grad_norm=null"], "train.max_grad_norm=null", "expected a number > 0"),
    ],
)
def test_cli_type_errors_exit_2_naming_the_key(argv, key, accepts):
    result = runner.invoke(app, ["train", *argv])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"error: {key}: {accepts}" in out
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["adapter.qubits_per_block=0"], "adapter.qubits_per_block=0: expected an integer >= 1"),
        (["adapter.qubits_per_block=2.0"], "adapter.qubits_per_block=2.0: expected an integer >= 1"),
        (["device.shots=0"], "device.shots=0: expected an integer >= 1 or null"),
        (
            ["device=ibm_fake", "device.optimization_level=4"],
            "device.optimization_level=4: expected an integer in [0, 3]",
        ),
        (
            ["adapter=qffn", "adapter.fraction=most"],
            "adapter.fraction='most': expected one of the valid choices: quarter, half, full",
        ),
        (["adapter.side=up"], "adapter.side='up': expected one of the valid choices: input, output"),
        (["task.mode=rolling"], "task.mode='rolling': expected one of the valid choices: sliding, documents"),
        (["train.cache_activations=sometimes"], "valid choices: auto, true, false"),
        (
            ["train.schedule=cosine_annealing"],
            "train.schedule='cosine_annealing': expected one of the valid choices: linear, cosine",
        ),
        (["train.lr=0"], "train.lr=0: expected a number > 0"),
        (["train.lr=fast"], "train.lr='fast': expected a number > 0"),
        (["train=classify", "train.warmup_ratio=1.5"], "train.warmup_ratio=1.5: expected a number in [0, 1]"),
        (
            ["task=compression_recovery", "task.compression.ratio=1.5"],
            "task.compression.ratio=1.5: expected a number in (0, 1]",
        ),
        (["adapter=lora", "adapter.dropout=1"], "adapter.dropout=1: expected a number in [0, 1)"),
        (["adapter=ffn_lowrank", "adapter.rank=-1"], "adapter.rank=-1: expected auto or an integer >= 0"),
        (["adapter.layers=[1,x]"], "adapter.layers=[1, 'x']: expected a list of integers or null"),
        (["adapter.modules=v_proj"], "adapter.modules='v_proj': expected a non-empty list of"),
        (["adapter.modules=[]"], "adapter.modules=[]: expected a non-empty list of"),
        (["task=mc", "task.mc.mmlu_shots=[0,6]"], "task.mc.mmlu_shots=[0, 6]: expected a list of integers in [0, 5]"),
        (["model.architecture.hidden_size=-1"], "model.architecture.hidden_size=-1: expected an integer >= 1"),
        (
            ["model.dtype=float64"],
            "model.dtype='float64': expected one of the valid choices: float32, bfloat16, float16",
        ),
        (["seed=-1"], "seed=-1: expected an integer >= 0"),
        (["threads=0"], "threads=0: expected an integer >= 1 or null"),
        (["resume=maybe"], "resume='maybe': expected true or false"),
        (["run_name=2024"], "run_name=2024: expected a non-empty string or null (quote it: run_name='2024')"),
        (["device=ibm_fake", "device.shots=null"], "set device.shots"),
        (["adapter.name=lora"], "adapter.name='lora': expected 'cua' (the name of adapter=cua"),
        (["+adapter.foo=1"], "adapter.foo: not a key of adapter=cua; its keys: name, qubits_per_block"),
        # a key another adapter declares (qffn's): set as documented, then refused by cua's own class
        (["adapter.quantum_ffn=false"], "adapter.quantum_ffn: not a key of adapter=cua; its keys: name, qubits_per_"),
        (["~adapter.side"], "adapter.side is missing: expected one of the valid choices: input, output"),
        (["adapter.modules=${model.nope}"], "adapter.modules: Interpolation key 'model.nope' not found"),
    ],
)
def test_wrong_type_or_range_names_the_key_and_what_it_accepts(overrides, message):
    with pytest.raises(ConfigError) as err:
        compose(overrides)
    assert message in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        compose(["adapter.qubits_per_block=abc", "train.lr=-1"])
    assert "adapter.qubits_per_block='abc'" in str(err.value) and "train.lr=-1" in str(err.value)


def test_valid_values_of_other_types_pass_unchanged():
    cfg = compose(
        [
            "train.lr=1",
            "train.max_grad_norm=inf",
            "device.shots=8",
            "adapter.layers=null",
            "run_name='2024'",
            "train.cache_activations=true",
            "model.max_memory={0: 70GiB, cpu: 100GiB}",
            "model.device_map=auto",
        ]
    )
    assert cfg.train.lr == 1 and isinstance(cfg.train.lr, int)  # not turned into 1.0: the config hash stays as it was
    assert cfg.run_name == "2024" and cfg.train.cache_activations is True and cfg.adapter.layers is None


def _option_overrides(group: str, option: str) -> list[str]:
    return [f"{group}={option}", *PARTNERS.get((group, option), [])]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_choices(g)])
def test_every_option_composes_cleanly(group, option):
    cfg = compose(_option_overrides(group, option))
    if group != "train":
        assert cfg[group].name == option
    known = set(SCHEMAS[group][option].model_fields)
    assert set(cfg[group].keys()) <= known


def test_every_yaml_option_has_a_schema():
    for group in GROUPS:
        assert sorted(SCHEMAS[group]) == group_choices(group), f"configs/{group}/ and SCHEMAS['{group}'] differ"


def _yaml_keys(node: dict, prefix: str = "", values: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys of a yaml file, nested blocks included (mappings that are values, as gguf_chunks, are not blocks;
    ``values``: more such keys)."""
    keys = []
    for key, value in node.items():
        keys.append(prefix + str(key))
        if isinstance(value, dict) and str(key) not in ("gguf_chunks", "max_memory", "device_map", *values):
            keys += _yaml_keys(value, f"{prefix}{key}.")
    return keys


def _raw(path):
    raw = OmegaConf.load(path)
    for key in ("defaults", "hydra"):
        raw.pop(key, None)
    return raw


@pytest.mark.parametrize("group,option", [("", "config")] + [(g, o) for g in GROUPS for o in group_choices(g)])
def test_every_yaml_key_has_a_typed_documented_field(group, option):
    cls = SCHEMAS[group][option] if group else RootConfig
    path = CONFIG_DIR / group / f"{option}.yaml" if group else CONFIG_DIR / "config.yaml"
    known = schema_keys(cls)
    # a classification backbone's architecture is transformers' own config, one mapping value (checked by type);
    # the language models' is a typed block
    values = tuple(
        name for name in cls.model_fields if name == "architecture" and not known[name].startswith("a block")
    )
    missing = [
        k for k in _yaml_keys(OmegaConf.to_container(_raw(path), resolve=False), values=values) if k not in known
    ]
    assert not missing, f"{path.name}: keys without a field in {cls.__module__}.{cls.__name__}: {missing}"
    for name, fl in cls.model_fields.items():  # documented: meaning (and unit) in the field, listed in the docstring
        assert fl.description and f"        {name} (" in cls.__doc__


def test_schema_imports_no_heavy_library():
    import subprocess
    import sys

    heavy = ("torch", "pennylane", "qiskit", "peft", "transformers")
    code = f"import sys, qadapt.config; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------
# adapter targets per model family

TARGETS = {
    "smollm2_135m": ["q_proj", "v_proj"],
    "gemma3_270m": ["q_proj", "v_proj"],
    "llama31_8b": ["q_proj", "v_proj"],
    "llama_7b": ["q_proj", "v_proj"],
    "qwen_7b": ["q_proj", "v_proj"],
    "minilm_l6": ["query", "value"],
    "deberta_v3_base": ["query_proj", "value_proj"],
    "efficientnet_lite0": ["_project_conv", "_conv_head"],
    "dinov2_large": ["q_proj", "v_proj", "query", "value"],
}


@pytest.mark.parametrize("adapter", ["lora", "oft", "boft", "rbs"])
def test_peft_and_rbs_modules_default_to_the_models_targets(adapter):
    for model, targets in TARGETS.items():
        assert list(compose([f"model={model}", f"adapter={adapter}"]).adapter.modules) == targets
    assert list(compose(["adapter=cua"]).adapter.modules) == ["v_proj"]  # CUA keeps the paper's site
    explicit = compose([f"adapter={adapter}", "adapter.modules=[o_proj]"])  # an explicit choice still wins
    assert list(explicit.adapter.modules) == ["o_proj"] and list(explicit.model.adapter_targets) == ["q_proj", "v_proj"]


def test_adapter_targets_leave_the_config_hash_alone():
    """Run directories are named by the hash: the new model key and the MiniLM default (same resolved modules as
    before) must not rename existing runs."""
    glue = compose(["task=glue", "train=classify", "model=minilm_l6", "adapter=lora"])
    plain = OmegaConf.to_container(glue)
    del plain["model"]["adapter_targets"]
    assert config_hash(glue) == config_hash(OmegaConf.create(plain))
    assert config_hash(compose(["model.adapter_targets=[k_proj]"])) == config_hash(compose([]))  # cua ignores it
    lora = compose(["adapter=lora"])
    assert config_hash(lora) != config_hash(compose(["adapter=lora", "adapter.modules=[query,value]"]))


def test_train_device_null_leaves_the_config_hash_alone():
    """train.device (null = exact) came after runs existed: null hashes as if the key were absent, a value does not."""
    cfg = compose(["adapter=cua"])
    assert cfg.train.device is None
    plain = OmegaConf.to_container(cfg)
    del plain["train"]["device"]
    assert config_hash(cfg) == config_hash(OmegaConf.create(plain))
    assert config_hash(compose(["adapter=cua", "train.device=exact"])) != config_hash(cfg)


def test_blockdiag_free_leaves_the_config_hash_alone():
    """adapter.parametrization came to blockdiag after its runs existed: ``free`` (the old behaviour) hashes as if
    the key were absent, so those runs keep their directories; ``skew`` is another run; rbs keeps the key."""
    cfg = compose(["adapter=blockdiag"])
    assert cfg.adapter.parametrization == "free"
    plain = OmegaConf.to_container(cfg)
    del plain["adapter"]["parametrization"]
    assert config_hash(cfg) == config_hash(OmegaConf.create(plain))
    assert config_hash(compose(["adapter=blockdiag", "adapter.parametrization=skew"])) != config_hash(cfg)
    rbs = compose(["adapter=rbs", "adapter.parametrization=free"])
    plain = OmegaConf.to_container(rbs)
    del plain["adapter"]["parametrization"]
    assert config_hash(rbs) != config_hash(OmegaConf.create(plain))


def _load(model: str, cfg):
    if model == "minilm_l6":
        from qadapt.models.encoders import load_text_classifier

        return load_text_classifier(cfg.model, 2)[0]
    if model == "efficientnet_lite0":
        from qadapt.models.encoders import load_image_classifier

        return load_image_classifier(cfg.model, 2)[0]
    from qadapt.models import build_meta

    return build_meta(cfg.model)  # the architecture on the meta device: cheap, no weights


@pytest.mark.parametrize("model", ["smollm2_135m", "gemma3_270m", "minilm_l6", "efficientnet_lite0"])
@pytest.mark.parametrize("adapter", ["lora", "oft", "boft", "rbs"])
def test_default_targets_inject_into_every_offline_model(model, adapter):
    from qadapt import adapters, devices

    # EfficientNet-Lite0's target input widths are multiples of 16 (144, 240, ...): OFT's block must divide them
    extra = ["adapter.block_size=16"] if (model, adapter) == ("efficientnet_lite0", "oft") else []
    cfg = compose([f"model={model}", f"adapter={adapter}", *extra])
    net = _load(model, cfg)
    sites = adapters.apply(net, cfg.adapter, devices.get(cfg.device))
    assert {s.rsplit(".", 1)[-1] for s in sites} == set(TARGETS[model])


@pytest.mark.parametrize("model,model_type", [("deberta_v3_base", "deberta-v2"), ("dinov2_large", "dinov2")])
def test_default_targets_match_the_hub_only_architectures(model, model_type):
    """DeBERTaV3 and DINOv2 are hub-only: their architecture from transformers' config alone, on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModel

    from qadapt.adapters import peft_baselines

    with torch.device("meta"):
        net = AutoModel.from_config(AutoConfig.for_model(model_type, num_hidden_layers=2))
    cfg = compose([f"model={model}", "adapter=lora"])
    sites = peft_baselines.inject_lora(net, cfg.adapter)
    assert len(sites) == 2 * 2  # query and value of each of the 2 layers


def test_lora_on_the_wrong_names_lists_the_models_layers():
    from qadapt.adapters import peft_baselines
    from qadapt.models import build_meta

    cfg = compose(["adapter=lora", "adapter.modules=[query]"])
    with pytest.raises(ConfigError, match="default: model.adapter_targets.*valid choices: .*q_proj.*v_proj"):
        peft_baselines.inject_lora(build_meta(cfg.model), cfg.adapter)


def test_one_class_for_several_options_still_holds_each_option_to_its_own_name():
    """The PennyLane simulators share one class: device=default_qubit with another simulator's name is refused."""
    assert compose(["device=lightning_qubit"]).device.name == "lightning_qubit"
    with pytest.raises(ConfigError, match=r"device.name='lightning_qubit': expected 'default_qubit'"):
        compose(["device=default_qubit", "device.name=lightning_qubit"])


def test_each_option_class_lives_in_the_options_module_of_the_room_that_reads_it():
    # the group -> the package whose code reads its options (config folders mirror code folders)
    room = {"model": "models", "adapter": "adapters", "device": "devices", "task": "data", "train": "training"}
    for group, options in SCHEMAS.items():
        for option, cls in options.items():
            assert cls.__module__ == f"qadapt.{room[group]}.options", (group, option, cls.__module__)
            assert cls.group == group, (group, option, cls.group)
