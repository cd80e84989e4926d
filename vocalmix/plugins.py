"""The three IEM plug-ins of the vocal chain and how vocalmix settings map onto them.

MultiEQ -> OmniCompressor -> FdnReverb (see ``shared/notes/iem-plugins.md``): each
plug-in's parameters (ID, host name, unit label, range, grid, default, display text)
and the binding of each parameter to a setting. A bound parameter's plain range is
the setting's range from :mod:`vocalmix.settings` (times the binding's scale), so a
range is written once; the grids are the plug-ins' own.

The plug-ins store values on grids (whole Hz, 0.1 dB, Q in 0.05 steps, ...) while
vocalmix settings are continuous: :func:`plugin_states` snaps every value to the
nearest one the plug-in can hold (telling a ``warn`` callback about each change),
:func:`snap_to_plugin_grids` gives the settings as the plug-ins hold them, and
:func:`plugin_settings` maps stored plug-in values back onto settings (what import
reads). Writing files is :mod:`vocalmix.export`'s job; reading them is
:mod:`vocalmix.preset_import`'s.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Union

import numpy as np

from .errors import InputError
from .preset_formats import juce_double_text, juce_vst3_class_id, pack_state, state_xml
from .settings import FDN_LINE_COUNTS, FILTER_TYPES, N_EQ_BANDS, MixSettings, ParamSpec, iter_numeric

log = logging.getLogger("vocalmix")

MANUFACTURER_CODE = "IEMA"

#: FdnReverb ignores a loaded revTime equal to its default (see the notes, section 2, "Quirk").
FDN_DEFAULT_REV_TIME_S = 5.0
#: The FdnReverb of v1.14 offers 16, 32 or 64 lines; 128 and 256 need v1.15.
FDN_LINES_V114 = (16, 32, 64)
#: The longest reverb tail :func:`reverb_tail_seconds` asks for.
MAX_TAIL_S = 30.0
#: The Q grid value nearest 1/sqrt(2), which MultiEQ v1.15 uses for its 24 dB/oct (Linkwitz-Riley) types.
LR_DEFAULT_Q = 0.7


# -- what the plug-ins store ----------------------------------------------------------------
def _fixed(decimals: int) -> Callable[[float], str]:
    """The text ``juce::String (value, decimals)`` gives, which the plug-ins show for numbers."""

    def show(value: float) -> str:
        if decimals == 0:
            return f"{value:g}"  # String (v, 0) prints with the stream's default six significant digits
        return ("-" if value < 0 else "") + f"{abs(value):.{decimals}f}"

    return show


def _texts(*texts: str) -> Callable[[float], str]:
    """Display text per grid step, for switches and menus."""
    return lambda value: texts[min(len(texts) - 1, max(0, int(round(value))))]


def _ratio_text(value: float) -> str:
    return "inf" if value > 15.9 else _fixed(1)(value)


def _unknown_text(value: float) -> None:
    return None


@dataclass(frozen=True)
class ParamDef:
    """One plug-in parameter: ID, host-visible name and unit label, range, grid and default."""

    id: str
    name: str
    label: str
    start: float
    end: float
    interval: float
    default: float
    skew: float = 1.0
    display: Callable[[float], Optional[str]] = _unknown_text
    since: str = "1.14"  # "1.15" for parameters only the v1.15 plug-ins have
    select_by_text: bool = False  # menus whose stored values differ between versions

    @property
    def steps(self) -> int:
        return int(round((self.end - self.start) / self.interval)) + 1

    @property
    def decimals(self) -> int:
        """Decimal places of the grid (0.1 -> 1, 0.05 -> 2, 1 -> 0)."""
        return max(0, -math.floor(math.log10(self.interval) + 1e-9))

    def grid_index(self, value: float) -> tuple[int, bool]:
        """Nearest grid step to ``value`` (halves round up, as JUCE does) and whether it was clamped."""
        # Rounding the quotient first keeps float noise (0.7/0.05 = 13.999...) from moving a step.
        k = math.floor(round((value - self.start) / self.interval, 6) + 0.5)
        clamped = k < 0 or k > self.steps - 1
        return min(max(k, 0), self.steps - 1), clamped

    def grid_value(self, k: int) -> float:
        """Step ``k`` as a clean decimal number."""
        return round(self.start + k * self.interval, self.decimals) + 0.0

    def stored_value(self, k: int) -> float:
        """Step ``k`` as the float the plug-in keeps: ``start + interval * k`` in float32 (JUCE's snapping)."""
        start, end = np.float32(self.start), np.float32(self.end)
        value = start + np.float32(self.interval) * np.float32(k)
        if value <= start or end <= start:
            value = start
        elif value >= end:
            value = end
        return float(value)

    def normalised(self, value: float) -> float:
        """The host-side 0..1 value (JUCE ``NormalisableRange::convertTo0to1``, skew included)."""
        proportion = min(1.0, max(0.0, (value - self.start) / (self.end - self.start)))
        return proportion if self.skew == 1.0 else proportion**self.skew


@dataclass(frozen=True)
class Binding:
    """How a plug-in parameter follows a vocalmix setting.

    ``kind`` is ``"number"`` (plug-in value = setting * ``scale``), ``"bool"``,
    ``"filter_type"`` or ``"fdn_lines"``.
    """

    setting: str
    kind: str = "number"
    scale: float = 1.0
    band: int = 0


@dataclass(frozen=True)
class PluginDef:
    """One IEM plug-in: name (= XML root tag), plug-in code, parameters in host order, bindings."""

    name: str
    code: str
    params: tuple[ParamDef, ...]
    bindings: dict[str, Binding]
    fixed: dict[str, float]  # values written for parameters no setting controls
    channels: int
    role: str

    @property
    def class_id(self) -> str:
        return juce_vst3_class_id(MANUFACTURER_CODE, self.code)

    def param(self, param_id: str) -> ParamDef:
        return self.by_id[param_id]

    @cached_property
    def by_id(self) -> dict[str, ParamDef]:
        return {p.id: p for p in self.params}

    def osc_config(self) -> list[tuple[str, str]]:
        """The ``OSCConfig`` attributes a plug-in with OSC off writes (ReceiverPort -1 keeps the port closed)."""
        return [
            ("ReceiverPort", "-1"),
            ("SenderIP", ""),
            ("SenderPort", "-1"),
            ("SenderOSCAddress", f"/{self.name}/"),
            ("SenderInterval", "100"),
        ]


# MultiEQ filter types as v1.14 stores them, per band. v1.15 converts these on load
# (notes section 1), so v1.14 values load correctly in both versions.
EQ_TYPES_V114: tuple[tuple[str, ...], ...] = (
    ("highpass1", "highpass2", "highpass_lr", "low_shelf"),
    *(("low_shelf", "peak", "high_shelf"),) * 4,
    ("lowpass1", "lowpass2", "lowpass_lr", "high_shelf"),
)
#: The v1.15 stored values each band accepts (band 0 is the same in both versions).
EQ_TYPE_RANGE_V115 = ((0, 3), *((3, 5),) * 4, (5, 8))
#: What MultiEQ shows for each filter type.
EQ_TYPE_TEXT = {
    "highpass1": "HP (6dB/oct)",
    "highpass2": "HP (12dB/oct)",
    "highpass_lr": "HP (24dB/oct)",
    "low_shelf": "Low-shelf",
    "peak": "Peak",
    "high_shelf": "High-shelf",
    "lowpass1": "LP (6dB/Oct)",
    "lowpass2": "LP (12dB/oct)",
    "lowpass_lr": "LP (24dB/oct)",
}
_EQ_TYPE_BY_V115_VALUE = {value: name for name, value in FILTER_TYPES.items()}
_EQ_FREQUENCY_DEFAULTS = (20.0, 120.0, 500.0, 2200.0, 8000.0, 16000.0)
_EQ_TYPE_DEFAULTS_V114 = (1.0, 1.0, 1.0, 1.0, 1.0, 3.0)


#: Every numeric setting's spec by dotted name: the plain ranges of the parameters that follow a setting.
_SETTING_SPECS: dict[str, ParamSpec] = {name: spec for name, _, spec in iter_numeric(MixSettings())}


class _Table:
    """A plug-in's parameters in host order, and the bindings of those that follow a setting."""

    def __init__(self) -> None:
        self.params: list[ParamDef] = []
        self.bindings: dict[str, Binding] = {}

    def own(
        self,
        param_id: str,
        name: str,
        label: str,
        start: float,
        end: float,
        interval: float,
        default: float,
        binding: Optional[Binding] = None,
        **kw: Any,
    ) -> None:
        """A parameter whose range is the plug-in's own (switches, menus, controls no setting has)."""
        self.params.append(ParamDef(param_id, name, label, start, end, interval, default, **kw))
        if binding is not None:
            self.bindings[param_id] = binding

    def number(
        self,
        param_id: str,
        name: str,
        label: str,
        setting: str,
        interval: float,
        default: float,
        scale: float = 1.0,
        **kw: Any,
    ) -> None:
        """A parameter that holds ``setting * scale``: its plain range is the setting's range, scaled."""
        spec = _SETTING_SPECS[setting]
        self.params.append(
            ParamDef(param_id, name, label, spec.minimum * scale, spec.maximum * scale, interval, default, **kw)
        )
        self.bindings[param_id] = Binding(setting, scale=scale)


def _multieq() -> PluginDef:
    t = _Table()
    t.own(
        "inputChannelsSetting",
        "Number of input channels ",
        "",
        0,
        64,
        1,
        0,
        display=lambda v: "Auto" if v < 0.5 else f"{v:g}",
    )
    for i in range(N_EQ_BANDS):
        names = EQ_TYPES_V114[i]
        band = f"eq.bands[{i}]"
        t.own(
            f"filterEnabled{i}",
            f"Filter Enablement {i + 1}",
            "",
            0,
            1,
            1,
            1,
            Binding(f"{band}.enabled", "bool"),
            display=_texts("OFF", "ON"),
        )
        t.own(
            f"filterType{i}",
            f"Filter Type {i + 1}",
            "",
            0,
            len(names) - 1,
            1,
            _EQ_TYPE_DEFAULTS_V114[i],
            Binding(f"{band}.type", "filter_type", band=i),
            display=_texts(*(EQ_TYPE_TEXT[n] for n in names)),
            select_by_text=True,
        )
        t.number(
            f"filterFrequency{i}",
            f"Filter Frequency {i + 1}",
            "Hz",
            f"{band}.frequency_hz",
            1,
            _EQ_FREQUENCY_DEFAULTS[i],
            skew=0.4,
            display=_fixed(0),
        )
        t.number(f"filterQ{i}", f"Filter Q {i + 1}", "", f"{band}.q", 0.05, 0.7, display=_fixed(2))
        t.number(f"filterGain{i}", f"Filter Gain {i + 1}", "dB", f"{band}.gain_db", 0.1, 0, display=_fixed(1))
    return PluginDef(
        "MultiEQ", "MuEQ", tuple(t.params), t.bindings, {"inputChannelsSetting": 0.0}, channels=1, role="equaliser"
    )


def _omnicompressor() -> PluginDef:
    t = _Table()
    t.own(
        "orderSetting",
        "Ambisonics Order",
        "",
        0,
        8,
        1,
        0,
        display=_texts("Auto", "0th", "1st", "2nd", "3rd", "4th", "5th", "6th", "7th"),
    )
    t.own("useSN3D", "Normalization", "", 0, 1, 1, 1, display=_texts("N3D", "SN3D"))
    t.number("threshold", "Threshold", "dB", "compressor.threshold_db", 0.1, -10, display=_fixed(1))
    t.number("knee", "Knee", "dB", "compressor.knee_db", 0.1, 0, display=_fixed(1))
    t.number("attack", "Attack Time", "ms", "compressor.attack_ms", 0.1, 30, display=_fixed(1))
    t.number("release", "Release Time", "ms", "compressor.release_ms", 0.1, 150, display=_fixed(1))
    t.number("ratio", "Ratio", " : 1", "compressor.ratio", 0.2, 4, display=_ratio_text)
    t.number("outGain", "MakeUp Gain", "dB", "compressor.makeup_db", 0.1, 0, display=_fixed(1))
    t.own(
        "lookAhead",
        "LookAhead",
        "",
        0,
        1,
        1,
        0,
        Binding("compressor.lookahead", "bool"),
        display=_texts("OFF", "ON (5ms)"),
    )
    t.own("reportLatency", "Report Latency to DAW", "", 0, 1, 1, 1, display=_texts("No", "Yes"))
    # Auto order on a mono input compresses that channel; the DAW compensates the lookahead latency.
    fixed = {"orderSetting": 0.0, "useSN3D": 1.0, "reportLatency": 1.0}
    return PluginDef("OmniCompressor", "OmCo", tuple(t.params), t.bindings, fixed, channels=1, role="compressor")


def _fdnreverb() -> PluginDef:
    t = _Table()
    t.number("delayLength", "Room Size", "", "reverb.room_size", 1, 20, display=_fixed(0))
    t.number(
        "revTime", "Reverberation Time", "s", "reverb.reverb_time_s", 0.1, FDN_DEFAULT_REV_TIME_S, display=_fixed(1)
    )
    t.number("lowCutoff", "Lows Cutoff Frequency", "Hz", "reverb.low_cutoff_hz", 1, 100, skew=0.2, display=_fixed(0))
    t.number("lowQ", "Lows Q Factor", "", "reverb.low_q", 0.01, 0.5, display=_fixed(2))
    t.number("lowGain", "Lows Gain", "dB/s", "reverb.low_gain_db_per_s", 0.1, 1, display=_fixed(1))
    t.number(
        "highCutoff", "Highs Cutoff Frequency", "Hz", "reverb.high_cutoff_hz", 1, 2000, skew=0.2, display=_fixed(0)
    )
    t.number("highQ", "Highs Q Factor", "", "reverb.high_q", 0.01, 0.5, display=_fixed(2))
    t.number("highGain", "Highs Gain", "dB/s", "reverb.high_gain_db_per_s", 0.1, -10, display=_fixed(1))
    t.own(
        "hpOrder",
        "Highpass Slope",
        "",
        0,
        3,
        1,
        0,
        display=_texts("disabled", "6 dB/oct", "12 dB/oct", "24 dB/oct"),
        since="1.15",
    )
    t.own("hpFrequency", "Highpass Cutoff Frequency", "Hz", 20, 20000, 1, 20, skew=0.4, display=_fixed(0), since="1.15")
    t.own("hpQ", "Highpass Q Factor", "", 0.01, 0.9, 0.01, 0.7, display=_fixed(2), since="1.15")
    # The plug-in's Dry/Wet is a fraction; the setting is a percentage.
    t.number("dryWet", "Dry/Wet", "", "reverb.dry_wet_pct", 0.01, 0.5, scale=0.01, display=_fixed(2))
    t.number("fadeInTime", "Fade-in Time", "s", "reverb.fade_in_s", 0.01, 0, display=_fixed(2))
    t.own(
        "fdnSize",
        "Fdn Size (internal)",
        "",
        0,
        len(FDN_LINE_COUNTS) - 1,
        1,
        2,
        Binding("reverb.fdn_lines", "fdn_lines"),
        display=_texts(*(str(n) for n in FDN_LINE_COUNTS)),
        select_by_text=True,
    )
    t.own("freeze", "Freeze", "", 0, 1, 1, 0, since="1.15")
    # The v1.15-only controls are written switched off, so an instance that had them on is reset;
    # v1.14 ignores PARAMs it does not know.
    fixed = {"hpOrder": 0.0, "hpFrequency": 20.0, "hpQ": 0.7, "freeze": 0.0}
    return PluginDef("FdnReverb", "FdRe", tuple(t.params), t.bindings, fixed, channels=2, role="reverb")


#: The vocal chain in signal order.
PLUGINS: tuple[PluginDef, ...] = (_multieq(), _omnicompressor(), _fdnreverb())
PLUGINS_BY_NAME = {p.name: p for p in PLUGINS}
PLUGINS_BY_CLASS_ID = {p.class_id: p for p in PLUGINS}
#: Parameters that change the sound but have no vocalmix setting: importing a non-neutral value warns.
_UNSUPPORTED_SOUND_PARAMS = {("FdnReverb", "hpOrder"), ("FdnReverb", "freeze")}


# -- settings as a nested dict, addressed by dotted names -----------------------------------
_PATH_PART = re.compile(r"(\w+)(?:\[(\d+)\])?")


def _keys(path: str) -> list[Union[str, int]]:
    keys: list[Union[str, int]] = []
    for part in path.split("."):
        m = _PATH_PART.fullmatch(part)
        if m is None:
            raise ValueError(f"not a setting path: {path!r}")
        keys.append(m.group(1))
        if m.group(2) is not None:
            keys.append(int(m.group(2)))
    return keys


def get_path(data: dict, path: str) -> Any:
    """The value at a dotted setting name (``eq.bands[2].q``) of a settings dict."""
    for key in _keys(path):
        data = data[key]
    return data


def set_path(data: dict, path: str, value: object) -> None:
    """Set the value at a dotted setting name of a settings dict."""
    *head, last = _keys(path)
    for key in head:
        data = data[key]
    data[last] = value


def _with_unit(value: float, unit: str) -> str:
    return f"{value:g} {unit}".rstrip()


# -- settings -> plug-in values ---------------------------------------------------------------
@dataclass
class PluginState:
    """The values one plug-in gets: ``param id -> plain value`` on the plug-in's grid, in its units."""

    plugin: PluginDef
    values: dict[str, float]

    def xml(self) -> str:
        """The state XML: every parameter, sorted by ID as a fresh APVTS holds them, stored as float32."""
        params = []
        for param_id in sorted(self.values):
            param = self.plugin.param(param_id)
            k, _ = param.grid_index(self.values[param_id])
            params.append((param_id, juce_double_text(param.stored_value(k))))
        return state_xml(self.plugin.name, params, self.plugin.osc_config())

    def blob(self) -> bytes:
        return pack_state(self.xml())

    def display(self, param_id: str) -> Optional[str]:
        return self.plugin.param(param_id).display(self.values[param_id])


def plugin_states(settings: MixSettings, warn: bool = True) -> list[PluginState]:
    """Map settings onto the three plug-ins, snapping to their grids; with ``warn`` each change is logged
    as a warning (off where the caller asked for the snapping)."""
    say = log.warning if warn else _quiet
    data = settings.to_dict()
    specs: dict[str, ParamSpec] = {name: spec for name, _, spec in iter_numeric(settings)}
    states = []
    for plugin in PLUGINS:
        values: dict[str, float] = {}
        for param in plugin.params:
            binding = plugin.bindings.get(param.id)
            if binding is None:
                values[param.id] = plugin.fixed[param.id]
                continue
            setting = get_path(data, binding.setting)
            if binding.kind == "bool":
                values[param.id] = 1.0 if setting else 0.0
            elif binding.kind == "filter_type":
                values[param.id] = float(EQ_TYPES_V114[binding.band].index(setting))
            elif binding.kind == "fdn_lines":
                values[param.id] = float(FDN_LINE_COUNTS.index(setting))
                if setting not in FDN_LINES_V114:
                    say(
                        "setting '%s' = %d lines needs FdnReverb v1.15; FdnReverb v1.14 offers at most %d "
                        "lines and will use %d",
                        binding.setting,
                        setting,
                        FDN_LINES_V114[-1],
                        FDN_LINES_V114[-1],
                    )
            else:
                values[param.id] = _snap(plugin, param, binding, float(setting), specs[binding.setting].unit, say)
        states.append(PluginState(plugin, values))
    for i, band in enumerate(settings.eq.bands):
        q = states[0].values[f"filterQ{i}"]
        if band.enabled and band.type in ("highpass_lr", "lowpass_lr") and q != LR_DEFAULT_Q:
            say(
                "setting 'eq.bands[%d].q' = %g shapes the 24 dB/oct filter only in MultiEQ v1.14; "
                "MultiEQ v1.15 always uses Q 0.707 for that type",
                i,
                q,
            )
    rev_time = states[2].values["revTime"]
    if rev_time == FDN_DEFAULT_REV_TIME_S:
        say(
            "setting 'reverb.reverb_time_s' = %g s equals FdnReverb's default, which a fresh FdnReverb "
            "does not apply when a preset loads (it keeps a 3 s decay): after loading, move Reverberation "
            "Time away and back",
            rev_time,
        )
    return states


def exported_settings(settings: MixSettings, states: list[PluginState]) -> MixSettings:
    """``settings`` with every plug-in setting replaced by the value the plug-in holds (what import reads)."""
    data = settings.to_dict()
    for state in states:
        for setting, value in plugin_settings(state.plugin, state.values, state.plugin.name).items():
            set_path(data, setting, value)
    return MixSettings.from_dict(data)


def snap_to_plugin_grids(settings: MixSettings) -> MixSettings:
    """``settings`` as the three plug-ins would hold them, so a render matches the exported presets.

    Unlike :func:`export_settings` this is silent: the caller asked for the snapping.
    """
    return exported_settings(settings, plugin_states(settings, warn=False))


def _quiet(*args: object, **kwargs: object) -> None:
    """A warning nobody asked for."""


def _snap(
    plugin: PluginDef,
    param: ParamDef,
    binding: Binding,
    setting: float,
    unit: str,
    say: Callable[..., None] = log.warning,
) -> float:
    """The grid value nearest ``setting`` (in plug-in units), telling ``say`` when it differs."""
    wanted = setting * binding.scale
    k, clamped = param.grid_index(wanted)
    value = param.grid_value(k)
    back = round(value / binding.scale, 9) + 0.0
    if clamped:
        low, high = round(param.start / binding.scale, 9), round(param.end / binding.scale, 9)
        say(
            "setting '%s' = %s is outside the range %s can store (%s to %s); exported as %s",
            binding.setting,
            _with_unit(setting, unit),
            plugin.name,
            f"{low:g}",
            _with_unit(high, unit),
            _with_unit(back, unit),
        )
    elif abs(value - wanted) > 1e-9 * max(1.0, abs(wanted)):
        step = round(param.interval / binding.scale, 9)
        say(
            "setting '%s' = %s is not on %s's %s grid; exported as %s",
            binding.setting,
            _with_unit(setting, unit),
            plugin.name,
            _with_unit(step, unit),
            _with_unit(back, unit),
        )
    return value


def reverb_tail_seconds(settings: MixSettings) -> float:
    """Silence to append so the reverb can decay by 60 dB in every band (capped at 30 s)."""
    r = settings.reverb
    decay_rate = 60.0 / r.reverb_time_s  # dB/s; the shelves add their dB/s in their bands
    slowest = min(decay_rate, decay_rate - r.low_gain_db_per_s, decay_rate - r.high_gain_db_per_s)
    tail = MAX_TAIL_S if slowest <= 0 else min(MAX_TAIL_S, 60.0 / slowest)
    return round(min(MAX_TAIL_S, tail + r.fade_in_s) + 0.05, 1)


def read_number(value: object, source: str, name: str) -> float:
    """``value`` as a finite float, or a one-line error naming ``source`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{source}: '{name}' has value {value!r}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{source}: '{name}' has value {value!r}, not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{source}: '{name}' has value {value!r}, not a finite number")
    return number


def plugin_settings(plugin: PluginDef, raw: Mapping[str, object], source: str) -> dict[str, object]:
    """Map one plug-in's stored values onto settings, snapping like the plug-in does on load."""
    result: dict[str, object] = {}
    steps: dict[str, int] = {}
    filter_types: dict[int, int] = {}
    for param_id, text in raw.items():
        if param_id not in plugin.by_id:
            log.debug("%s: %s parameter '%s' is not one vocalmix knows; ignored", source, plugin.name, param_id)
            continue
        param = plugin.param(param_id)
        value = read_number(text, source, f"{plugin.name}.{param_id}")
        binding = plugin.bindings.get(param_id)
        if binding is not None and binding.kind == "filter_type":
            # Stored values differ between versions, so they are decoded together below, not clamped here.
            filter_types[binding.band] = int(math.floor(value + 0.5))
            if abs(value - filter_types[binding.band]) > 1e-4:
                log.warning(
                    "%s: MultiEQ '%s' = %s is not a whole number; read as %d",
                    source,
                    param_id,
                    text,
                    filter_types[binding.band],
                )
            continue
        k, clamped = param.grid_index(value)
        grid = param.grid_value(k)
        # A stored float32 sits within float precision of its grid value; more than that means hand-editing.
        if clamped:
            log.warning(
                "%s: %s '%s' = %s is outside its range [%g, %g]; read as %g",
                source,
                plugin.name,
                param_id,
                text,
                param.start,
                param.end,
                grid,
            )
        elif abs(value - grid) > 1e-4 * param.interval + 1e-6 * abs(value):
            log.warning(
                "%s: %s '%s' = %s is not on its %g grid; read as %g",
                source,
                plugin.name,
                param_id,
                text,
                param.interval,
                grid,
            )
        steps[param_id] = k
    for band, name in _decode_filter_types(filter_types, source).items():
        result[f"eq.bands[{band}].type"] = name
    for param_id, k in steps.items():
        binding = plugin.bindings.get(param_id)
        param = plugin.param(param_id)
        if binding is None:
            if (plugin.name, param_id) in _UNSUPPORTED_SOUND_PARAMS and k != 0:
                log.warning(
                    "%s: %s '%s' is %s, which vocalmix cannot model; ignored",
                    source,
                    plugin.name,
                    param_id,
                    param.display(param.grid_value(k)) or param.grid_value(k),
                )
            continue
        if binding.kind == "bool":
            result[binding.setting] = bool(k)
        elif binding.kind == "fdn_lines":
            result[binding.setting] = FDN_LINE_COUNTS[k]
        elif binding.kind == "number":
            result[binding.setting] = round(param.grid_value(k) / binding.scale, 9) + 0.0
    return result


def _decode_filter_types(types: dict[int, int], source: str) -> dict[int, str]:
    """MultiEQ filter types (band -> stored value) from states of either version.

    As MultiEQ v1.15 does on load: a band-2 type below 3 marks the whole state as
    v1.14 values. Without band 2 each band is judged by its own value. Values a
    band does not offer are clamped as the plug-in clamps them, with a warning.
    """
    legacy_marker = types.get(1)
    result = {}
    for band, value in sorted(types.items()):
        if band == 0:
            legacy = True  # band 1 stores the same values in both versions
        elif legacy_marker is not None:
            legacy = legacy_marker < EQ_TYPE_RANGE_V115[1][0]
        else:
            legacy = value < EQ_TYPE_RANGE_V115[band][0]
        if legacy:
            names = EQ_TYPES_V114[band]
            index = min(max(value, 0), len(names) - 1)
            name = names[index]
        else:
            low, high = EQ_TYPE_RANGE_V115[band]
            index = min(max(value, low), high)
            name = _EQ_TYPE_BY_V115_VALUE[index]
        if index != value:
            log.warning(
                "%s: MultiEQ 'filterType%d' = %d is not a filter type band %d offers; read as %s",
                source,
                band,
                value,
                band + 1,
                name,
            )
        result[band] = name
    return result
