"""MultiEQ (vocalmix.dsp.eq) against scipy's freqz/sosfilt on the same coefficients.

The references build the chain band by band from the individual designers in
biquads.py (themselves tested against independent formulas in test_dsp_biquads.py),
apply min(f, fs/2), repeat Linkwitz-Riley sections and drop disabled bands, then filter
in float64 with scipy. They share nothing with eq.py's assembly or filtering.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from vocalmix.dsp import biquads
from vocalmix.dsp.biquads import FilterType as FT
from vocalmix.dsp.constants import N_EQ_BANDS
from vocalmix.dsp.eq import MultiEQ, default_settings, fft_length, multi_eq, multi_eq_response
from vocalmix.dsp.params import EQParams

SR = 48000

# A mixed six-band chain: LR high-pass, shelves, narrow peaks, LR low-pass.
MIXED = dict(
    frequency_hz=[40.0, 150.0, 1000.0, 3500.0, 9000.0, 16000.0],
    gain_db=[0.0, -4.0, 6.0, -9.0, 3.0, 0.0],
    q=[0.7071, 0.8, 2.0, 6.0, 0.7, 0.7071],
    filter_type=[FT.HIGHPASS_LR, FT.LOW_SHELF, FT.PEAK, FT.PEAK, FT.HIGH_SHELF, FT.LOWPASS_LR],
)
# The slowest-ringing corner of the plug-in's range, plus first-order and 2nd-order types.
EXTREME = dict(
    frequency_hz=[20.0, 20.0, 20.0, 20000.0, 30000.0, 20000.0],
    gain_db=[15.0, 0.0, -60.0, 0.0, 15.0, 0.0],
    q=[8.0, 0.05, 8.0, 8.0, 0.05, 1.0],
    filter_type=[FT.PEAK, FT.HIGHPASS_LR, FT.LOW_SHELF, FT.LOWPASS_2, FT.HIGH_SHELF, FT.LOWPASS_1],
)
FIRST_ORDER = dict(
    frequency_hz=[80.0, 500.0, 2500.0, 7000.0, 12000.0, 18000.0],
    gain_db=[0.0, 2.0, -3.0, 4.0, -1.0, 0.0],
    q=[0.5, 1.0, 0.4, 3.0, 1.0, 0.3],
    filter_type=[FT.HIGHPASS_1, FT.LOW_SHELF, FT.PEAK, FT.PEAK, FT.HIGHPASS_2, FT.LOWPASS_1],
)


def settings_tensors(*settings, enabled=None):
    """Stack settings dicts into (batch, 6) tensors as multi_eq takes them."""
    out = {
        "frequency_hz": torch.tensor([s["frequency_hz"] for s in settings], dtype=torch.float32),
        "gain_db": torch.tensor([s["gain_db"] for s in settings], dtype=torch.float32),
        "q": torch.tensor([s["q"] for s in settings], dtype=torch.float32),
        "filter_type": torch.tensor([[int(t) for t in s["filter_type"]] for s in settings]),
    }
    out["enabled"] = (
        torch.ones(len(settings), N_EQ_BANDS, dtype=torch.bool) if enabled is None else torch.as_tensor(enabled)
    )
    return out


def reference_sos(sr, frequency_hz, gain_db, q, filter_type, enabled=None, dtype=torch.float32):
    """float64 second-order sections of one item's chain, designed in ``dtype`` like the plug-in."""
    n = len(frequency_hz)
    enabled = [True] * n if enabled is None else list(enabled)
    f = torch.tensor([min(float(v), sr / 2) for v in frequency_hz], dtype=dtype)
    g = torch.tensor([float(v) for v in gain_db], dtype=dtype)
    qq = torch.tensor([float(v) for v in q], dtype=dtype)
    designs = {
        FT.HIGHPASS_1: lambda: biquads.highpass1(f, sr),
        FT.HIGHPASS_2: lambda: biquads.highpass2(f, qq, sr),
        FT.HIGHPASS_LR: lambda: biquads.highpass2(f, qq, sr),
        FT.LOW_SHELF: lambda: biquads.low_shelf(f, g, qq, sr),
        FT.PEAK: lambda: biquads.peak(f, g, qq, sr),
        FT.HIGH_SHELF: lambda: biquads.high_shelf(f, g, qq, sr),
        FT.LOWPASS_1: lambda: biquads.lowpass1(f, sr),
        FT.LOWPASS_2: lambda: biquads.lowpass2(f, qq, sr),
        FT.LOWPASS_LR: lambda: biquads.lowpass2(f, qq, sr),
    }
    sections = []
    for k in range(n):
        if not enabled[k]:
            continue
        kind = FT(int(filter_type[k]))
        # The designers run on the whole row, as the module runs them, so float32
        # rounding is identical; column k is this band.
        b, a = designs[kind]()
        section = np.concatenate([b[k].double().numpy(), a[k].double().numpy()])
        repeats = 2 if kind in (FT.HIGHPASS_LR, FT.LOWPASS_LR) else 1
        sections.extend([section] * repeats)
    if not sections:
        return np.array([[1.0, 0, 0, 1.0, 0, 0]])
    return np.array(sections)


def freqz_product(sos, n_fft):
    w = 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft
    return scipy.signal.sosfreqz(sos, worN=w)[1]


def relative_error_db(y, ref):
    y = np.asarray(y, dtype=np.float64)
    return 20 * np.log10(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def noise(batch, channels, samples, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, samples, generator=gen) * 0.1


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("method", ["fft", "iir"])
@pytest.mark.parametrize("settings", [MIXED, EXTREME, FIRST_ORDER], ids=["mixed", "extreme", "first_order"])
def test_impulse_response_matches_freqz(settings, method):
    # Magnitude and phase of the whole chain, measured through the module's impulse
    # response, within 0.05 dB / the equivalent phase over 20 Hz - 20 kHz.
    n = 2**16 if settings is not EXTREME else 2**19  # long enough for the ring-out
    impulse = torch.zeros(1, 1, n)
    impulse[..., 0] = 1.0
    p = settings_tensors(settings)
    h = multi_eq(impulse, SR, **p, method=method)[0, 0].double().numpy()
    measured = np.fft.rfft(h)
    expected = freqz_product(reference_sos(SR, **settings), n)
    freqs = np.arange(n // 2 + 1) * SR / n
    band = (freqs >= 20) & (freqs <= 20000)
    # Judge only where the chain passes signal (not deep in LR/first-order stop bands,
    # where float32 filtering noise dominates a tiny response).
    audible = band & (np.abs(expected) > 10 ** (-80 / 20))
    mag_err_db = np.abs(20 * np.log10(np.abs(measured[audible]) / np.abs(expected[audible])))
    phase_err_deg = np.abs(np.degrees(np.angle(measured[audible] / expected[audible])))
    assert mag_err_db.max() < 0.05, mag_err_db.max()
    # 0.05 dB is a 0.58 % amplitude error; the same complex error allows 0.33 degrees.
    assert phase_err_deg.max() < 0.33, phase_err_deg.max()
    # In practice the error is far below that: float32 rounding is about -140 dB
    # relative to the peak, so it is under 0.001 dB wherever the chain is above -40 dB.
    loud = np.abs(expected[audible]) > 10 ** (-40 / 20)
    assert mag_err_db[loud].max() < 1e-3


@pytest.mark.parametrize("settings", [MIXED, EXTREME, FIRST_ORDER], ids=["mixed", "extreme", "first_order"])
def test_chain_response_matches_sosfreqz(settings):
    n_fft = 2**15
    p = settings_tensors(settings)
    response = multi_eq_response(SR, n_fft, p["frequency_hz"], p["gain_db"], p["q"], p["filter_type"])
    assert response.shape == (1, n_fft // 2 + 1)
    expected = freqz_product(reference_sos(SR, **settings), n_fft)
    err = np.abs(response[0].numpy() - expected) / np.maximum(np.abs(expected), 1e-6)
    assert err.max() < 1e-4


@pytest.mark.parametrize("method", ["fft", "iir"])
@pytest.mark.parametrize("settings", [MIXED, EXTREME, FIRST_ORDER], ids=["mixed", "extreme", "first_order"])
def test_noise_matches_sosfilt(settings, method):
    x = noise(1, 2, SR)
    p = settings_tensors(settings)
    y = multi_eq(x, SR, **p, method=method)
    assert y.shape == x.shape and y.dtype == torch.float32
    sos = reference_sos(SR, **settings)
    for c in range(2):
        ref = scipy.signal.sosfilt(sos, x[0, c].double().numpy())
        assert relative_error_db(y[0, c].numpy(), ref) < -60


def test_float64_input_stays_float64():
    x = noise(1, 1, 8192).double()
    p = settings_tensors(MIXED)
    y = multi_eq(x, SR, **{k: (v.double() if v.is_floating_point() else v) for k, v in p.items()}, method="fft")
    assert y.dtype == torch.float64
    sos = reference_sos(SR, **MIXED, dtype=torch.float64)
    ref = scipy.signal.sosfilt(sos, x[0, 0].numpy())
    # Limited by the time-aliasing floor of the padding, not by rounding.
    assert relative_error_db(y[0, 0].numpy(), ref) < -100


def test_frequency_clamped_to_nyquist():
    x = noise(1, 1, 4096)
    p = settings_tensors(MIXED)
    above = dict(p, frequency_hz=p["frequency_hz"].clone())
    at = dict(p, frequency_hz=p["frequency_hz"].clone())
    above["frequency_hz"][0, 4] = 30000.0
    at["frequency_hz"][0, 4] = SR / 2
    torch.testing.assert_close(multi_eq(x, SR, **above), multi_eq(x, SR, **at), rtol=0, atol=0)


# --------------------------------------------------------------------------- structure


def test_all_disabled_is_identity():
    x = noise(2, 2, 3000)
    p = settings_tensors(MIXED, EXTREME, enabled=torch.zeros(2, N_EQ_BANDS, dtype=torch.bool))
    assert torch.equal(multi_eq(x, SR, **p), x)
    # Per item, too: an item with every band off passes unchanged next to an active one.
    p = settings_tensors(MIXED, EXTREME, enabled=[[True] * N_EQ_BANDS, [False] * N_EQ_BANDS])
    y = multi_eq(x, SR, **p)
    assert torch.equal(y[1], x[1])


def test_disabled_band_is_transparent_whatever_its_settings():
    x = noise(1, 1, 8192)
    enabled = torch.tensor([[True, False, True, True, False, True]])
    p = settings_tensors(MIXED, enabled=enabled)
    # Garbage in the disabled bands must not matter, not even for gradients.
    for key, value in (("frequency_hz", -5.0), ("q", 0.0), ("gain_db", 900.0)):
        p[key] = p[key].clone()
        p[key][0, 1] = value
        p[key][0, 4] = value
    p = {k: (v.requires_grad_() if v.is_floating_point() else v) for k, v in p.items()}
    y = multi_eq(x, SR, **p)
    sos = reference_sos(SR, **MIXED, enabled=enabled[0].tolist())
    ref = scipy.signal.sosfilt(sos, x[0, 0].double().numpy())
    assert relative_error_db(y[0, 0].detach().numpy(), ref) < -60
    y.square().sum().backward()
    for key in ("frequency_hz", "gain_db", "q"):
        grad = p[key].grad
        assert torch.isfinite(grad).all()
        assert grad[0, 1] == 0 and grad[0, 4] == 0


def test_disabled_band_response_is_exactly_one():
    # Band 3 is on for item 0 and off for item 1, so it is evaluated, not skipped.
    p = settings_tensors(MIXED, MIXED, enabled=[[True] * N_EQ_BANDS, [True, True, True, False, True, True]])
    both = multi_eq_response(SR, 4096, p["frequency_hz"], p["gain_db"], p["q"], p["filter_type"], p["enabled"])
    keep = [0, 1, 2, 4, 5]
    # Same batch shape, so that vectorised and scalar code paths line up bit for bit.
    without = multi_eq_response(
        SR, 4096, p["frequency_hz"][:, keep], p["gain_db"][:, keep], p["q"][:, keep], p["filter_type"][:, keep]
    )
    assert torch.equal(both[1], without[1])


def test_batch_equals_single_renders():
    x = noise(3, 1, 6000, seed=3)
    p = settings_tensors(MIXED, EXTREME, FIRST_ORDER, enabled=[[True] * 6, [True] * 6, [True, False] * 3])
    y = multi_eq(x, SR, **p)
    for i in range(3):
        single = multi_eq(x[i : i + 1], SR, **{k: v[i : i + 1] for k, v in p.items()})
        # Different FFT lengths (the batch's padding is set by its slowest item), so
        # only equal to within the aliasing floor.
        torch.testing.assert_close(y[i : i + 1], single, rtol=0, atol=1e-6 * x.abs().max().item())


def test_shared_settings_broadcast_over_batch():
    x = noise(3, 1, 2048)
    p = settings_tensors(MIXED)
    y = multi_eq(x, SR, **p)
    for i in range(3):
        torch.testing.assert_close(y[i : i + 1], multi_eq(x[i : i + 1], SR, **p), rtol=0, atol=1e-7)
    # 1-D parameters are one shared setting too.
    y1 = multi_eq(x, SR, **{k: v[0] for k, v in p.items()})
    torch.testing.assert_close(y1, y, rtol=0, atol=0)


def test_channels_filtered_independently_with_same_settings():
    x = noise(1, 3, 4096, seed=5)
    x[:, 2] = x[:, 0]
    p = settings_tensors(MIXED)
    y = multi_eq(x, SR, **p)
    for c in range(3):
        torch.testing.assert_close(y[:, c : c + 1], multi_eq(x[:, c : c + 1], SR, **p), rtol=0, atol=1e-7)
    torch.testing.assert_close(y[:, 2], y[:, 0], rtol=0, atol=0)


def test_output_is_causal():
    # A signal that starts late must produce nothing before it starts.
    x = torch.zeros(1, 1, 4096)
    x[..., 2000:] = noise(1, 1, 2096)
    y = multi_eq(x, SR, **settings_tensors(EXTREME))
    assert y[..., :2000].abs().max() < 1e-6 * y.abs().max()


def test_fft_length_pads_for_slow_poles():
    p = settings_tensors(MIXED)
    from vocalmix.dsp.eq import band_coefficients

    _, a_fast, _ = band_coefficients(SR, p["frequency_hz"] * 0 + 2000.0, p["gain_db"], p["q"], p["filter_type"])
    _, a_slow, _ = band_coefficients(SR, p["frequency_hz"] * 0 + 20.0, p["gain_db"], p["q"], p["filter_type"])
    n_fast, n_slow = fft_length(10000, a_fast), fft_length(10000, a_slow)
    assert 10000 < n_fast < n_slow
    # The slowest pole of a 20 Hz, Q 0.7 section needs ~4500 samples for 80 dB.
    assert n_slow - 10000 > 4500
    # Even and 2-3-5-smooth.
    for n in (n_fast, n_slow):
        m = n
        for prime in (2, 3, 5):
            while m % prime == 0:
                m //= prime
        assert m == 1 and n % 2 == 0


def test_rejects_bad_input():
    p = settings_tensors(MIXED)
    with pytest.raises(ValueError):
        multi_eq(torch.zeros(1, 1000), SR, **p)
    with pytest.raises(ValueError):
        multi_eq(torch.zeros(1, 1, 1000), SR, **dict(p, filter_type=p["filter_type"] + 9))
    with pytest.raises(ValueError):
        multi_eq(torch.zeros(1, 1, 1000), SR, **p, n_fft=500)
    with pytest.raises(ValueError):
        multi_eq(torch.zeros(2, 1, 1000), SR, **dict(p, q=torch.ones(3, 6)))


# --------------------------------------------------------------------------- gradients


def test_gradients_finite_and_nonzero_across_ranges():
    # Every band type at the corners and middle of the plug-in's ranges, one setting
    # per batch item (single band each), on a short noise burst.
    rows = []
    for f in (20.0, 400.0, 5000.0, 20000.0):
        for q in (0.05, 0.7, 8.0):
            for g in (-60.0, -6.0, 15.0):
                for kind in (FT.PEAK, FT.LOW_SHELF, FT.HIGH_SHELF):
                    rows.append((f, g, q, kind))
            for kind in (FT.HIGHPASS_2, FT.LOWPASS_2, FT.HIGHPASS_LR, FT.LOWPASS_LR):
                rows.append((f, 0.0, q, kind))
        for kind in (FT.HIGHPASS_1, FT.LOWPASS_1):
            rows.append((f, 0.0, 0.7, kind))
    freq = torch.tensor([[r[0]] for r in rows], requires_grad=True)
    gain = torch.tensor([[r[1]] for r in rows], requires_grad=True)
    q = torch.tensor([[r[2]] for r in rows], requires_grad=True)
    kinds = torch.tensor([[int(r[3])] for r in rows])
    x = noise(1, 1, 2048).expand(len(rows), 1, 2048)
    y = multi_eq(x, SR, freq, gain, q, kinds, n_fft=8192)
    weights = noise(1, 1, 2048, seed=7)
    (y * weights).sum().backward()
    for p in (freq, gain, q):
        assert torch.isfinite(p.grad).all()
    uses_gain = torch.tensor([r[3] in (FT.PEAK, FT.LOW_SHELF, FT.HIGH_SHELF) for r in rows])
    uses_q = torch.tensor([r[3] not in (FT.HIGHPASS_1, FT.LOWPASS_1) for r in rows])
    assert (freq.grad[:, 0] != 0).all()
    assert (gain.grad[uses_gain, 0] != 0).all()
    assert (q.grad[uses_q, 0] != 0).all()
    # Parameters a type ignores get exactly zero gradient.
    assert (gain.grad[~uses_gain, 0] == 0).all()
    assert (q.grad[~uses_q, 0] == 0).all()


def test_gradcheck_float64():
    x = noise(2, 1, 32, seed=11).double().requires_grad_()
    freq = torch.tensor([[300.0, 1200.0, 2500.0], [150.0, 700.0, 3000.0]], dtype=torch.float64, requires_grad=True)
    gain = torch.tensor([[4.0, -6.0, 0.0], [-3.0, 5.0, 2.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[0.9, 2.0, 0.7], [0.5, 1.5, 3.0]], dtype=torch.float64, requires_grad=True)
    kinds = torch.tensor([[FT.LOW_SHELF, FT.PEAK, FT.HIGHPASS_LR], [FT.HIGHPASS_2, FT.PEAK, FT.HIGH_SHELF]])

    def render(x, freq, gain, q):
        # A fixed FFT length: the automatic one could jump between perturbed evaluations.
        return multi_eq(x, 8000, freq, gain, q, kinds, n_fft=512)

    assert torch.autograd.gradcheck(render, (x, freq, gain, q), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
    # Slow mode (full Jacobians) on the band parameters only.
    assert torch.autograd.gradcheck(
        lambda freq, gain, q: render(x.detach(), freq, gain, q), (freq, gain, q), eps=1e-6, atol=1e-7, rtol=1e-5
    )


def test_gradient_matches_finite_difference_of_recursive_filter():
    # The gradient of the frequency-sampled filter is that of the true IIR filter:
    # compare with central differences of scipy's sosfilt output (float64 throughout).
    x = noise(1, 1, 4000, seed=13).double()
    weights = noise(1, 1, 4000, seed=17).double()[0, 0].numpy()
    base = dict(
        frequency_hz=[90.0, 800.0, 5000.0],
        gain_db=[-5.0, 7.0, 3.0],
        q=[0.6, 3.0, 0.9],
        filter_type=[FT.LOW_SHELF, FT.PEAK, FT.HIGH_SHELF],
    )

    def loss_reference(settings):
        sos = reference_sos(SR, **settings, dtype=torch.float64)
        return float(weights @ scipy.signal.sosfilt(sos, x[0, 0].numpy()))

    params = {
        k: torch.tensor([base[k]], dtype=torch.float64, requires_grad=True) for k in ("frequency_hz", "gain_db", "q")
    }
    y = multi_eq(x, SR, **params, filter_type=torch.tensor([[int(t) for t in base["filter_type"]]]))
    (y[0, 0] @ torch.from_numpy(weights)).backward()
    for key, step in (("frequency_hz", 1e-3), ("gain_db", 1e-4), ("q", 1e-5)):
        for band in range(3):
            up, down = {k: list(v) for k, v in base.items()}, {k: list(v) for k, v in base.items()}
            up[key][band] += step
            down[key][band] -= step
            numeric = (loss_reference(up) - loss_reference(down)) / (2 * step)
            analytic = params[key].grad[0, band].item()
            assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-9), (key, band)


# --------------------------------------------------------------------------- module and helpers


def test_module_takes_eq_params_and_matches_functional():
    x = noise(2, 2, 3000)
    p = settings_tensors(MIXED, FIRST_ORDER)
    eq = MultiEQ(SR)
    expected = multi_eq(x, SR, **p)
    torch.testing.assert_close(eq(x, EQParams(**p)), expected, rtol=0, atol=0)
    assert "48000" in repr(eq)
    with pytest.raises(TypeError, match="EQParams"):
        eq(x, p)  # the flat mapping of old is refused by name


def test_default_settings_are_the_plugin_defaults():
    s = default_settings(batch=2)
    assert s["frequency_hz"].shape == (2, N_EQ_BANDS)
    assert s["filter_type"][0].tolist() == [FT.HIGHPASS_2, FT.PEAK, FT.PEAK, FT.PEAK, FT.PEAK, FT.HIGH_SHELF]
    assert s["frequency_hz"][0].tolist() == [20.0, 120.0, 500.0, 2200.0, 8000.0, 16000.0]
    # Not transparent: the 20 Hz high-pass removes DC.
    response = multi_eq_response(SR, 4096, **{k: v[:1] for k, v in s.items()})
    assert response[0, 0].abs() == 0
    assert abs(response[0, 100].abs().item() - 1.0) < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    x = noise(2, 2, 8000)
    p = settings_tensors(MIXED, EXTREME)
    cpu = multi_eq(x, SR, **p)
    gpu = multi_eq(x.cuda(), SR, **{k: v.cuda() for k, v in p.items()})
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)


def test_auto_method_picks_the_recursion_only_without_gradients():
    x = noise(2, 1, 8192)
    p = settings_tensors(MIXED)
    fast = multi_eq(x, SR, **p)  # CPU, no gradient wanted: the recursion
    fft = multi_eq(x, SR, **p, method="fft")
    assert relative_error_db(fast.numpy(), fft.double().numpy()) < -100
    freq = p["frequency_hz"].clone().requires_grad_(True)
    y = multi_eq(x, SR, **dict(p, frequency_hz=freq))
    y.square().sum().backward()  # only the FFT path can give this gradient
    assert torch.isfinite(freq.grad).all() and freq.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="method"):
        multi_eq(x, SR, **p, method="fir")
