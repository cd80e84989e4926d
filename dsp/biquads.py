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

import math
from typing import NamedTuple

import torch

from .constants import FilterType

#: ``(b, a)``, each ``(batch, 3)`` with ``a[:, 0] == 1``.
Coefficients = tuple[torch.Tensor, torch.Tensor]

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
    "UnitCircleGrid",
    "unit_circle_terms",
    "response_on_grid",
]


def _normalise(
    b0: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor, a0: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor
) -> Coefficients:
    b = torch.stack([b0 / a0, b1 / a0, b2 / a0], dim=-1)
    a = torch.stack([torch.ones_like(a0), a1 / a0, a2 / a0], dim=-1)
    return b, a


def _omega(freq_hz: torch.Tensor, sr: float) -> torch.Tensor:
    # JUCE floors the design frequency at 2 Hz for shelves and peaks. The plug-ins cap
    # it at fs/2, where sin ω is zero in exact arithmetic; in float32 it rounds to
    # -9e-8 and pushes a pole just outside the unit circle. A hair under fs/2 (as for
    # the tan() designs below) keeps the section stable and, like the exact design at
    # fs/2, transparent everywhere but next to Nyquist.
    return 2.0 * math.pi * torch.clamp(freq_hz, min=2.0, max=sr * 0.4999) / sr


def _amplitude(gain_db: torch.Tensor) -> torch.Tensor:
    # A = sqrt(linear gain) = 10^(dB/40); JUCE 8 floors the gain at -300 dB.
    return torch.pow(10.0, torch.clamp(gain_db, min=-300.0) / 40.0)


def peak(freq_hz: torch.Tensor, gain_db: torch.Tensor, q: torch.Tensor, sr: float) -> Coefficients:
    A = _amplitude(gain_db)
    w = _omega(freq_hz, sr)
    alpha = torch.sin(w) / (2.0 * q)
    cs = torch.cos(w)
    return _normalise(1 + alpha * A, -2 * cs, 1 - alpha * A, 1 + alpha / A, -2 * cs, 1 - alpha / A)


def low_shelf(freq_hz: torch.Tensor, gain_db: torch.Tensor, q: torch.Tensor, sr: float) -> Coefficients:
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


def high_shelf(freq_hz: torch.Tensor, gain_db: torch.Tensor, q: torch.Tensor, sr: float) -> Coefficients:
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


def _tan_prewarp(freq_hz: torch.Tensor, sr: float) -> torch.Tensor:
    # Cut-off frequencies are clamped below Nyquist, as the plug-ins do (min(f, fs/2)),
    # and a hair under it so tan() stays finite.
    f = torch.clamp(freq_hz, min=1e-3, max=sr * 0.4999)
    return torch.tan(math.pi * f / sr)


def highpass1(freq_hz: torch.Tensor, sr: float) -> Coefficients:
    n = _tan_prewarp(freq_hz, sr)
    zero = torch.zeros_like(n)
    one = torch.ones_like(n)
    return _normalise(one, -one, zero, n + 1, n - 1, zero)


def lowpass1(freq_hz: torch.Tensor, sr: float) -> Coefficients:
    n = _tan_prewarp(freq_hz, sr)
    zero = torch.zeros_like(n)
    return _normalise(n, n, zero, n + 1, n - 1, zero)


def highpass2(freq_hz: torch.Tensor, q: torch.Tensor, sr: float) -> Coefficients:
    n = _tan_prewarp(freq_hz, sr)
    c = 1.0 / (1.0 + n / q + n * n)
    one = torch.ones_like(n)
    return _normalise(c, -2 * c, c, one, 2 * c * (n * n - 1), c * (1 - n / q + n * n))


def lowpass2(freq_hz: torch.Tensor, q: torch.Tensor, sr: float) -> Coefficients:
    n = 1.0 / _tan_prewarp(freq_hz, sr)
    c = 1.0 / (1.0 + n / q + n * n)
    one = torch.ones_like(n)
    return _normalise(c, 2 * c, c, one, 2 * c * (1 - n * n), c * (1 - n / q + n * n))


def design(
    filter_type: torch.Tensor, freq_hz: torch.Tensor, gain_db: torch.Tensor, q: torch.Tensor, sr: float
) -> Coefficients:
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


class UnitCircleGrid(NamedTuple):
    """Per-bin terms of the ``rfft`` grid ω_k = 2πk/n_fft used by :func:`response_on_grid`.

    Each field is ``(n_fft // 2 + 1,)``.
    """

    below_quarter: torch.Tensor  # bool, ω < π/2
    offset: torch.Tensor  # 1 - cos ω below π/2, -(1 + cos ω) from there on
    sin: torch.Tensor  # sin ω


def unit_circle_terms(
    n_fft: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> UnitCircleGrid:
    """The :class:`UnitCircleGrid` of length ``n_fft`` in ``dtype``.

    1 - cos ω, 1 + cos ω and sin ω are formed as 2 sin²(ω/2), 2 cos²(ω/2) and
    2 sin(ω/2) cos(ω/2), so each carries only a relative rounding error even where it
    is tiny (1 - cos ω near DC, 1 + cos ω and sin ω near Nyquist). cos(ω/2) is taken as
    sin(π(n_fft/2 - k)/n_fft): the sine of a small, exactly formed argument rather than
    a cosine near π/2.
    """
    k = torch.arange(n_fft // 2 + 1, device=device, dtype=torch.float64)
    scale = math.pi / n_fft
    sin_half = torch.sin((k * scale).to(dtype))
    cos_half = torch.sin(((n_fft / 2.0 - k) * scale).to(dtype))
    below_quarter = 4 * k < n_fft
    offset = torch.where(below_quarter, 2.0 * sin_half * sin_half, -2.0 * cos_half * cos_half)
    return UnitCircleGrid(below_quarter, offset, 2.0 * sin_half * cos_half)


def _polynomial_on_grid(c: torch.Tensor, grid: UnitCircleGrid) -> torch.Tensor:
    """e^{jω}·(c0 + c1 e^{-jω} + c2 e^{-2jω}) on the grid; ``c`` is ``(..., 3)``.

    The real part, (c0 + c2) cos ω + c1, nearly cancels around a pole or zero close to
    z = 1 (low cut-offs) or z = -1. It is therefore written around the nearer of the
    two points: (c0 + c1 + c2) - (c0 + c2)(1 - cos ω) below π/2, and
    (c0 + c2)(1 + cos ω) - (c0 - c1 + c2) above. The coefficient sums are formed in
    float64, where they are exact for float32 coefficients, so only relative rounding
    errors remain and float32 suffices for the per-bin arithmetic.
    """
    dtype = c.dtype
    c64 = c.to(torch.float64)
    dc_sum = (c64[..., 0] + c64[..., 1] + c64[..., 2]).to(dtype).unsqueeze(-1)
    nyquist_sum = (c64[..., 0] - c64[..., 1] + c64[..., 2]).to(dtype).unsqueeze(-1)
    outer = (c64[..., 0] + c64[..., 2]).to(dtype).unsqueeze(-1)
    skew = (c64[..., 0] - c64[..., 2]).to(dtype).unsqueeze(-1)
    anchor = torch.where(grid.below_quarter, dc_sum, -nyquist_sum)
    real = torch.addcmul(anchor, outer, grid.offset, value=-1.0)
    return torch.complex(real, skew * grid.sin)


def response_on_grid(b: torch.Tensor, a: torch.Tensor, grid: UnitCircleGrid) -> torch.Tensor:
    """Complex response of biquads ``(b, a)``, each ``(..., 3)``, on precomputed grid terms.

    ``grid`` comes from :func:`unit_circle_terms` in the dtype of ``b``; the result is
    ``(..., n_bins)`` complex. Reuse one grid for several sections of the same length.
    """
    return _polynomial_on_grid(b, grid) / _polynomial_on_grid(a, grid)


def frequency_response(b: torch.Tensor, a: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Complex response of biquads on the ``rfft`` grid of length ``n_fft``.

    ``b`` and ``a`` are ``(..., 3)``; the result is ``(..., n_fft // 2 + 1)`` complex, with
    the precision of ``b``'s dtype even for poles close to the unit circle (see
    :func:`_polynomial_on_grid`).
    """
    return response_on_grid(b, a, unit_circle_terms(n_fft, device=b.device, dtype=b.dtype))
