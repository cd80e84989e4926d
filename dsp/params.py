"""The parameters of each effect, as the effects take them: one class per effect, one name per quantity.

Every class holds batched tensors in physical units, one row per batch item, so one
render covers a batch of different settings and gradients reach the continuous ones:

* :class:`EQParams`: MultiEQ, ``(batch, bands)`` tensors;
* :class:`CompressorParams`: OmniCompressor, ``(batch,)`` tensors;
* :class:`ReverbParams`: FdnReverb, ``(batch,)`` tensors and one network size;
* :class:`LevelParams`: the vocal fader, ``(batch,)``;
* :class:`ChainParams`: the four, for :func:`.chain.vocal_chain`.

Names and units are those of the settings schema (:mod:`vocalmix.settings`) with one
exception, where the unit differs and the name says so: the reverb's ``dry_wet`` is a
fraction 0..1 here, ``reverb.dry_wet_pct`` a percentage in settings files (the
plug-in's own ``dryWet`` appears only in its binding table, :mod:`vocalmix.plugins`).
A filter type is an integer :class:`.constants.FilterType` here and its
:attr:`~.constants.FilterType.setting_name` in settings files.

Shapes, dtypes and devices are checked when an object is made (a ``ValueError`` or
``TypeError`` naming the field); values are not range-checked, since training explores
the corners (the settings schema checks ranges). ``vocalmix.mixing.settings_to_params``
builds these from settings; training code builds them directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

import torch

from .constants import FDN_LINE_COUNTS, N_EQ_BANDS

__all__ = ["EQParams", "CompressorParams", "ReverbParams", "LevelParams", "ChainParams", "BatchIndex"]

#: Batch items to keep: an index (kept as a batch of one), a slice, or an index or mask tensor.
BatchIndex = Union[int, slice, torch.Tensor]
#: ``fn(name, tensor) -> tensor`` applied to every tensor of a parameter object.
TensorMap = Callable[[str, torch.Tensor], torch.Tensor]

_P = TypeVar("_P", bound="_EffectParams")

_KINDS = {
    "float": ("a floating-point tensor", lambda t: t.is_floating_point()),
    "int": ("an integer tensor", lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool),
    "bool": ("a bool tensor", lambda t: t.dtype == torch.bool),
}


def _tensor(kind: str, unit: str) -> Any:
    """A tensor field: ``kind`` (``"float"``, ``"int"``, ``"bool"``) is checked, ``unit`` documents it."""
    return field(metadata={"kind": kind, "unit": unit})


class _EffectParams:
    """What every effect's parameters share: validation, names, device moves, batch selection."""

    #: Dimensions of every tensor field: 1 for ``(batch,)``, 2 for ``(batch, bands)``.
    _NDIM = 1

    def __post_init__(self) -> None:
        first: tuple[str, torch.Tensor] | None = None
        layout = "(batch,)" if self._NDIM == 1 else "(batch, bands)"
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            kind = f.metadata.get("kind")
            if kind is None:
                continue
            value = getattr(self, f.name)
            where = f"{type(self).__name__}.{f.name}"
            description, accepts = _KINDS[kind]
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{where} must be {description} {layout}, got {type(value).__name__}")
            if not accepts(value):
                raise TypeError(f"{where} must be {description}, got {value.dtype}")
            if value.dim() != self._NDIM or value.shape[0] == 0:
                raise ValueError(f"{where} must be {layout} with at least one item, got shape {tuple(value.shape)}")
            if first is None:
                first = (f.name, value)
            elif value.shape != first[1].shape:
                raise ValueError(
                    f"{where} has shape {tuple(value.shape)} but {first[0]} has "
                    f"{tuple(first[1].shape)}: one row per batch item"
                )
            elif value.device != first[1].device:
                raise ValueError(f"{where} is on {value.device} but {first[0]} on {first[1].device}")

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(field name, tensor)`` for every tensor field, in declaration order."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "kind" in f.metadata:
                yield f.name, getattr(self, f.name)

    def arguments(self) -> dict[str, Any]:
        """Every field by name (tensors and, for the reverb, ``fdn_lines``): the keyword arguments
        of the effect's function (:func:`.eq.multi_eq`, :func:`.compressor.compressor`,
        :func:`.reverb.fdn_reverb`), whose parameter names are these field names."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def map_tensors(self: _P, fn: TensorMap) -> _P:
        """A copy with every tensor replaced by ``fn(name, tensor)`` (checked again); other fields kept."""
        return dataclasses.replace(self, **{name: fn(name, t) for name, t in self.named_tensors()})  # type: ignore[type-var]

    def to(self: _P, device: torch.device | str) -> _P:
        """The same parameters on ``device``."""
        return self.map_tensors(lambda _, t: t.to(device))

    def __getitem__(self: _P, index: BatchIndex) -> _P:
        """The parameters of the batch items ``index`` selects (an int keeps a batch of one)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map_tensors(lambda _, t: t[index])

    @property
    def batch_size(self) -> int:
        return next(self.named_tensors())[1].shape[0]

    @property
    def device(self) -> torch.device:
        return next(self.named_tensors())[1].device


@dataclass(frozen=True, eq=False)
class EQParams(_EffectParams):
    """MultiEQ: bands in series, every field ``(batch, bands)`` (the plug-in has
    :data:`.constants.N_EQ_BANDS`; :func:`.eq.multi_eq` takes any number)."""

    _NDIM = 2

    frequency_hz: torch.Tensor = _tensor("float", "Hz")
    """Centre or cut-off frequency."""
    gain_db: torch.Tensor = _tensor("float", "dB")
    """Gain of peak and shelf filters."""
    q: torch.Tensor = _tensor("float", "")
    """Quality factor (ignored by first-order types)."""
    filter_type: torch.Tensor = _tensor("int", "FilterType")
    """Integer :class:`.constants.FilterType` values."""
    enabled: torch.Tensor = _tensor("bool", "")
    """A band switched off is exactly transparent."""


@dataclass(frozen=True, eq=False)
class CompressorParams(_EffectParams):
    """OmniCompressor, every field ``(batch,)``; a ratio above 15.9 is infinite."""

    threshold_db: torch.Tensor = _tensor("float", "dB")
    ratio: torch.Tensor = _tensor("float", ":1")
    knee_db: torch.Tensor = _tensor("float", "dB")
    attack_ms: torch.Tensor = _tensor("float", "ms")
    release_ms: torch.Tensor = _tensor("float", "ms")
    makeup_db: torch.Tensor = _tensor("float", "dB")
    lookahead: torch.Tensor = _tensor("bool", "")
    """5 ms lookahead; the output is delayed by :func:`.compressor.lookahead_samples`."""


@dataclass(frozen=True, eq=False)
class ReverbParams(_EffectParams):
    """FdnReverb, every tensor ``(batch,)``; one network size for the whole batch."""

    room_size: torch.Tensor = _tensor("float", "")
    """The plug-in's delay-length setting 1..30 (whole numbers; not differentiable)."""
    reverb_time_s: torch.Tensor = _tensor("float", "s")
    low_cutoff_hz: torch.Tensor = _tensor("float", "Hz")
    low_q: torch.Tensor = _tensor("float", "")
    low_gain_db_per_s: torch.Tensor = _tensor("float", "dB/s")
    high_cutoff_hz: torch.Tensor = _tensor("float", "Hz")
    high_q: torch.Tensor = _tensor("float", "")
    high_gain_db_per_s: torch.Tensor = _tensor("float", "dB/s")
    dry_wet: torch.Tensor = _tensor("float", "fraction")
    """Share of the reverberated signal, a fraction 0..1 (settings: ``dry_wet_pct``, 0..100 %)."""
    fade_in_s: torch.Tensor = _tensor("float", "s")
    """Build-up time of the tail; 0 disables the fade-in."""
    fdn_lines: int = 64
    """Number of delay lines, one of :data:`.constants.FDN_LINE_COUNTS`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.fdn_lines, bool) or self.fdn_lines not in FDN_LINE_COUNTS:
            raise ValueError(f"ReverbParams.fdn_lines must be one of {FDN_LINE_COUNTS}, got {self.fdn_lines!r}")


@dataclass(frozen=True, eq=False)
class LevelParams(_EffectParams):
    """The vocal fader, ``(batch,)``."""

    vocal_gain_db: torch.Tensor = _tensor("float", "dB")


@dataclass(frozen=True, eq=False)
class ChainParams:
    """The parameters of the whole vocal chain, EQ -> compressor -> reverb -> level, for one batch
    (the EQ with MultiEQ's :data:`.constants.N_EQ_BANDS` bands)."""

    eq: EQParams
    compressor: CompressorParams
    reverb: ReverbParams
    level: LevelParams

    def __post_init__(self) -> None:
        expected = {"eq": EQParams, "compressor": CompressorParams, "reverb": ReverbParams, "level": LevelParams}
        for name, cls in expected.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"ChainParams.{name} must be {cls.__name__}, got {type(getattr(self, name)).__name__}")
        bands = self.eq.frequency_hz.shape[1]
        if bands != N_EQ_BANDS:
            raise ValueError(f"ChainParams.eq must have MultiEQ's {N_EQ_BANDS} bands, got {bands}")
        sizes = {name: self._stage(name).batch_size for name in expected}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"ChainParams: the effects disagree in batch size: {sizes}")
        devices = {name: str(self._stage(name).device) for name in expected}
        if len(set(devices.values())) != 1:
            raise ValueError(f"ChainParams: the effects are on different devices: {devices}")

    def _stage(self, name: str) -> _EffectParams:
        stage: _EffectParams = getattr(self, name)
        return stage

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``("eq.frequency_hz", tensor)``, ... for every tensor of every effect."""
        for stage in ("eq", "compressor", "reverb", "level"):
            for name, t in self._stage(stage).named_tensors():
                yield f"{stage}.{name}", t

    def map_tensors(self, fn: TensorMap) -> ChainParams:
        """A copy with every tensor replaced by ``fn(dotted name, tensor)``, e.g. to make some leaves
        that require gradients."""
        return ChainParams(
            eq=self.eq.map_tensors(lambda name, t: fn(f"eq.{name}", t)),
            compressor=self.compressor.map_tensors(lambda name, t: fn(f"compressor.{name}", t)),
            reverb=self.reverb.map_tensors(lambda name, t: fn(f"reverb.{name}", t)),
            level=self.level.map_tensors(lambda name, t: fn(f"level.{name}", t)),
        )

    def to(self, device: torch.device | str) -> ChainParams:
        """The same parameters on ``device``."""
        return self.map_tensors(lambda _, t: t.to(device))

    def __getitem__(self, index: BatchIndex) -> ChainParams:
        """The parameters of the batch items ``index`` selects (an int keeps a batch of one)."""
        return ChainParams(self.eq[index], self.compressor[index], self.reverb[index], self.level[index])

    @property
    def batch_size(self) -> int:
        return self.eq.batch_size

    @property
    def device(self) -> torch.device:
        return self.eq.device
