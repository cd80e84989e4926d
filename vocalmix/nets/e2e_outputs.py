"""The ``cnn-e2e`` predictor's outputs: network outputs -> physical settings -> ``MixSettings``.

The predictor ends in one unconstrained number per *decided* setting; a sigmoid makes it
``u`` in (0, 1), and :data:`DECIDED` maps each ``u`` onto a physical value. Ranges come
from the one settings schema (:mod:`vocalmix.settings` ``ParamSpec``): an entry either uses
its ParamSpec's range as it is, or names a narrower *search range* inside it (a design
choice, asserted to lie inside the ParamSpec at import). The scale (log or linear) is the
ParamSpec's unless stated.

Why this shape, and not the settings as they are (issue 18, item 2): training pushes an
audio loss back through :mod:`vocalmix.dsp`, and several settings have dead zones or cliffs
there. Each is avoided without changing what renders:

* **Ratio** is continuous on a log scale over the ParamSpec's [1, 16]. The compressor treats
  a ratio above 15.9 as infinite (a jump in the loss, zero gradient); training renders with
  ``min(ratio, TRAINING_RATIO_CAP)`` (:mod:`vocalmix.training.e2e_params`), so the switch is
  met only at inference. The two renders differ only above 15.9:1 (a 1/15.9 slope instead of 0).
* **Attack, release and knee** start at a floor above 0 (0.5 ms, 5 ms, 0.5 dB): at exactly 0
  their gradient is 0. Being inside the ParamSpec ranges, the floors render identically in
  training and at inference.
* **Threshold** is predicted *relative to the compressor input's sample peak* (dB), in
  [-40, -1] dB. An absolute threshold above the peak plus half the knee gives every
  compressor setting exactly zero gradient, and where that is depends on the take's level;
  relative to the peak it is never there, and a quiet take is treated like a loud one. At
  inference the peak is the whole song's EQ'd vocal peak; in training, the clip's.
* **Level**: the network predicts the vocal-minus-backing relative loudness (LU, the
  level model's target range); the vocal gain that reaches it is computed from the
  processed vocal's loudness (training: the differentiable K-weighted loudness of
  :func:`vocalmix.training.losses.k_loudness`; inference: BS.1770 integrated loudness via
  the level rule). Compressor **makeup is fixed at 0 dB**: with the level learned, makeup
  and vocal gain would be interchangeable.
* **Dry/wet** has a floor of 1 %: at 0 every other reverb setting has zero gradient.
* **Fade-in is fixed at 0 s** (not decided): at 0 its gradient is dead (the twin network is
  not built) and just above 0 the output jumps; the issue allows "0 or >= 0.08 s", and the
  vocal reverb prior has no fade-in in 80 % of its draws, so 0 is the choice.
* **Room size** (an integer) and the FDN size have no gradient; they stay at the plug-in's
  defaults (room 20, 64 lines; training may render with fewer lines, see :mod:`vocalmix.training.e2e`).
* **EQ layout** is fixed so every value is a continuous number: band 0 a 12 dB/oct
  high-pass (Q 0.7), bands 1-4 peaks, each searched in its own frequency region (ordered,
  so the network never has to decide which band does what), band 5 a high shelf (Q 0.7).

The training side (the differentiable chain's tensors, the ratio cap, the gradient groups)
is :mod:`vocalmix.training.e2e_params`. :func:`to_mix_settings` turns one row of physical
values (plus the measured peak and vocal gain) into a validated ``MixSettings`` snapped to
the plug-ins' grids, so the exported presets are exactly what renders (tests check: no
export warning for any prediction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from vocalmix.plugins import snap_to_plugin_grids
from vocalmix.settings import CompressorSettings, EQBand, LevelSettings, MixSettings, ParamSpec, ReverbSettings, spec_of

from .cnn_targets import LEVEL_RANGE_LU

#: Fixed shapes of the filters whose Q is not decided (Butterworth-like).
FIXED_FILTER_Q = 0.7
#: Compressor threshold search range, dB relative to the compressor input's sample peak.
THRESHOLD_RELATIVE_DB = (-40.0, -1.0)

_RELATIVE_LOUDNESS = ParamSpec(
    "LU",
    LEVEL_RANGE_LU[0],
    LEVEL_RANGE_LU[1],
    "vocal minus backing integrated loudness (the level model's target range)",
)
_THRESHOLD_RELATIVE = ParamSpec(
    "dB", THRESHOLD_RELATIVE_DB[0], THRESHOLD_RELATIVE_DB[1], "compressor threshold relative to the input's sample peak"
)


@dataclass(frozen=True)
class Decided:
    """One network output: ``name``, the ParamSpec it belongs to, its search range and scale, group."""

    name: str
    spec: ParamSpec
    low: float
    high: float
    scale: str
    group: str

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        """``u`` in [0, 1] -> physical value (differentiable)."""
        if self.scale == "log":
            lo, hi = math.log(self.low), math.log(self.high)
            return torch.exp(lo + u * (hi - lo))
        return self.low + u * (self.high - self.low)

    def to_unit(self, value: float) -> float:
        value = min(self.high, max(self.low, float(value)))
        if self.scale == "log":
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)


def _decided(
    name: str,
    spec: ParamSpec,
    group: str,
    low: float | None = None,
    high: float | None = None,
    scale: str | None = None,
) -> Decided:
    low = spec.minimum if low is None else low
    high = spec.maximum if high is None else high
    if not (spec.minimum <= low < high <= spec.maximum):
        raise AssertionError(f"{name}: search range [{low}, {high}] is not inside [{spec.minimum}, {spec.maximum}]")
    return Decided(name, spec, float(low), float(high), scale or spec.scale, group)


_FREQ = spec_of(EQBand, "frequency_hz")
_GAIN = spec_of(EQBand, "gain_db")
_Q = spec_of(EQBand, "q")
_EQ_GAIN_LIMIT = min(15.0, _GAIN.maximum)  # symmetric around 0 within the spec
#: Frequency regions of the four peak bands (Hz): octave-spaced, overlapping by an octave.
PEAK_REGIONS_HZ = ((40.0, 320.0), (160.0, 1280.0), (640.0, 5120.0), (2560.0, 16000.0))


def _eq_entries() -> list[Decided]:
    out = [_decided("eq.highpass.frequency_hz", _FREQ, "eq_filters", 20.0, 400.0)]
    for k, (lo, hi) in enumerate(PEAK_REGIONS_HZ, start=1):
        out += [
            _decided(f"eq.peak{k}.frequency_hz", _FREQ, "eq_filters", lo, hi),
            _decided(f"eq.peak{k}.gain_db", _GAIN, "eq_gains", -_EQ_GAIN_LIMIT, _EQ_GAIN_LIMIT),
            _decided(f"eq.peak{k}.q", _Q, "eq_filters", 0.3, 6.0),
        ]
    out += [
        _decided("eq.high_shelf.frequency_hz", _FREQ, "eq_filters", 2000.0, 16000.0),
        _decided("eq.high_shelf.gain_db", _GAIN, "eq_gains", -_EQ_GAIN_LIMIT, _EQ_GAIN_LIMIT),
    ]
    return out


def _c(name):
    return spec_of(CompressorSettings, name)


def _r(name):
    return spec_of(ReverbSettings, name)


#: Every setting the network decides, in output order.
DECIDED: tuple[Decided, ...] = (
    *_eq_entries(),
    _decided("compressor.threshold_relative_db", _THRESHOLD_RELATIVE, "compressor"),
    _decided("compressor.ratio", _c("ratio"), "compressor", scale="log"),
    _decided("compressor.knee_db", _c("knee_db"), "compressor", 0.5, None),
    _decided("compressor.attack_ms", _c("attack_ms"), "compressor", 0.5, None, scale="log"),
    _decided("compressor.release_ms", _c("release_ms"), "compressor", 5.0, None, scale="log"),
    _decided("reverb.reverb_time_s", _r("reverb_time_s"), "reverb"),
    _decided("reverb.low_cutoff_hz", _r("low_cutoff_hz"), "reverb_shelves", 20.0, 1000.0),
    _decided("reverb.low_q", _r("low_q"), "reverb_shelves", 0.1, None),
    _decided("reverb.low_gain_db_per_s", _r("low_gain_db_per_s"), "reverb_shelves", -40.0, None),
    _decided("reverb.high_cutoff_hz", _r("high_cutoff_hz"), "reverb_shelves", 1000.0, None),
    _decided("reverb.high_q", _r("high_q"), "reverb_shelves", 0.1, None),
    _decided("reverb.high_gain_db_per_s", _r("high_gain_db_per_s"), "reverb_shelves", -40.0, None),
    _decided("reverb.dry_wet_pct", _r("dry_wet_pct"), "reverb", 1.0, 60.0),
    _decided("level.relative_loudness_lu", _RELATIVE_LOUDNESS, "level"),
)
NAMES: tuple[str, ...] = tuple(d.name for d in DECIDED)
INDEX: dict[str, int] = {n: i for i, n in enumerate(NAMES)}
N_OUTPUTS = len(DECIDED)
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(d.group for d in DECIDED))


def to_physical(u: torch.Tensor) -> dict[str, torch.Tensor]:
    """``u`` ``(batch, N_OUTPUTS)`` in [0, 1] -> ``{name: (batch,)}`` physical values (differentiable)."""
    if u.dim() != 2 or u.shape[1] != N_OUTPUTS:
        raise ValueError(f"expected (batch, {N_OUTPUTS}) unit values, got {tuple(u.shape)}")
    return {d.name: d.from_unit(u[:, i]) for i, d in enumerate(DECIDED)}


def to_unit(values: dict[str, float]) -> torch.Tensor:
    """Physical values ``{name: value}`` -> ``(N_OUTPUTS,)`` unit values (clipped to the search ranges)."""
    return torch.tensor([d.to_unit(values[d.name]) for d in DECIDED], dtype=torch.float32)


def physical_threshold_db(relative_db: torch.Tensor, input_peak_db: torch.Tensor) -> torch.Tensor:
    """Absolute compressor threshold from the relative one and the input's peak, within the ParamSpec."""
    spec = _c("threshold_db")
    return torch.clamp(relative_db + input_peak_db, spec.minimum, spec.maximum)


BAND_TYPES = ("highpass2", "peak", "peak", "peak", "peak", "high_shelf")


def to_mix_settings(
    values: dict[str, float],
    input_peak_db: float,
    vocal_gain_db: float = 0.0,
    base: MixSettings | None = None,
    snap: bool = True,
) -> MixSettings:
    """A validated ``MixSettings`` from one row of physical values (plain floats).

    ``input_peak_db`` is the compressor input's sample peak (dBFS) that the relative
    threshold refers to; ``vocal_gain_db`` the level stage's gain. With ``snap`` the
    result is put on the plug-ins' grids (:func:`vocalmix.plugins.snap_to_plugin_grids`),
    so exporting it moves nothing and warns about nothing.
    """
    settings = replace(base) if base is not None else MixSettings()
    settings.eq.bands = [EQBand(enabled=True, type=t) for t in BAND_TYPES]
    bands = settings.eq.bands
    bands[0].frequency_hz, bands[0].q = values["eq.highpass.frequency_hz"], FIXED_FILTER_Q
    for k in range(1, 5):
        bands[k].frequency_hz = values[f"eq.peak{k}.frequency_hz"]
        bands[k].gain_db = values[f"eq.peak{k}.gain_db"]
        bands[k].q = values[f"eq.peak{k}.q"]
    bands[5].frequency_hz = values["eq.high_shelf.frequency_hz"]
    bands[5].gain_db = values["eq.high_shelf.gain_db"]
    bands[5].q = FIXED_FILTER_Q
    threshold = physical_threshold_db(
        torch.tensor(values["compressor.threshold_relative_db"], dtype=torch.float64),
        torch.tensor(float(input_peak_db), dtype=torch.float64),
    )
    settings.compressor = CompressorSettings(
        threshold_db=float(threshold),
        ratio=values["compressor.ratio"],
        knee_db=values["compressor.knee_db"],
        attack_ms=values["compressor.attack_ms"],
        release_ms=values["compressor.release_ms"],
        makeup_db=0.0,
        lookahead=False,
    )
    defaults = ReverbSettings()
    settings.reverb = replace(
        defaults,
        reverb_time_s=values["reverb.reverb_time_s"],
        low_cutoff_hz=values["reverb.low_cutoff_hz"],
        low_q=values["reverb.low_q"],
        low_gain_db_per_s=values["reverb.low_gain_db_per_s"],
        high_cutoff_hz=values["reverb.high_cutoff_hz"],
        high_q=values["reverb.high_q"],
        high_gain_db_per_s=values["reverb.high_gain_db_per_s"],
        dry_wet_pct=values["reverb.dry_wet_pct"],
        fade_in_s=0.0,
    )
    gain_spec = spec_of(LevelSettings, "vocal_gain_db")
    settings.level = LevelSettings(vocal_gain_db=min(gain_spec.maximum, max(gain_spec.minimum, float(vocal_gain_db))))
    # Float32 round trips can put a value a hair outside its range; clip to the spec.
    for band in settings.eq.bands:
        for name in ("frequency_hz", "gain_db", "q"):
            spec = spec_of(EQBand, name)
            setattr(band, name, min(spec.maximum, max(spec.minimum, float(getattr(band, name)))))
    for section, cls in ((settings.compressor, CompressorSettings), (settings.reverb, ReverbSettings)):
        for name in (
            ("threshold_db", "ratio", "knee_db", "attack_ms", "release_ms")
            if cls is CompressorSettings
            else (
                "reverb_time_s",
                "low_cutoff_hz",
                "low_q",
                "low_gain_db_per_s",
                "high_cutoff_hz",
                "high_q",
                "high_gain_db_per_s",
                "dry_wet_pct",
            )
        ):
            spec = spec_of(cls, name)
            setattr(section, name, min(spec.maximum, max(spec.minimum, float(getattr(section, name)))))
    settings.validate()
    if snap:
        settings = snap_to_plugin_grids(settings).validate()
    return settings
