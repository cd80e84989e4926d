"""Model input features: mel blocks of the mono vocal and the mono backing.

The research's input (Li & Lerch): mel-spectrograms at 44.1 kHz, FFT 2048, hop
1024, 128 mel bands, cut into blocks of 64 frames (about 1.5 s), giving blocks of
shape ``(2, 128, 64)`` (channel 0 the vocal, channel 1 the backing). Frames where
the vocal is quieter than -30 dB loudness are removed before the blocks are cut,
and each channel of each block is normalised to its own maximum.

Everything here is torch, batched over clips, and runs on whatever device the
input is on. The frame loudness used for the gate is the K-weighted mean square
of the windowed frame (BS.1770's K-weighting, the filter of
:func:`vocalmix.analysis.k_weighting_sos`, applied as a magnitude response on the
FFT grid: :func:`k_weighting_power`), in LUFS, so "below -30 dB" means the same as
in the loudness measures the targets use, measured frame by frame.

Representation choice: the paper does not say whether its mel-spectrogram was
linear or logarithmic. A max-normalised *power* spectrogram leaves almost every
bin near zero, so the default ``scale="db"`` takes the power in dB, keeps the top
``db_range`` dB of each block channel and maps that range linearly to [0, 1], the
block maximum landing on 1 ("normalised to its maximum" in the log domain).
``scale="power"`` is the literal reading (power / block max).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vocalmix import analysis
from vocalmix.audio import resample
from vocalmix.dsp import biquads

__all__ = [
    "FeatureSettings",
    "DEFAULT_FEATURES",
    "mel_filterbank",
    "hz_to_mel",
    "mel_to_hz",
    "MelFrontend",
    "clip_features",
    "song_features",
    "frame_count",
    "frontend",
    "k_weighting_power",
    "normalise_block",
]


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that defines a feature block; stored in the dataset manifest."""

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024
    n_mels: int = 128
    fmin_hz: float = 0.0
    fmax_hz: float | None = None  # None = Nyquist
    block_frames: int = 64
    gate_lufs: float = -30.0  # vocal frames quieter than this are removed
    scale: str = "db"  # "db" or "power" (see the module docstring)
    db_range: float = 80.0  # for scale="db": dynamic range kept below each block's maximum

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSettings:
        return cls(**data)

    @property
    def block_shape(self) -> tuple[int, int, int]:
        return (2, self.n_mels, self.block_frames)

    @property
    def block_samples(self) -> int:
        """Samples spanned by one block of frames (without centring)."""
        return self.n_fft + (self.block_frames - 1) * self.hop


DEFAULT_FEATURES = FeatureSettings()


# -- mel scale (Slaney's auditory-toolbox form: linear below 1 kHz, logarithmic above) ----
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mel
_LOG_STEP = math.log(6.4) / 27.0  # 27 mel per factor 6.4 above 1 kHz


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """Slaney mel of frequencies ``f`` in Hz (any shape)."""
    f = torch.as_tensor(f, dtype=torch.float64)
    linear = f / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(f, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(f >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    m = torch.as_tensor(m, dtype=torch.float64)
    linear = m * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (m - _MIN_LOG_MEL))
    return torch.where(m >= _MIN_LOG_MEL, log, linear)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin_hz: float = 0.0, fmax_hz: float | None = None
) -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` float32, area-normalised.

    Band edges are equally spaced on the Slaney mel scale; each triangle is scaled by
    ``2 / (upper edge - lower edge)`` in Hz so every band has the same area, which
    keeps broadband noise flat across bands.
    """
    fmax_hz = sample_rate / 2 if fmax_hz is None else fmax_hz
    bins_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    edges_hz = mel_to_hz(
        torch.linspace(
            float(hz_to_mel(torch.tensor(fmin_hz))),
            float(hz_to_mel(torch.tensor(fmax_hz))),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (upper - lower))
    return weights.to(torch.float32)


def frame_count(n_samples: int, settings: FeatureSettings = DEFAULT_FEATURES) -> int:
    """Frames of a clip of ``n_samples`` (frames start at 0 and must fit entirely)."""
    if n_samples < settings.n_fft:
        return 0
    return 1 + (n_samples - settings.n_fft) // settings.hop


_K_POWER: dict[tuple, torch.Tensor] = {}


def k_weighting_power(
    n_fft: int, sample_rate: float, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """|H_K(f)|² on the rfft grid of ``n_fft``: the BS.1770 K-weighting of :func:`vocalmix.analysis.k_weighting_sos`,
    the filter every loudness in vocalmix is measured with, as a magnitude response for loudness in the spectral
    domain (the feature gate here, the training losses). Cached per grid; do not modify the result in place."""
    key = (n_fft, float(sample_rate), str(device), dtype)
    if key not in _K_POWER:
        sos = torch.from_numpy(analysis.k_weighting_sos(sample_rate))
        response = biquads.frequency_response(sos[:, :3], sos[:, 3:], n_fft)
        _K_POWER[key] = (response.abs() ** 2).prod(dim=0).to(device=device, dtype=dtype)
    return _K_POWER[key]


class MelFrontend(torch.nn.Module):
    """Mel power spectrogram and per-frame K-weighted loudness of mono clips.

    Buffers (window, filterbank, K-weighting) move with ``.to(device)``.
    """

    def __init__(self, settings: FeatureSettings = DEFAULT_FEATURES):
        super().__init__()
        self.settings = settings
        window = torch.hann_window(settings.n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window.to(torch.float32), persistent=False)
        self.register_buffer(
            "filterbank",
            mel_filterbank(settings.sample_rate, settings.n_fft, settings.n_mels, settings.fmin_hz, settings.fmax_hz),
            persistent=False,
        )
        # Parseval on a one-sided spectrum: inner bins stand for two (positive and
        # negative frequency), DC and Nyquist for one.
        fold = torch.full((settings.n_fft // 2 + 1,), 2.0, dtype=torch.float64)
        fold[0] = fold[-1] = 1.0
        ms_weights = fold / (settings.n_fft * float((window**2).sum()))
        self.register_buffer(
            "loudness_weights",
            (k_weighting_power(settings.n_fft, settings.sample_rate, "cpu", torch.float64) * ms_weights).to(
                torch.float32
            ),
            persistent=False,
        )

    def power_spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, samples)`` float32 -> ``|STFT|²`` ``(batch, n_fft/2+1, frames)``."""
        s = self.settings
        spec = torch.stft(x, s.n_fft, hop_length=s.hop, window=self.window, center=False, return_complex=True)
        return spec.real**2 + spec.imag**2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(batch, samples)`` -> (mel power ``(batch, n_mels, frames)``, loudness LUFS ``(batch, frames)``)."""
        power = self.power_spectrogram(x)
        mel = torch.matmul(self.filterbank, power)
        mean_square = torch.einsum("f,bft->bt", self.loudness_weights, power)
        loudness = -0.691 + 10.0 * torch.log10(torch.clamp(mean_square, min=1e-20))
        return mel, loudness


_FRONTENDS: dict[tuple, MelFrontend] = {}


def frontend(settings: FeatureSettings, device: str | torch.device) -> MelFrontend:
    """The :class:`MelFrontend` for ``settings`` on ``device``, built once (filterbank, window) and reused."""
    key = (settings, str(device))
    if key not in _FRONTENDS:
        _FRONTENDS[key] = MelFrontend(settings).to(device)
    return _FRONTENDS[key]


def _as_mono_batch(x, device) -> torch.Tensor:
    """(T,), (C, T) or (B, C, T) -> (B, T) float32, channels averaged."""
    x = torch.as_tensor(x, dtype=torch.float32, device=device)
    if x.dim() == 1:
        return x[None]
    if x.dim() == 2:
        return x.mean(dim=0, keepdim=True)
    if x.dim() == 3:
        return x.mean(dim=1)
    raise ValueError(f"expected (samples,), (channels, samples) or (batch, channels, samples), got {tuple(x.shape)}")


def normalise_block(mel: torch.Tensor, settings: FeatureSettings = DEFAULT_FEATURES) -> torch.Tensor:
    """Normalise each ``(n_mels, frames)`` map of ``mel`` ``(..., n_mels, frames)`` to its maximum.

    ``scale="db"``: 10·log10 of the power, the top ``db_range`` dB mapped to [0, 1]
    (the maximum is 1, anything ``db_range`` or more below it is 0). ``scale="power"``:
    power divided by its maximum. An all-silent map stays all zeros.
    """
    if settings.scale == "power":
        peak = mel.amax(dim=(-2, -1), keepdim=True)
        return torch.where(peak > 0, mel / torch.clamp(peak, min=1e-30), torch.zeros_like(mel))
    if settings.scale != "db":
        raise ValueError(f"unknown feature scale {settings.scale!r}")
    db = 10.0 * torch.log10(torch.clamp(mel, min=1e-20))
    peak = db.amax(dim=(-2, -1), keepdim=True)
    out = torch.clamp((db - peak) / settings.db_range + 1.0, min=0.0)
    silent = mel.amax(dim=(-2, -1), keepdim=True) <= 1e-20
    return torch.where(silent, torch.zeros_like(out), out)


def clip_features(
    vocal,
    backing,
    settings: FeatureSettings = DEFAULT_FEATURES,
    random_gain_db: float = 0.0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    return_owner: bool = False,
):
    """Feature blocks of a batch of equal-length clips.

    ``vocal`` and ``backing``: ``(samples,)``, ``(channels, samples)`` or ``(batch, channels,
    samples)`` at ``settings.sample_rate`` (numpy or torch; channels are averaged to mono).
    Frames whose vocal loudness is below ``settings.gate_lufs`` are removed per clip; the
    remaining frames of each clip are cut into consecutive blocks of
    ``settings.block_frames`` (an incomplete last block is dropped), so one clip gives
    ``floor(voiced frames / block_frames)`` blocks.

    ``random_gain_db > 0`` multiplies each channel of each block by ``10^(g/20)`` with
    ``g ~ U[-random_gain_db, 0]`` after normalisation (augmentation: the maximum is then
    at most 1, so a model cannot rely on it being exactly 1).

    Returns ``(n_blocks, 2, n_mels, block_frames)`` float32 on the device, and with
    ``return_owner`` also ``(n_blocks,)`` int64: the batch index each block came from.
    All of it is batched tensor work; no Python loop runs per clip or per block.
    """
    if device is None:
        device = vocal.device if isinstance(vocal, torch.Tensor) else "cpu"
    device = torch.device(device)
    v = _as_mono_batch(vocal, device)
    b = _as_mono_batch(backing, device)
    if v.shape != b.shape:
        raise ValueError(f"vocal {tuple(v.shape)} and backing {tuple(b.shape)} must have the same (batch, samples)")
    s = settings
    n_frames = frame_count(v.shape[-1], s)
    empty = torch.zeros((0, *s.block_shape), device=device)
    if n_frames == 0:
        return (empty, torch.zeros(0, dtype=torch.long, device=device)) if return_owner else empty
    batch = v.shape[0]
    mel, loudness = frontend(s, device)(torch.cat([v, b], dim=0))
    mel = torch.stack([mel[:batch], mel[batch:]], dim=1)  # (B, 2, n_mels, F)
    voiced = loudness[:batch] >= s.gate_lufs  # (B, F)

    # Rank of each voiced frame within its clip; frames past the last whole block drop out.
    rank = torch.cumsum(voiced.long(), dim=1) - 1
    whole = (voiced.sum(dim=1, keepdim=True) // s.block_frames) * s.block_frames
    keep = voiced & (rank < whole)
    frames = mel.permute(0, 3, 1, 2)[keep]  # (kept frames, 2, n_mels), clip-major order
    owner = torch.arange(batch, device=device)[:, None].expand(batch, n_frames)[keep]
    blocks = frames.reshape(-1, s.block_frames, 2, s.n_mels).permute(0, 2, 3, 1).contiguous()
    blocks = normalise_block(blocks, s)
    if random_gain_db > 0 and blocks.shape[0]:
        u = torch.rand(blocks.shape[:2], generator=generator, device="cpu" if generator is None else generator.device)
        gains = torch.pow(10.0, -random_gain_db * u.to(device) / 20.0)
        blocks = blocks * gains[..., None, None]
    if return_owner:
        return blocks, owner[:: s.block_frames]
    return blocks


def song_features(
    vocal, backing, sr: int, settings: FeatureSettings | None = None, device: str | torch.device | None = None
) -> torch.Tensor:
    """Feature blocks ``(n_blocks, 2, 128, 64)`` of a whole song, for inference.

    ``vocal`` ``(1, T)`` and ``backing`` ``(2 or 1, T)`` numpy or torch at ``sr`` Hz (resampled
    to the feature rate if different; a shorter input is padded with silence to the longer).
    The pipeline is exactly the one the dataset build uses. A song with fewer than 64 frames
    of vocal above the gate gives zero blocks.
    """
    settings = settings or DEFAULT_FEATURES
    vocal = _to_numpy_2d(vocal)
    backing = _to_numpy_2d(backing)
    if sr != settings.sample_rate:
        vocal = resample(vocal, sr, settings.sample_rate)
        backing = resample(backing, sr, settings.sample_rate)
    n = max(vocal.shape[-1], backing.shape[-1])
    vocal = np.pad(vocal, ((0, 0), (0, n - vocal.shape[-1])))
    backing = np.pad(backing, ((0, 0), (0, n - backing.shape[-1])))
    return clip_features(vocal.mean(0), backing.mean(0), settings, device=device or "cpu")


def _to_numpy_2d(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected (channels, samples), got shape {x.shape}")
    return x
