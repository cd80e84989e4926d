"""Biquad designs (vocalmix.dsp.biquads) against independent float64 references.

The references here do not use biquads.py: each filter is built from its analog
prototype (RBJ cookbook, normalised to ω0 = 1), scaled to the pre-warped cut-off and
mapped with ``scipy.signal.bilinear``. JUCE's makers are the same filters written in
closed form, so both routes must agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from vocalmix.dsp import biquads
from vocalmix.dsp.biquads import FilterType

SR = 48000.0


# --------------------------------------------------------------------------- references


def _bilinear_prewarped(num_s, den_s, freq_hz, sr):
    """Digital (b, a), a[0] = 1, of a prototype given in powers of s/ω0 (highest first)."""
    # Scaling s by the pre-warped analog frequency places the prototype's ω0 exactly at
    # freq_hz after the bilinear map.
    wa = 2.0 * sr * math.tan(math.pi * freq_hz / sr)
    order = len(den_s) - 1
    scale = np.array([wa ** -(order - i) for i in range(order + 1)])
    b, a = scipy.signal.bilinear(np.asarray(num_s, float) * scale, np.asarray(den_s, float) * scale, fs=sr)
    b, a = np.atleast_1d(b), np.atleast_1d(a)
    b = np.concatenate([b, np.zeros(3 - len(b))]) / a[0]
    a = np.concatenate([a, np.zeros(3 - len(a))]) / a[0]
    return b, a


def ref_peak(f, gain_db, q, sr):
    A = 10.0 ** (gain_db / 40.0)
    return _bilinear_prewarped([1.0, A / q, 1.0], [1.0, 1.0 / (A * q), 1.0], max(f, 2.0), sr)


def ref_low_shelf(f, gain_db, q, sr):
    A = 10.0 ** (gain_db / 40.0)
    k = math.sqrt(A) / q
    return _bilinear_prewarped([A, A * k, A * A], [A, k, 1.0], max(f, 2.0), sr)


def ref_high_shelf(f, gain_db, q, sr):
    A = 10.0 ** (gain_db / 40.0)
    k = math.sqrt(A) / q
    return _bilinear_prewarped([A * A, A * k, A], [1.0, k, A], max(f, 2.0), sr)


def ref_lowpass2(f, q, sr):
    return _bilinear_prewarped([0.0, 0.0, 1.0], [1.0, 1.0 / q, 1.0], f, sr)


def ref_highpass2(f, q, sr):
    return _bilinear_prewarped([1.0, 0.0, 0.0], [1.0, 1.0 / q, 1.0], f, sr)


def ref_lowpass1(f, sr):
    return _bilinear_prewarped([0.0, 1.0], [1.0, 1.0], f, sr)


def ref_highpass1(f, sr):
    return _bilinear_prewarped([1.0, 0.0], [1.0, 1.0], f, sr)


def response_at(b, a, freq_hz, sr):
    """Complex response of (b, a) at freq_hz, evaluated directly in float64."""
    z1 = np.exp(-2j * np.pi * np.asarray(freq_hz, float) / sr)
    return np.polyval(np.asarray(b)[::-1], z1) / np.polyval(np.asarray(a)[::-1], z1)


def _t(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def _np(t):
    return t.detach().to(torch.float64).numpy()


FREQS = [20.0, 63.0, 440.0, 2200.0, 9000.0, 20000.0]
GAINS = [-60.0, -12.0, -0.5, 0.0, 3.0, 15.0]
QS = [0.05, 0.3, 0.7071, 2.0, 8.0]


def _grid(*axes):
    mesh = np.meshgrid(*axes, indexing="ij")
    return [m.ravel() for m in mesh]


# --------------------------------------------------------------------------- coefficients


@pytest.mark.parametrize(
    "designer, reference",
    [(biquads.peak, ref_peak), (biquads.low_shelf, ref_low_shelf), (biquads.high_shelf, ref_high_shelf)],
)
def test_gain_designs_match_reference(designer, reference):
    f, g, q = _grid(FREQS, GAINS, QS)
    b, a = designer(_t(f), _t(g), _t(q), SR)
    for i in range(len(f)):
        rb, ra = reference(f[i], g[i], q[i], SR)
        np.testing.assert_allclose(_np(b[i]), rb, rtol=1e-9, atol=1e-12, err_msg=f"b at {f[i], g[i], q[i]}")
        np.testing.assert_allclose(_np(a[i]), ra, rtol=1e-9, atol=1e-12, err_msg=f"a at {f[i], g[i], q[i]}")


@pytest.mark.parametrize("designer, reference", [(biquads.lowpass2, ref_lowpass2), (biquads.highpass2, ref_highpass2)])
def test_second_order_pass_designs_match_reference(designer, reference):
    f, q = _grid(FREQS, QS)
    b, a = designer(_t(f), _t(q), SR)
    for i in range(len(f)):
        rb, ra = reference(f[i], q[i], SR)
        np.testing.assert_allclose(_np(b[i]), rb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(_np(a[i]), ra, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("designer, reference", [(biquads.lowpass1, ref_lowpass1), (biquads.highpass1, ref_highpass1)])
def test_first_order_designs_match_reference(designer, reference):
    b, a = designer(_t(FREQS), SR)
    for i, f in enumerate(FREQS):
        rb, ra = reference(f, SR)
        np.testing.assert_allclose(_np(b[i]), rb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(_np(a[i]), ra, rtol=1e-9, atol=1e-12)


def test_float32_designs_close_to_float64():
    f, g, q = _grid(FREQS, GAINS, QS)
    for dtype_pair in [(torch.float32, torch.float64)]:
        lo, hi = (biquads.peak(_t(f, d), _t(g, d), _t(q, d), SR) for d in dtype_pair)
        for x32, x64 in zip(lo, hi):
            assert x32.dtype == torch.float32
            np.testing.assert_allclose(_np(x32), _np(x64), rtol=0, atol=1e-5)


def test_shelf_and_peak_floor_frequency_at_2_hz():
    # JUCE designs shelves and peaks at max(f, 2 Hz).
    for designer in (biquads.peak, biquads.low_shelf, biquads.high_shelf):
        low = designer(_t([0.5]), _t([6.0]), _t([1.0]), SR)
        two = designer(_t([2.0]), _t([6.0]), _t([1.0]), SR)
        for x, y in zip(low, two):
            torch.testing.assert_close(x, y)


def test_coefficients_normalised():
    b, a = biquads.design(torch.arange(9), _t([100.0] * 9), _t([4.0] * 9), _t([1.0] * 9), SR)
    assert torch.all(a[:, 0] == 1.0)
    assert b.shape == a.shape == (9, 3)


# --------------------------------------------------------------------------- analytic gains


def test_peak_gain_at_centre_frequency():
    f, g, q = _grid(FREQS[:-1], GAINS, QS)
    b, a = biquads.peak(_t(f), _t(g), _t(q), SR)
    for i in range(len(f)):
        gain = 20 * np.log10(abs(response_at(_np(b[i]), _np(a[i]), f[i], SR)))
        assert gain == pytest.approx(g[i], abs=1e-6)


def test_shelf_gains_at_dc_and_nyquist():
    f, g, q = _grid(FREQS, GAINS, QS)
    for designer, dc_gain, nyquist_gain in (
        (biquads.low_shelf, lambda g: g, lambda g: 0.0),
        (biquads.high_shelf, lambda g: 0.0, lambda g: g),
    ):
        b, a = designer(_t(f), _t(g), _t(q), SR)
        for i in range(len(f)):
            bi, ai = _np(b[i]), _np(a[i])
            dc = 20 * np.log10(abs(bi.sum() / ai.sum()))
            alternating = np.array([1.0, -1.0, 1.0])
            nyq = 20 * np.log10(abs((bi * alternating).sum() / (ai * alternating).sum()))
            assert dc == pytest.approx(dc_gain(g[i]), abs=1e-6)
            assert nyq == pytest.approx(nyquist_gain(g[i]), abs=1e-6)


@pytest.mark.parametrize("f", [20.0, 120.0, 1000.0, 8000.0, 20000.0])
def test_pass_filters_minus_3_db_at_cutoff(f):
    half_power_db = 20 * math.log10(1 / math.sqrt(2))
    q = _t([1 / math.sqrt(2)])
    for b, a in (
        biquads.highpass2(_t([f]), q, SR),
        biquads.lowpass2(_t([f]), q, SR),
        biquads.highpass1(_t([f]), SR),
        biquads.lowpass1(_t([f]), SR),
    ):
        gain = 20 * np.log10(abs(response_at(_np(b[0]), _np(a[0]), f, SR)))
        assert gain == pytest.approx(half_power_db, abs=1e-6)
    # And second-order sections have |H(f0)| = Q in general.
    for qv in (0.3, 2.0, 8.0):
        b, a = biquads.lowpass2(_t([f]), _t([qv]), SR)
        assert abs(response_at(_np(b[0]), _np(a[0]), f, SR)) == pytest.approx(qv, rel=1e-6)


def test_pass_filters_dc_and_nyquist():
    b, a = biquads.highpass2(_t([500.0]), _t([0.7]), SR)
    assert abs(response_at(_np(b[0]), _np(a[0]), 0.0, SR)) < 1e-12
    b, a = biquads.lowpass2(_t([500.0]), _t([0.7]), SR)
    assert abs(response_at(_np(b[0]), _np(a[0]), SR / 2, SR)) < 1e-12
    assert abs(response_at(_np(b[0]), _np(a[0]), 0.0, SR)) == pytest.approx(1.0, abs=1e-12)


def test_cutoff_at_nyquist_stays_finite():
    # The plug-in clamps cut-offs to fs/2; tan(π/2) must not blow up the design.
    for b, a in (biquads.highpass2(_t([SR / 2]), _t([0.7]), SR), biquads.lowpass1(_t([SR / 2]), SR)):
        assert torch.isfinite(b).all() and torch.isfinite(a).all()


# --------------------------------------------------------------------------- design()


def test_design_selects_per_item():
    types = torch.tensor([int(t) for t in FilterType])
    n = len(types)
    f, g, q = _t([300.0] * n), _t([5.0] * n), _t([1.3] * n)
    b, a = biquads.design(types, f, g, q, SR)
    expected = {
        FilterType.HIGHPASS_1: biquads.highpass1(f, SR),
        FilterType.HIGHPASS_2: biquads.highpass2(f, q, SR),
        FilterType.HIGHPASS_LR: biquads.highpass2(f, q, SR),
        FilterType.LOW_SHELF: biquads.low_shelf(f, g, q, SR),
        FilterType.PEAK: biquads.peak(f, g, q, SR),
        FilterType.HIGH_SHELF: biquads.high_shelf(f, g, q, SR),
        FilterType.LOWPASS_1: biquads.lowpass1(f, SR),
        FilterType.LOWPASS_2: biquads.lowpass2(f, q, SR),
        FilterType.LOWPASS_LR: biquads.lowpass2(f, q, SR),
    }
    for i, kind in enumerate(FilterType):
        torch.testing.assert_close(b[i], expected[kind][0][i])
        torch.testing.assert_close(a[i], expected[kind][1][i])
    sections = biquads.sections_per_type(types)
    assert sections.tolist() == [1, 1, 2, 1, 1, 1, 1, 1, 2]


def test_design_gradients_finite():
    types = torch.arange(9)
    f = _t([20.0] * 9).requires_grad_()
    g = _t([-60.0] * 9).requires_grad_()
    q = _t([0.05] * 9).requires_grad_()
    b, a = biquads.design(types, f, g, q, SR)
    (b.sum() + a.sum()).backward()
    for p in (f, g, q):
        assert torch.isfinite(p.grad).all()


# --------------------------------------------------------------------------- frequency_response


def _freqz_on_rfft_grid(b, a, n_fft):
    w = 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft
    return scipy.signal.freqz(_np(b), _np(a), worN=w)[1]


def _response_cases(dtype):
    # Near-unit-circle poles at both ends of the spectrum, where a naive evaluation of
    # the polynomials cancels badly, plus ordinary ones.
    t = lambda v: _t([v], dtype)  # noqa: E731
    return [
        biquads.peak(t(20.0), t(15.0), t(8.0), SR),
        biquads.peak(t(3000.0), t(-60.0), t(0.7), SR),
        biquads.highpass2(t(20.0), t(0.05), SR),
        biquads.highpass2(t(20.0), t(8.0), SR),
        biquads.lowpass2(t(20000.0), t(8.0), SR),
        biquads.low_shelf(t(20.0), t(-60.0), t(0.05), SR),
        biquads.high_shelf(t(16000.0), t(15.0), t(2.0), SR),
        biquads.highpass1(t(20.0), SR),
        biquads.lowpass1(t(20000.0), SR),
    ]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_frequency_response_matches_freqz(dtype):
    # freqz itself loses up to ~1e-7 (relative) in float64 next to z = 1 (see the
    # high-precision test below), so this comparison cannot be tighter than that.
    rtol = 1e-6 if dtype == torch.float64 else 2e-5
    n_fft = 2**16
    for b, a in _response_cases(dtype):
        h = biquads.frequency_response(b, a, n_fft)[0]
        assert h.shape == (n_fft // 2 + 1,)
        assert h.dtype == (torch.complex128 if dtype == torch.float64 else torch.complex64)
        ref = _freqz_on_rfft_grid(b[0], a[0], n_fft)
        err = np.abs(h.numpy().astype(np.complex128) - ref)
        # Relative where the response is not (numerically) zero, absolute elsewhere.
        scale = np.maximum(np.abs(ref), 1e-6)
        assert np.all(err <= rtol * scale), (b, a, (err / scale).max())


def test_frequency_response_high_precision_spot_checks():
    # At the bins where float64 freqz is least accurate, compare with 40-digit arithmetic.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    n_fft = 2**16
    for b, a in _response_cases(torch.float64):
        h = biquads.frequency_response(b, a, n_fft)[0].numpy()
        for k in (1, 2, 3, 10, 100, n_fft // 4 - 1, n_fft // 4, n_fft // 2 - 1):
            z = mpmath.exp(-2j * mpmath.pi * k / n_fft)
            bb = [mpmath.mpf(float(v)) for v in b[0]]
            aa = [mpmath.mpf(float(v)) for v in a[0]]
            exact = complex((bb[0] + bb[1] * z + bb[2] * z * z) / (aa[0] + aa[1] * z + aa[2] * z * z))
            assert abs(h[k] - exact) <= 1e-12 * max(abs(exact), 1e-6), (k, h[k], exact)


def test_frequency_response_odd_length_and_batch_shape():
    b, a = biquads.peak(_t([[100.0, 1000.0]]), _t([[3.0, -3.0]]), _t([[1.0, 2.0]]), SR)
    h = biquads.frequency_response(b, a, 1001)
    assert h.shape == (1, 2, 501)
    for j in range(2):
        np.testing.assert_allclose(h[0, j].numpy(), _freqz_on_rfft_grid(b[0, j], a[0, j], 1001), rtol=1e-10)
