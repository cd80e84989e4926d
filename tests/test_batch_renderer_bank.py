"""BatchRenderer(reverb_bank=N): its cached-IR paths against vocal_chain (the plain render)."""

from __future__ import annotations

import numpy as np
import torch

from vocalmix.dsp.chain import vocal_chain
from vocalmix.training.synthesis import BatchRenderer, synthetic_vocal

SR = 16000


def test_bank_render_with_gradients_takes_the_padded_ir_path_and_equals_vocal_chain():
    """With gradients enabled the renderer convolves through reverb_with_ir with the batch's
    cached IRs zero-padded to the longest (not the cached spectra): vocal_chain's output
    bit for bit, and the gradient reaches the input clips."""
    rng = np.random.default_rng(3)
    clips = torch.from_numpy(np.stack([synthetic_vocal(0.4, SR, rng) for _ in range(4)]))
    r = BatchRenderer(SR, device="cpu", seed=4, reverb_bank=2, fdn_lines=16)
    params = r.sample_chain_params(4)
    with torch.no_grad():
        fast, _ = r.render_chain(clips, params)  # fills the caches through the spectrum path
    x = clips.clone().requires_grad_()
    ours, _ = r.render_chain(x, params)
    # With gradients wanted the EQ takes its FFT path in both (dsp.eq.multi_eq).
    expected = vocal_chain(clips.clone().requires_grad_(), SR, params).detach()
    torch.testing.assert_close(ours.detach(), expected, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(fast, vocal_chain(clips, SR, params), rtol=0, atol=0)
    ours.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert len({float(v) for v in params.reverb.reverb_time_s}) == 2  # both bank entries in the batch


def test_reverberate_goes_through_reverb_params_and_equals_fdn_reverb():
    """reverberate() converts the drawn settings once (reverb_params_from_settings: dry_wet_pct in %
    to the fraction dry_wet) and renders them as fdn_reverb does with the settings passed one by one."""
    import pytest

    from vocalmix.dsp.reverb import fdn_reverb
    from vocalmix.training.synthesis import reverb_params_from_settings

    rng = np.random.default_rng(5)
    clips = torch.from_numpy(np.stack([synthetic_vocal(0.3, SR, rng) for _ in range(3)]))
    r = BatchRenderer(SR, device="cpu", seed=6, fdn_lines=16)
    s = r.sample_reverb_settings(3)
    with torch.no_grad():
        got = r.reverberate(clips, s)
        expected = fdn_reverb(
            clips,
            SR,
            s["room_size"],
            s["reverb_time_s"],
            s["low_cutoff_hz"],
            s["low_q"],
            s["low_gain_db_per_s"],
            s["high_cutoff_hz"],
            s["high_q"],
            s["high_gain_db_per_s"],
            s["dry_wet_pct"] / 100.0,
            s["fade_in_s"],
            fdn_lines=16,
        )
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    params = reverb_params_from_settings(s, fdn_lines=16)
    torch.testing.assert_close(params.dry_wet * 100.0, s["dry_wet_pct"])
    assert params.fdn_lines == 16
    with pytest.raises(KeyError, match="dryWet"):
        reverb_params_from_settings(dict(s, dryWet=s["dry_wet_pct"]))
