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
