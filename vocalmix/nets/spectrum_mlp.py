"""The EQ-undo regressor of ``--method cnn``: a small MLP on the vocal's average spectrum.

It reads the same feature blocks as :class:`~vocalmix.nets.mixing_cnn.MixingCNN`
(``(batch, 2, n_mels, frames)``, each channel's dB mel-spectrogram mapped to [0, 1]
below the block maximum) but uses only the vocal channel, averaged over the block's
frames: one value per mel band, the block's long-term spectral envelope relative to
its loudest band.

Why not the CNN: a fixed peak filter shows up as a level difference in the long-term
spectrum, the same in every frame, while the CNN's convolutions and pooling look at
local time-frequency patterns (pitch, onsets) that differ from singer to singer. With
three licence-clean singers to learn from, the CNN learned those singers: 1.34 x the
mean baseline's error on real vocals it never saw. Averaging over time first removes
what the notes sung contribute and leaves the envelope, which the MLP compares with
what the training vocals' envelopes look like (measured in
``vocalmix/models/cnn/MODEL_CARD.md``). The backing channel carries nothing about an
EQ applied to the vocal, so it is ignored.

Outputs are linear in the normalised target space, started at the training mean
(:meth:`set_output_bias`), as for the CNN.
"""

from __future__ import annotations

import torch
from torch import nn

from .model_config import ModelConfig

ARCHITECTURE = "spectrum-mlp"


class SpectrumMLP(nn.Module):
    """``(batch, 2, n_mels, frames)`` -> ``(batch, n_outputs)``: two hidden layers of ``config.hidden`` units."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n_mels, hidden = config.input_shape[1], config.hidden
        self.head = nn.Sequential(
            nn.Linear(n_mels, hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, config.n_outputs),
        )

    @staticmethod
    def spectrum(x: torch.Tensor) -> torch.Tensor:
        """The vocal channel averaged over frames, ``(batch, n_mels)`` in [0, 1] (1: the block's maximum)."""
        return x[:, 0].mean(dim=-1)

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]

    def set_output_bias(self, normalised_mean: torch.Tensor) -> None:
        """Start near the training-set mean (as :meth:`MixingCNN.set_output_bias`)."""
        layer = self.output_layer
        with torch.no_grad():
            layer.weight.mul_(0.1)
            layer.bias.copy_(normalised_mean.to(layer.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.spectrum(x))
