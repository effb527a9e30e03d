"""lm-evaluation-harness backend: ``lm_eval --model qadapt --model_args run=runs/<dir>,device=exact --tasks ...``.

:class:`QadaptLM` is lm-eval's own Hugging Face model (``HFLM``, so requests are batched, truncated and scored
exactly as for ``--model hf``) wrapped around the model qadapt builds for a run: the base model (``run`` omitted),
or a finished training run's compression, adapter and weights on any qadapt device (``device=exact``,
``default_qubit``, ``ibm_fake``...). The registration in lm-eval's model registry is made lazily by
:mod:`qadapt.lm_eval_hook` when lm-eval loads its models, so the stock ``lm_eval`` command finds ``qadapt``.

model_args:
    run: a finished ``qadapt train`` run directory (None: the base model of ``model``).
    device: the qadapt device the adapter's circuits run on (config group ``device/``; default ``exact``).
    model: the model config for the base model (``model/``; default ``smollm2_135m``; ignored with ``run``: the
        run's own model is used).
    <group>.<key>=<value>: any qadapt override (``device.shots=1024``, ``model.path=/weights``), e.g.
        ``--model_args run=runs/x,device=default_qubit,device.shots=1024``.
    every other key goes to ``HFLM`` (``batch_size``, ``max_length``, ``add_bos_token``...).
"""

from __future__ import annotations

import sys

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.utils import simple_parse_args_string

from ..config import compose
from ..errors import ConfigError, QadaptError
from ..experiments import run_model
from ..log import log

NAME = "qadapt"
_HFLM_OWNED = ("pretrained", "tokenizer", "peft", "delta", "gguf_file", "parallelize", "backend")


@register_model(NAME)
class QadaptLM(HFLM):
    """An lm-eval ``LM`` scoring a qadapt model (see the module docstring for the arguments).

    Raises:
        ConfigError: a model_arg lm-eval's HF model would load weights from (``pretrained``, ``peft``...): qadapt
            builds the model itself; or any config error of the overrides (the key and what it accepts).
        QadaptError: ``run`` is not a finished run or is damaged.  ModelUnavailable: the weights are not found.
    """

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> QadaptLM:
        """lm-eval's constructor route: its CLI's ``--device`` (a torch device) is passed as ``torch_device``, so
        ``device`` in ``--model_args`` stays the qadapt device. A qadapt error there (a run that is not there, a bad
        override) prints one line and exits with its code (SystemExit), where constructing the class raises it."""
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        if "device" in extra:
            extra["torch_device"] = extra.pop("device")
        try:
            return cls(**arg_dict, **extra)
        except QadaptError as e:  # a user's mistake (a missing run, a bad override): one line, not lm-eval's traceback
            print(f"error: --model_args: {e}", file=sys.stderr)
            raise SystemExit(e.exit_code) from None

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> QadaptLM:
        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    def __init__(
        self,
        run: str | None = None,
        device: str = "exact",
        model: str = "smollm2_135m",
        torch_device: str | None = None,
        **kwargs,
    ):
        owned = [k for k in kwargs if k in _HFLM_OWNED]
        if owned:
            raise ConfigError(
                f"--model_args {', '.join(owned)}: the qadapt backend builds the model from run= (or model=); "
                "use --model hf for other checkpoints"
            )
        overrides = [f"{k}={v}" for k, v in kwargs.items() if "." in k]
        hf_args = {k: v for k, v in kwargs.items() if "." not in k}
        cfg = compose([f"model={model}", f"device={device}", *overrides, *([f"from_run={run}"] if run else [])])
        built = run_model.build(cfg, model_from_run=True)
        self.qadapt_config = cfg
        self.qadapt_run = built.trained.dir if built.trained is not None else None
        what = f"run {run} ({cfg.adapter.name})" if run else f"base {cfg.model.name}"
        log(f"lm-eval backend: {what} on device={cfg.device.name}")
        if torch_device is not None:
            hf_args["device"] = torch_device
        super().__init__(pretrained=built.model, tokenizer=built.tokenizer, backend="causal", **hf_args)
