"""Resources of a run without its weights: ``qadapt params`` (parameter counts), ``qadapt plan`` (parameters,
memory, circuits, QPU time) and ``qadapt circuits`` (compiled cost per site), all from the architecture on the meta
device (no weights, no memory).

Parameters: total (after the adapter is injected) and trainable, counted on the meta-device model.

Memory, in bytes at the model's dtypes (``model.dtype``; adapters take their base layer's dtype):

- weights: every parameter and buffer of the adapted model.
- trainable state: the adapter's parameters, their gradients and AdamW's two moments (``exp_avg``,
  ``exp_avg_sq``, each in the parameter's dtype, as ``torch.optim.AdamW`` keeps them): 3 more copies.
- training activations: the tensors autograd saves for backward in one forward pass of ``train.batch_size`` x
  ``train.seq_len`` tokens with labels, traced on the meta device (``torch.autograd.graph.saved_tensors_hooks``;
  a tensor counts once however many ops save it, parameters not at all). The frozen layers below the first
  trainable one save nothing: no gradient flows there. Gradients of activations during backward come on top
  (transient, about one layer's worth).
- evaluation peak: the most bytes alive at once during a no-grad forward of ``task.batch_size`` x
  ``task.max_length`` tokens through the decoder stack (traced on the meta device, every tensor's storage
  followed from creation to release), plus one chunk of LM-head logits and their log-softmax as qadapt's
  scorer computes them (``qadapt/eval/perplexity.py``, ``scored_nll``, ``head_chunk``). The training pass traces
  with an unpacked batch and
  SDPA's causal path (no materialised mask), as real training runs.

Circuits (adapters that talk to a device): one forward pass of a few tokens through a counting device
(:class:`qadapt.devices.accounting.CircuitCounter`) gives, per site, the circuits per token and their qubits.
For ``ibm`` and ``ibm_fake``, a sample of seeded random blocks per site is compiled with the device's backend and
optimisation level (the token circuit: amplitude encoding + Q_j + measurement) for the 2-qubit gate count, depth and
duration, and QPU time is ``shots x (duration + the backend's repetition delay)`` per circuit
(:func:`qadapt.devices.qiskit_compile.qpu_seconds_per_circuit`); the paper's reported rate (4 h 24 min for 1,328
circuits: 11.9 s per circuit; NOTES.md [3rd]) is printed beside it, not used.
Check against the paper: Llama 3.1 8B, CUA with 2 qubits per block on one projection of
width 4,096 = 6,144 parameters and 1,024 circuits per token.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

import torch
from omegaconf import DictConfig
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from . import adapters, models
from .adapters.base import adapter_modules, count_trainable
from .devices.accounting import CircuitCounter
from .errors import ConfigError
from .training.lm import first_trainable_layer, set_trainable

QPU_DEVICES = ("ibm", "ibm_fake")
COMPILE_SAMPLE = 8  # random blocks compiled per site for the gate count (every block of a site has the same shape)


@dataclass
class SitePlan:
    """Circuits one adapter site runs.

    Attributes:
        site: qualified module name. kind: ``block`` (CUA blocks), ``ansatz`` (QFFN), ``overlap`` (quantum heads'
        kernel), ``rbs``. qubits: width of each circuit. circuits_per_token: circuits per evaluated token (mean).
        two_qubit_gates: mean two-qubit gates of the compiled token circuit (IBM devices only). depth: its mean depth.
        duration_s: its mean duration on the backend (s; the backend's gate and measurement durations).
    """

    site: str
    kind: str
    qubits: int
    circuits_per_token: float
    two_qubit_gates: float | None = None  # mean over the compiled sample, token circuit
    depth: float | None = None
    duration_s: float | None = None


@dataclass
class Plan:
    """What a run needs, from the architecture alone (``qadapt plan``; module docstring for how each is measured).

    Attributes:
        model, adapter, device: config name, adapter label, device name.
        total_params: parameters after injection. trainable_params: of those, trained. sites: adapted modules.
        weights_bytes: parameters and buffers (bytes, at the model's dtypes).
        trainable_state_bytes: trainable parameters + gradients + AdamW's two moments (bytes).
        train_tokens: (batch, sequence length) of one training step. train_activation_bytes: tensors saved for
        backward in that step (bytes). eval_tokens: (batch, window length) of one evaluation pass.
        eval_peak_bytes: most bytes alive at once in that pass, LM-head chunk included.
        first_trainable_layer: lowest decoder layer with a trainable parameter (None: no frozen prefix to cache).
        circuit_sites: per site, the circuits it runs (:class:`SitePlan`). shots: measurements per circuit (None:
        exact). backend: IBM backend the gate counts were compiled for. eval_tokens_on_device: tokens an evaluation
        sends to the device (None: all). seconds_per_circuit: QPU seconds per circuit (mean over the circuits of a
        token): ``shots x (duration + repetition delay)`` from the backend (:func:`qpu_seconds_per_circuit`).
        rep_delay_s: the backend's repetition delay (s).
        train_step_flops: FLOPs of one training step (forward + backward, :func:`step_flops`). train_steps: steps of
        the run (None: unknown without the data). train_examples: examples trained on (classification).
        head_params: the fresh classifier head's parameters (classification; trainable, not adapter).
        inputs: ``tokens`` (train_tokens and eval_tokens are (batch, sequence length)) or ``images`` ((batch, side in
        pixels) of square images).
        mitigation: the device's error mitigation and SamplerV2 options, as text (``none``: none).
        calibration_shots: readout-calibration shots, once per evaluation (mthree balanced: 2 x shots).
        notes: caveats printed under the table.
    """

    model: str
    adapter: str
    device: str
    total_params: int
    trainable_params: int
    sites: int
    weights_bytes: int
    trainable_state_bytes: int
    train_tokens: tuple[int, int]  # (batch, seq_len)
    train_activation_bytes: int
    eval_tokens: tuple[int, int]
    eval_peak_bytes: int
    first_trainable_layer: int | None
    circuit_sites: list[SitePlan] = field(default_factory=list)
    shots: int | None = None
    backend: str | None = None
    eval_tokens_on_device: int | None = None
    seconds_per_circuit: float | None = None
    rep_delay_s: float | None = None
    train_step_flops: int | None = None
    train_steps: int | None = None
    train_examples: int | None = None
    head_params: int | None = None
    inputs: str = "tokens"
    mitigation: str = "none"
    calibration_shots: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def circuits_per_token(self) -> float:
        return sum(s.circuits_per_token for s in self.circuit_sites)

    @property
    def train_flops(self) -> int | None:
        """FLOPs of the whole training run (None when its steps are unknown)."""
        if self.train_step_flops is None or self.train_steps is None:
            return None
        return self.train_step_flops * self.train_steps

    @property
    def train_total_bytes(self) -> int:
        return self.weights_bytes + self.trainable_state_bytes + self.train_activation_bytes

    @property
    def eval_total_bytes(self) -> int:
        return self.weights_bytes + self.eval_peak_bytes


@contextmanager
def _meta_trace():
    """What a meta-device forward needs to follow the path a real one takes:

    - transformers checks position ids for packed sequences with a data-dependent ``.all()``; meta tensors hold no
      data, and a plan describes one unpacked batch;
    - SDPA's dispatcher picks the math kernel for meta tensors (it saves the T x T attention matrix); real CPU and
      GPU runs take a flash kernel on the causal, mask-free path, which saves the output and its log-sum-exp only.
    """
    from torch.nn import functional

    sdpa = functional.scaled_dot_product_attention

    def flash_on_meta(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if (
            query.is_meta and attn_mask is None and dropout_p == 0.0
        ):  # the flash kernel takes grouped KV heads as they are
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, 0.0, is_causal, scale=scale
            )[0]
        return sdpa(
            query,
            key,
            value,
            attn_mask=attn_mask,
            dropout_p=dropout_p,
            is_causal=is_causal,
            scale=scale,
            enable_gqa=enable_gqa,
        )

    with _no_data_checks(), mock.patch.object(functional, "scaled_dot_product_attention", flash_on_meta):
        yield


@contextmanager
def _no_data_checks():
    """Skip the checks transformers makes on the values of the inputs (meta tensors have none): the packed-sequence
    test on position ids and the padding warning of encoders called without a mask (a plan's batch has no padding)."""
    import transformers.masking_utils as masking
    from transformers import PreTrainedModel

    with (
        mock.patch.object(masking, "find_packed_sequence_indices", lambda position_ids: None),
        mock.patch.object(PreTrainedModel, "warn_if_padding_and_no_attention_mask", lambda *args, **kwargs: None),
    ):
        yield


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def saved_activation_bytes(model: torch.nn.Module, batch: int, seq_len: int) -> int:
    """Bytes autograd saves for backward in one training forward (labels = inputs) of ``(batch, seq_len)`` tokens.

    ``model`` lives on the meta device (or any other: the count is the same). Parameters and buffers are not counted;
    a tensor saved by several ops
    (or several views of one) counts once.
    """
    ids = torch.zeros(batch, seq_len, dtype=torch.long, device=_device(model))
    return saved_bytes(model, lambda: model(input_ids=ids, labels=ids, use_cache=False))


def saved_bytes(model: torch.nn.Module, forward: Callable[[], object]) -> int:
    """Bytes autograd saves for backward while ``forward()`` runs ``model`` (parameters and buffers not counted; a
    tensor saved by several ops, or several views of one, counts once). Traced as :func:`_meta_trace` says."""
    owned = {id(t) for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}
    keep = []  # the saved tensors stay referenced, so no id is reused while counting

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        if id(t) not in owned and id(base) not in owned:
            saved[id(base)] = base.numel() * base.element_size()
            keep.append(base)
        return t

    with _meta_trace(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(saved.values())


def step_flops(forward: Callable[[], torch.Tensor]) -> int:
    """Floating-point operations of one training step: ``forward()`` returns the loss, then its backward (matrix
    products and attention, as ``torch.utils.flop_counter.FlopCounterMode`` counts them; elementwise work is not
    counted). Only what is computed counts: frozen layers below every trainable parameter have no backward.
    Attention takes its composite (math) path here, so its products are counted whatever kernel a real run picks."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with _no_data_checks(), counter:
        loss = forward()
        if loss.requires_grad:
            loss.backward()
    return int(counter.get_total_flops())


class _LiveBytes(TorchDispatchMode):
    """Follows every storage an op creates until its last tensor is released; ``peak`` = most bytes alive."""

    def __init__(self, ignore: set[int]):
        super().__init__()
        self.ignore, self.refs, self.live, self.peak = ignore, {}, 0, 0

    def _release(self, key: int, nbytes: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.ignore:
                continue
            if key not in self.refs:
                self.refs[key] = 0
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self.refs[key] += 1
            weakref.finalize(t, self._release, key, storage.nbytes())
        return out


def eval_peak_bytes(model: torch.nn.Module, batch: int, seq_len: int) -> int:
    """Peak bytes alive in a no-grad forward of the decoder stack on ``(batch, seq_len)`` tokens, plus what
    :func:`qadapt.tasks.perplexity.scored_nll` holds for one chunk of positions (float32 logits and their
    log-softmax). ``model`` lives on the meta device (or any other: the count is the same)."""
    from .eval.perplexity import head_chunk

    ids = torch.zeros(batch, seq_len, dtype=torch.long, device=_device(model))
    peak = peak_bytes(
        model, lambda: model.get_decoder()(input_ids=ids, attention_mask=None, use_cache=False).last_hidden_state
    )
    vocab = model.get_output_embeddings().weight.shape[0]
    positions = min(head_chunk(vocab), batch * seq_len)
    return peak + 2 * positions * vocab * 4


def peak_bytes(model: torch.nn.Module, forward: Callable[[], object]) -> int:
    """Most bytes alive at once while ``forward()`` runs ``model`` without gradients (its parameters and buffers not
    counted; every storage followed from creation to release)."""
    ignore = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    tracker = _LiveBytes(ignore)
    with _meta_trace(), torch.no_grad(), tracker:
        out = forward()
    del out
    return tracker.peak


def _circuits(model: torch.nn.Module, cfg: DictConfig, tokens: int = 4) -> list[SitePlan]:
    """Circuits per token per adapter site, from one counted no-grad forward of ``tokens`` tokens (meta device)."""
    counter = CircuitCounter()
    adapters.set_device(model, counter)
    hooks = []
    for name, layer in adapter_modules(model):

        def enter(_module, _args, name=name):
            counter.site = name.removeprefix("model.")

        hooks.append(layer.register_forward_pre_hook(enter))
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    try:
        with _meta_trace(), torch.no_grad():
            model(input_ids=ids, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    out = [SitePlan(site, t.kind, t.qubits, t.circuits / tokens) for site, t in counter.tally.items() if t.circuits]
    # circuits a counted forward pass does not see (the quantum heads' kernel is one matmul on the exact device):
    # every adapter layer reports them itself for a window of T = task.max_length tokens
    window = int(cfg.task.get("max_length", cfg.train.seq_len))  # a task without windows: the training length
    for name, layer in adapter_modules(model):
        for s in layer.circuit_sites(window):
            out.append(SitePlan(name.removeprefix("model."), s.kind, s.qubits, s.circuits_per_token))
    return out


def _compile_costs(
    model: torch.nn.Module, sites: list[SitePlan], cfg: DictConfig
) -> tuple[str, float | None, list[str]]:
    """Fill each block site's 2-qubit gate count, depth and duration (mean over a seeded random sample of its
    blocks). Returns the backend's name, its repetition delay (s) and notes."""
    from .devices.qiskit_compile import compile_blocks, fake_backend, rep_delay_s
    from .quantum import random_block_unitaries

    notes = []
    name = str(cfg.device.get("backend") or "FakeFez")
    try:
        backend = fake_backend(name)
    except ConfigError:
        notes.append(f"backend {name} has no fake twin here: compiled for FakeFez (Heron r2) instead")
        name, backend = "FakeFez", fake_backend("FakeFez")
    if cfg.device.name == "ibm" and not cfg.device.get("backend"):
        notes.append("device.backend=null picks the least busy QPU at run time: compiled for FakeFez (Heron r2)")
    level, seed = int(cfg.device.optimization_level), int(cfg.seed)
    gen = torch.Generator().manual_seed(seed)
    compiled: dict[int, tuple[float, float, float | None]] = {}
    for site in sites:
        if site.kind != "block":
            notes.append(f"{site.site}: {site.kind} circuits do not run on the IBM devices (they refuse QFFN)")
            continue
        if site.qubits not in compiled:  # random blocks of one width cost alike: compile a sample once per width
            b = 2**site.qubits
            blocks = random_block_unitaries(COMPILE_SAMPLE, b, gen)
            costs = compile_blocks(blocks.numpy(), backend, level, seed, with_state_prep=True)
            durations = [c.duration_s for c in costs if c.duration_s is not None]
            compiled[site.qubits] = (
                sum(c.two_qubit for c in costs) / len(costs),
                sum(c.depth for c in costs) / len(costs),
                sum(durations) / len(durations) if durations else None,
            )
        site.two_qubit_gates, site.depth, site.duration_s = compiled[site.qubits]
    return name, rep_delay_s(backend), notes


def model_plan(
    cfg: DictConfig,
    model: torch.nn.Module,
    sites: list,
    train_tokens: tuple[int, int],
    train_activation_bytes: int,
    eval_tokens: tuple[int, int],
    eval_peak: int,
    first_trainable: int | None,
) -> Plan:
    """A :class:`Plan` of the adapted meta-device ``model``: names, parameter counts, weights and trainable state
    counted here, the traced figures as given."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return Plan(
        cfg.model.name,
        adapters.describe(cfg.adapter),
        cfg.device.name,
        sum(p.numel() for p in model.parameters()),
        count_trainable(model),
        len(sites),
        sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())),
        3 * sum(p.numel() * p.element_size() for p in trainable),
        train_tokens,
        train_activation_bytes,
        eval_tokens,
        eval_peak,
        first_trainable,
    )


def plan(cfg: DictConfig) -> Plan:
    """Resources of the run ``cfg`` describes (module docstring), with no weights loaded.

    Raises:
        ConfigError: the model has no ``architecture`` block (classification backbones load from their package:
        count them with ``qadapt params``), or the adapter's own config errors.
    """
    if not cfg.model.get("architecture"):
        raise ConfigError(
            f"model={cfg.model.name} has no architecture block in configs/model/; qadapt plan covers the "
            "causal language models (smollm2_135m, gemma3_270m, llama31_8b, llama_7b, qwen_7b) and the "
            "classification backbones with one (minilm_l6, deberta_v3_base, dinov2_large)"
        )
    model = models.build_meta(cfg.model)
    counter = CircuitCounter()
    with torch.device("meta"):  # adapters that build their own tensors build them on the meta device too
        sites = adapters.apply(model, cfg.adapter, counter)
    set_trainable(model, cfg.train)  # train.trainable=all (train=paper): the whole model trains
    trainable = [p for p in model.parameters() if p.requires_grad]
    train_shape = (int(cfg.train.batch_size), int(cfg.train.seq_len))
    # a task that declares no batch or window (mc, vtab): one sequence of the training length
    eval_shape = (int(cfg.task.get("batch_size", 1)), int(cfg.task.get("max_length", cfg.train.seq_len)))
    saved = saved_activation_bytes(model, *train_shape) if trainable else 0
    result = model_plan(
        cfg,
        model,
        sites,
        train_shape,
        saved,
        eval_shape,
        eval_peak_bytes(model, *eval_shape),
        first_trainable_layer(model),
    )
    if trainable:
        ids = torch.zeros(*train_shape, dtype=torch.long, device="meta")
        result.train_step_flops = step_flops(lambda: model(input_ids=ids, labels=ids, use_cache=False).loss)
        result.train_steps = int(cfg.train.max_steps)
    result.circuit_sites = _circuits(model, cfg) if any(True for _ in adapter_modules(model)) else []
    if cfg.device.get("shots") is not None:
        result.shots = int(cfg.device.shots)
    tokens = [int(v) for v in (cfg.task.get("max_tokens"), cfg.device.get("max_tokens")) if v is not None]
    result.eval_tokens_on_device = min(tokens) if tokens else None
    if cfg.device.name in QPU_DEVICES and result.circuit_sites:
        from .devices.qiskit_compile import qpu_seconds_per_circuit

        result.backend, result.rep_delay_s, notes = _compile_costs(model, result.circuit_sites, cfg)
        result.notes += notes
        timed = [s for s in result.circuit_sites if s.duration_s is not None]
        if timed and result.rep_delay_s is not None and result.shots:
            per_token = sum(
                s.circuits_per_token * qpu_seconds_per_circuit(s.duration_s, result.shots, result.rep_delay_s)
                for s in timed
            )
            result.seconds_per_circuit = per_token / sum(s.circuits_per_token for s in timed)
        result.mitigation, result.calibration_shots = _mitigation(cfg.device, result.shots)
    if result.first_trainable_layer is not None:
        result.notes.append(
            f"layers < {result.first_trainable_layer} are frozen below every trainable parameter: "
            "their output can be cached (train.cache_activations, task.cache_activations)"
        )
    return result


def _mitigation(device: DictConfig, shots: int | None) -> tuple[str, int | None]:
    """What ``device``'s mitigation settings add, as text, and the readout-calibration shots (None: no calibration)."""
    parts, calibration = [], None
    if device.mitigation == "readout" and shots:
        calibration = 2 * shots
        parts.append(
            f"readout: the measured qubits calibrated once per evaluation (mthree balanced), {calibration:,} shots "
            "over a few short circuits (qubit preparation + measurement)"
        )
    if device.get("dynamical_decoupling"):
        dd = device.dynamical_decoupling
        parts.append(f"dynamical decoupling {dd}: pulses in idle windows, no circuits or shots")
    if device.twirling != "none":
        parts.append(
            f"twirling ({device.twirling}): each circuit's shots split over randomised variants (IBM Runtime's "
            "default 32); shots unchanged"
        )
    return ("; ".join(parts) or "none"), calibration


def count_params(cfg: DictConfig) -> dict:
    """``qadapt params``: parameter counts from the architecture alone (meta device, no weights): base, adapter
    (trainable), removed (replacement adapters) and total, and the number of adapted sites."""
    from . import devices

    model = models.build_meta(cfg.model)
    total = sum(p.numel() for p in model.parameters())
    sites = adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    added = count_trainable(model)
    after = sum(p.numel() for p in model.parameters())
    return {
        "model": cfg.model.name,
        "adapter": adapters.describe(cfg.adapter),
        "sites": len(sites),
        "base_params": total,
        "adapter_params": added,
        "removed_params": total + added - after,
        "total_params": after,
    }


def circuit_plan(
    cfg: DictConfig,
    backend_name: str,
    optimization_level: int,
    shots: int,
    tokens: int,
    seconds_per_circuit: float | None = None,
) -> list[dict]:
    """``qadapt circuits``: per block-circuit adapter site (CUA), the compiled cost of its circuits on an IBM backend.

    Block unitaries come from ``from_run`` (a trained adapter: its saved weights and structure) or, without it, from
    seeded random generators (an untrained adapter is the identity, which compiles to nothing). No model weights are
    loaded: the sites come from the architecture on the meta device, their block size from the adapter layer itself.
    Returns one dict per site: blocks (= circuits per token), qubits, depth / 1q / 2q gate counts of Q alone
    (mean, max) and of a token's full circuit (amplitude encoding + Q + measurement) with its duration on the
    backend, circuits and shots for ``tokens`` tokens, and QPU time: ``seconds_per_circuit`` when given, else
    ``shots x (token circuit duration + the backend's repetition delay)`` (:func:`qpu_seconds_per_circuit`).

    Raises:
        ConfigError: an unknown backend; QadaptError: ``from_run`` is not a finished run or is damaged.
    """
    import numpy as np
    from omegaconf import OmegaConf

    from . import devices, runs
    from .devices.qiskit_compile import compile_blocks, fake_backend, qpu_seconds_per_circuit, rep_delay_s
    from .quantum import cayley, random_cayley_generators, skew_symmetric

    backend = fake_backend(backend_name)
    delay = rep_delay_s(backend)
    trained = runs.load_trained(cfg.from_run) if cfg.from_run else None
    if trained is not None:
        cfg.adapter = trained.cfg.adapter
    model = models.build_meta(cfg.model)
    adapters.apply(model, cfg.adapter, devices.get(OmegaConf.create({"name": "exact", "shots": None, "seed": 0})))
    gen = torch.Generator().manual_seed(int(cfg.seed))
    rows = []
    for name, layer in adapter_modules(model):
        structure = layer.structure() if hasattr(layer, "structure") else {}
        if "block_size" not in structure or "generator" not in dict(layer.named_parameters(recurse=False)):
            continue  # this adapter runs no block circuits
        b, n_blocks = int(structure["block_size"]), int(structure["n_blocks"])
        if trained is not None:
            gens = trained.weights[f"{name}.generator"].double()
        else:
            gens = random_cayley_generators(n_blocks, b, gen)
        unitaries = cayley(skew_symmetric(gens, b)).numpy()
        q_only = compile_blocks(unitaries, backend, optimization_level, int(cfg.seed))
        full = compile_blocks(unitaries[:1], backend, optimization_level, int(cfg.seed), with_state_prep=True)[0]
        circuits = n_blocks * tokens
        per_circuit, source = seconds_per_circuit, "given"
        if per_circuit is None:
            if full.duration_s is None or delay is None:
                raise ConfigError(
                    f"{backend_name} reports no gate durations or repetition delay: pass --seconds-per-circuit"
                )
            per_circuit, source = qpu_seconds_per_circuit(full.duration_s, shots, delay), backend_name
        rows.append(
            {
                "site": name.removeprefix("model."),
                "blocks": n_blocks,
                "qubits": int(np.log2(b)),
                "q_depth_mean": float(np.mean([c.depth for c in q_only])),
                "q_depth_max": max(c.depth for c in q_only),
                "q_2q_mean": float(np.mean([c.two_qubit for c in q_only])),
                "q_2q_max": max(c.two_qubit for c in q_only),
                "q_1q_mean": float(np.mean([c.one_qubit for c in q_only])),
                "token_circuit_depth": full.depth,
                "token_circuit_2q": full.two_qubit,
                "token_circuit_ops": full.ops,
                "tokens": tokens,
                "circuits": circuits,
                "shots_total": circuits * shots,
                "token_circuit_duration_s": full.duration_s,
                "qpu_seconds_per_circuit": per_circuit,
                "qpu_time_source": source,
                "qpu_hours": circuits * per_circuit / 3600,
                "source": "trained" if trained is not None else "random generators (seeded)",
            }
        )
    return rows


def _gib(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def plan_json(p: Plan) -> str:
    """``qadapt plan --json``: the plan's fields and its totals as indented JSON."""
    import dataclasses
    import json

    return json.dumps(
        {
            **dataclasses.asdict(p),
            "circuits_per_token": p.circuits_per_token,
            "train_total_bytes": p.train_total_bytes,
            "train_flops": p.train_flops,
            "eval_total_bytes": p.eval_total_bytes,
        },
        indent=2,
    )


DEFAULT_TFLOPS = 50.0  # sustained training rate assumed for the time estimate: about a third of an A100's dense
# TF32 peak (156 TFLOP/s; float32 runs) and a sixth of its bf16 peak (312); a user states theirs with --tflops


def _flops(n: float) -> str:
    for unit, size in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f} FLOP"


def _batch(shape: tuple[int, int], inputs: str) -> str:
    if inputs == "images":
        return f"batch {shape[0]} x {shape[1]} x {shape[1]} px images"
    return f"batch {shape[0]} x {shape[1]} tokens"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:,.1f} s"


def plan_tables(p: Plan, cfg: DictConfig, tflops: float = DEFAULT_TFLOPS) -> list:
    """``qadapt plan``: the plan as rich tables (the summary, then circuits per site when there are any);
    ``tflops``: the sustained training rate (TFLOP/s) the time estimate assumes."""
    from rich.table import Table

    table = Table(title=f"qadapt plan: {p.model} · {p.adapter} · device={p.device}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    params = f"{p.total_params:,} in all, {p.trainable_params:,} trainable ({p.sites} sites)"
    if p.head_params is not None:
        params += f": {p.trainable_params - p.head_params:,} adapter + {p.head_params:,} head"
    table.add_row("parameters", params)
    table.add_row("weights", _gib(p.weights_bytes) + f" ({cfg.model.get('dtype', 'float32')})")
    table.add_row("trainable state", _gib(p.trainable_state_bytes) + " (parameters + gradients + AdamW's 2 moments)")
    table.add_row(
        "training activations",
        f"{_gib(p.train_activation_bytes)} saved for backward at {_batch(p.train_tokens, p.inputs)}; "
        f"training total {_gib(p.train_total_bytes)}",
    )
    table.add_row(
        "evaluation peak",
        f"{_gib(p.eval_peak_bytes)} at {_batch(p.eval_tokens, p.inputs)}; evaluation total {_gib(p.eval_total_bytes)}",
    )
    if p.train_step_flops is not None:
        line = f"{_flops(p.train_step_flops)} per step (forward + backward)"
        if p.train_flops is not None:
            seconds = p.train_flops / (tflops * 1e12)
            examples = f" over {p.train_examples:,} examples" if p.train_examples is not None else ""
            line += (
                f" x {p.train_steps:,} steps{examples} = {_flops(p.train_flops)}: {_duration(seconds)} at "
                f"{tflops:g} TFLOP/s sustained (--tflops)"
            )
        table.add_row("training compute", line)
    if p.circuit_sites:
        widths = sorted({s.qubits for s in p.circuit_sites})
        table.add_row(
            "circuits",
            f"{p.circuits_per_token:,.0f} per token over {len(p.circuit_sites)} sites, "
            f"{'/'.join(map(str, widths))} qubits per circuit",
        )
        if p.shots:
            table.add_row("shots", f"{p.shots:,} per circuit, {p.shots * p.circuits_per_token:,.0f} per token")
        gates = [s for s in p.circuit_sites if s.two_qubit_gates is not None]
        if gates:
            mean = sum(s.two_qubit_gates * s.circuits_per_token for s in gates) / sum(
                s.circuits_per_token for s in gates
            )
            table.add_row(
                "compiled",
                f"{p.backend}, optimisation level {cfg.device.get('optimization_level', 2)}: "
                f"{mean:.1f} two-qubit gates per token circuit (mean over sites)",
            )
        if p.seconds_per_circuit:
            from .devices.qiskit_compile import PAPER_SECONDS_PER_CIRCUIT

            per_token = p.circuits_per_token * p.seconds_per_circuit / 3600
            line = (
                f"{per_token:,.2f} h per token at {p.seconds_per_circuit:.2f} s per circuit ({p.backend}: "
                f"{p.shots:,} shots x (circuit + {p.rep_delay_s * 1e6:.0f} us repetition delay), without the "
                "runtime's per-job overhead)"
            )
            if p.eval_tokens_on_device:
                line += f"; {per_token * p.eval_tokens_on_device:,.2f} h for {p.eval_tokens_on_device:,} tokens"
            paper = p.circuits_per_token * PAPER_SECONDS_PER_CIRCUIT / 3600
            line += f". At the paper's reported rate (4 h 24 min / 1,328 circuits): {paper:,.2f} h per token"
            table.add_row("QPU time", line)
        if p.mitigation != "none":
            table.add_row("mitigation", p.mitigation)
    else:
        table.add_row("circuits", "none: this adapter runs no circuits on a device")
    for note in p.notes:
        table.add_row("note", note)
    tables = [table]
    if p.circuit_sites:
        sites = Table(title="circuits per site")
        for col in ("site", "kind", "qubits", "circuits/token", "2q gates", "depth"):
            sites.add_column(col)
        for s in p.circuit_sites:
            sites.add_row(
                s.site,
                s.kind,
                str(s.qubits),
                f"{s.circuits_per_token:,.1f}",
                "" if s.two_qubit_gates is None else f"{s.two_qubit_gates:.1f}",
                "" if s.depth is None else f"{s.depth:.1f}",
            )
        tables.append(sites)
    return tables


def qpu_seconds(cfg: DictConfig, tokens: int) -> tuple[float | None, Plan]:
    """The QPU time an evaluation of ``tokens`` device positions would take, as ``qadapt plan`` estimates it:
    circuits per token x QPU seconds per circuit (``shots x (duration + repetition delay)`` of the circuits compiled
    for the backend or its fake twin) x tokens, without the runtime's per-job overhead. None where the plan has no
    timing (no circuits on this device, or no duration).

    Args:
        tokens: positions sent to the device (tokens).
    Returns:
        (seconds of QPU time or None, the :class:`Plan` it came from).
    Raises:
        ConfigError: as :func:`plan` (a model without an ``architecture`` block).
    """
    p = plan(cfg)
    if not p.circuit_sites or not p.seconds_per_circuit:
        return None, p
    return p.circuits_per_token * p.seconds_per_circuit * tokens, p


def check_qpu_budget(cfg: DictConfig, tokens: int) -> float | None:
    """Refuse, before the first job, an evaluation whose estimated QPU time exceeds ``device.max_qpu_seconds``
    (issue 44: a QPU hour costs money, and a CUA evaluation is millions of circuits). Returns the estimate (seconds;
    None without a cap or a timing).

    Raises:
        ConfigError: the estimate is above the cap (exit 2): the estimate, how it was made, the cap, and the
            overrides that raise the cap or send fewer tokens.
    """
    cap = cfg.device.get("max_qpu_seconds")
    if cap is None:
        return None
    seconds, p = qpu_seconds(cfg, tokens)
    if seconds is not None and seconds > float(cap):
        per_token = seconds / tokens
        fits = int(float(cap) // per_token)
        fewer = (
            f"send fewer tokens (device.max_tokens={fits} fits the cap)"
            if fits
            else f"no token fits the cap: one needs {per_token:,.0f} s"
        )
        raise ConfigError(
            f"device.max_qpu_seconds={cap:g}: this evaluation needs an estimated {seconds:,.0f} s of QPU time "
            f"({tokens:,} tokens x {p.circuits_per_token:,.0f} circuits per token x {p.seconds_per_circuit:.3f} s "
            f"per circuit, {p.shots:,} shots, compiled for {p.backend}; qadapt plan's estimate, without the "
            f"runtime's per-job overhead). Raise the cap (device.max_qpu_seconds={seconds * 1.1:.0f}) or {fewer}"
        )
    return seconds
