"""Tests of the FdnReverb re-implementation (dsp/reverb.py).

References are independent of the module: a float64 sample-by-sample NumPy FDN
written from the plug-in's description, cookbook shelf formulas, scipy octave
bands with Schroeder integration, and scipy convolution.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch

from vocalmix.dsp import reverb
from vocalmix.dsp.params import ReverbParams
from vocalmix.dsp.reverb import FdnReverb, fdn_delay_lengths, fdn_impulse_response, fdn_reverb

# ---------------------------------------------------------------------------
# Independent float64 reference
# ---------------------------------------------------------------------------


def cookbook_shelf(kind: str, f0: float, gain_db: float, q: float, sr: float):
    """RBJ cookbook shelf (Q form), normalised (b, a)."""
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * max(f0, 2.0) / sr
    cw, sw = math.cos(w0), math.sin(w0)
    two_sqrt_a_alpha = 2.0 * math.sqrt(A) * sw / (2.0 * q)
    if kind == "low":
        b = [
            A * ((A + 1) - (A - 1) * cw + two_sqrt_a_alpha),
            2 * A * ((A - 1) - (A + 1) * cw),
            A * ((A + 1) - (A - 1) * cw - two_sqrt_a_alpha),
        ]
        a = [
            (A + 1) + (A - 1) * cw + two_sqrt_a_alpha,
            -2 * ((A - 1) + (A + 1) * cw),
            (A + 1) + (A - 1) * cw - two_sqrt_a_alpha,
        ]
    else:
        b = [
            A * ((A + 1) + (A - 1) * cw + two_sqrt_a_alpha),
            -2 * A * ((A - 1) + (A + 1) * cw),
            A * ((A + 1) + (A - 1) * cw - two_sqrt_a_alpha),
        ]
        a = [
            (A + 1) - (A - 1) * cw + two_sqrt_a_alpha,
            2 * ((A - 1) - (A + 1) * cw),
            (A + 1) - (A - 1) * cw - two_sqrt_a_alpha,
        ]
    b = np.array(b) / a[0]
    a = np.array(a) / a[0]
    return b, a


def df1_step(b, a, x, x_hist, y_hist):
    """One direct-form-I biquad step for every line; histories hold [n-1, n-2]."""
    y = b[:, 0] * x + b[:, 1] * x_hist[:, 0] + b[:, 2] * x_hist[:, 1] - a[:, 1] * y_hist[:, 0] - a[:, 2] * y_hist[:, 1]
    x_hist[:, 1] = x_hist[:, 0]
    x_hist[:, 0] = x
    y_hist[:, 1] = y_hist[:, 0]
    y_hist[:, 0] = y
    return y


def reference_wet(x, sr, room, t60, lc, lq, lg, hc, hq, hg, n_lines):
    """Wet signals v of lines 0 and 1 for input x (channels, T), per sample, float64."""
    delays = fdn_delay_lengths(room, n_lines, sr)
    seconds = delays / sr
    g = (10.0 ** (-3.0 / t60)) ** seconds
    hs = [cookbook_shelf("high", min(hc, sr / 2), hg * s, hq, sr) for s in seconds]
    ls = [cookbook_shelf("low", min(lc, sr / 2), lg * s, lq, sr) for s in seconds]
    hb = np.array([b for b, _ in hs])
    ha = np.array([a for _, a in hs])
    lb = np.array([b for b, _ in ls])
    la = np.array([a for _, a in ls])
    mixing = scipy.linalg.hadamard(n_lines) / math.sqrt(n_lines)
    n_samples = x.shape[1]
    fed = np.zeros((n_lines, n_samples))
    if x.shape[0] == 1:
        fed[0] = fed[1] = x[0]
    else:
        fed[:2] = x
    history = np.zeros((n_lines, n_samples))  # what each line writes at time n
    hx = np.zeros((n_lines, 2))
    hy = np.zeros((n_lines, 2))
    lx = np.zeros((n_lines, 2))
    ly = np.zeros((n_lines, 2))
    out = np.zeros((2, n_samples))
    lines = np.arange(n_lines)
    for n in range(n_samples):
        src = n - delays
        u = np.where(src >= 0, history[lines, np.maximum(src, 0)], 0.0) + fed[:, n]
        w = df1_step(hb, ha, u, hx, hy)  # high shelf first, as in the plug-in's loop
        v = df1_step(lb, la, w, lx, ly)
        out[:, n] = v[:2]
        history[:, n] = mixing @ (g * v)
    return out


def reference_reverb(x, sr, room, rt, lc, lq, lg, hc, hq, hg, wet, fade, n_lines):
    v = reference_wet(x, sr, room, rt, lc, lq, lg, hc, hq, hg, n_lines)
    if fade != 0:
        v = v - reference_wet(x, sr, room, fade, lc, lq, lg, hc, hq, hg, n_lines)
    dry = np.broadcast_to(x, (2, x.shape[1]))
    return wet * v + (1 - wet) * dry


def octave_t60(ir: np.ndarray, sr: float, centre: float) -> float:
    """T60 from T30 (-5 to -35 dB) of the Schroeder curve in one octave band."""
    edges = [centre / math.sqrt(2), centre * math.sqrt(2)]
    sos = scipy.signal.butter(4, edges, btype="band", fs=sr, output="sos")
    band = scipy.signal.sosfilt(sos, ir)
    edc = np.cumsum(band[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0] + 1e-300)
    start = np.argmax(edc_db <= -5.0)
    stop = np.argmax(edc_db <= -35.0)
    assert stop > start > 0
    t = np.arange(start, stop) / sr
    slope = np.polyfit(t, edc_db[start:stop], 1)[0]  # dB/s
    return -60.0 / slope


def flat_shelves():
    # Zero dB/s shelves make both biquads exactly the identity.
    return dict(
        low_cutoff_hz=100.0, low_q=0.5, low_gain_db_per_s=0.0, high_cutoff_hz=2000.0, high_q=0.5, high_gain_db_per_s=0.0
    )


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_delay_lengths_documented_example():
    lengths = fdn_delay_lengths(20, 64, 48000)
    assert lengths.shape == (64,)
    assert list(lengths[:8]) == [33, 62, 110, 177, 225, 292, 379, 484]
    assert lengths[-1] == 25252
    assert np.all(np.diff(lengths) > 0)


def test_delay_lengths_small_room_starts_at_second_odd_prime():
    # Room < 10: the first index is 1, i.e. the prime 5 -> 0.5 ms.
    lengths = fdn_delay_lengths(5, 16, 48000)
    assert lengths[0] == 24
    assert np.all(np.diff(lengths) > 0)


@pytest.mark.parametrize("channels", [1, 2])
def test_matches_float64_reference(channels):
    sr, n_lines, room = 16000, 16, 8
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, channels, 1500)) * np.hanning(1500)
    p = dict(room=room, rt=0.8, lc=400.0, lq=0.7, lg=-20.0, hc=3000.0, hq=0.9, hg=-40.0, wet=0.7, fade=0.15)
    ref = reference_reverb(x[0], sr, n_lines=n_lines, **p)

    def render(dtype):
        return fdn_reverb(
            torch.tensor(x, dtype=dtype),
            sr,
            p["room"],
            torch.tensor([p["rt"]], dtype=dtype),
            p["lc"],
            p["lq"],
            p["lg"],
            p["hc"],
            p["hq"],
            p["hg"],
            p["wet"],
            p["fade"],
            fdn_lines=n_lines,
        )[0].numpy()

    y64 = render(torch.float64)
    np.testing.assert_allclose(y64, ref, atol=1e-10 * np.abs(ref).max())
    y32 = render(torch.float32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref, atol=2e-6 * np.abs(ref).max())


def test_first_arrivals_at_delay_lengths():
    sr, n_lines, room = 16000, 16, 12
    rt = 1.5
    h = fdn_impulse_response(sr, room, rt, fdn_lines=n_lines, n_samples=4000, **flat_shelves())[0].numpy()
    delays = fdn_delay_lengths(room, n_lines, sr)
    g = 10 ** (-3 / rt * delays / sr)
    hadamard = scipy.linalg.hadamard(n_lines)
    for fed in range(2):
        for heard in range(2):
            resp = h[fed, heard]
            nonzero = np.flatnonzero(np.abs(resp) > 1e-12)
            direct = 1.0 if fed == heard else 0.0
            assert resp[0] == pytest.approx(direct)
            later = nonzero[nonzero > 0]
            assert later[0] == delays[heard]
            expected = hadamard[heard, fed] * g[fed] / math.sqrt(n_lines)
            assert resp[delays[heard]] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("rt", [0.3, 1.0, 2.0, 5.0, 9.0])
def test_decay_matches_reverb_time(rt):
    sr = 16000
    h = fdn_impulse_response(sr, 20, rt, fdn_lines=64, **flat_shelves())[0].numpy()
    # Fed line 0, heard line 1: no direct path, so the curve is the reverb alone.
    ir = h[0, 1].astype(np.float64)
    for centre in (500.0, 1000.0, 2000.0):
        assert octave_t60(ir, sr, centre) == pytest.approx(rt, rel=0.10)


@pytest.mark.parametrize("low_gain,high_gain", [(-20.0, -30.0), (3.0, -10.0)])
def test_shelf_gains_change_band_decay(low_gain, high_gain):
    sr, rt = 16000, 2.0
    h = fdn_impulse_response(
        sr,
        20,
        rt,
        low_cutoff_hz=1000.0,
        low_q=0.5,
        low_gain_db_per_s=low_gain,
        high_cutoff_hz=1000.0,
        high_q=0.5,
        high_gain_db_per_s=high_gain,
        fdn_lines=64,
    )[0].numpy()
    ir = h[0, 1].astype(np.float64)
    expected_low = 60.0 / (60.0 / rt - low_gain)
    expected_high = 60.0 / (60.0 / rt - high_gain)
    assert octave_t60(ir, sr, 125.0) == pytest.approx(expected_low, rel=0.12)
    assert octave_t60(ir, sr, 4000.0) == pytest.approx(expected_high, rel=0.12)


@pytest.mark.parametrize(
    "setting",
    [
        # Boosting shelves that overlap: the plug-in itself would grow here.
        dict(
            reverb_time_s=9.0,
            low_cutoff_hz=20000.0,
            low_q=0.9,
            low_gain_db_per_s=6.0,
            high_cutoff_hz=20.0,
            high_q=0.9,
            high_gain_db_per_s=4.0,
        ),
        # Slowest legal decay of the low band: T60 = 90 s.
        dict(
            reverb_time_s=9.0,
            low_cutoff_hz=500.0,
            low_q=0.9,
            low_gain_db_per_s=6.0,
            high_cutoff_hz=2000.0,
            high_q=0.9,
            high_gain_db_per_s=4.0,
        ),
        dict(
            reverb_time_s=0.1,
            low_cutoff_hz=20.0,
            low_q=0.01,
            low_gain_db_per_s=-80.0,
            high_cutoff_hz=20000.0,
            high_q=0.01,
            high_gain_db_per_s=-80.0,
        ),
    ],
)
def test_no_growth_for_extreme_settings(setting):
    sr = 8000
    h = fdn_impulse_response(sr, 30, fdn_lines=16, mono_input=True, **setting)[0].numpy()
    assert np.all(np.isfinite(h))
    assert h.shape[-1] <= reverb.IR_MAX_SECONDS * sr
    ir = h.sum(axis=0).astype(np.float64)
    window = sr // 2
    n_windows = ir.shape[0] // window
    energy = (ir[: n_windows * window].reshape(n_windows, window) ** 2).sum(axis=1)
    late = energy[2:]  # after the longest delays have filled
    if late.size >= 2:
        late_db = 10 * np.log10(late + 1e-300)
        assert np.all(np.diff(late_db) < 0.5)
        assert late_db[-1] <= late_db[0]


def test_dry_wet_law():
    sr = 16000
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.standard_normal((2, 2, 4000)), dtype=torch.float32)
    args = (sr, 10, torch.tensor([1.0, 0.5]), 200.0, 0.5, -5.0, 4000.0, 0.5, -10.0)
    wet_only = fdn_reverb(x, *args, 1.0, 0.0, fdn_lines=16)
    dry_only = fdn_reverb(x, *args, 0.0, 0.0, fdn_lines=16)
    torch.testing.assert_close(dry_only, x)
    w = torch.tensor([0.3, 0.8])
    mixed = fdn_reverb(x, *args, w, 0.0, fdn_lines=16)
    expected = w.view(2, 1, 1) * wet_only + (1 - w.view(2, 1, 1)) * x
    torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=1e-5)


def test_mono_input_is_fed_to_lines_0_and_1():
    sr = 16000
    rng = np.random.default_rng(3)
    mono = torch.tensor(rng.standard_normal((1, 1, 3000)), dtype=torch.float32)
    args = (sr, 10, 1.0, 200.0, 0.5, -5.0, 4000.0, 0.5, -10.0, 0.6, 0.0)
    y_mono = fdn_reverb(mono, *args, fdn_lines=16)
    y_dual = fdn_reverb(mono.expand(1, 2, 3000), *args, fdn_lines=16)
    assert y_mono.shape == (1, 2, 3000)
    torch.testing.assert_close(y_mono, y_dual, atol=1e-5, rtol=1e-5)
    # Apart from the direct sound (the input itself, the same on both lines), the
    # two outputs are decorrelated.
    h = fdn_impulse_response(sr, 10, 1.0, 200.0, 0.5, -5.0, 4000.0, 0.5, -10.0, fdn_lines=16, mono_input=True)[
        0
    ].numpy()
    corr = np.corrcoef(h[0, 50:], h[1, 50:])[0, 1]
    assert abs(corr) < 0.2


def test_batch_equals_single_renders():
    sr = 16000
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.standard_normal((3, 1, 6000)), dtype=torch.float32)
    params = dict(
        room_size=torch.tensor([5.0, 12.0, 20.0]),
        reverb_time_s=torch.tensor([0.5, 1.2, 3.0]),
        low_cutoff_hz=torch.tensor([100.0, 300.0, 80.0]),
        low_q=torch.tensor([0.5, 0.7, 0.3]),
        low_gain_db_per_s=torch.tensor([1.0, -10.0, 0.0]),
        high_cutoff_hz=torch.tensor([2000.0, 5000.0, 1500.0]),
        high_q=torch.tensor([0.5, 0.4, 0.9]),
        high_gain_db_per_s=torch.tensor([-10.0, -30.0, 2.0]),
        dry_wet=torch.tensor([0.5, 0.9, 0.2]),
        fade_in_s=torch.tensor([0.0, 0.3, 0.0]),
    )
    batch = fdn_reverb(x, sr, fdn_lines=16, **params)
    for b in range(3):
        single = fdn_reverb(x[b : b + 1], sr, fdn_lines=16, **{k: v[b : b + 1] for k, v in params.items()})
        torch.testing.assert_close(batch[b : b + 1], single, atol=1e-5, rtol=1e-5)


def test_fade_in_gives_rising_envelope():
    sr = 16000
    x = torch.zeros(1, 1, sr)
    x[..., 0] = 1.0
    args = (sr, 20, 2.0, 100.0, 0.5, 0.0, 2000.0, 0.5, 0.0, 1.0)
    plain = fdn_reverb(x, *args, 0.0, fdn_lines=32)[0]
    faded = fdn_reverb(x, *args, 0.5, fdn_lines=32)[0]
    first = int(0.05 * sr)
    e_plain = plain[:, :first].pow(2).sum()
    e_faded = faded[:, :first].pow(2).sum()
    assert e_faded < 0.3 * e_plain
    # Later on the fade twin has died away and both decay alike.
    late = slice(int(0.6 * sr), sr)
    assert faded[:, late].pow(2).sum() == pytest.approx(float(plain[:, late].pow(2).sum()), rel=0.5)


def test_output_has_input_length_and_module_matches_function():
    sr = 16000
    x = torch.randn(2, 2, 5000)
    module = FdnReverb(sr)
    args = (12, torch.tensor([1.0, 2.0]), 100.0, 0.5, 1.0, 2000.0, 0.5, -10.0, 0.5, 0.0)
    params = _reverb_params(args, batch=2, fdn_lines=16)
    y = module(x, params)
    assert y.shape == (2, 2, 5000)
    torch.testing.assert_close(y, fdn_reverb(x, sr, *args, fdn_lines=16), rtol=0, atol=0)
    with pytest.raises(TypeError, match="ReverbParams"):
        module(x, args[0])  # a flat room size where the parameters belong


def _reverb_params(args, batch, fdn_lines):
    """ReverbParams from fdn_reverb's positional settings (scalars broadcast to the batch)."""
    names = [f.name for f in dataclasses.fields(ReverbParams)][:10]
    columns = {n: torch.as_tensor(v, dtype=torch.float32).expand(batch).clone() for n, v in zip(names, args)}
    return ReverbParams(**columns, fdn_lines=fdn_lines)


def test_overlap_save_convolution_matches_scipy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 150_000))
    h = rng.standard_normal((1, 2, 2, 3000)) * np.exp(-np.arange(3000) / 500)
    y = reverb._fft_convolve(torch.tensor(x), torch.tensor(h)).numpy()
    for o in range(2):
        ref = sum(scipy.signal.fftconvolve(x[0, e], h[0, e, o])[:150_000] for e in range(2))
        np.testing.assert_allclose(y[0, o], ref, atol=1e-9)


@pytest.mark.parametrize("segment", [2048, 7])
def test_adjoint_gradients_match_finite_differences(segment, monkeypatch):
    """gradcheck of the numba adjoint; jobs of different lengths, and with segment 7 the
    shelf outputs are re-created in several segments (the last one partial)."""
    monkeypatch.setattr(reverb, "_ADJOINT_SEGMENT", segment)
    torch.manual_seed(0)
    jobs, lines, n = 2, 4, 50
    delays = np.array([[3, 5, 7, 9], [4, 5, 6, 11]], dtype=np.int64)
    gains = (torch.rand(jobs, lines, dtype=torch.float64) * 0.5 + 0.4).requires_grad_()

    def random_biquads():
        c = torch.randn(jobs, lines, 5, dtype=torch.float64) * 0.2
        c[..., 0] += 1.0
        return c.requires_grad_()

    hs, ls = random_biquads(), random_biquads()
    excite = np.zeros((jobs, lines))
    excite[0, 0] = 1.0
    excite[1, :2] = 1.0

    def run(g, h, low):
        return reverb._FdnImpulseResponses.apply(g, h, low, delays, excite, [n, n - 13], np.float64)

    assert torch.autograd.gradcheck(run, (gains, hs, ls), fast_mode=True)


def test_gradients_reach_every_continuous_parameter():
    sr = 16000
    torch.manual_seed(0)
    x = torch.randn(1, 1, 4000)
    names = [
        "reverb_time_s",
        "low_cutoff_hz",
        "low_q",
        "low_gain_db_per_s",
        "high_cutoff_hz",
        "high_q",
        "high_gain_db_per_s",
        "dry_wet",
        "fade_in_s",
    ]
    values = [1.0, 300.0, 0.5, -10.0, 3000.0, 0.6, -20.0, 0.5, 0.2]
    params = {k: torch.tensor([v], requires_grad=True) for k, v in zip(names, values)}
    y = fdn_reverb(x, sr, 10, fdn_lines=16, **params)
    y.pow(2).mean().backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().item() > 0, name


def test_reverb_time_gradient_matches_finite_difference():
    sr = 16000
    torch.manual_seed(1)
    x = torch.randn(1, 1, 3000, dtype=torch.float64)

    def loss(rt):
        y = fdn_reverb(x, sr, 10, rt, 300.0, 0.5, -10.0, 3000.0, 0.6, -20.0, 1.0, 0.0, fdn_lines=16)
        return y.pow(2).mean()

    rt = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    loss(rt).backward()
    eps = 1e-5
    numeric = (
        loss(torch.tensor([1.0 + eps], dtype=torch.float64)) - loss(torch.tensor([1.0 - eps], dtype=torch.float64))
    ) / (2 * eps)
    assert rt.grad.item() == pytest.approx(numeric.item(), rel=1e-5)


# ---------------------------------------------------------------------------
# torch backend (the path for CUDA and other devices), tested on the CPU against numba
# ---------------------------------------------------------------------------


def test_backend_dispatch_by_device():
    assert reverb.select_backend(torch.device("cpu")) == "numba"
    assert reverb.select_backend(torch.device("cuda")) == "torch"
    assert reverb.select_backend(torch.device("cuda"), "numba") == "numba"
    with pytest.raises(ValueError):
        FdnReverb(48000, backend="gpu")


@pytest.mark.parametrize(
    "setting",
    [
        dict(
            room_size=20,
            reverb_time_s=1.0,
            low_cutoff_hz=200.0,
            low_q=0.7,
            low_gain_db_per_s=0.0,
            high_cutoff_hz=5000.0,
            high_q=0.7,
            high_gain_db_per_s=0.0,
            fade_in_s=0.0,
            fdn_lines=64,
        ),
        dict(
            room_size=torch.tensor([7, 25]),
            reverb_time_s=torch.tensor([0.6, 1.5]),
            low_cutoff_hz=torch.tensor([150.0, 400.0]),
            low_q=torch.tensor([0.5, 1.5]),
            low_gain_db_per_s=torch.tensor([-4.0, 3.0]),
            high_cutoff_hz=torch.tensor([3000.0, 8000.0]),
            high_q=torch.tensor([0.7, 2.0]),
            high_gain_db_per_s=torch.tensor([-8.0, 2.0]),
            fade_in_s=torch.tensor([0.2, 0.0]),
            fdn_lines=32,
        ),
        dict(
            room_size=1,
            reverb_time_s=0.4,
            low_cutoff_hz=100.0,
            low_q=1.0,
            low_gain_db_per_s=-6.0,
            high_cutoff_hz=12000.0,
            high_q=0.5,
            high_gain_db_per_s=-10.0,
            fade_in_s=0.05,
            fdn_lines=16,
        ),
    ],
)
@pytest.mark.parametrize("mono", [True, False])
def test_torch_impulse_responses_match_numba(setting, mono):
    setting = dict(setting)
    lines = setting.pop("fdn_lines")
    kwargs = dict(sr=24000, fdn_lines=lines, n_samples=12000, mono_input=mono, **setting)
    expected = fdn_impulse_response(**kwargs, backend="numba")
    got = fdn_impulse_response(**kwargs, backend="torch")
    assert got.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert expected.abs().max() > 0.1


def test_torch_reverb_output_matches_numba_float32():
    g = torch.Generator().manual_seed(40)
    x = torch.randn(2, 2, 9000, generator=g) * 0.2
    args = (
        24000,
        torch.tensor([12, 20]),
        torch.tensor([0.8, 0.3]),
        250.0,
        0.7,
        -2.0,
        6000.0,
        0.7,
        -5.0,
        torch.tensor([0.5, 0.9]),
        torch.tensor([0.0, 0.03]),
    )
    expected = fdn_reverb(x, *args, fdn_lines=32, backend="numba")
    got = FdnReverb(24000, backend="torch")(x, _reverb_params(args[1:], batch=2, fdn_lines=32))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_torch_reverb_gradients_match_numba():
    g = torch.Generator().manual_seed(41)
    x = torch.randn(2, 1, 4000, generator=g, dtype=torch.float64) * 0.2
    weights = torch.randn(2, 2, 4000, generator=g, dtype=torch.float64)
    values = [
        [0.5, 0.3],
        [300.0, 150.0],
        [0.8, 1.2],
        [-3.0, 2.0],
        [5000.0, 3000.0],
        [0.7, 1.0],
        [-6.0, -1.0],
        [0.4, 0.7],
        [0.05, 0.0],
    ]
    grads = {}
    for backend in ("numba", "torch"):
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
        xx = x.clone().requires_grad_()
        y = fdn_reverb(xx, 16000, torch.tensor([20, 9]), *params, fdn_lines=32, backend=backend)
        (y * weights).sum().backward()
        grads[backend] = [xx.grad] + [p.grad for p in params]
    names = ["x", "rt", "low_f", "low_q", "low_gain", "high_f", "high_q", "high_gain", "dry_wet", "fade_in"]
    for name, a, b in zip(names, grads["numba"], grads["torch"]):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-12, msg=name)
    assert (grads["torch"][1] != 0).all()


# ---------------------------------------------------------------------------
# Loop-gain analysis and stability guard: torch on the parameters' device
# ---------------------------------------------------------------------------


def numpy_loop_decay_rates(gains, hs, ls, delays, sr):
    """The former NumPy version of ``reverb._loop_decay_rates`` (float64, (B,))."""
    nyq = np.logspace(math.log10(1.0 / (0.5 * sr)), 0.0, 1024)
    omega = math.pi * np.concatenate([[0.0], nyq])
    cos1, cos2 = np.cos(omega), np.cos(2.0 * omega)

    def power(c):
        c0, c1, c2 = (c[..., k, None] for k in range(3))
        return c0**2 + c1**2 + c2**2 + 2.0 * (c0 * c1 + c1 * c2) * cos1 + 2.0 * c0 * c2 * cos2

    def shelf_power(c):
        den = np.concatenate([np.ones_like(c[..., :1]), c[..., 3:]], axis=-1)
        return power(c[..., :3]) / np.maximum(power(den), 1e-300)

    with np.errstate(divide="ignore"):
        loop_db = 10.0 * np.log10(np.max(shelf_power(hs) * shelf_power(ls), axis=-1))
        loop_db = loop_db + 20.0 * np.log10(np.maximum(gains, 1e-300))
    return np.min(-loop_db / (delays / float(sr)), axis=-1)


def numpy_guard(gains, rates, delays, sr):
    """The former NumPy version of ``reverb._guard``."""
    deficit = np.maximum(reverb.MIN_DECAY_DB_PER_S - rates, 0.0)
    return gains * 10.0 ** (-deficit[:, None] * (delays / float(sr)) / 20.0)


# Items 1 and 2 boost the shelves beyond 60/T60 dB/s, so the guard acts on them.
GUARD_SETTINGS = dict(
    rooms=[7, 30, 20, 1],
    rt=[0.6, 9.0, 9.0, 0.1],
    low_f=[150.0, 2000.0, 400.0, 100.0],
    low_q=[0.5, 3.0, 1.5, 1.0],
    low_g=[-4.0, 6.0, 6.0, -6.0],
    high_f=[3000.0, 500.0, 8000.0, 12000.0],
    high_q=[0.7, 3.0, 2.0, 0.5],
    high_g=[-8.0, 4.0, 2.0, -10.0],
)


def line_coefficients(sr, lines=32, settings=GUARD_SETTINGS, dtype=torch.float64):
    delays = np.stack([fdn_delay_lengths(r, lines, sr) for r in settings["rooms"]])
    seconds = reverb._line_seconds(delays, sr, "cpu")
    params = [
        torch.tensor(settings[k], dtype=dtype) for k in ("rt", "low_f", "low_q", "low_g", "high_f", "high_q", "high_g")
    ]
    return delays, seconds, reverb._line_coefficients(seconds, sr, *params)


@pytest.mark.parametrize("sr", [16000, 44100, 96000])
def test_loop_decay_rates_and_guard_match_numpy(sr):
    delays, seconds, (gains, hs, ls) = line_coefficients(sr)
    np.testing.assert_array_equal(seconds.numpy(), delays / float(sr))  # the same IEEE division
    expected = numpy_loop_decay_rates(gains.numpy(), hs.numpy(), ls.numpy(), delays, sr)
    rates = reverb._loop_decay_rates(gains, hs, ls, seconds, sr)
    assert torch.is_tensor(rates) and rates.dtype == torch.float64 and rates.shape == (4,)
    np.testing.assert_allclose(rates.numpy(), expected, rtol=1e-12)
    assert (expected[1:3] < reverb.MIN_DECAY_DB_PER_S).all() and (expected[[0, 3]] > 1.0).all()
    guarded = reverb._guard(gains, rates, seconds)
    np.testing.assert_allclose(guarded.numpy(), numpy_guard(gains.numpy(), expected, delays, sr), rtol=1e-12)
    # Items that decay fast enough keep their gains bit for bit (a factor of exactly 1).
    assert torch.equal(guarded[[0, 3]], gains[[0, 3]])
    # The automatic IR length is the same as from the NumPy rates.
    slowest = rates.min().clamp(min=reverb.MIN_DECAY_DB_PER_S)
    assert reverb.fdn_ir_length(slowest, int(delays.max()), sr) == reverb.fdn_ir_length(
        np.maximum(expected, reverb.MIN_DECAY_DB_PER_S), int(delays.max()), sr
    )


def test_guard_keeps_gradients_and_is_constant_for_autograd():
    sr = 24000
    delays, seconds, _ = line_coefficients(sr)
    rt = torch.tensor(GUARD_SETTINGS["rt"], dtype=torch.float64, requires_grad=True)
    params = [rt] + [
        torch.tensor(GUARD_SETTINGS[k], dtype=torch.float64)
        for k in ("low_f", "low_q", "low_g", "high_f", "high_q", "high_g")
    ]
    gains, hs, ls = reverb._line_coefficients(seconds, sr, *params)
    rates = reverb._loop_decay_rates(gains, hs, ls, seconds, sr)
    assert not rates.requires_grad
    guarded = reverb._guard(gains, rates, seconds)
    (grad,) = torch.autograd.grad(guarded.sum(), rt, retain_graph=True)
    factor = (guarded / gains).detach()
    (expected,) = torch.autograd.grad((gains * factor).sum(), rt)
    # The factor recovered as guarded / gains may differ from the guard's own by an ulp;
    # a guard differentiated through would change the gradient at order 1.
    torch.testing.assert_close(grad, expected, rtol=1e-14, atol=0)


class _HostFloatReads:
    """Records float tensors leaving torch (numpy, cpu, item, float, tolist) and
    replaces the reverb module's numpy by one that offers only integer helpers."""

    INTEGER_NUMPY = {"array", "int64", "stack", "repeat", "ascontiguousarray"}

    def __init__(self, monkeypatch):
        self.reads = []
        for name in ("numpy", "cpu", "item", "__float__", "tolist"):
            original = getattr(torch.Tensor, name)

            def wrapper(t, *args, _name=name, _original=original, **kwargs):
                if t.is_floating_point():
                    self.reads.append((_name, tuple(t.shape)))
                return _original(t, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, wrapper)

        class IntegerNumpy:
            def __getattr__(_, attr):
                if attr not in self.INTEGER_NUMPY:
                    raise AssertionError(f"the torch backend used numpy.{attr}")
                return getattr(np, attr)

        monkeypatch.setattr(reverb, "np", IntegerNumpy())


@pytest.mark.parametrize("automatic_length", [False, True])
def test_torch_backend_keeps_float_work_in_torch(monkeypatch, automatic_length):
    """Forward and backward of the torch path: no float numpy, no float tensor to the host
    (the automatic IR lengths are integers computed on the device)."""
    g = torch.Generator().manual_seed(42)
    x = torch.randn(2, 1, 3000, generator=g, dtype=torch.float64) * 0.2
    values = [
        [9.0, 0.4],
        [2000.0, 150.0],
        [3.0, 1.2],
        [6.0, 2.0],
        [500.0, 3000.0],
        [3.0, 1.0],
        [4.0, -1.0],
        [0.4, 0.7],
        [0.05, 0.0],
    ]
    rooms = torch.tensor([30, 9])
    fdn_delay_lengths(30, 16, 16000), fdn_delay_lengths(9, 16, 16000)  # warm the cached recipe

    def run(backend, n_samples=None):
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
        if n_samples is None:
            y = fdn_reverb(x, 16000, rooms, *params, fdn_lines=16, backend=backend)
        else:
            h = fdn_impulse_response(
                16000, rooms, *params[:7], fade_in_s=params[8], fdn_lines=16, n_samples=n_samples, backend=backend
            )
            y = h * params[7][:, None, None, None]
        y.square().sum().backward()
        return y.detach(), [p.grad for p in params]

    n_samples = None if automatic_length else 2500
    expected = run("numba", n_samples)
    recorder = _HostFloatReads(monkeypatch)
    got = run("torch", n_samples)
    monkeypatch.undo()
    assert recorder.reads == []
    torch.testing.assert_close(got[0], expected[0], rtol=1e-7, atol=1e-10)
    for a, b in zip(got[1], expected[1]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_render_with_scalar_parameters_matches_cpu():
    g = torch.Generator().manual_seed(43)
    x = torch.randn(1, 2, 6000, generator=g) * 0.2
    args = (24000, 20, 1.2, 250.0, 0.7, -2.0, 6000.0, 0.7, -5.0, 0.4, 0.02)
    expected = fdn_reverb(x, *args, fdn_lines=32)
    got = fdn_reverb(x.cuda(), *args, fdn_lines=32)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_batch_items_get_their_own_ir_length(backend):
    """A short reverb in a batch with a long one is computed to its own decay floor only:
    its IR equals its IR alone, and is zero after fdn_ir_length of its own decay."""
    sr = 16000
    rt = torch.tensor([0.3, 2.0], dtype=torch.float64)
    args = (sr, torch.tensor([12.0, 20.0]), rt, 100.0, 0.5, 0.0, 2000.0, 0.5, 0.0)
    both = fdn_impulse_response(*args, fdn_lines=16, mono_input=True, backend=backend)
    short = fdn_impulse_response(
        sr, 12, rt[:1], 100.0, 0.5, 0.0, 2000.0, 0.5, 0.0, fdn_lines=16, mono_input=True, backend=backend
    )
    # Flat shelves: the slowest decay is 60 / RT dB/s (to rounding, hence +-1 sample).
    expected = short.shape[-1]
    assert abs(expected - reverb.fdn_ir_length(60.0 / 0.3, int(fdn_delay_lengths(12, 16, sr).max()), sr)) <= 1
    long_expected = reverb.fdn_ir_length(60.0 / 2.0, int(fdn_delay_lengths(20, 16, sr).max()), sr)
    assert abs(both.shape[-1] - long_expected) <= 1 and both.shape[-1] > 2 * expected
    torch.testing.assert_close(both[0, :, :expected], short[0], rtol=1e-12, atol=1e-15)
    assert torch.count_nonzero(both[0, :, expected:]) == 0


def per_sample_forward(delays, gains, hs, ls, excite, n_samples):
    """The network's recursion one sample at a time (NumPy), with the same IEEE operations
    in the same order as the numba kernel documents (transposed direct form II shelves,
    gains times 1/sqrt(N), Hadamard butterflies in natural order): (out (2, T), u (T, N))."""
    n_lines = len(delays)
    fb = gains * (1.0 / math.sqrt(n_lines))
    history = np.zeros((n_samples, n_lines))
    s1, s2, t1, t2 = (np.zeros(n_lines) for _ in range(4))
    hb0, hb1, hb2, ha1, ha2 = hs.T
    lb0, lb1, lb2, la1, la2 = ls.T
    out, us = np.zeros((2, n_samples)), np.zeros((n_samples, n_lines))
    lines = np.arange(n_lines)
    for n in range(n_samples):
        src = n - delays
        u = np.where(src >= 0, history[np.maximum(src, 0), lines], 0.0)
        if n == 0:
            u = u + excite
        us[n] = u
        w = hb0 * u + s1
        s1 = hb1 * u - ha1 * w + s2
        s2 = hb2 * u - ha2 * w
        v = lb0 * w + t1
        t1 = lb1 * w - la1 * v + t2
        t2 = lb2 * w - la2 * v
        out[:, n] = v[:2]
        mixed = v * fb
        half = 1
        while half < n_lines:
            pairs = mixed.reshape(-1, 2, half)
            mixed = np.stack([pairs[:, 0] + pairs[:, 1], pairs[:, 0] - pairs[:, 1]], axis=1).reshape(-1)
            half *= 2
        history[n] = mixed
    return out, us


@pytest.mark.parametrize("room, n_lines, n_samples", [(1, 16, 700), (8, 64, 1531), (30, 32, 4100), (3, 256, 300)])
def test_blocked_forward_kernel_is_the_per_sample_recursion_bit_for_bit(room, n_lines, n_samples):
    """The numba kernel runs the recursion in blocks of up to the shortest delay; every
    value (heard outputs and stored line inputs) equals a per-sample recursion's exactly,
    across ring wrap-arounds, block ends and an IR length that is not a whole number of blocks."""
    sr = 16000.0
    delays = fdn_delay_lengths(room, n_lines, sr)
    rng = np.random.default_rng(room + n_lines)
    gains = rng.uniform(0.6, 0.99, n_lines)
    # Random stable shelves (poles inside the unit circle), different per line.
    radius, angle = rng.uniform(0.2, 0.9, (2, n_lines)), rng.uniform(0.1, 3.0, (2, n_lines))
    a1, a2 = -2 * radius * np.cos(angle), radius**2
    hs = np.column_stack([rng.uniform(0.5, 1.5, (n_lines, 3)), a1[0], a2[0]])
    ls = np.column_stack([rng.uniform(0.5, 1.5, (n_lines, 3)), a1[1], a2[1]])
    excite = rng.standard_normal(n_lines)
    out = np.zeros((2, n_samples))
    u_store = np.zeros((n_samples + 2, n_lines))
    reverb._fdn_forward_kernel(delays, gains, hs, ls, excite, out, u_store, True)
    expected_out, expected_u = per_sample_forward(delays, gains, hs, ls, excite, n_samples)
    assert delays.min() < n_samples and np.abs(expected_out).max() > 0
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(u_store[2:], expected_u)
    assert not u_store[:2].any()


def test_repeated_settings_share_one_recursion_and_keep_their_own_gradients(monkeypatch):
    """A batch that repeats a setting runs its recursion once; each item still gets the
    gradient of its own output."""
    calls = []
    kernel = reverb._fdn_forward_kernel

    def counting(*args):
        calls.append(1)
        return kernel(*args)

    monkeypatch.setattr(reverb, "_fdn_forward_kernel", counting)
    sr = 16000
    x = torch.randn(3, 1, 3000, generator=torch.Generator().manual_seed(5))
    rt = torch.tensor([0.8, 1.5, 0.8], requires_grad=True)
    y = fdn_reverb(x, sr, 12, rt, 100.0, 0.5, 0.0, 2000.0, 0.5, -5.0, 0.5, 0.0, fdn_lines=16, backend="numba")
    assert len(calls) == 2
    torch.testing.assert_close(
        y[2], fdn_reverb(x[2:], sr, 12, 0.8, 100.0, 0.5, 0.0, 2000.0, 0.5, -5.0, 0.5, 0.0, fdn_lines=16)[0]
    )
    y[0].square().sum().backward()
    assert rt.grad[0] != 0 and rt.grad[1] == 0 and rt.grad[2] == 0


def test_training_reverb_matches_render_to_minus_80_db():
    """training=True ends the IRs 80 dB down instead of 90: a different (shorter) result,
    whose error against the render stays below -80 dB of the wet signal's energy."""
    sr = 16000
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 1, 4 * sr, generator=g) * torch.linspace(1.0, 0.0, 4 * sr) ** 4  # decaying noise
    args = (
        sr,
        torch.tensor([20.0, 9.0]),
        torch.tensor([1.5, 0.6]),
        100.0,
        0.5,
        2.0,
        3000.0,
        0.5,
        -6.0,
        1.0,
        torch.tensor([0.0, 0.2]),
    )
    exact = fdn_reverb(x, *args, fdn_lines=32)
    fast = fdn_reverb(x, *args, fdn_lines=32, training=True)
    err_db = 10 * torch.log10((fast - exact).square().sum((1, 2)) / exact.square().sum((1, 2)))
    assert (err_db < -80).all(), err_db
    assert not torch.equal(fast, exact)


@pytest.mark.parametrize("mono", [True, False])
def test_spectral_impulse_responses_match_numba_recursion(mono, monkeypatch):
    """The transfer function on an FFT grid gives the recursion's IRs (several bin
    blocks, automatic per-item lengths, a fade-in twin, boosting and cutting shelves)."""
    monkeypatch.setattr(reverb, "SPECTRAL_BINS_PER_SOLVE", 1000)
    kwargs = dict(
        sr=16000,
        room_size=torch.tensor([7.0, 20.0]),
        reverb_time_s=torch.tensor([0.5, 1.1], dtype=torch.float64),
        low_cutoff_hz=torch.tensor([150.0, 400.0]),
        low_q=torch.tensor([0.5, 0.9]),
        low_gain_db_per_s=torch.tensor([3.0, -10.0]),
        high_cutoff_hz=torch.tensor([3000.0, 1500.0]),
        high_q=torch.tensor([0.7, 0.3]),
        high_gain_db_per_s=torch.tensor([-8.0, 2.0]),
        fade_in_s=torch.tensor([0.0, 0.05]),
        fdn_lines=16,
        mono_input=mono,
    )
    expected = fdn_impulse_response(**kwargs, backend="numba")
    got = fdn_impulse_response(**kwargs, ir_method="spectral")
    assert got.shape == expected.shape and got.dtype == torch.float64
    # Relative to each item's peak: far below the -80 dB the training path needs.
    peak = expected.abs().flatten(1).amax(1)
    err = (got - expected).abs().flatten(1).amax(1)
    assert (err < 1e-7 * peak).all(), err / peak  # -140 dB


def test_spectral_reverb_gradients_match_numba_recursion():
    g = torch.Generator().manual_seed(41)
    x = torch.randn(2, 1, 5000, generator=g, dtype=torch.float64) * 0.2
    values = [
        [0.9, 0.4],
        [300.0, 150.0],
        [0.5, 0.7],
        [2.0, -4.0],
        [4000.0, 2500.0],
        [0.5, 0.6],
        [-6.0, 1.0],
        [0.4, 0.7],
        [0.0, 0.02],
    ]

    def run(method):
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
        y = fdn_reverb(x, 16000, torch.tensor([14, 9]), *params, fdn_lines=16, ir_method=method)
        (y * torch.linspace(-1, 1, y.shape[-1], dtype=torch.float64)).sum().backward()
        return y.detach(), [p.grad for p in params]

    expected, got = run("recursion"), run("spectral")
    torch.testing.assert_close(got[0], expected[0], rtol=1e-6, atol=1e-8)
    for a, b in zip(got[1], expected[1]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_unknown_ir_method_is_refused():
    with pytest.raises(ValueError, match="ir_method"):
        fdn_impulse_response(16000, 10, 1.0, 100.0, 0.5, 0.0, 2000.0, 0.5, 0.0, fdn_lines=16, ir_method="fft")


@pytest.mark.parametrize("inputs", [1, 2])
def test_one_fft_convolution_gradients(inputs):
    """The hand-written backward of the one-FFT convolution: gradcheck, and the forward
    against scipy's direct convolution."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, inputs, 37, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, inputs, 2, 11, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: reverb._fft_convolve(a, b), (x, h))
    y = reverb._fft_convolve(x, h).detach().numpy()
    for b in range(2):
        for o in range(2):
            ref = sum(
                scipy.signal.convolve(x[b, e].detach().numpy(), h[b, e, o].detach().numpy())[:37] for e in range(inputs)
            )
            np.testing.assert_allclose(y[b, o], ref, atol=1e-12)
