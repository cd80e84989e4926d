"""vocalmix.features: the feature gate measures loudness with the same K-weighting as vocalmix.analysis."""

import numpy as np
import pytest
import torch

from vocalmix import analysis
from vocalmix.features import DEFAULT_FEATURES, MelFrontend, k_weighting_power

SR = DEFAULT_FEATURES.sample_rate


@pytest.mark.parametrize("frequency_hz", [200.0, 997.0, 1500.0, 3000.0, 12000.0])
def test_frame_loudness_is_bs1770_loudness_of_a_steady_sine(frequency_hz):
    """Every frame of a steady sine reads its BS.1770 integrated loudness (analysis, a time-domain filter)
    to 0.01 LU; the shelf once approximated here (1.5 kHz, +4 dB) read up to 0.04 LU low."""
    t = np.arange(4 * SR) / SR
    x = (0.25 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    expected = analysis.integrated_loudness(x[None], SR)
    _, frames = MelFrontend(DEFAULT_FEATURES)(torch.from_numpy(x)[None])
    assert frames.shape[-1] > 100
    np.testing.assert_allclose(frames[0].numpy(), expected, atol=0.01)


#: BS.1770-4 Tables 1 and 2: the K-weighting biquads as published for 48 kHz (b, a).
PUBLISHED_48K = [
    ((1.53512485958697, -2.69169618940638, 1.19839281085285), (1.0, -1.69065929318241, 0.73248077421585)),
    ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621)),
]


def test_k_weighting_power_is_the_published_filter_at_48k():
    n_fft = 1 << 14
    power = k_weighting_power(n_fft, 48000, dtype=torch.float64).numpy()
    z = np.exp(2j * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    published = np.ones(len(z))
    for b, a in PUBLISHED_48K:
        published *= np.abs(np.polyval(b, z) / np.polyval(a, z)) ** 2  # polyval of z: same ratio as in z^-1
    np.testing.assert_allclose(power[1:], published[1:], rtol=1e-6)
    assert 10 * np.log10(power[-1]) == pytest.approx(4.0, abs=0.1)  # the shelf's +4 dB
