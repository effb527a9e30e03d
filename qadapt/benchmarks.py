"""What the benchmark scripts share (scripts/bench*.py): real inputs of SmolLM2 sites, the benchmarked block
circuit, a median timer, PennyLane's reference probabilities. Timing lives in benchmarks, never in tests.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .config import compose
from .data.wikitext import load_eval_text
from .models import load
from .quantum import BlockUnitaryCircuit, cayley, random_cayley_generators, skew_symmetric


def site_inputs(tokens: int) -> torch.Tensor:
    """``(tokens, 576)`` real inputs of the last layer's v_proj (after its input RMSNorm)."""
    cfg = compose([])
    loaded = load(cfg.model)
    ids = loaded.tokenizer(load_eval_text(cfg.data_dir).text[:20000], add_special_tokens=False).input_ids[:tokens]
    captured = {}
    v_proj = loaded.model.model.layers[-1].self_attn.v_proj
    handle = v_proj.register_forward_hook(lambda m, args, out: captured.setdefault("x", args[0].detach()))
    with torch.inference_mode():
        loaded.model(torch.tensor([ids]))
    handle.remove()
    return captured["x"][0].double()


def block_circuit(from_run: str | None) -> tuple[BlockUnitaryCircuit, str]:
    """Layer 29's v_proj block circuit (q = 2, 144 blocks): trained (``from_run``) or seeded random generators."""
    if from_run:
        from .runs import load_trained

        weights = load_trained(from_run).weights
        name = next(k for k in weights if "layers.29.self_attn.v_proj" in k)
        gens, source = weights[name].double(), f"trained ({from_run}, {name})"
    else:
        gens, source = (
            random_cayley_generators(144, 4, torch.Generator().manual_seed(0)),
            "random generators (seed 0, std 0.3)",
        )
    return BlockUnitaryCircuit(cayley(skew_symmetric(gens, 4)), 2), source


def median_seconds(fn, repeats: int) -> tuple[float, float, object]:
    """(median, spread = max - min) seconds of ``repeats`` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times) - min(times), out


def ffn_inputs(tokens: int) -> tuple[torch.Tensor, torch.nn.Module]:
    """``(tokens, 576)`` real inputs of SmolLM2 layer 1's FFN (after its RMSNorm), and that FFN (real weights)."""
    cfg = compose([])
    loaded = load(cfg.model)
    text = load_eval_text(cfg.data_dir).text
    ids = loaded.tokenizer(text[: 12 * tokens], add_special_tokens=False).input_ids[:tokens]
    if len(ids) < tokens:
        raise ValueError(f"only {len(ids)} tokens in the text slice, {tokens} requested")
    mlp = loaded.model.model.layers[1].mlp
    captured = {}
    handle = mlp.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0].detach()))
    with torch.inference_mode():
        loaded.model(torch.tensor([ids]), use_cache=False)
    handle.remove()
    return captured["x"][0].clone(), mlp


def pennylane_probs(backend: str, n: int, weights: np.ndarray, states: np.ndarray) -> np.ndarray:
    """``(N, 2^n)`` probabilities from one broadcast QNode call: StatePrep, StronglyEntanglingLayers, probs."""
    import pennylane as qml

    dev = qml.device(backend, wires=n)

    @qml.qnode(dev, diff_method=None)
    def circuit(psi, w):
        qml.StatePrep(psi, wires=range(n))
        qml.StronglyEntanglingLayers(w, wires=range(n))
        return qml.probs(wires=range(n))

    return np.asarray(circuit(states, weights))


# /proc/cpuinfo flags that decide which float32/bfloat16 GEMM kernels MKL and oneDNN run (and so a benchmark's speed
# and its allocation pattern): their names as a reader knows them
ISA_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX-512-BF16",
    "amx_tile": "AMX",
    "amx_bf16": "AMX-BF16",
}


KERNEL_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_facts(info: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """The CPU's model name and which of :data:`ISA_FLAGS` it has, from ``info`` (Linux's ``/proc/cpuinfo``;
    elsewhere the platform's processor string and no flags)."""
    text = info.read_text() if info.exists() else ""
    fields = dict(
        (key.strip(), value.strip())
        for key, value in (line.split(":", 1) for line in text.splitlines() if ":" in line)
        if key.strip() in ("model name", "flags")
    )
    flags = set(fields.get("flags", "").split())
    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "isa": [name for flag, name in ISA_FLAGS.items() if flag in flags],
    }


def machine() -> str:
    """This machine in one line: CPU model and its GEMM instruction sets (AVX2, AVX-512, AVX-512-BF16, AMX), cpus,
    RAM, torch threads, OS, Python and torch versions. Every benchmark file records it."""
    facts = cpu_facts()
    isa = ", ".join(facts["isa"]) or "none of " + "/".join(ISA_FLAGS.values())
    mem = ""
    if Path("/proc/meminfo").exists():
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    # variables that cap the instruction sets MKL and oneDNN use (an AVX2-only machine emulated on an AVX-512 one)
    caps = [f"{name}={os.environ[name]}" for name in KERNEL_CAPS if os.environ.get(name)]
    return (
        f"{facts['cpu']} ({isa}{'; kernels capped: ' + ', '.join(caps) if caps else ''}), {os.cpu_count()} cpus{mem}, "
        f"{torch.get_num_threads()} torch threads, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
