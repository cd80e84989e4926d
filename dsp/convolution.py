"""Overlap-save: long signals filtered by FFTs of a fixed block length.

Used by the reverb (:func:`.reverb.fdn_reverb`, IRs much shorter than a song) and by the
batch renderer's frequency-sampled EQ (``vocalmix.training.synthesis``). The caller
supplies the filtering as a product of spectra, so one helper serves one filter per
channel as well as the reverb's sum over fed lines.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["overlap_save"]


def overlap_save(
    x: torch.Tensor, block: int, tail: int, multiply: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Filter ``x`` ``(batch, channels, samples)`` block by block; returns ``(batch, outputs, samples)``.

    Frames of ``block`` samples start every ``block - tail`` samples (the first ``tail``
    of each are the previous frame's last ones; zeros before the signal). ``multiply``
    takes the frames' spectra ``(batch, channels, frames, block // 2 + 1)`` (``rfft`` of
    length ``block``) and returns the filtered spectra ``(batch, outputs, frames, bins)``.
    Of each filtered frame the first ``tail`` samples, which the circular convolution
    wrapped around, are dropped and the rest laid end to end. This is linear filtering
    exactly when the filters' impulse responses are at most ``tail + 1`` samples long
    (to the accuracy wanted, for a frequency-sampled response). The result is causal
    and as long as the input (later output samples are not computed).
    """
    n = x.shape[-1]
    hop = block - tail
    if hop <= 0 or tail < 0:
        raise ValueError(f"block ({block}) must be longer than the tail ({tail}), which is at least 0")
    n_frames = max(1, -(-n // hop))
    frames = F.pad(x, (tail, n_frames * hop - n)).unfold(-1, block, hop)  # (B, C, frames, block)
    y = torch.fft.irfft(multiply(torch.fft.rfft(frames, n=block)), n=block)[..., tail:]  # (B, O, frames, hop)
    return y.reshape(*y.shape[:2], n_frames * hop)[..., :n]
