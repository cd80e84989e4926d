"""Settings -> dsp parameters, the chain's composition, and the output stage's guarantees."""

import numpy as np
import pytest
import torch

from vocalmix import analysis
from vocalmix.dsp.compressor import compressor
from vocalmix.dsp.eq import multi_eq
from vocalmix.dsp.reverb import fdn_reverb
from vocalmix.mixing import output_gain, process_vocal, settings_to_params, true_peak_limiter_gain
from vocalmix.settings import EQBand, MixSettings

SR = 44100


def _settings(seed=0):
    rng = np.random.default_rng(seed)
    s = MixSettings()
    s.eq.bands[2] = EQBand(
        enabled=True, type="peak", frequency_hz=float(rng.uniform(200, 4000)), q=1.0, gain_db=float(rng.uniform(-9, 9))
    )
    s.compressor.threshold_db = float(rng.uniform(-30, -10))
    s.compressor.ratio = 4.0
    s.reverb.reverb_time_s = float(rng.uniform(0.5, 2))
    s.reverb.dry_wet_pct = 30.0
    s.level.vocal_gain_db = float(rng.uniform(-6, 6))
    return s


def _vocal(seconds=1.5, seed=0):
    rng = np.random.default_rng(seed)
    env = np.repeat(rng.uniform(0.05, 0.8, int(seconds * 10)), SR // 10)
    return (rng.normal(size=env.size) * env * 0.3).astype(np.float32)[None, :]


def test_chain_is_the_effects_in_order():
    s = _settings()
    vocal = _vocal()
    p = settings_to_params([s])
    x = torch.from_numpy(vocal)[None]
    e, c, r = p.eq, p.compressor, p.reverb
    y = multi_eq(x, SR, e.frequency_hz, e.gain_db, e.q, e.filter_type, e.enabled)
    y = compressor(y, SR, c.threshold_db, c.ratio, c.knee_db, c.attack_ms, c.release_ms, c.makeup_db, False)
    y = fdn_reverb(
        y,
        SR,
        r.room_size,
        r.reverb_time_s,
        r.low_cutoff_hz,
        r.low_q,
        r.low_gain_db_per_s,
        r.high_cutoff_hz,
        r.high_q,
        r.high_gain_db_per_s,
        0.3,
        r.fade_in_s,
    )
    y = y * 10 ** (s.level.vocal_gain_db / 20)
    out = process_vocal(vocal, SR, s)
    assert out.shape == (2, vocal.shape[-1])
    np.testing.assert_allclose(out, y[0].numpy(), atol=1e-6)


def test_settings_to_params_maps_units():
    s = _settings()
    p = settings_to_params([s, MixSettings()])
    assert p.reverb.dry_wet[0].item() == pytest.approx(0.3)  # percent in settings, fraction in dsp
    assert p.eq.filter_type[0, 2].item() == 4  # the plug-in's enum value for peak
    assert p.eq.enabled[0].tolist() == [False, False, True, False, False, False]
    assert p.eq.frequency_hz.shape == (2, 6) and p.batch_size == 2


def test_static_trim_only_when_over_the_ceiling():
    mix = np.stack([np.sin(np.linspace(0, 2000, SR))] * 2) * 0.5
    curve, report = output_gain(mix, SR, -1.0, None)
    assert np.all(curve == 1.0) and report["limiter"] == "off"
    loud = mix * 2.2
    curve, report = output_gain(loud, SR, -1.0, None)
    assert np.ptp(curve) == 0  # one static gain: the balance inside the mix is untouched
    assert analysis.true_peak(loud * curve, SR) <= -1.0


def test_limiter_never_exceeds_the_ceiling_and_only_reduces():
    rng = np.random.default_rng(3)
    # Bursts of square waves and noise with inter-sample peaks well above full scale.
    n = 3 * SR
    t = np.arange(n) / SR
    bursts = np.sign(np.sin(2 * np.pi * 3 * t)) > 0
    x = np.stack(
        [
            np.sign(np.sin(2 * np.pi * 997 * t)) * bursts * 1.8 + rng.normal(0, 0.2, n),
            np.sin(2 * np.pi * SR / 4 * t + np.pi / 4) * 1.5,
        ]
    )
    curve = true_peak_limiter_gain(x, SR, -1.0)
    assert np.all(curve <= 1.0) and np.all(curve > 0)
    assert analysis.true_peak(x * curve, SR) <= -1.0
    # Where nothing is near the ceiling the limiter leaves the signal alone.
    quiet = np.stack([np.sin(2 * np.pi * 440 * t) * 0.1] * 2)
    assert np.allclose(true_peak_limiter_gain(quiet, SR, -1.0), 1.0)


def test_loudness_target_is_reached_with_limiting():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 0.1, (2, 5 * SR)) * np.repeat(rng.uniform(0.2, 1, 50), SR // 10)
    curve, report = output_gain(x, SR, -1.0, -10.0)
    y = x * curve
    assert analysis.integrated_loudness(y, SR) == pytest.approx(-10.0, abs=0.15)
    assert analysis.true_peak(y, SR) <= -1.0
    assert report["limiter"] == "on"


def test_chain_can_resume_from_any_stage():
    s = _settings(1)
    vocal = _vocal(seed=1)
    whole = process_vocal(vocal, SR, s)
    eq_out = process_vocal(vocal, SR, s, upto="eq")
    compressed = process_vocal(eq_out, SR, s, start="compressor", upto="compressor")
    reverb_out = process_vocal(compressed, SR, s, start="reverb", upto="reverb")
    np.testing.assert_array_equal(process_vocal(reverb_out, SR, s, start="level"), whole)
    with pytest.raises(ValueError, match="comes after"):
        process_vocal(vocal, SR, s, start="reverb", upto="eq")
