"""Rows filtered side by side (vocalmix.dsp.sosfilt.sosfilt_rows) equal scipy's sosfilt of each row, bit for bit,
and MultiEQ's recursive path, which runs a batch through it, equals scipy per item."""

import numpy as np
import pytest
import scipy.signal
import torch

from vocalmix.dsp.biquads import FilterType
from vocalmix.dsp.eq import multi_eq, multi_eq_sections
from vocalmix.dsp.sosfilt import sosfilt_rows

SR = 44100


def _random_sections(rng, count):
    """Stable peak sections with random gains and a Butterworth pair: what an EQ chain holds."""
    sections = []
    for _ in range(count - 2):
        b, a = scipy.signal.iirpeak(rng.uniform(40, 15000), rng.uniform(0.3, 8), fs=SR)
        sections.append(np.r_[b * rng.uniform(0.3, 3), a])
    sections.extend(scipy.signal.butter(4, rng.uniform(20, 300), "highpass", fs=SR, output="sos"))
    return np.array(sections)


@pytest.mark.parametrize("rows", [1, 3, 4, 7, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_equal_scipy_per_row_bit_for_bit(rows, dtype):
    rng = np.random.default_rng(rows)
    n = 5000 + 517  # not a multiple of the kernel's block
    sos = np.stack([_random_sections(rng, 5) for _ in range(rows)])
    x = (rng.standard_normal((rows, n)) * np.linspace(0, 1, n)).astype(dtype)
    x[:, 1000:1400] = 0.0  # silence: the state rings down
    x[0, 2000] = -0.0
    out = sosfilt_rows(sos, x)
    assert out.dtype == np.float64
    for r in range(rows):
        expected = scipy.signal.sosfilt(sos[r], x[r].astype(np.float64))
        np.testing.assert_array_equal(out[r], expected)
        assert np.array_equal(np.signbit(out[r]), np.signbit(expected))  # -0.0 stays -0.0


def test_rows_write_into_out_and_refuse_bad_shapes():
    rng = np.random.default_rng(1)
    sos = np.stack([_random_sections(rng, 4) for _ in range(2)])
    x = rng.standard_normal((2, 300))
    out = np.empty((2, 300))
    assert sosfilt_rows(sos, x, out=out) is out
    np.testing.assert_array_equal(out[1], scipy.signal.sosfilt(sos[1], x[1]))
    with pytest.raises(ValueError, match="rows"):
        sosfilt_rows(sos[:1], x)
    with pytest.raises(ValueError, match="a0"):
        bad = sos.copy()
        bad[0, 0, 3] = 2.0
        sosfilt_rows(bad, x)
    out32 = np.empty((2, 300), dtype=np.float32)  # rounded once from the float64 result
    sosfilt_rows(sos, x, out=out32)
    np.testing.assert_array_equal(out32, out.astype(np.float32))
    with pytest.raises(ValueError, match="out"):
        sosfilt_rows(sos, x, out=np.empty((2, 300), dtype=np.float16))


def test_multi_eq_batch_equals_scipy_per_item():
    """A batch whose items have different numbers of sections (Linkwitz-Riley bands doubled,
    bands switched off, an item with every band off) and two channels: every item and channel
    equals scipy's sosfilt with that item's own sections."""
    rng = np.random.default_rng(2)
    batch, bands, n = 9, 6, 4001
    freq = torch.tensor(rng.uniform(40, 12000, (batch, bands)), dtype=torch.float32)
    gain = torch.tensor(rng.uniform(-12, 12, (batch, bands)), dtype=torch.float32)
    q = torch.tensor(rng.uniform(0.4, 4, (batch, bands)), dtype=torch.float32)
    kind = torch.full((batch, bands), int(FilterType.PEAK))
    kind[::3, 0] = int(FilterType.HIGHPASS_LR)
    enabled = torch.ones(batch, bands, dtype=torch.bool)
    enabled[1, 2:] = False
    enabled[4] = False
    x = torch.tensor(rng.standard_normal((batch, 2, n)), dtype=torch.float32)
    y = multi_eq(x, SR, freq, gain, q, kind, enabled, method="iir")
    sections = multi_eq_sections(SR, freq, gain, q, kind, enabled)
    assert len({len(s) for s in sections}) >= 3  # the batch really mixes section counts
    for item, sos in enumerate(sections):
        for channel in range(2):
            signal = x[item, channel].numpy().astype(np.float64)
            expected = scipy.signal.sosfilt(sos, signal) if len(sos) else signal
            np.testing.assert_array_equal(y[item, channel].numpy(), expected.astype(np.float32))
