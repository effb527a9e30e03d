"""The ``adapter`` options (``configs/adapter/*.yaml``), one pydantic model each, beside the code that reads them
(``cua.py`` reads :class:`CUAAdapter`, ``rbs.py`` :class:`RBSAdapter`, ``blockdiag.py``, ``norm_tuning.py``,
``ffn_lowrank.py`` and ``ffn_pruned.py`` theirs; the replacement adapters' shared keys are QFFN's,
:class:`QFFNAdapter`, read by ``replacement.py``). lora, oft, boft, full and none are checked by ``compose`` and found
by name through ``qadapt.config.option_class``.

A module of its own, without torch or peft, because every command's config check (``qadapt.config.compose``) reads
it; the code that uses the options imports them from here (:mod:`qadapt.schema` has the base class and the shared
types).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..schema import (
    Fraction,
    LayerPattern,
    Layers,
    Modules,
    NonNegInt,
    Number,
    Option,
    PosInt,
    Seed,
    Side,
    added_later,
    name_field,
)


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
