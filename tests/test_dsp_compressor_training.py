"""compressor(..., training=True): the same output, gradients without dead zones (issue 18)."""

from __future__ import annotations

import pytest
import torch

from vocalmix.dsp.compressor import compressor

SR = 44100


def burst(seed=0, n=SR // 4):
    g = torch.Generator().manual_seed(seed)
    envelope = torch.ones(n)
    envelope[: n // 2] = 0.05
    return (torch.randn(1, 1, n, generator=g) * 0.2 * envelope).clamp(-1, 1)


def grads(x, training, **settings):
    params = {k: torch.tensor([float(v)], requires_grad=True) for k, v in settings.items()}
    xx = x.clone().requires_grad_(True)
    y = compressor(xx, SR, training=training, **params)
    y.square().sum().backward()
    return y.detach(), {k: float(p.grad) for k, p in params.items()}, xx.grad


BASE = dict(threshold_db=-20.0, ratio=4.0, knee_db=6.0, attack_ms=10.0, release_ms=100.0, makeup_db=0.0)


@pytest.mark.parametrize(
    "case",
    [
        dict(threshold_db=5.0, knee_db=0.0),  # above the peak: every setting's gradient is 0 in the exact model
        dict(ratio=16.0),  # the infinite-ratio switch
        dict(attack_ms=0.0, release_ms=0.0),  # alpha is flat at 0 ms
    ],
)
def test_training_gives_gradients_where_the_exact_model_has_none(case):
    x = burst()
    settings = dict(BASE, **case)
    y_exact, g_exact, gx_exact = grads(x, False, **settings)
    y_train, g_train, gx_train = grads(x, True, **settings)
    assert torch.equal(y_train, y_exact)  # renders exactly the same
    torch.testing.assert_close(gx_train, gx_exact)  # the input's gradient stays exact
    dead = [k for k in case] + (["ratio", "knee_db", "attack_ms", "release_ms"] if case.get("threshold_db") else [])
    for k in dead:
        if k in ("attack_ms", "release_ms") and case.get("threshold_db"):
            continue  # no reduction at all: the times have nothing to act on
        assert g_exact[k] == 0.0, k
        assert g_train[k] != 0.0 and torch.isfinite(torch.tensor(g_train[k])), k


def test_training_surrogate_gradient_points_the_right_way():
    """Lowering a threshold that sits above the signal increases the reduction (lowers the
    output energy): the surrogate's d(energy)/d(threshold) must be positive."""
    _, g, _ = grads(burst(1), True, **dict(BASE, threshold_db=3.0, knee_db=0.0))
    assert g["threshold_db"] > 0
    _, g, _ = grads(burst(1), True, **dict(BASE, ratio=16.0))
    assert g["ratio"] < 0  # a higher ratio compresses more


@pytest.mark.parametrize("lookahead", [False, True])
def test_training_output_identical_with_lookahead_and_batch(lookahead):
    x = torch.cat([burst(2), burst(3)])
    args = (
        SR,
        torch.tensor([-30.0, 0.0]),
        torch.tensor([3.0, 16.0]),
        torch.tensor([0.0, 12.0]),
        torch.tensor([0.0, 30.0]),
        torch.tensor([50.0, 0.0]),
        torch.tensor([2.0, -1.0]),
    )
    args = [a.requires_grad_(True) if torch.is_tensor(a) else a for a in args]
    # Against the exact model's gradient path (its no-grad path fuses ops in place and
    # differs by float32 rounding).
    exact = compressor(x, *args, lookahead=lookahead)
    train = compressor(x, *args, lookahead=lookahead, training=True)
    assert torch.equal(train, exact)
