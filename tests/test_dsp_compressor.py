"""Tests of vocalmix.dsp.compressor against the OmniCompressor formulas.

The references here are written independently of the module: the static curve in
its textbook output-level form, a sample-by-sample pure-Python compressor, and a
naive min-of-ramps. Static-curve tests use square waves: the detector is the
instantaneous |x|, so a square wave (constant |x|) keeps it -- and the gain -- steady,
whereas on a sine the gain would ripple with the waveform.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vocalmix.dsp.compressor import (
    Compressor,
    _Ballistics,
    _MinOfRamps,
    compressor,
    gain_reduction_db,
    lookahead_samples,
)
from vocalmix.dsp.params import CompressorParams

SR = 44100


# ----------------------------------------------------------------------------- helpers


def square_wave(amplitude_db, n, period=100):
    """(len(amplitude_db), 1, n) float32 square waves of constant |x| = 10^(dB/20)."""
    sign = torch.where((torch.arange(n) // (period // 2)) % 2 == 0, 1.0, -1.0)
    amp = 10.0 ** (torch.as_tensor(amplitude_db, dtype=torch.float64) / 20.0)
    return (amp[:, None] * sign[None, :]).float()[:, None, :]


def expected_output_level_db(level, threshold, ratio, knee):
    """Static output level for an input level (the output-level form of the curve)."""
    inv_ratio = 0.0 if ratio > 15.9 else 1.0 / ratio
    over = level - threshold
    if 2.0 * over <= -knee:
        return level
    if 2.0 * abs(over) <= knee:
        return level + (inv_ratio - 1.0) * (over + knee / 2.0) ** 2 / (2.0 * knee)
    return threshold + over * inv_ratio


def reference_compressor(x, sr, threshold, ratio, knee, attack_ms, release_ms, makeup, lookahead):
    """Sample-by-sample OmniCompressor in float64 Python. ``x``: (channels, n) array."""
    channels, n = x.shape

    def coefficient(t_ms):
        return 1.0 if t_ms <= 0 else 1.0 - math.exp(-1.0 / (sr * t_ms / 1000.0))

    a_att, a_rel = coefficient(attack_ms), coefficient(release_ms)
    slope = -1.0 if ratio > 15.9 else 1.0 / ratio - 1.0
    state, smoothed = 0.0, []
    for i in range(n):
        peak = abs(float(x[0, i]))
        level = max(20.0 * math.log10(peak), -100.0) if peak > 0 else -100.0
        over = level - threshold
        if over <= -knee / 2:
            target = 0.0
        elif over <= knee / 2:
            target = slope * (over + knee / 2) ** 2 / (2 * knee)
        else:
            target = slope * over
        diff = target - state
        state += (a_att if diff < 0 else a_rel) * diff
        smoothed.append(state)
    source = x.astype(np.float64)
    if lookahead:
        d = int(float(np.float32(0.005)) * sr)  # the plug-in: trunc(0.005f * fs)
        padded = [0.0] * d + smoothed
        reduction = [min(padded[i + k] * (1 - k / d) for k in range(d)) for i in range(n)]
        source = np.concatenate([np.zeros((channels, d)), source[:, : n - d]], axis=1)
    else:
        reduction = smoothed
    gain = np.array([10 ** ((r + makeup) / 20) if r + makeup > -100 else 0.0 for r in reduction])
    return source * gain[None, :], np.array(reduction)


def bursty_noise(batch, channels, n, seed):
    """Noise whose level jumps between -70 and +6 dBFS every few ms, with some silence."""
    g = torch.Generator().manual_seed(seed)
    segment = 37
    levels_db = torch.rand(batch, 1, n // segment + 1, generator=g) * 76.0 - 70.0
    envelope = (10.0 ** (levels_db / 20.0)).repeat_interleave(segment, dim=-1)[..., :n]
    x = torch.randn(batch, channels, n, generator=g) * envelope
    x[..., n // 3 : n // 3 + 20] = 0.0  # exact zeros hit the -100 dB detector floor
    return x


# ----------------------------------------------------------------------------- static curve


@pytest.mark.parametrize("knee", [0.0, 12.0])
@pytest.mark.parametrize("ratio", [4.0, 16.0])
def test_static_curve_matches_formula(knee, ratio):
    threshold = -20.0
    offsets = [-20, -10, -7, -6, -5, -3, -1, 0, 1, 3, 5, 6, 7, 10, 20]
    levels = [threshold + o for o in offsets]
    n = int(0.2 * SR)
    x = square_wave(levels, n)
    y = compressor(x, SR, threshold, ratio, knee, 1.0, 10.0, 0.0)
    settled = y[:, 0, -2000:].abs().amax(dim=-1)
    measured = 20 * torch.log10(settled.double())
    expected = torch.tensor([expected_output_level_db(level, threshold, ratio, knee) for level in levels])
    # The brief asks for +-0.25 dB; with a steady detector the model is exact.
    torch.testing.assert_close(measured, expected.double(), atol=0.01, rtol=0)


def test_infinite_ratio_limits_at_threshold():
    threshold = -12.0
    levels = [threshold + 3, threshold + 10, threshold + 25]
    x = square_wave(levels, 8000)
    for ratio in (16.0, 15.95):  # anything above 15.9 is infinity
        y = compressor(x, SR, threshold, ratio, 0.0, 0.5, 20.0, 0.0)
        out_db = 20 * torch.log10(y[:, 0, -500:].abs().amax(dim=-1).double())
        torch.testing.assert_close(out_db, torch.full_like(out_db, threshold), atol=1e-3, rtol=0)
    y = compressor(x, SR, threshold, 15.8, 0.0, 0.5, 20.0, 0.0)
    out_db = 20 * torch.log10(y[:, 0, -500:].abs().amax(dim=-1).double())
    expected = torch.tensor([threshold + (level - threshold) / 15.8 for level in levels], dtype=torch.float64)
    torch.testing.assert_close(out_db, expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("makeup", [-10.0, 0.0, 6.5, 20.0])
def test_makeup_is_plain_gain(makeup):
    x = bursty_noise(1, 2, 3000, seed=1) * 0.01  # stays far below the threshold
    y = compressor(x, SR, 0.0, 4.0, 6.0, 10.0, 100.0, makeup)
    torch.testing.assert_close(y, x * 10 ** (makeup / 20), rtol=1e-6, atol=0)


# ----------------------------------------------------------------------------- ballistics


def _crossing_time_s(trace, start, fraction_left):
    """Time after ``start`` at which ``trace`` (decaying to 0) falls to ``fraction_left``.

    Sample ``start`` is the first one updated after the step, so ``trace[start + i]``
    has seen i + 1 samples of smoothing; linear interpolation between the two samples
    around the crossing gives sub-sample resolution.
    """
    f = trace[start:]
    i = int(np.argmax(f <= fraction_left))  # first sample at or past the crossing
    frac = (f[i - 1] - fraction_left) / (f[i - 1] - f[i])
    return ((i - 1 + frac) + 1) / SR


def _fitted_time_constant_s(trace, start):
    """Least-squares fit of log(trace) over the 95 % .. 5 % part of the decay."""
    f = trace[start:]
    keep = (f < 0.95) & (f > 0.05)
    idx = np.nonzero(keep)[0]
    idx = idx[idx < np.argmax(f <= 0.05)]
    slope = np.polyfit(idx + 1.0, np.log(f[idx]), 1)[0]
    return -1.0 / (slope * SR)


def test_attack_and_release_time_constants():
    times = [(1.0, 10.0), (5.0, 50.0), (30.0, 150.0), (100.0, 500.0)]
    quiet, loud, tail = int(0.05 * SR), int(1.0 * SR), int(1.6 * SR)
    level = torch.cat([torch.full((quiet,), -40.0), torch.full((loud,), 0.0), torch.full((tail,), -40.0)])
    x = (10 ** (level / 20)).repeat(len(times), 1, 1)  # -40 dBFS -> 0 dBFS -> -40 dBFS
    threshold = -30.0  # ratio infinity: full reduction is exactly -30 dB
    attack = torch.tensor([a for a, _ in times])
    release = torch.tensor([r for _, r in times])
    gr = gain_reduction_db(x, SR, threshold, 16.0, 0.0, attack, release).double().numpy()
    full = -30.0
    for b, (attack_ms, release_ms) in enumerate(times):
        assert np.all(gr[b, :quiet] == 0.0)
        attack_left = (gr[b] - full) / (0.0 - full)  # fraction of the change still to go
        release_left = gr[b] / gr[b, quiet + loud - 1]
        for measured in (
            _crossing_time_s(attack_left, quiet, 1 / math.e),
            _fitted_time_constant_s(attack_left, quiet),
        ):
            assert measured == pytest.approx(attack_ms / 1000, rel=0.01)
        assert gr[b, quiet + loud - 1] == pytest.approx(full, abs=2e-3)  # settled (10 tau)
        for measured in (
            _crossing_time_s(release_left, quiet + loud, 1 / math.e),
            _fitted_time_constant_s(release_left, quiet + loud),
        ):
            assert measured == pytest.approx(release_ms / 1000, rel=0.01)


def test_zero_times_follow_the_target_instantly():
    x = bursty_noise(1, 1, 2000, seed=2)
    gr = gain_reduction_db(x, SR, -30.0, 4.0, 0.0, 0.0, 0.0)
    level = torch.clamp(20 * torch.log10(x[:, 0].abs().double()), min=-100)
    expected = torch.clamp(level + 30.0, min=0) * (1 / 4 - 1)
    torch.testing.assert_close(gr.double(), expected, atol=2e-5, rtol=0)


# ----------------------------------------------------------------------------- lookahead


def test_lookahead_samples():
    # trunc(float32(0.005) * fs), as the plug-in computes it (checked by compiling its code; iem-plugins.md)
    assert lookahead_samples(44100) == 220
    assert lookahead_samples(48000) == 239
    assert (lookahead_samples(32000), lookahead_samples(88200), lookahead_samples(96000)) == (159, 440, 479)


def test_lookahead_delays_every_channel():
    sr = 48000
    d = lookahead_samples(sr)
    x = bursty_noise(1, 2, 3000, seed=3) * 1e-3  # below threshold: pure delay
    y = compressor(x, sr, 0.0, 4.0, 0.0, 10.0, 100.0, 0.0, lookahead=True)
    assert torch.all(y[..., :d] == 0)
    torch.testing.assert_close(y[..., d:], x[..., :-d], rtol=0, atol=0)


def test_lookahead_reduction_starts_before_the_transient():
    sr = 48000
    d = lookahead_samples(sr)
    n, onset = 4000, 1000
    level = torch.where(torch.arange(n) < onset, -60.0, 0.0)
    x = square_wave([0.0], n) * 10 ** (level / 20)
    gr = gain_reduction_db(x, sr, -20.0, 16.0, 0.0, 0.0, 100.0, lookahead=True)[0].double()
    y = compressor(x, sr, -20.0, 16.0, 0.0, 0.0, 100.0, 0.0, lookahead=True)[0, 0]
    arrival = onset + d  # where the delayed transient reaches the output
    assert torch.all(y[:d] == 0)
    assert torch.all(y[:arrival].abs() <= 1e-3 * (1 + 1e-6))  # only the -60 dBFS part
    assert y[arrival].abs() > 0.09
    # Linear lead-in: reaches -20 dB at the arrival, starts D - 1 samples before it.
    k = torch.arange(d, dtype=torch.float64)
    torch.testing.assert_close(gr[arrival - k.long()], -20.0 * (1 - k / d), atol=1e-5, rtol=0)
    assert torch.all(gr[: onset + 1] == 0)
    assert gr[onset + 1] < 0
    # With attack 0 the lookahead makes it a brickwall: nothing above the threshold.
    assert y.abs().max() <= 10 ** (-20 / 20) * (1 + 1e-5)


def test_min_of_ramps_matches_naive():
    g = torch.Generator().manual_seed(4)
    d = 37
    # Smooth and jumpy negative sequences (the early stop must stay exact for both).
    jumpy = -torch.rand(2, 600, generator=g, dtype=torch.float64) * 30
    smooth = -(torch.cumsum(torch.rand(1, 600, generator=g, dtype=torch.float64), -1) % 25)
    values = torch.cat([jumpy, smooth])
    out = _MinOfRamps.apply(values, d).numpy()
    v = values.numpy()
    naive = np.array(
        [
            [min(v[b, m + k] * (1 - k / d) for k in range(d) if m + k < v.shape[1]) for m in range(v.shape[1])]
            for b in range(v.shape[0])
        ]
    )
    np.testing.assert_allclose(out, naive, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- reference


CASES = [
    # threshold, ratio, knee, attack, release, makeup, lookahead
    (-30.0, 4.0, 0.0, 10.0, 100.0, 0.0, False),
    (-20.0, 2.5, 12.0, 1.0, 40.0, 6.0, True),
    (-45.0, 16.0, 6.0, 0.0, 250.0, -3.0, False),
    (-10.0, 8.0, 30.0, 100.0, 0.0, 12.0, True),
    (0.0, 1.0, 3.0, 5.0, 500.0, -10.0, False),
    (-50.0, 15.95, 0.0, 0.3, 15.0, 20.0, True),
]


def _case_tensors(cases, dtype=torch.float32):
    cols = list(zip(*cases))
    params = [torch.tensor(c, dtype=dtype) for c in cols[:6]]
    return params, torch.tensor(cols[6])


@pytest.mark.parametrize("requires_grad", [False, True])
def test_matches_python_reference(requires_grad):
    """Covers the autograd path and the in-place inference path."""
    sr = 8000
    x = bursty_noise(len(CASES), 2, 2500, seed=5)
    params, lookahead = _case_tensors(CASES)
    x_in = x.clone().requires_grad_(requires_grad)
    y = compressor(x_in, sr, *params, lookahead=lookahead).detach()
    gr = gain_reduction_db(x_in, sr, *params[:5], lookahead=lookahead).detach()
    for b, case in enumerate(CASES):
        ref_y, ref_gr = reference_compressor(x[b].double().numpy(), sr, *case)
        np.testing.assert_allclose(y[b].numpy(), ref_y, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(gr[b].numpy(), ref_gr, rtol=0, atol=2e-4)


def test_matches_python_reference_float64():
    sr = 8000
    x = bursty_noise(len(CASES), 1, 1500, seed=6).double()
    params, lookahead = _case_tensors(CASES, torch.float64)
    y = compressor(x, sr, *params, lookahead=lookahead)
    for b, case in enumerate(CASES):
        ref_y, _ = reference_compressor(x[b].numpy(), sr, *case)
        np.testing.assert_allclose(y[b].numpy(), ref_y, rtol=1e-11, atol=1e-14)


def test_batch_equals_single_renders_and_module():
    sr = 16000
    x = bursty_noise(len(CASES), 2, 2000, seed=7)
    params, lookahead = _case_tensors(CASES)
    batched = compressor(x, sr, *params, lookahead=lookahead)
    module = Compressor(sr)
    names = ("threshold_db", "ratio", "knee_db", "attack_ms", "release_ms", "makeup_db")
    for b in range(len(CASES)):
        item = CompressorParams(**{n: p[b : b + 1] for n, p in zip(names, params)}, lookahead=lookahead[b : b + 1])
        single = module(x[b : b + 1], item)
        torch.testing.assert_close(batched[b : b + 1], single, rtol=1e-6, atol=1e-9)
    with pytest.raises(TypeError, match="CompressorParams"):
        module(x[:1], params[0][:1])  # a flat threshold where the parameters belong


def test_detector_is_channel_zero_and_gain_is_shared():
    n = 4000
    loud, quiet = square_wave([0.0], n), square_wave([-60.0], n)
    args = (SR, -20.0, 16.0, 0.0, 0.0, 50.0, 0.0)
    # Loud channel 1 alone does not trigger compression.
    y = compressor(torch.cat([quiet, loud], dim=1), *args)
    torch.testing.assert_close(y[0, 1], loud[0, 0])
    # Loud channel 0 compresses channel 1 by the same gain.
    x = torch.cat([loud, quiet], dim=1)
    y = compressor(x, *args)
    torch.testing.assert_close(y[0, 1] / x[0, 1], y[0, 0] / x[0, 0], rtol=1e-5, atol=0)
    assert (y[0, 1] / x[0, 1])[-1] == pytest.approx(0.1, rel=1e-4)


# ----------------------------------------------------------------------------- gradients


def test_gradcheck_ballistics():
    g = torch.Generator().manual_seed(8)
    target = -torch.rand(2, 60, generator=g, dtype=torch.float64) * 20
    target[:, 30:] *= 0.2  # a release phase as well
    alpha_att = torch.tensor([0.3, 0.05], dtype=torch.float64, requires_grad=True)
    alpha_rel = torch.tensor([0.1, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        _Ballistics.apply, (target.requires_grad_(), alpha_att, alpha_rel), eps=1e-6, atol=1e-7
    )


def test_gradcheck_min_of_ramps():
    g = torch.Generator().manual_seed(9)
    values = (-torch.rand(2, 50, generator=g, dtype=torch.float64) * 10).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: _MinOfRamps.apply(v, 7), (values,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("lookahead", [False, True])
def test_gradcheck_full_compressor(lookahead):
    sr = 2000  # D = 10 samples; time constants of a few samples
    x = bursty_noise(2, 2, 80, seed=10).double()
    params = [
        torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for v in ([-30.0, -15.0], [4.0, 2.5], [6.0, 0.0], [3.0, 0.0], [20.0, 8.0], [2.0, -1.0])
    ]

    def run(x, *p):
        return compressor(x, sr, *p, lookahead=lookahead)

    # Every parameter column in full; the 320 input samples by random projections.
    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)
    x.requires_grad_()
    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def _parameter_grads(x, values):
    params = [torch.tensor(v, requires_grad=True) for v in values]
    x = x.clone().requires_grad_()
    y = compressor(x, SR, *params, lookahead=torch.arange(len(values[0])) % 2 == 0)
    y.square().mean().backward()
    return x.grad, [p.grad for p in params]


def test_gradients_finite_on_range_corners_and_nonzero_inside():
    n = 3000
    x = bursty_noise(1, 1, n, seed=11) * 2.0  # peaks around +12 dBFS
    corners = torch.cartesian_prod(
        *[torch.tensor(r) for r in ([-50.0, 10.0], [1.0, 16.0], [0.0, 30.0], [0.0, 100.0], [0.0, 500.0], [-10.0, 20.0])]
    )
    x_grad, grads = _parameter_grads(x.expand(len(corners), 1, n), corners.T.tolist())
    assert torch.isfinite(x_grad).all()
    assert all(torch.isfinite(g).all() for g in grads)

    g = torch.Generator().manual_seed(12)
    u = torch.rand(16, 6, generator=g)
    inside = torch.stack(
        [
            -50 + 60 * u[:, 0],
            1.2 + 14.6 * u[:, 1],
            0.5 + 29.5 * u[:, 2],
            0.5 + 99.5 * u[:, 3],
            5 + 495 * u[:, 4],
            -10 + 30 * u[:, 5],
        ],
        dim=1,
    )
    # Keep the threshold within reach of the signal so the compressor acts at all.
    inside[:, 0] = torch.minimum(inside[:, 0], torch.tensor(2.0))
    x_grad, grads = _parameter_grads(x.expand(len(inside), 1, n), inside.T.tolist())
    assert torch.isfinite(x_grad).all() and (x_grad != 0).any()
    for name, grad in zip(["threshold", "ratio", "knee", "attack", "release", "makeup"], grads):
        assert torch.isfinite(grad).all(), name
        assert (grad != 0).all(), (name, grad)


# ----------------------------------------------------------------------------- torch backend
#
# The torch backend is the path for CUDA and other devices. This machine has no GPU, so
# it is tested on the CPU by forcing backend="torch" against the numba kernels.

import sys  # noqa: E402

from vocalmix.dsp.compressor import (  # noqa: E402
    _BallisticsTorch,
    _linear_recurrence,
    _MinOfRampsTorch,
    select_backend,
)

_compressor_module = sys.modules["vocalmix.dsp.compressor"]


def test_select_backend_by_device():
    assert select_backend(torch.device("cpu")) == "numba"
    assert select_backend("cpu") == "numba"
    assert select_backend(torch.device("cuda")) == "torch"
    assert select_backend(torch.device("cuda", 1)) == "torch"
    assert select_backend(torch.device("mps")) == "torch"
    assert select_backend(torch.device("cuda"), "numba") == "numba"
    assert select_backend(torch.device("cpu"), "torch") == "torch"
    with pytest.raises(ValueError):
        select_backend("cpu", "cuda")
    with pytest.raises(ValueError):
        Compressor(SR, backend="jax")


def test_linear_recurrence_matches_loop():
    g = torch.Generator().manual_seed(20)
    for n in (1, 5, 64, 65, 5000):
        a = torch.rand(3, n, generator=g, dtype=torch.float64)
        a[:, ::7] = 0.0  # a = 0 (alpha = 1) resets the state
        a[:, ::11] = 1.0
        b = torch.randn(3, n, generator=g, dtype=torch.float64)
        y0 = torch.randn(3, generator=g, dtype=torch.float64)
        expected = torch.empty_like(b)
        state = y0.clone()
        for i in range(n):
            state = a[:, i] * state + b[:, i]
            expected[:, i] = state
        torch.testing.assert_close(_linear_recurrence(a, b, y0), expected, rtol=1e-12, atol=1e-12)


TORCH_SETTINGS = [
    # threshold, ratio, knee, attack, release, makeup, lookahead
    (
        [-30.0, -20.0, -45.0, 0.0],
        [4.0, 2.0, 16.0, 8.0],
        [6.0, 0.0, 12.0, 30.0],
        [5.0, 0.5, 20.0, 0.0],
        [100.0, 50.0, 300.0, 0.0],
        [3.0, 0.0, 5.0, -4.0],
        False,
    ),
    (
        [-40.0, -10.0, -25.0, -50.0],
        [3.0, 16.0, 1.5, 6.0],
        [0.0, 6.0, 3.0, 18.0],
        [0.0, 1.0, 40.0, 10.0],
        [10.0, 500.0, 0.0, 80.0],
        [1.0, 20.0, -10.0, 0.0],
        True,
    ),
    (
        [-40.0, -10.0, -25.0, -50.0],
        [3.0, 16.0, 1.5, 6.0],
        [0.0, 6.0, 3.0, 18.0],
        [0.0, 1.0, 40.0, 10.0],
        [10.0, 500.0, 0.0, 80.0],
        [1.0, 20.0, -10.0, 0.0],
        torch.tensor([True, False, True, False]),
    ),
]


@pytest.mark.parametrize("setting", range(len(TORCH_SETTINGS)))
@pytest.mark.parametrize("small_windows", [False, True])
def test_torch_backend_matches_numba(setting, small_windows, monkeypatch):
    if small_windows:
        # Short windows and few rounds force the partial-commit path of the branch search.
        monkeypatch.setattr(_compressor_module, "TORCH_BALLISTICS_WINDOW", 97)
        monkeypatch.setattr(_compressor_module, "_TORCH_BRANCH_ITERATIONS", 2)
        monkeypatch.setattr(_compressor_module, "_RAMP_CHUNK_ELEMENTS", 4000)
    *params, lookahead = TORCH_SETTINGS[setting]
    params = [torch.tensor(p) for p in params]
    x = bursty_noise(4, 2, 20000, seed=21) * 2.0
    expected = compressor(x, SR, *params, lookahead=lookahead, backend="numba")
    got = compressor(x, SR, *params, lookahead=lookahead, backend="torch")
    assert got.dtype == x.dtype
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    reduction = gain_reduction_db(x, SR, *params[:5], lookahead=lookahead, backend="torch")
    expected_reduction = gain_reduction_db(x, SR, *params[:5], lookahead=lookahead, backend="numba")
    torch.testing.assert_close(reduction, expected_reduction, rtol=1e-6, atol=1e-5)


def test_torch_backend_matches_python_reference_float64():
    x = bursty_noise(1, 1, 1500, seed=22).double()
    setting = (-30.0, 5.0, 8.0, 2.0, 30.0, 2.0, True)
    expected, _ = reference_compressor(x[0].numpy(), SR, *setting)
    got = compressor(x, SR, *setting[:6], lookahead=True, backend="torch")[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "backend, runs, never",
    [
        ("torch", ("_ballistics_torch",), ("_ballistics_forward_kernel", "_ballistics_render_kernel")),
        ("numba", ("_ballistics_forward_kernel", "_ballistics_render_kernel"), ("_ballistics_torch",)),
    ],
)
def test_module_backend_is_used(monkeypatch, backend, runs, never):
    # Both backends give the same output by design, so the output cannot tell them apart:
    # record which ballistics implementation the module actually calls.
    import importlib

    module_code = importlib.import_module("vocalmix.dsp.compressor")  # the package exports a function of that name

    called = []
    for name in ("_ballistics_torch", "_ballistics_forward_kernel", "_ballistics_render_kernel"):
        original = getattr(module_code, name)
        monkeypatch.setattr(
            module_code, name, lambda *a, _original=original, _name=name: (called.append(_name), _original(*a))[1]
        )
    x = bursty_noise(2, 1, 3000, seed=23)
    args = (-30.0, 4.0, 6.0, 5.0, 100.0, 3.0)
    names = ("threshold_db", "ratio", "knee_db", "attack_ms", "release_ms", "makeup_db")
    params = CompressorParams(
        **{n: torch.full((2,), v) for n, v in zip(names, args)}, lookahead=torch.ones(2, dtype=torch.bool)
    )
    module = Compressor(SR, backend=backend)
    assert f"backend={backend!r}" in repr(module)
    out = module(x, params)
    assert set(runs) & set(called) and not set(never) & set(called)
    called.clear()
    reduction = module.gain_reduction_db(x, params)
    assert set(runs) & set(called) and not set(never) & set(called)
    torch.testing.assert_close(out, compressor(x, SR, *args, lookahead=True))
    torch.testing.assert_close(reduction, gain_reduction_db(x, SR, *args[:5], lookahead=True))


@pytest.mark.parametrize("lookahead", [False, True])
def test_torch_backend_gradients_match_numba(lookahead):
    x = bursty_noise(4, 2, 8000, seed=24) * 2.0
    values = (
        [-30.0, -20.0, -40.0, -10.0],
        [4.0, 2.5, 16.5, 8.0],
        [6.0, 0.0, 12.0, 3.0],
        [5.0, 0.5, 20.0, 2.0],
        [100.0, 50.0, 300.0, 10.0],
        [3.0, 0.0, 5.0, 1.0],
    )
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(25))
    grads = {}
    for backend in ("numba", "torch"):
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
        xx = x.double().requires_grad_()
        y = compressor(xx, SR, *params, lookahead=lookahead, backend=backend)
        (y * weights).sum().backward()
        grads[backend] = [xx.grad] + [p.grad for p in params]
    for name, a, b in zip(
        ["x", "threshold", "ratio", "knee", "attack", "release", "makeup"], grads["numba"], grads["torch"]
    ):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-10, msg=name)
    assert (grads["torch"][1] != 0).all()


def test_gradcheck_torch_kernels():
    g = torch.Generator().manual_seed(26)
    target = -torch.rand(2, 60, generator=g, dtype=torch.float64) * 20
    target[:, 30:] *= 0.2
    alpha_att = torch.tensor([0.3, 0.05], dtype=torch.float64, requires_grad=True)
    alpha_rel = torch.tensor([0.1, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        _BallisticsTorch.apply, (target.requires_grad_(), alpha_att, alpha_rel), eps=1e-6, atol=1e-7
    )
    values = (-torch.rand(2, 50, generator=g, dtype=torch.float64) * 10).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: _MinOfRampsTorch.apply(v, 7), (values,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("batch", [1, 4, 7])
def test_render_ballistics_equal_the_recording_kernel_bit_for_bit(batch):
    """Without gradients the ballistics run four items at a time without recording branches
    (_ballistics_render_kernel); the output must be the recording kernel's (used whenever a
    gradient is wanted) exactly, for groups of four and the items left over."""
    x = bursty_noise(batch, 1, 6000, seed=31)
    gen = torch.Generator().manual_seed(5)
    params = [
        -45 + 35 * torch.rand(batch, generator=gen),  # threshold
        1 + 10 * torch.rand(batch, generator=gen),  # ratio
        12 * torch.rand(batch, generator=gen),  # knee
        0.1 + 50 * torch.rand(batch, generator=gen),  # attack
        5 + 500 * torch.rand(batch, generator=gen),  # release
        torch.zeros(batch),  # makeup
    ]
    with torch.no_grad():
        rendered = compressor(x, SR, *params, backend="numba")
    recorded = compressor(x.clone().requires_grad_(True), SR, *params, backend="numba").detach()
    assert torch.equal(rendered, recorded)
    assert not torch.equal(rendered, x)  # the settings do compress


def test_in_place_gain_computer_equals_the_torch_expression_bit_for_bit():
    """The render's gain computer (in place, a compiled pass plus torch's addcmul_) gives the
    differentiable torch expression's values exactly, sign of zero included: hard and soft
    knees, finite and infinite ratios (above 15.9), levels at the -100 dB floor and far above."""
    from vocalmix.dsp.compressor import static_gain_db

    gen = torch.Generator().manual_seed(11)
    batch, n = 6, 20011
    level = torch.rand(batch, n, generator=gen) * 110.0 - 100.0
    level[:, :500] = -100.0
    threshold = -40 + 35 * torch.rand(batch, generator=gen)
    ratio = torch.tensor([1.0, 2.5, 4.0, 8.0, 16.0, 30.0])
    knee = torch.tensor([0.0, 3.0, 6.0, 12.0, 0.0, 18.0])
    expected = static_gain_db(level.clone(), threshold, ratio, knee)
    got = static_gain_db(level.clone(), threshold, ratio, knee, in_place=True)
    assert torch.equal(got, expected)
    assert torch.equal(torch.signbit(got), torch.signbit(expected))
    assert (got < 0).any() and (got == 0).any()  # both the compressing and the untouched branch
