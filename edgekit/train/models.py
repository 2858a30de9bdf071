"""The two model families, built only from operators every target can run after int8 quantization:
Conv1d, BatchNorm (folded at export), ReLU, MaxPool, global average pooling, Linear.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgekit.errors import ConfigError

ARCHITECTURES = ("cnn1d", "mlp")


class Cnn1d(nn.Module):
    """A compact WDCNN-style 1D CNN on raw windows.

    The wide, strided first kernel (64 samples, stride 8) acts as a learned filter bank and cuts the sequence
    length early, which is where the MACs would otherwise go; small 3-tap kernels follow. ``input_scale`` (a
    buffer, 1/std of the training windows) keeps the model's input in g, so the device feeds raw samples; export
    folds it into the first convolution.
    """

    def __init__(self, window: int, n_classes: int, channels: tuple[int, ...] = (16, 32, 64, 64, 64),
                 first_kernel: int = 64, first_stride: int = 8):
        super().__init__()
        if window < first_kernel or window // first_stride < 2 ** (len(channels) - 1):
            raise ConfigError(f"cnn1d needs windows of at least {first_stride * 2 ** (len(channels) - 1)} "
                              f"samples, got {window}")
        self.register_buffer("input_scale", torch.ones(1))
        layers: list[nn.Module] = []
        in_ch = 1
        for i, out_ch in enumerate(channels):
            if i == 0:
                conv = nn.Conv1d(1, out_ch, first_kernel, stride=first_stride, padding=(first_kernel - first_stride) // 2)
            else:
                conv = nn.Conv1d(in_ch, out_ch, 3, padding=1)
            layers += [conv, nn.BatchNorm1d(out_ch), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool1d(2))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(in_ch, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, 1, window]
        x = self.features(x * self.input_scale)
        return self.head(self.pool(x).flatten(1))


class FeatureMlp(nn.Module):
    """A small MLP over FeatureSpec features; the feature normalization is stored in the model as buffers."""

    def __init__(self, n_features: int, n_classes: int, hidden: tuple[int, ...] = (64, 32)):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_scale", torch.ones(n_features))
        layers: list[nn.Module] = []
        size = n_features
        for width in hidden:
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, n_features]
        return self.net((x - self.feature_mean) / self.feature_scale)


def build_model(architecture: str, params: dict[str, Any]) -> nn.Module:
    """A model from its stored architecture config; an unknown name lists the known ones."""
    if architecture == "cnn1d":
        return Cnn1d(**params)
    if architecture == "mlp":
        return FeatureMlp(**params)
    raise ConfigError(f"unknown model {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates per input, from the shapes seen in one forward pass (Conv1d and Linear only)."""
    total = 0

    def conv_hook(module, _inputs, output):
        nonlocal total
        total += output.numel() // output.shape[0] * module.in_channels // module.groups * module.kernel_size[0]

    def linear_hook(module, _inputs, output):
        nonlocal total
        total += output.numel() // output.shape[0] * module.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv1d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(example)
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return int(total)
