"""Mix settings: the one structure every method decides and the renderer consumes.

The vocal chain is EQ -> compressor -> reverb -> level, then an output stage on the
sum with the backing. Field names, units and ranges follow the IEM plug-ins
(MultiEQ, OmniCompressor, FdnReverb; see ``shared/notes/iem-plugins.md``) so that
a setting maps one-to-one onto a plug-in parameter. Each numeric field carries a
:class:`ParamSpec` (unit, range, default, description) in its dataclass metadata;
validation, JSON I/O, normalisation for models and documentation all read it from
there, so a range is written exactly once.

Values are continuous: the plug-ins snap to grids (0.1 dB, whole Hz, ...) and the
export step does that snapping, with a warning when it changes a value.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# MultiEQ's band count and filter types and FdnReverb's sizes are written once, in dsp (torch-free module).
from .dsp.constants import FDN_LINE_COUNTS, N_EQ_BANDS, FilterType
from .errors import SettingsError

log = logging.getLogger("vocalmix")

SCHEMA_VERSION = 1

#: MultiEQ filter types by their names in settings files ("highpass1", "peak", ...); the value is the
#: plug-in's (v1.15) internal enum, :class:`vocalmix.dsp.constants.FilterType`, which the effects use.
FILTER_TYPES: dict[str, int] = {t.setting_name: int(t) for t in FilterType}

#: Which filter types each MultiEQ band offers (band 0 is the low end, 5 the high end).
BAND_FILTER_TYPES: tuple[tuple[str, ...], ...] = (
    ("highpass1", "highpass2", "highpass_lr", "low_shelf"),
    ("low_shelf", "peak", "high_shelf"),
    ("low_shelf", "peak", "high_shelf"),
    ("low_shelf", "peak", "high_shelf"),
    ("low_shelf", "peak", "high_shelf"),
    ("high_shelf", "lowpass1", "lowpass2", "lowpass_lr"),
)

#: FdnReverb's fade-in does nothing below this (its twin network's loop gain underflows in
#: float32; measured on the v1.14 binary, see shared/notes/iem-plugins.md), so decided
#: settings keep the fade-in at 0 or at least this.
FADE_IN_MIN_EFFECTIVE_S = 0.08


@dataclass(frozen=True)
class ParamSpec:
    """Unit, range and meaning of one numeric setting.

    ``scale`` is how the value maps to [0, 1] for models: ``"linear"`` or ``"log"``
    (frequencies and times, where equal ratios should be equal steps).
    """

    unit: str
    minimum: float
    maximum: float
    description: str
    scale: str = "linear"
    integer: bool = False

    def check(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"setting '{name}' must be a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise SettingsError(f"setting '{name}' must be finite, got {value}")
        if not (self.minimum <= value <= self.maximum):
            raise SettingsError(
                f"setting '{name}' = {value:g} {self.unit} is outside its range "
                f"[{self.minimum:g}, {self.maximum:g}] {self.unit}"
            )
        if self.integer and value != round(value):
            raise SettingsError(f"setting '{name}' must be a whole number, got {value:g}")
        return value

    def normalise(self, value: float) -> float:
        """Map a value in range to [0, 1]."""
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return (math.log(value) - lo) / (hi - lo)
        return (value - self.minimum) / (self.maximum - self.minimum)

    def denormalise(self, u: float) -> float:
        """Map [0, 1] back to the range (values outside [0, 1] are clipped)."""
        u = min(1.0, max(0.0, float(u)))
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            value = math.exp(lo + u * (hi - lo))
        else:
            value = self.minimum + u * (self.maximum - self.minimum)
        value = min(self.maximum, max(self.minimum, value))
        return float(round(value)) if self.integer else value


def _param(default: float, unit: str, lo: float, hi: float, description: str, **kw: Any) -> Any:
    return field(default=default, metadata={"spec": ParamSpec(unit, lo, hi, description, **kw)})


@dataclass
class EQBand:
    """One MultiEQ band (plug-in IDs ``filterEnabled{i}``, ``filterType{i}``, ...)."""

    enabled: bool = False
    type: str = "peak"
    frequency_hz: float = _param(1000.0, "Hz", 20.0, 20000.0, "centre or cut-off frequency", scale="log")
    q: float = _param(0.7, "", 0.05, 8.0, "quality factor (ignored by first-order types)", scale="log")
    gain_db: float = _param(0.0, "dB", -60.0, 15.0, "gain of peak and shelf filters")


def _default_bands() -> list[EQBand]:
    # Transparent by default: every band off, each with a type its slot allows.
    return [
        EQBand(type="highpass2", frequency_hz=20.0),
        *(EQBand() for _ in range(4)),
        EQBand(type="high_shelf", frequency_hz=16000.0),
    ]


@dataclass
class EQSettings:
    """MultiEQ: six bands in series, applied to the vocal."""

    bands: list[EQBand] = field(default_factory=_default_bands)


@dataclass
class CompressorSettings:
    """OmniCompressor: peak detector, dB-domain attack/release ballistics."""

    threshold_db: float = _param(0.0, "dB", -50.0, 10.0, "level above which gain is reduced")
    ratio: float = _param(1.0, ":1", 1.0, 16.0, "input/output slope above threshold (16 = limiter)")
    knee_db: float = _param(0.0, "dB", 0.0, 30.0, "width of the soft knee around the threshold")
    attack_ms: float = _param(30.0, "ms", 0.0, 100.0, "time constant while gain reduction increases")
    release_ms: float = _param(150.0, "ms", 0.0, 500.0, "time constant while gain reduction recovers")
    makeup_db: float = _param(0.0, "dB", -10.0, 20.0, "gain after compression")
    lookahead: bool = False


@dataclass
class ReverbSettings:
    """FdnReverb: a feedback delay network on the vocal, stereo out."""

    room_size: float = _param(20.0, "", 1.0, 30.0, "delay-length setting of the network", integer=True)
    reverb_time_s: float = _param(1.8, "s", 0.1, 9.0, "time for the tail to decay by 60 dB", scale="log")
    low_cutoff_hz: float = _param(100.0, "Hz", 20.0, 20000.0, "corner of the low shelf in the loop", scale="log")
    low_q: float = _param(0.5, "", 0.01, 0.9, "Q of the low shelf")
    low_gain_db_per_s: float = _param(1.0, "dB/s", -80.0, 6.0, "extra decay rate below the low cutoff")
    high_cutoff_hz: float = _param(2000.0, "Hz", 20.0, 20000.0, "corner of the high shelf in the loop", scale="log")
    high_q: float = _param(0.5, "", 0.01, 0.9, "Q of the high shelf")
    high_gain_db_per_s: float = _param(-10.0, "dB/s", -80.0, 4.0, "extra decay rate above the high cutoff")
    dry_wet_pct: float = _param(15.0, "%", 0.0, 100.0, "share of reverberated signal in the vocal")
    fade_in_s: float = _param(0.0, "s", 0.0, 9.0, "build-up time of the tail")
    fdn_lines: int = 64


@dataclass
class LevelSettings:
    """Vocal fader: the gain that sets the vocal against the backing."""

    vocal_gain_db: float = _param(0.0, "dB", -60.0, 40.0, "gain applied to the processed vocal")


@dataclass
class OutputSettings:
    """Output stage on the sum of vocal and backing."""

    ceiling_dbtp: float = _param(-1.0, "dBTP", -20.0, 0.0, "highest true peak the mix may reach")
    # Optional (None = no normalisation), so its spec sits under its own key: iter_numeric yields only
    # the settings that always hold a number.
    target_loudness_lufs: float | None = field(
        default=None,
        metadata={"optional_spec": ParamSpec("LUFS", -60.0, 0.0, "integrated loudness the mix is normalised to")},
    )


@dataclass
class MixSettings:
    """Everything a method decides for one mix."""

    eq: EQSettings = field(default_factory=EQSettings)
    compressor: CompressorSettings = field(default_factory=CompressorSettings)
    reverb: ReverbSettings = field(default_factory=ReverbSettings)
    level: LevelSettings = field(default_factory=LevelSettings)
    output: OutputSettings = field(default_factory=OutputSettings)

    # -- validation -----------------------------------------------------------------
    def validate(self) -> MixSettings:
        """Raise :class:`SettingsError` naming the first field that is wrong."""
        for name, value, spec in iter_numeric(self):
            spec.check(name, value)
        if len(self.eq.bands) != N_EQ_BANDS:
            raise SettingsError(f"setting 'eq.bands' must have {N_EQ_BANDS} bands, got {len(self.eq.bands)}")
        for i, band in enumerate(self.eq.bands):
            if not isinstance(band.enabled, bool):
                raise SettingsError(f"setting 'eq.bands[{i}].enabled' must be true or false")
            if band.type not in BAND_FILTER_TYPES[i]:
                raise SettingsError(
                    f"setting 'eq.bands[{i}].type' = {band.type!r} is not available on band {i}; "
                    f"choose one of {', '.join(BAND_FILTER_TYPES[i])}"
                )
        if not isinstance(self.compressor.lookahead, bool):
            raise SettingsError("setting 'compressor.lookahead' must be true or false")
        if self.reverb.fdn_lines not in FDN_LINE_COUNTS:
            raise SettingsError(
                f"setting 'reverb.fdn_lines' = {self.reverb.fdn_lines!r} must be one of {FDN_LINE_COUNTS}"
            )
        if self.output.target_loudness_lufs is not None:
            _TARGET_LOUDNESS.check("output.target_loudness_lufs", self.output.target_loudness_lufs)
        return self

    # -- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, fill_defaults: bool = True, source: str = "settings") -> MixSettings:
        """Build and validate settings; unknown or mistyped fields raise a named error.

        Fields ``data`` leaves out take their defaults when ``fill_defaults`` (with a
        warning naming them); otherwise they are an error naming them all.
        """
        missing: list[str] = []
        settings = _build(cls, data, "", missing)
        if missing and not fill_defaults:
            raise SettingsError(
                f"missing {_plural(len(missing), 'setting')} {', '.join(missing)} (render with "
                "--fill-defaults to take them from the defaults)"
            )
        if missing:
            log.warning(
                "%s: %s taken from the defaults: %s", source, _plural(len(missing), "setting"), ", ".join(missing)
            )
        return settings.validate()

    def to_json(self, **extra: Any) -> str:
        """JSON text with the schema version; ``extra`` adds top-level keys (method, report)."""
        return json.dumps({"schema_version": SCHEMA_VERSION, **extra, "settings": self.to_dict()}, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "settings", fill_defaults: bool = False) -> MixSettings:
        """Settings from a settings JSON document; every field must be there unless ``fill_defaults``."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(
                f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        if not isinstance(doc, dict):
            raise SettingsError(f"{source}: expected a JSON object")
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SettingsError(f"{source}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        if doc.get("settings") is None and "effect_settings" in doc:
            # Written by an audio method (the Wave-U-Net): it mixed the audio itself.
            raise SettingsError(
                f"{source}: made by the {doc.get('method')} method, which outputs the mix itself and "
                "has no effect settings to render or export"
            )
        if "settings" not in doc:
            raise SettingsError(f"{source}: no 'settings' object")
        try:
            return cls.from_dict(doc["settings"], fill_defaults=fill_defaults, source=source)
        except SettingsError as exc:
            raise SettingsError(f"{source}: {exc}") from None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _build(cls: type, data: Any, path: str, missing: list[str]) -> Any:
    if not isinstance(data, dict):
        raise SettingsError(f"setting '{path or 'settings'}' must be an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        close = difflib.get_close_matches(unknown[0], list(fields), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known fields here: {', '.join(fields)}"
        raise SettingsError(f"setting '{where}' is not a known field{hint}")
    missing.extend(f"{path}.{name}" if path else name for name in fields if name not in data)
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        where = f"{path}.{name}" if path else name
        sub = _NESTED.get((cls, name))
        if sub is list:
            if not isinstance(value, list):
                raise SettingsError(f"setting '{where}' must be a list")
            kwargs[name] = [_build(EQBand, v, f"{where}[{i}]", missing) for i, v in enumerate(value)]
        elif sub is not None:
            kwargs[name] = _build(sub, value, where, missing)
        else:
            kwargs[name] = _check_scalar_type(where, f, value)
    return cls(**kwargs)


def _check_scalar_type(where: str, f: dataclasses.Field, value: Any) -> Any:
    if "spec" in f.metadata:
        return f.metadata["spec"].check(where, value)
    expected = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if expected == "bool" and not isinstance(value, bool):
        raise SettingsError(f"setting '{where}' must be true or false, got {value!r}")
    if expected == "str" and not isinstance(value, str):
        raise SettingsError(f"setting '{where}' must be a string, got {value!r}")
    if expected == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise SettingsError(f"setting '{where}' must be a whole number, got {value!r}")
    if expected == "float | None" and value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"setting '{where}' must be a number or null, got {value!r}")
        value = float(value)
    return value


_NESTED = {
    (MixSettings, "eq"): EQSettings,
    (MixSettings, "compressor"): CompressorSettings,
    (MixSettings, "reverb"): ReverbSettings,
    (MixSettings, "level"): LevelSettings,
    (MixSettings, "output"): OutputSettings,
    (EQSettings, "bands"): list,
}


def iter_numeric(settings: MixSettings) -> Iterator[tuple[str, float, ParamSpec]]:
    """Yield ``(dotted name, value, spec)`` for every numeric setting."""
    for section in dataclasses.fields(settings):
        obj = getattr(settings, section.name)
        if section.name == "eq":
            for i, band in enumerate(obj.bands):
                yield from _numeric_fields(band, f"eq.bands[{i}]")
        else:
            yield from _numeric_fields(obj, section.name)


def _numeric_fields(obj: Any, prefix: str) -> Iterator[tuple[str, float, ParamSpec]]:
    for f in dataclasses.fields(obj):
        if "spec" in f.metadata:
            yield f"{prefix}.{f.name}", getattr(obj, f.name), f.metadata["spec"]


def spec_of(section: type, name: str) -> ParamSpec:
    """The :class:`ParamSpec` of ``section.name``, e.g. ``spec_of(ReverbSettings, "dry_wet_pct")``; optional
    numbers (``OutputSettings.target_loudness_lufs``) included."""
    for f in dataclasses.fields(section):
        if f.name == name:
            spec = f.metadata.get("spec") or f.metadata.get("optional_spec")
            if spec is not None:
                return spec
    raise KeyError(f"{section.__name__}.{name} has no spec")


_TARGET_LOUDNESS = spec_of(OutputSettings, "target_loudness_lufs")


def describe() -> list[dict]:
    """Every setting of a settings file, in file order, with unit, range or choices, default, rule and meaning.

    Numbers have ``min``/``max``; flags and menus have ``min``/``max`` None and their
    ``choices``; ``rule`` says what else a value must be (a whole number, one of a list).
    """
    rows = []
    defaults = MixSettings()

    def number(name: str, value: float, spec: ParamSpec, rule: str = "") -> None:
        rows.append(
            {
                "name": name,
                "kind": "number",
                "unit": spec.unit,
                "min": spec.minimum,
                "max": spec.maximum,
                "default": value,
                "choices": None,
                "rule": rule or ("whole number" if spec.integer else ""),
                "description": spec.description,
            }
        )

    def other(
        name: str, kind: str, default: object, choices: list, rule: str, description: str, unit: str = ""
    ) -> None:
        rows.append(
            {
                "name": name,
                "kind": kind,
                "unit": unit,
                "min": None,
                "max": None,
                "default": default,
                "choices": choices,
                "rule": rule,
                "description": description,
            }
        )

    for i, band in enumerate(defaults.eq.bands):
        prefix = f"eq.bands[{i}]"
        other(f"{prefix}.enabled", "flag", band.enabled, [False, True], "true or false", "band switched on")
        other(
            f"{prefix}.type",
            "choice",
            band.type,
            list(BAND_FILTER_TYPES[i]),
            "one of " + ", ".join(BAND_FILTER_TYPES[i]),
            f"filter type of band {i}",
        )
        for name, value, spec in _numeric_fields(band, prefix):
            number(name, value, spec)
    for section in ("compressor", "reverb", "level"):
        obj = getattr(defaults, section)
        for name, value, spec in _numeric_fields(obj, section):
            number(
                name,
                value,
                spec,
                "whole number (the plug-in's delay-length steps)" if name == "reverb.room_size" else "",
            )
        if section == "compressor":
            other(
                "compressor.lookahead",
                "flag",
                obj.lookahead,
                [False, True],
                "true or false",
                "5 ms lookahead (its latency is compensated in the mix)",
            )
        if section == "reverb":
            other(
                "reverb.fdn_lines",
                "choice",
                obj.fdn_lines,
                list(FDN_LINE_COUNTS),
                "one of " + ", ".join(str(n) for n in FDN_LINE_COUNTS),
                "size of the delay network (FDN size)",
            )
    for name, value, spec in _numeric_fields(defaults.output, "output"):
        number(name, value, spec)
    rows.append(
        {
            "name": "output.target_loudness_lufs",
            "kind": "number or null",
            "unit": _TARGET_LOUDNESS.unit,
            "min": _TARGET_LOUDNESS.minimum,
            "max": _TARGET_LOUDNESS.maximum,
            "default": None,
            "choices": None,
            "rule": "null = no loudness normalisation",
            "description": _TARGET_LOUDNESS.description,
        }
    )
    return rows


def with_effective_fade_in(settings: MixSettings) -> MixSettings:
    """``settings`` with a fade-in the plug-in plays: values in (0, 0.08) s go to the nearer of 0 and 0.08 s."""
    fade = settings.reverb.fade_in_s
    if 0.0 < fade < FADE_IN_MIN_EFFECTIVE_S:
        fade = 0.0 if fade < FADE_IN_MIN_EFFECTIVE_S / 2 else FADE_IN_MIN_EFFECTIVE_S
        return dataclasses.replace(settings, reverb=dataclasses.replace(settings.reverb, fade_in_s=fade))
    return settings


def warn_about_settings(settings: MixSettings, source: str) -> None:
    """Warn about hand-edited values that render here but not in the plug-ins, or not as meant."""
    fade = settings.reverb.fade_in_s
    if 0.0 < fade < FADE_IN_MIN_EFFECTIVE_S:
        log.warning(
            "%s: setting 'reverb.fade_in_s' = %g s does nothing in the FdnReverb plug-in (values below "
            "%g s underflow there); vocalmix renders it, the exported preset will not; use 0 or >= %g s",
            source,
            fade,
            FADE_IN_MIN_EFFECTIVE_S,
            FADE_IN_MIN_EFFECTIVE_S,
        )
