"""The ``train`` options (``configs/train/*.yaml``), one pydantic model each, beside the loops that read them
(``lm.py``: :class:`DefaultTrain` and the options that share its keys; the classifier loop's :class:`ClassifyTrain`
is checked by ``compose`` and found through ``qadapt.config.option_class``).

A module of its own, without torch or transformers, because every command's config check
(``qadapt.config.compose``) reads it; the loops import their options from here (:mod:`qadapt.schema` has the base
class and the shared types).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..schema import Accepts, NonNegInt, Number, Option, PosInt, Schedule, Text, added_later, choices


class DefaultTrain(Option):
    """Training of the adapter parameters only, frozen base (``train=default``; ``qadapt/training/lm.py``): AdamW,
    warm-up then decay, gradient clipping and accumulation; loss = ce_weight * cross-entropy + kl_weight *
    KL(teacher || model)."""

    group: ClassVar[str] = "train"

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

    group: ClassVar[str] = "train"

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
