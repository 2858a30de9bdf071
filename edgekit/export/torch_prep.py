"""Turn a trained torch model into the plain inference graph every backend exports.

BatchNorm is folded into the preceding convolution and the cnn1d's input scale into the first convolution, so
the exported graph holds only Conv1d, ReLU, MaxPool, global average pooling and Linear. Fewer ops, fewer
rounding steps after int8 quantization.

The MLP's feature normalization is the exception: it is taken OUT of the graph and done by the device before
inference (``input_normalization``, stored in the manifest). Features span ten orders of magnitude (band powers
in g^2, frequencies in Hz); one int8 input scale for all of them would round most features to zero.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _fold_sequential(layers: nn.Sequential) -> nn.Sequential:
    folded: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm1d) and folded and isinstance(folded[-1], nn.Conv1d):
            folded[-1] = fuse_conv_bn_eval(folded[-1], layer)
        else:
            folded.append(layer)
    return nn.Sequential(*folded)


class _DeployedCnn(nn.Module):
    def __init__(self, features: nn.Sequential, head: nn.Linear):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean over time instead of AdaptiveAvgPool1d: the same numbers, and a ReduceMean every backend knows.
        return self.head(self.features(x).mean(dim=2))


def deployable_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with BatchNorm, input scale and feature normalization folded away."""
    from edgekit.train.models import Cnn1d, FeatureMlp

    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        if isinstance(model, Cnn1d):
            features = _fold_sequential(model.features)
            first = features[0]
            first.weight.mul_(model.input_scale)  # conv(s * x) == (s * W) conv x
            return _DeployedCnn(features, model.head).eval()
        if isinstance(model, FeatureMlp):
            return copy.deepcopy(model.net).eval()
    raise TypeError(f"no deployment recipe for {type(model).__name__}")


def input_normalization(model: nn.Module) -> dict | None:
    """What the device applies to features before the exported MLP: ``(x - mean) / scale``; None for the cnn1d."""
    from edgekit.train.models import FeatureMlp

    if isinstance(model, FeatureMlp):
        return {"mean": model.feature_mean.tolist(), "scale": model.feature_scale.tolist()}
    return None
