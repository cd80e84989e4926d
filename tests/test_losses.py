"""Known-answer tests of the end-to-end training losses (training/losses.py)."""

import math

import pytest
import torch

from vocalmix import analysis
from vocalmix.training import losses as L

SR = 44100


def _noise(batch=2, channels=2, seconds=2.0, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, int(SR * seconds), generator=g) * scale


def test_k_loudness_of_a_997_hz_sine_is_bs1770s_value():
    # BS.1770: a 0 dBFS 997 Hz sine on one channel reads -3.01 LUFS.
    t = torch.arange(SR * 2, dtype=torch.float64) / SR
    x = torch.sin(2 * math.pi * 997 * t)[None, None]
    assert L.k_loudness(x, SR).item() == pytest.approx(-3.01, abs=0.06)


def test_k_loudness_agrees_with_the_gated_bs1770_measure_on_steady_noise():
    x = _noise()
    ours = L.k_loudness(x, SR)
    for i in range(x.shape[0]):
        assert ours[i].item() == pytest.approx(analysis.integrated_loudness(x[i].numpy(), SR), abs=0.1)


def test_a_known_gain_gives_that_loudness_difference():
    x, backing = _noise(seed=1), _noise(seed=2)
    louder = x * 10 ** (4.5 / 20)
    loss = L.relative_loudness_loss(louder, x, backing, SR)
    assert torch.allclose(loss, torch.full_like(loss, 4.5), atol=1e-3)
    assert torch.all(L.relative_loudness_loss(x, x, backing, SR) == 0)


def test_relative_loudness_loss_has_a_finite_gradient():
    x = _noise(seed=3).requires_grad_(True)
    L.relative_loudness_loss(x * 0.5, _noise(seed=4), _noise(seed=5), SR).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mrstft_is_zero_for_identical_signals_and_grows_with_difference():
    stft = L.MultiResolutionSTFT()
    x = _noise(seconds=1.0)
    assert torch.all(stft(x, x.clone(), per_item=True) == 0)
    assert float(stft(x, x.clone())) == 0
    near = stft(x, x + 0.01 * _noise(seconds=1.0, seed=9), per_item=True)
    far = stft(x, x + 0.1 * _noise(seconds=1.0, seed=9), per_item=True)
    assert torch.all(near > 0) and torch.all(far > near)


def test_loudness_range_of_a_two_level_signal_is_the_level_step():
    x = _noise(seconds=4.0)
    steady = L.loudness_range(x, SR)
    step = x.clone()
    step[..., : x.shape[-1] // 2] *= 10 ** (-10 / 20)  # first half 10 dB quieter
    lra = L.loudness_range(step, SR)
    assert torch.all(steady < 0.5)
    assert torch.allclose(lra, torch.full_like(lra, 10.0), atol=0.5)


def test_crest_factor_of_a_sine_is_3_dB_and_of_a_square_wave_0_dB():
    t = torch.arange(SR, dtype=torch.float64) / SR
    sine = torch.sin(2 * math.pi * 440 * t)[None, None]
    square = torch.sign(torch.sin(2 * math.pi * 441 * t + 0.1))[None, None]
    assert L.crest_factor_db(sine, SR).item() == pytest.approx(20 * math.log10(math.sqrt(2)), abs=0.05)
    assert L.crest_factor_db(square, SR).item() == pytest.approx(0.0, abs=0.05)


def test_dynamics_loss_sees_compression_and_is_zero_for_identical_signals():
    x = _noise(seconds=4.0)
    x[..., : x.shape[-1] // 2] *= 10 ** (-12 / 20)
    squashed = x.clone()
    squashed[..., : x.shape[-1] // 2] *= 10 ** (6 / 20)  # the quiet half brought 6 dB closer
    assert torch.all(L.dynamics_loss(x, x.clone(), SR) == 0)
    d = L.dynamics_loss(squashed, x, SR, crest_weight=0.0)
    assert torch.allclose(d, torch.full_like(d, 6.0), atol=0.5)


def test_settings_prior_known_values():
    centre = torch.tensor([0.5, 0.5])
    assert L.settings_prior(torch.tensor([[0.5, 0.5]]), centre).item() == 0
    # (0.5/0.5)^2 and 0 -> mean 0.5
    assert L.settings_prior(torch.tensor([[1.0, 0.5]]), centre).item() == pytest.approx(0.5)


def test_group_gradient_balance_equalises_group_gradient_scales():
    groups = torch.tensor([0, 0, 1, 1, 2])
    balance = L.GroupGradientBalance(groups, momentum=0.0).train()
    scales = torch.tensor([1.0, 1.0, 1e-4, 1e-4, 3e-2])  # per-setting gradient scales 4 orders apart
    u = torch.rand(8, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (balance(u) * scales).sum().backward()
    per_group = [u.grad[:, groups == g].pow(2).mean().sqrt().item() for g in range(3)]
    assert max(per_group) / min(per_group) == pytest.approx(1.0, rel=1e-6)
    # Within a group relative sizes are kept, and an identity in eval mode.
    assert torch.equal(balance.eval()(u), u)


def test_group_gradient_balance_is_identity_forward():
    balance = L.GroupGradientBalance(torch.tensor([0, 1])).train()
    u = torch.rand(3, 2).requires_grad_(True)
    assert torch.equal(balance(u), u)
