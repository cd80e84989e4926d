"""Differentiable IEM-style effects: MultiEQ, OmniCompressor, FdnReverb, and the vocal chain.

Audio is float32 ``(batch, channels, samples)``; each effect's parameters are one
object of :mod:`.params` (``(batch,)`` or ``(batch, bands)`` tensors in physical units),
so one call renders a batch of different settings, on CPU or CUDA, with gradients for
the continuous parameters. The effect functions themselves live in their modules
(``vocalmix.dsp.compressor.compressor`` is the function; ``vocalmix.dsp.compressor``
always the module).

Names are loaded on first use, so that ``vocalmix.dsp.constants`` (what the settings
schema shares with the effects) can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chain import STAGES, VocalChain, apply_compressor, apply_eq, apply_level, apply_reverb, gain, vocal_chain
    from .compressor import Compressor
    from .constants import FDN_LINE_COUNTS, N_EQ_BANDS, FilterType
    from .eq import MultiEQ, multi_eq
    from .params import ChainParams, CompressorParams, EQParams, LevelParams, ReverbParams
    from .reverb import FdnReverb, fdn_reverb

_WHERE = {
    "FilterType": "constants",
    "N_EQ_BANDS": "constants",
    "FDN_LINE_COUNTS": "constants",
    "EQParams": "params",
    "CompressorParams": "params",
    "ReverbParams": "params",
    "LevelParams": "params",
    "ChainParams": "params",
    "MultiEQ": "eq",
    "multi_eq": "eq",
    "Compressor": "compressor",
    "FdnReverb": "reverb",
    "fdn_reverb": "reverb",
    "VocalChain": "chain",
    "vocal_chain": "chain",
    "gain": "chain",
    "STAGES": "chain",
    "apply_eq": "chain",
    "apply_compressor": "chain",
    "apply_reverb": "chain",
    "apply_level": "chain",
}
_SUBMODULES = ("biquads", "chain", "compressor", "constants", "eq", "params", "reverb")

__all__ = [
    "FDN_LINE_COUNTS",
    "N_EQ_BANDS",
    "FilterType",
    "ChainParams",
    "CompressorParams",
    "EQParams",
    "LevelParams",
    "ReverbParams",
    "MultiEQ",
    "multi_eq",
    "Compressor",
    "FdnReverb",
    "fdn_reverb",
    "STAGES",
    "VocalChain",
    "vocal_chain",
    "apply_eq",
    "apply_compressor",
    "apply_reverb",
    "apply_level",
    "gain",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE, *_SUBMODULES})
