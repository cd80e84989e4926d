"""Wave-U-Net (Stoller, Ewert & Dixon 2018) as an end-to-end mixer (Koszewski et al. 2023).

The network takes raw audio in and gives raw audio out: here 3 channels in (the
lead vocal, mono, and the backing, stereo) and the stereo mix out. Its defaults are
the research's:

- ``layers=10``: "U-net layers: 10" (Koszewski et al., Sec. 3.2, the depth of
  Martinez-Ramirez et al.'s drum-mixing Wave-U-Net);
- ``down_kernel=15``: "filter size of convolution in downsampling block: 15";
- ``up_kernel=5``: the upsampling blocks' filter size of Wave-U-Net (Stoller et al.);
- ``filters_per_layer=24``: Wave-U-Net's growth of 24 filters per level (level ``i``
  has ``24 * (i + 1)`` feature channels, the bottleneck ``24 * (layers + 1)``);
- linear upsampling (no learned parameters): "Upsampling: linear";
- a 1x1 output convolution without activation: "output layer: linear without activation";
- valid convolutions (no zero padding inside the network): every output sample sees
  real input on both sides, so the input window is longer than the output window by
  twice :attr:`WaveUNet.context`, and a long signal can be cut into windows whose
  outputs join exactly (:func:`mix_windowed`);
- LeakyReLU (slope 0.2) after every convolution but the last, as in Wave-U-Net.

Length arithmetic. A down block convolves (length ``n -> n - (down_kernel - 1)``),
keeps that as its skip connection, and decimates by 2 keeping samples 0, 2, 4, ...;
the bottleneck convolves once more; an up block upsamples ``m -> 2m - 1`` by linear
interpolation between neighbours, concatenates the centre of its skip connection and
convolves (``-(up_kernel - 1)``); the input is concatenated before the output layer.
All skip lengths must be odd, so that decimation followed by upsampling lands on the
skip's samples and the centre crops remove the same number of samples on each side.
Then the input and output lengths differ by a constant ``2 * context`` and the valid
lengths step by ``2 ** layers`` (:meth:`WaveUNet.valid_output_length`).

Shifting the input by a multiple of ``2 ** layers`` shifts the output by the same
amount with every decimation on the same phase; this is what makes windowed
inference exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["WaveUNetConfig", "WaveUNet", "lengths_for_output", "mix_windowed", "mix_one_shot"]

INPUT_CHANNELS = 3  # vocal (mono) + backing (stereo)
OUTPUT_CHANNELS = 2  # the stereo mix
LEAKY_SLOPE = 0.2  # Wave-U-Net's activation (TensorFlow's leaky_relu default)


@dataclass(frozen=True)
class WaveUNetConfig:
    """Architecture; see the module docstring for where each default comes from."""

    layers: int = 10
    filters_per_layer: int = 24
    down_kernel: int = 15
    up_kernel: int = 5
    input_channels: int = INPUT_CHANNELS
    output_channels: int = OUTPUT_CHANNELS

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"layers must be at least 1, got {self.layers}")
        if self.filters_per_layer < 1:
            raise ValueError(f"filters_per_layer must be at least 1, got {self.filters_per_layer}")
        for name in ("down_kernel", "up_kernel"):
            k = getattr(self, name)
            if k < 1 or k % 2 == 0:
                # An even kernel has no centre sample: the crops could not stay symmetric.
                raise ValueError(f"{name} must be odd and positive, got {k}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WaveUNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(f"unknown Wave-U-Net setting {unknown[0]!r}")
        return cls(**data)

    def channels(self, level: int) -> int:
        """Feature channels of down/up level ``level`` (``layers`` is the bottleneck)."""
        return self.filters_per_layer * (level + 1)


@lru_cache(maxsize=256)
def _input_for_output(config: WaveUNetConfig, n_out: int) -> int | None:
    """Input length that gives exactly ``n_out`` output samples, or None if ``n_out`` is not reachable."""
    n = n_out
    for _ in range(config.layers):  # up blocks, last one first
        upsampled = n + config.up_kernel - 1
        if upsampled % 2 == 0:  # 2m - 1 is always odd
            return None
        n = (upsampled + 1) // 2
    n += config.down_kernel - 1  # bottleneck
    for _ in range(config.layers):  # down blocks, deepest first
        skip = 2 * n - 1  # odd skip decimated to n samples
        n = skip + config.down_kernel - 1
    return n


def lengths_for_output(config: WaveUNetConfig, min_output: int) -> tuple[int, int]:
    """``(input_length, output_length)`` for the smallest valid output of at least ``min_output`` samples."""
    n_out = max(1, int(min_output))
    for candidate in range(n_out, n_out + 2**config.layers + 1):
        n_in = _input_for_output(config, candidate)
        if n_in is not None:
            return n_in, candidate
    raise AssertionError("valid output lengths repeat every 2**layers samples")  # pragma: no cover


def forward_lengths(config: WaveUNetConfig, n_in: int) -> int | None:
    """Output length for an input of ``n_in`` samples, or None if the network cannot take it."""
    n = n_in
    for _ in range(config.layers):
        n -= config.down_kernel - 1
        if n < 1 or n % 2 == 0:
            return None
        n = (n + 1) // 2
    n -= config.down_kernel - 1
    if n < 1:
        return None
    for _ in range(config.layers):
        n = 2 * n - 1 - (config.up_kernel - 1)
        if n < 1:
            return None
    return n


def _upsample_linear(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, m) -> (B, C, 2m - 1)``: the samples, and between each pair their mean."""
    mids = 0.5 * (x[..., :-1] + x[..., 1:])
    out = torch.stack([x[..., :-1], mids], dim=-1).flatten(-2)
    return torch.cat([out, x[..., -1:]], dim=-1)


def _centre_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    excess = x.shape[-1] - length
    if excess < 0 or excess % 2:
        raise ValueError(f"cannot centre-crop {x.shape[-1]} samples to {length}")
    return x[..., excess // 2 : x.shape[-1] - excess // 2]


class WaveUNet(nn.Module):
    """``(batch, 3, input_length) -> (batch, 2, output_length)``; see the module docstring."""

    def __init__(self, config: WaveUNetConfig = WaveUNetConfig()):
        super().__init__()
        self.config = config
        c = config
        self.down = nn.ModuleList(
            nn.Conv1d(c.input_channels if i == 0 else c.channels(i - 1), c.channels(i), c.down_kernel)
            for i in range(c.layers)
        )
        self.bottleneck = nn.Conv1d(c.channels(c.layers - 1), c.channels(c.layers), c.down_kernel)
        # Up block i sits at level i: upsampled features from level i + 1 plus the skip of level i.
        self.up = nn.ModuleList(
            nn.Conv1d(c.channels(i + 1) + c.channels(i), c.channels(i), c.up_kernel) for i in range(c.layers)
        )
        self.output = nn.Conv1d(c.channels(0) + c.input_channels, c.output_channels, 1)

    @property
    def context(self) -> int:
        """Half the difference of input and output lengths: output sample ``p`` lines up with input sample
        ``p + context`` (the centre crops are symmetric). Zeros padded in front of a signal by this much
        align the output with it. (Through the interpolation, a single output sample may also depend on up
        to ``2 ** layers`` samples more on one side, depending on its decimation phase.)"""
        n_in, n_out = lengths_for_output(self.config, 1)
        return (n_in - n_out) // 2

    @property
    def period(self) -> int:
        """Shifts by multiples of this keep every decimation on the same phase."""
        return 2**self.config.layers

    def valid_output_length(self, min_output: int) -> int:
        return lengths_for_output(self.config, min_output)[1]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.config.input_channels:
            raise ValueError(f"expected (batch, {self.config.input_channels}, samples), got {tuple(x.shape)}")
        if forward_lengths(self.config, x.shape[-1]) is None:
            n_in, _ = lengths_for_output(self.config, 1)
            raise ValueError(
                f"{x.shape[-1]} input samples is not a valid length for this network "
                f"(valid lengths are {n_in} + k * {self.period})"
            )
        skips = []
        h = x
        for conv in self.down:
            h = F.leaky_relu(conv(h), LEAKY_SLOPE)
            skips.append(h)
            h = h[..., ::2]
        h = F.leaky_relu(self.bottleneck(h), LEAKY_SLOPE)
        for i in reversed(range(self.config.layers)):
            h = _upsample_linear(h)
            h = torch.cat([h, _centre_crop(skips[i], h.shape[-1])], dim=1)
            h = F.leaky_relu(self.up[i](h), LEAKY_SLOPE)
        h = torch.cat([h, _centre_crop(x, h.shape[-1])], dim=1)
        return self.output(h)


# -- whole songs ------------------------------------------------------------------------------
def _stack_inputs(vocal: np.ndarray, backing: np.ndarray) -> torch.Tensor:
    if vocal.shape[0] != 1 or backing.shape[0] != 2 or vocal.shape[-1] != backing.shape[-1]:
        raise ValueError(f"expected vocal (1, n) and backing (2, n), got {vocal.shape} and {backing.shape}")
    return torch.from_numpy(np.ascontiguousarray(np.concatenate([vocal, backing]), dtype=np.float32))


@torch.no_grad()
def mix_one_shot(model: WaveUNet, vocal: np.ndarray, backing: np.ndarray) -> np.ndarray:
    """The mix ``(2, n)`` of ``vocal`` ``(1, n)`` and ``backing`` ``(2, n)`` in one forward pass.

    The signal is padded with ``context`` zeros in front and enough zeros behind to reach a
    valid length; the output is cut back to ``n`` samples. Memory grows with the song:
    use :func:`mix_windowed` for whole songs.
    """
    x = _stack_inputs(vocal, backing)
    n = x.shape[-1]
    n_in, n_out = lengths_for_output(model.config, n)
    x = F.pad(x, (model.context, n_in - model.context - n))
    return model(x[None])[0, :, :n].numpy()


@torch.no_grad()
def mix_windowed(
    model: WaveUNet, vocal: np.ndarray, backing: np.ndarray, window_output: int = 2**16, batch_windows: int = 4
) -> np.ndarray:
    """The same mix as :func:`mix_one_shot`, computed in overlapping windows of bounded memory.

    Each window yields ``output`` samples of which the first ``hop`` are kept; ``hop`` is the
    largest multiple of ``2 ** layers`` in the output, so every window starts on the same
    decimation phase as the one-shot pass and the joins are exact (to float rounding).
    """
    x = _stack_inputs(vocal, backing)
    n = x.shape[-1]
    period = model.period
    n_in, n_out = lengths_for_output(model.config, max(window_output, period))
    hop = (n_out // period) * period
    ctx = model.context
    n_windows = max(1, math.ceil(n / hop))
    total = (n_windows - 1) * hop + n_in
    x = F.pad(x, (ctx, total - ctx - n))
    out = torch.empty(2, n_windows * hop)
    for first in range(0, n_windows, batch_windows):
        starts = range(first, min(n_windows, first + batch_windows))
        batch = torch.stack([x[:, k * hop : k * hop + n_in] for k in starts])
        y = model(batch)
        for j, k in enumerate(starts):
            out[:, k * hop : (k + 1) * hop] = y[j, :, :hop]
    return out[:, :n].numpy()
