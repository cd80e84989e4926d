"""The CNN regressor of Li & Lerch ("Automatic Vocal Mixing Using Convolutional
Neural Networks"), one instance per effect.

Input is a block of two mel-spectrograms, vocal and backing, shaped
``(batch, 2, 128, 64)`` (channels, mel bands, frames). Four blocks of
Conv2d(3x3, stride 1, no padding) -> BatchNorm -> ReLU -> MaxPool2d(2) take the
channels 2 -> 8 -> 16 -> 32 -> 64, then Dropout(0.3) and an MLP map the flattened
features to the task's outputs.

Why 768: each unpadded 3x3 convolution removes 2 rows and 2 columns and each
pooling halves (rounding down), so 128x64 becomes 126x62 -> 63x31, 61x29 -> 30x14,
28x12 -> 14x6, 12x4 -> 6x2; 64 channels x 6 x 2 = 768, exactly the paper's MLP
input. :func:`flattened_size` computes it so other input shapes also work.

The paper does not give the MLP's hidden width; we use one hidden layer (64 by
default, ``hidden=0`` for a single linear layer). 64 keeps a checkpoint near
300 KB in float32 (about 75 k parameters, two thirds of them in the MLP) and the
shipped float16 copies near 150 KB each.

Outputs are **linear** in the normalised target space ([0, 1] per target, from the
settings' ranges). We chose linear over a sigmoid because (a) MSE on a linear
output has no saturation, so targets at the ends of their range (a reverb time at
its minimum, an EQ band at +15 dB) remain learnable, and (b) the final bias can
be set to the training-set mean, so an untrained model *is* the mean baseline and
training can only move away from it where the data supports it. Range safety
comes from clipping when denormalising (``ParamSpec.denormalise`` clips to [0, 1]).
"""

from __future__ import annotations

import torch
from torch import nn

from .model_config import PUBLISHED_CHANNELS, ModelConfig
from .spectrum_mlp import ARCHITECTURE as SPECTRUM_MLP
from .spectrum_mlp import SpectrumMLP

#: Outputs per task, as in the paper.
TASK_OUTPUTS: dict[str, int] = {"level": 1, "compression": 1, "eq": 9, "reverb": 10}


def flattened_size(input_shape: tuple[int, int, int], channels: tuple[int, ...] = PUBLISHED_CHANNELS) -> int:
    """Number of features after the convolutional blocks for an input ``(C, H, W)``."""
    _, height, width = input_shape
    for _ in channels:
        height, width = (height - 2) // 2, (width - 2) // 2
        if height < 1 or width < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for {len(channels)} conv blocks")
    return channels[-1] * height * width


class ConvBlock(nn.Sequential):
    """Conv2d(3x3, no padding) -> BatchNorm -> ReLU -> MaxPool2d(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=0),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class MixingCNN(nn.Module):
    """The published regressor: ``(batch, 2, 128, 64)`` -> ``(batch, n_outputs)`` normalised targets."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        in_channels = config.input_shape[0]
        blocks = []
        for out_channels in config.channels:
            blocks.append(ConvBlock(in_channels, out_channels))
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        n_flat = flattened_size(config.input_shape, config.channels)
        if config.hidden > 0:
            self.head = nn.Sequential(
                nn.Linear(n_flat, config.hidden), nn.ReLU(inplace=True), nn.Linear(config.hidden, config.n_outputs)
            )
        else:
            self.head = nn.Linear(n_flat, config.n_outputs)
        self.n_flat = n_flat

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1] if isinstance(self.head, nn.Sequential) else self.head

    def set_output_bias(self, normalised_mean: torch.Tensor) -> None:
        """Start the model near the training-set mean: shrink the last weights, bias = mean.

        ``normalised_mean`` is ``(n_outputs,)`` in [0, 1]. The weights are scaled
        down rather than zeroed so gradients still reach the layers below.
        """
        layer = self.output_layer
        with torch.no_grad():
            layer.weight.mul_(0.01)
            layer.bias.copy_(normalised_mean.to(layer.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, 2, 128, 64)`` float32 -> ``(batch, n_outputs)`` in normalised units."""
        z = self.features(x)
        z = torch.flatten(z, 1)
        return self.head(self.dropout(z))


def build_model(
    task: str,
    hidden: int = 64,
    dropout: float = 0.3,
    input_shape: tuple[int, int, int] = (2, 128, 64),
    architecture: str = "li-lerch-cnn",
) -> nn.Module:
    """The model for ``task`` (level, compression, eq or reverb): the published CNN by default,
    ``architecture="spectrum-mlp"`` for :class:`~vocalmix.nets.spectrum_mlp.SpectrumMLP`."""
    if task not in TASK_OUTPUTS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASK_OUTPUTS)}")
    return network_from_config(
        ModelConfig(
            n_outputs=TASK_OUTPUTS[task],
            input_shape=tuple(input_shape),
            hidden=hidden,
            dropout=dropout,
            architecture=architecture,
        )
    )


def network_from_config(config: ModelConfig) -> nn.Module:
    """The network a :class:`ModelConfig` describes (its ``architecture`` picks the class)."""
    if config.architecture == "li-lerch-cnn":
        return MixingCNN(config)
    if config.architecture == SPECTRUM_MLP:
        return SpectrumMLP(config)
    raise ValueError(f"unknown architecture {config.architecture!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
