"""Biquad coefficient designs as the IEM plug-ins compute them (JUCE's IIR makers).

Every designer takes ``(batch,)`` tensors in physical units and returns ``(b, a)``,
each ``(batch, 3)``, normalised so that ``a[:, 0] == 1``. First-order sections
are returned as biquads with zero second-order terms, so one response and one
filter routine serve every type. The formulas are those of JUCE's
``IIR::Coefficients`` makers (RBJ cookbook filters, shelves in Q form); see
``shared/notes/iem-plugins.md``. Designs are written with torch ops only, so
gradients reach frequency, gain and Q.
"""

from __future__ import annotations

import enum
import math

import torch

__all__ = [
    "FilterType",
    "design",
    "peak",
    "low_shelf",
    "high_shelf",
    "highpass1",
    "highpass2",
    "lowpass1",
    "lowpass2",
    "frequency_response",
]


class FilterType(enum.IntEnum):
    """MultiEQ filter types, numbered as the v1.15 plug-in's internal enum."""

    HIGHPASS_1 = 0
    HIGHPASS_2 = 1
    HIGHPASS_LR = 2  # 24 dB/oct: two identical HP2 sections
    LOW_SHELF = 3
    PEAK = 4
    HIGH_SHELF = 5
    LOWPASS_1 = 6
    LOWPASS_2 = 7
    LOWPASS_LR = 8  # 24 dB/oct: two identical LP2 sections


def _normalise(b0, b1, b2, a0, a1, a2):
    b = torch.stack([b0 / a0, b1 / a0, b2 / a0], dim=-1)
    a = torch.stack([torch.ones_like(a0), a1 / a0, a2 / a0], dim=-1)
    return b, a


def _omega(freq_hz: torch.Tensor, sr: float) -> torch.Tensor:
    # JUCE floors the design frequency at 2 Hz for shelves and peaks.
    return 2.0 * math.pi * torch.clamp(freq_hz, min=2.0) / sr


def _amplitude(gain_db: torch.Tensor) -> torch.Tensor:
    # A = sqrt(linear gain) = 10^(dB/40); JUCE 8 floors the gain at -300 dB.
    return torch.pow(10.0, torch.clamp(gain_db, min=-300.0) / 40.0)


def peak(freq_hz, gain_db, q, sr: float):
    A = _amplitude(gain_db)
    w = _omega(freq_hz, sr)
    alpha = torch.sin(w) / (2.0 * q)
    cs = torch.cos(w)
    return _normalise(1 + alpha * A, -2 * cs, 1 - alpha * A, 1 + alpha / A, -2 * cs, 1 - alpha / A)


def low_shelf(freq_hz, gain_db, q, sr: float):
    A = _amplitude(gain_db)
    w = _omega(freq_hz, sr)
    cs = torch.cos(w)
    beta = torch.sin(w) * torch.sqrt(A) / q
    am1, ap1 = A - 1, A + 1
    return _normalise(
        A * (ap1 - am1 * cs + beta),
        2 * A * (am1 - ap1 * cs),
        A * (ap1 - am1 * cs - beta),
        ap1 + am1 * cs + beta,
        -2 * (am1 + ap1 * cs),
        ap1 + am1 * cs - beta,
    )


def high_shelf(freq_hz, gain_db, q, sr: float):
    A = _amplitude(gain_db)
    w = _omega(freq_hz, sr)
    cs = torch.cos(w)
    beta = torch.sin(w) * torch.sqrt(A) / q
    am1, ap1 = A - 1, A + 1
    return _normalise(
        A * (ap1 + am1 * cs + beta),
        -2 * A * (am1 + ap1 * cs),
        A * (ap1 + am1 * cs - beta),
        ap1 - am1 * cs + beta,
        2 * (am1 - ap1 * cs),
        ap1 - am1 * cs - beta,
    )


def _tan_prewarp(freq_hz, sr):
    # Cut-off frequencies are clamped below Nyquist, as the plug-ins do (min(f, fs/2)),
    # and a hair under it so tan() stays finite.
    f = torch.clamp(freq_hz, min=1e-3, max=sr * 0.4999)
    return torch.tan(math.pi * f / sr)


def highpass1(freq_hz, sr: float):
    n = _tan_prewarp(freq_hz, sr)
    zero = torch.zeros_like(n)
    one = torch.ones_like(n)
    return _normalise(one, -one, zero, n + 1, n - 1, zero)


def lowpass1(freq_hz, sr: float):
    n = _tan_prewarp(freq_hz, sr)
    zero = torch.zeros_like(n)
    return _normalise(n, n, zero, n + 1, n - 1, zero)


def highpass2(freq_hz, q, sr: float):
    n = _tan_prewarp(freq_hz, sr)
    c = 1.0 / (1.0 + n / q + n * n)
    one = torch.ones_like(n)
    return _normalise(c, -2 * c, c, one, 2 * c * (n * n - 1), c * (1 - n / q + n * n))


def lowpass2(freq_hz, q, sr: float):
    n = 1.0 / _tan_prewarp(freq_hz, sr)
    c = 1.0 / (1.0 + n / q + n * n)
    one = torch.ones_like(n)
    return _normalise(c, 2 * c, c, one, 2 * c * (1 - n * n), c * (1 - n / q + n * n))


def design(filter_type: torch.Tensor, freq_hz, gain_db, q, sr: float):
    """Coefficients for a batch of bands whose types may differ.

    ``filter_type`` holds :class:`FilterType` values. Linkwitz-Riley types return
    the coefficients of one of their two identical sections; callers apply it twice
    (see :func:`sections_per_type`). Each design is evaluated for the whole batch
    and selected per item, which keeps the function branch-free and differentiable.
    """
    filter_type = torch.as_tensor(filter_type, device=freq_hz.device)
    candidates = {
        FilterType.HIGHPASS_1: highpass1(freq_hz, sr),
        FilterType.HIGHPASS_2: highpass2(freq_hz, q, sr),
        FilterType.HIGHPASS_LR: highpass2(freq_hz, q, sr),
        FilterType.LOW_SHELF: low_shelf(freq_hz, gain_db, q, sr),
        FilterType.PEAK: peak(freq_hz, gain_db, q, sr),
        FilterType.HIGH_SHELF: high_shelf(freq_hz, gain_db, q, sr),
        FilterType.LOWPASS_1: lowpass1(freq_hz, sr),
        FilterType.LOWPASS_2: lowpass2(freq_hz, q, sr),
        FilterType.LOWPASS_LR: lowpass2(freq_hz, q, sr),
    }
    b = torch.zeros(freq_hz.shape + (3,), dtype=freq_hz.dtype, device=freq_hz.device)
    a = torch.zeros_like(b)
    for kind, (bk, ak) in candidates.items():
        mask = (filter_type == int(kind)).unsqueeze(-1)
        b = torch.where(mask, bk, b)
        a = torch.where(mask, ak, a)
    return b, a


def sections_per_type(filter_type: torch.Tensor) -> torch.Tensor:
    """How many times a band's biquad is applied: 2 for Linkwitz-Riley types, else 1."""
    filter_type = torch.as_tensor(filter_type)
    lr = (filter_type == int(FilterType.HIGHPASS_LR)) | (filter_type == int(FilterType.LOWPASS_LR))
    return torch.where(lr, 2, 1)


def frequency_response(b: torch.Tensor, a: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Complex response of biquads on the ``rfft`` grid of length ``n_fft``.

    ``b`` and ``a`` are ``(..., 3)``; the result is ``(..., n_fft // 2 + 1)`` complex.
    """
    n_bins = n_fft // 2 + 1
    k = torch.arange(n_bins, device=b.device, dtype=b.dtype)
    w = 2.0 * math.pi * k / n_fft
    # z^-m for m = 0, 1, 2, evaluated once for the grid.
    zm = torch.stack([torch.polar(torch.ones_like(w), -m * w) for m in range(3)], dim=-1)
    num = torch.einsum("...m,km->...k", b.to(zm.dtype), zm)
    den = torch.einsum("...m,km->...k", a.to(zm.dtype), zm)
    return num / den
