"""Tests of the one overlap-save helper (dsp/convolution.py) against direct convolution (NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocalmix.dsp.convolution import overlap_save


@pytest.mark.parametrize("n", [1, 700, 1024 - 300, 1024 - 299, 5000])
def test_one_filter_per_item_and_channel_is_linear_convolution(n):
    """Each item's FIR filters both its channels: equal to np.convolve cut to the input
    length, for inputs shorter than one hop, exactly one hop, and many hops with a remainder."""
    rng = np.random.default_rng(n)
    block, tail = 1024, 300
    x = rng.standard_normal((2, 2, n))
    fir = rng.standard_normal((2, tail + 1))  # the longest a block of 1024 with tail 300 filters exactly
    spectra = torch.fft.rfft(torch.from_numpy(fir), n=block)[:, None, None, :]
    y = overlap_save(torch.from_numpy(x), block, tail, lambda frames: frames * spectra).numpy()
    expected = np.stack([[np.convolve(x[b, c], fir[b])[:n] for c in range(2)] for b in range(2)])
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, atol=1e-10)


def test_filters_summed_over_input_channels():
    """A multiply that mixes channels (the reverb's fed lines -> heard lines): output o is
    sum over inputs e of x_e convolved with h_eo."""
    rng = np.random.default_rng(1)
    block, tail, n = 512, 200, 3000
    x = rng.standard_normal((1, 2, n))
    h = rng.standard_normal((2, 3, tail + 1))  # 2 inputs -> 3 outputs
    H = torch.fft.rfft(torch.from_numpy(h), n=block)  # (2, 3, bins)

    def mix(frames):  # (1, 2, K, bins) -> (1, 3, K, bins)
        return torch.einsum("bekf,eof->bokf", frames, H)

    y = overlap_save(torch.from_numpy(x), block, tail, mix).numpy()
    expected = np.stack([sum(np.convolve(x[0, e], h[e, o])[:n] for e in range(2)) for o in range(3)])
    assert y.shape == (1, 3, n)
    np.testing.assert_allclose(y[0], expected, atol=1e-10)


def test_block_must_exceed_the_tail():
    with pytest.raises(ValueError, match="longer than the tail"):
        overlap_save(torch.zeros(1, 1, 10), 256, 256, lambda f: f)
