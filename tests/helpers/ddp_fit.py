"""Train CUA on a tiny Llama with qadapt's fit(); run alone or as every process of a torchrun launch.
Process 0 writes the trained adapter and the losses to <out>/adapter.pt (tests/integration/test_distributed.py)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from qadapt import adapters, devices  # noqa: E402
from qadapt.config import compose  # noqa: E402
from qadapt.distributed import ranks  # noqa: E402
from qadapt.training.lm import fit  # noqa: E402


def main(out: Path, cache: str) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=97,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    ).eval()
    cfg = compose(
        [
            "adapter.layers=[1,2]",
            "adapter.modules=[v_proj,down_proj]",
            "train.max_steps=4",
            "train.batch_size=4",
            "train.lr=0.05",
            "train.warmup_steps=0",
            f"train.cache_activations={cache}",
        ]
    )
    adapters.apply(model, cfg.adapter, devices.get(cfg.device))
    chunks = torch.randint(0, 97, (6, 16), generator=torch.Generator().manual_seed(1))
    out.mkdir(parents=True, exist_ok=True)
    result = fit(model, chunks, cfg.train, out, seed=0, resume=False)
    if ranks().is_main:
        torch.save(
            {"adapter": adapters.adapter_state_dict(model), "losses": result.losses, "world": ranks().world},
            out / "adapter.pt",
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
