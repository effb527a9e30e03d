"""QuIC: quantum-inspired compound adapters (``adapter=rbs``), multiplicative and orthogonal, as OFT.

Source: QuIC paper (arXiv 2502.06916; ../shared/papers/NOTES.md, QuIC section). Per block, an n x n base
matrix A gives the block matrix

    B = A^(k1) (+) A^(k2) (+) ... (+) I_pad          (direct sum; A^(k) = k-th compound, C(n, k) square)

of size ``block_size`` = sum_k C(n, k) + pad. A is orthogonal, from a Cayley transform of a skew-symmetric
generator (``parametrization=cayley``) or from the angles of a Hamming-weight-preserving RBS circuit
(``parametrization=rbs``, pyramid or butterfly layout; the circuit's weight-k block *is* A^(k), see
qadapt/quantum/compound.py), or unconstrained A = I + M (``parametrization=free``, the paper's "without
orthogonality" ablation; its compounds are not orthogonal), or A = I - 2S from the same skew generator S as
``cayley`` (``parametrization=skew``: the Cayley map's first-order term, the same n(n-1)/2 parameters and the
same gradient at S = 0, but not orthogonal, since A^T A = I + 4 S^T S; the parameter-matched control that
isolates the orthogonality, where ``free`` also changes the parameter count). All parameters start at zero:
B = I, and the adapted model equals the frozen one at step 0.

A feature vector of width d is cut into N = floor(d / block_size) blocks (the d - N * block_size features
left at the end pass unchanged, identity padding), and each block is multiplied by its own B_j, or by one
shared B (``block_share``). As peft's OFT does (W' = R W in the OFT paper's (in, out) layout), the rotation
acts on the layer's input features (``side=input``): for ``nn.Linear`` y = W (B^T x) + bias, i.e. row vectors
x <- x B, exactly peft's ``OFTRotationModule``; ``side=output`` rotates the output, y <- y B. The rotated weight
W' is formed once per forward pass (cost d_out * d * block_size, independent of the number of tokens).
``nn.Conv2d`` is treated as the matrix (out, in * kh * kw) (input side) or its out channels (output side).

Parameters per site (exact):
    p(n) * (1 if block_share else N),  p(n) = n(n-1)/2 (cayley, skew, rbs pyramid) | (n/2) log2 n (rbs butterfly)
    | n^2 (free)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from .. import schema
from ..errors import ConfigError
from ..log import log
from ..quantum import cayley, num_skew_params, skew_symmetric
from ..quantum.compound import RBSCircuit, compound, compound_dim, num_rbs_gates
from .base import AdapterLayer
from .options import RBSAdapter


@dataclass(frozen=True)
class RBSConfig:
    n: int
    orders: tuple[int, ...]
    block_size: int | None
    parametrization: str
    layout: str
    block_share: bool
    modules: tuple[str, ...]
    side: str

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> RBSConfig:
        """Raises: ConfigError for a value the option does not accept (:class:`.options.RBSAdapter`), an order
        above n, a butterfly layout with n not a power of two, or a block smaller than the compounds."""
        o = schema.read(cfg, RBSAdapter)
        n, orders = o.n, tuple(sorted(set(o.orders)))
        if orders[-1] > n:
            raise ConfigError(f"adapter.orders must be compound orders in [1, {n}], got {list(o.orders)}")
        if o.parametrization == "rbs" and o.layout == "butterfly" and n & (n - 1):
            raise ConfigError(f"adapter.layout=butterfly needs adapter.n a power of two, got {n}")
        natural = compound_dim(n, orders)
        if o.block_size is not None and o.block_size < natural:
            raise ConfigError(
                f"adapter.block_size={o.block_size} is smaller than the compounds' size sum_k C({n}, k) = {natural}"
            )
        return cls(n, orders, o.block_size, o.parametrization, o.layout, o.block_share, tuple(o.modules), o.side)

    @property
    def size(self) -> int:
        """Block size: the configured one, else sum_k C(n, k) (no padding)."""
        return self.block_size or compound_dim(self.n, self.orders)

    @property
    def params_per_block(self) -> int:
        if self.parametrization == "free":
            return self.n * self.n
        if self.parametrization == "rbs":
            return num_rbs_gates(self.n, self.layout)
        return num_skew_params(self.n)


def rbs_param_count(width: int, cfg: RBSConfig) -> int:
    """Trainable parameters of one site whose rotated side has ``width`` features (formula in the module doc).

    Raises:
        ConfigError: ``width`` is smaller than one block.
    """
    blocks = width // cfg.size
    if blocks == 0:
        raise ConfigError(
            f"a layer side of width {width} holds no block of size {cfg.size}; lower adapter.n or block_size"
        )
    return cfg.params_per_block * (1 if cfg.block_share else blocks)


class CompoundLayer(AdapterLayer):
    """Wraps a frozen ``nn.Linear`` or ``nn.Conv2d``; multiplies its input (or output) features by B = (+)_k A^(k).

    Attributes:
        weight: ``(N or 1, p(n))`` generators (skew upper triangles for cayley and skew, RBS angles, or free
            entries), zero init.
    """

    adapter_name = "rbs"

    def __init__(self, base: nn.Module, cfg: RBSConfig):
        super().__init__(base)
        if not isinstance(base, (nn.Linear, nn.Conv2d)):
            raise ConfigError(f"adapter=rbs wraps nn.Linear or nn.Conv2d, not {type(base).__name__}")
        self.cfg = cfg
        w = base.weight
        self.width = w.shape[0] if cfg.side == "output" else w[0].numel()
        self.n_blocks = self.width // cfg.size
        rbs_param_count(self.width, cfg)  # raises when no block fits
        shape = (1 if cfg.block_share else self.n_blocks, cfg.params_per_block)
        self.weight = nn.Parameter(torch.zeros(shape, dtype=torch.float32, device=w.device))

    def structure(self) -> dict:
        """``n``, ``orders``, ``block_size``, ``parametrization``, ``layout``, ``block_share``, ``side``, ``n_blocks``
        and ``width`` (features on the rotated side; the last width - n_blocks * block_size pass unchanged)."""
        c = self.cfg
        return {
            **super().structure(),
            "n": c.n,
            "orders": list(c.orders),
            "block_size": c.size,
            "parametrization": c.parametrization,
            "layout": c.layout,
            "block_share": c.block_share,
            "side": c.side,
            "n_blocks": self.n_blocks,
            "width": self.width,
        }

    def base_matrix(self) -> torch.Tensor:
        """A: ``(N or 1, n, n)``; orthogonal for ``cayley`` and ``rbs``, not for ``free`` and ``skew``."""
        cfg, p = self.cfg, self.weight
        if cfg.parametrization == "cayley":
            return cayley(skew_symmetric(p, cfg.n))
        if cfg.parametrization == "skew":  # Cayley's (I - S)(I + S)^-1 = I - 2S + O(S^2), truncated
            return torch.eye(cfg.n, dtype=p.dtype, device=p.device) - 2 * skew_symmetric(p, cfg.n)
        if cfg.parametrization == "rbs":
            return RBSCircuit(p, cfg.n, cfg.layout).weight1_matrix()
        return torch.eye(cfg.n, dtype=p.dtype, device=p.device) + p.reshape(-1, cfg.n, cfg.n)

    def blocks(self) -> torch.Tensor:
        """B_j = (+)_k A_j^(k) (+) I: ``(N, block_size, block_size)``."""
        a = self.base_matrix()
        parts = [compound(a, k) for k in self.cfg.orders]
        pad = self.cfg.size - sum(part.shape[-1] for part in parts)
        if pad:
            parts.append(torch.eye(pad, dtype=a.dtype, device=a.device).expand(a.shape[0], pad, pad))
        out = torch.zeros(a.shape[0], self.cfg.size, self.cfg.size, dtype=a.dtype, device=a.device)
        start = 0
        for part in parts:  # direct sum; a handful of orders, not a hot loop
            stop = start + part.shape[-1]
            out[:, start:stop, start:stop] = part
            start = stop
        return out.expand(self.n_blocks, -1, -1) if self.cfg.block_share else out

    def rotated_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W', bias'): the frozen layer's weight (and, on the output side, bias) with the blocks applied."""
        w, bias = self.base.weight, self.base.bias
        blocks = self.blocks().to(w.dtype)
        used = self.n_blocks * self.cfg.size
        if self.cfg.side == "input":  # x <- x B  =>  W' = W B^T on the flattened input axis
            flat = w.reshape(w.shape[0], -1)
            rows = flat[:, :used].reshape(w.shape[0], self.n_blocks, self.cfg.size)
            head = torch.einsum("onc,nkc->onk", rows, blocks)
            return torch.cat([head.reshape(w.shape[0], used), flat[:, used:]], 1).reshape(w.shape), bias
        flat = w.reshape(w.shape[0], -1)  # y <- y B  =>  W' = B^T W on the output axis, bias' = bias B
        rows = flat[:used].reshape(self.n_blocks, self.cfg.size, -1)
        head = torch.einsum("nkc,nki->nci", blocks, rows).reshape(used, -1)
        new_w = torch.cat([head, flat[used:]], 0).reshape(w.shape)
        if bias is not None:
            head_b = torch.einsum("nk,nkc->nc", bias[:used].reshape(self.n_blocks, self.cfg.size), blocks).reshape(used)
            bias = torch.cat([head_b, bias[used:]])
        return new_w, bias

    def merged_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`rotated_weight`: the compounds folded into the layer (Linear or Conv2d weight shape)."""
        return self.rotated_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.base(x)
        w, bias = self.merged if self.merged is not None else self.rotated_weight()
        if isinstance(self.base, nn.Linear):
            return F.linear(x, w, bias)
        return self.base._conv_forward(x, w, bias)


def find_modules(model: nn.Module, names, kinds=(nn.Linear, nn.Conv2d)) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, parent, attribute) of every module of type ``kinds`` whose name ends with one of ``names``
    (peft's ``target_modules`` rule: exact suffix match on dotted components, or a full-name regex ``re:<pattern>``).

    Raises:
        ConfigError: nothing matches (lists the module names that would).
    """
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, kinds) or isinstance(module, AdapterLayer):
            continue
        hit = any(
            re.fullmatch(n[3:], name) if n.startswith("re:") else (name == n or name.endswith("." + n)) for n in names
        )
        if hit:
            parent_name, _, attr = name.rpartition(".")
            found.append((name, model.get_submodule(parent_name) if parent_name else model, attr))
    if not found:
        valid = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, kinds)})
        raise ConfigError(
            f"adapter.modules {list(names)} match no {'/'.join(k.__name__ for k in kinds)} layer; "
            f"valid choices: {', '.join(valid)}"
        )
    return found


def inject(model: nn.Module, cfg: DictConfig, device=None) -> list[str]:
    """Wrap every target layer of ``model`` in a :class:`CompoundLayer`; returns the site names.

    ``device`` is unused: QuIC is quantum-inspired, its compounds are computed classically (the RBS-circuit
    equivalence is checked on the devices by tests/unit/test_rbs.py).

    Raises:
        ConfigError: bad config values, target names that match nothing (valid names listed), or every target
            narrower than one block (narrower ones among wider ones are left as they are, and logged).
    """
    rcfg = RBSConfig.from_cfg(cfg)
    sites, narrow = [], []
    for name, parent, attr in find_modules(model, rcfg.modules):
        module = getattr(parent, attr)
        width = module.weight.shape[0] if rcfg.side == "output" else module.weight[0].numel()
        if width < rcfg.size:  # e.g. a CNN's first, narrow block: no whole compound block fits, nothing to adapt
            narrow.append(f"{name} ({width})")
            continue
        setattr(parent, attr, CompoundLayer(module, rcfg))
        sites.append(name)
    if narrow:
        if not sites:
            raise ConfigError(
                f"every target layer is narrower than one block of size {rcfg.size}: "
                f"{', '.join(narrow[:4])}; lower adapter.n or adapter.block_size"
            )
        log(
            f"adapter=rbs: left {len(narrow)} layer(s) narrower than a block of {rcfg.size} as they are: "
            f"{', '.join(narrow[:4])}"
        )
    return sites


def describe(cfg: DictConfig) -> str:
    rcfg = RBSConfig.from_cfg(cfg)
    orders = "+".join(f"C{k}" for k in rcfg.orders)
    share = ",shared" if rcfg.block_share else ""
    return f"rbs(n={rcfg.n},{orders},b={rcfg.size},{rcfg.parametrization}{share})"
