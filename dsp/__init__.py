"""Differentiable IEM-style effects: MultiEQ, OmniCompressor, FdnReverb, and the vocal chain.

Audio is float32 ``(batch, channels, samples)``; every parameter is a ``(batch,)``
(or ``(batch, bands)``) tensor in physical units, so one call renders a batch of
different settings, on CPU or CUDA, with gradients for the continuous parameters.
"""

from .biquads import FilterType
from .chain import STAGES, VocalChain, gain, vocal_chain
from .compressor import Compressor, compressor
from .eq import MultiEQ, multi_eq
from .reverb import FdnReverb, fdn_reverb

__all__ = [
    "FilterType", "MultiEQ", "multi_eq", "Compressor", "compressor", "FdnReverb", "fdn_reverb",
    "VocalChain", "vocal_chain", "gain", "STAGES",
]
