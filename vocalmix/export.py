"""Export settings in forms real tools load, and import them back.

``vocalmix export`` writes, for the three IEM plug-ins the vocal chain is modelled
on (MultiEQ -> OmniCompressor -> FdnReverb, see ``shared/notes/iem-plugins.md``):

* ``<Plugin>.xml`` - the plug-in state as the plug-in stores it (JUCE APVTS XML,
  the plug-in's parameter IDs with plain values), and ``<Plugin>.bin`` - the same
  XML in the "VC2!" blob that ``getStateInformation`` returns (a VST2 chunk, a
  VST3 component state);
* ``<Plugin>.vstpreset`` - that blob in a VST3 preset file;
* ``vocal_chain.json`` and ``vocal_chain_pedalboard.py`` - every parameter as data,
  and a script that renders the vocal with the real plug-ins through pedalboard;
* ``mix_sheet.md`` - the settings to dial in by hand, in signal-chain order.

The plug-ins store values on grids (whole Hz, 0.1 dB, Q in 0.05 steps, ...);
vocalmix settings are continuous. Every value is snapped to the nearest value the
plug-in can hold, and each change is logged as a warning naming the setting.

``vocalmix import`` reads the plug-in states (XML, blob or .vstpreset, any of the
three plug-ins) and ``vocal_chain.json`` back into settings. Export -> import ->
export reproduces the files byte for byte.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Callable, Iterable, Optional, Union

import numpy as np
import typer

from .errors import InputError, SettingsError
from .preset_formats import (COMPONENT_CHUNK, STATE_MAGIC, VSTPRESET_MAGIC, juce_double_text, juce_vst3_class_id,
                             pack_state, pack_vstpreset, parse_state_xml, state_xml, unpack_state, unpack_vstpreset)
from .settings import FDN_LINE_COUNTS, FILTER_TYPES, N_EQ_BANDS, MixSettings, ParamSpec, describe, iter_numeric

log = logging.getLogger("vocalmix")

MANUFACTURER_CODE = "IEMA"
FORMATS = ("iem", "vstpreset", "pedalboard", "sheet")
CHAIN_FILE = "vocal_chain.json"
SCRIPT_FILE = "vocal_chain_pedalboard.py"
SHEET_FILE = "mix_sheet.md"
CHAIN_FORMAT = "vocalmix-vocal-chain"
CHAIN_FORMAT_VERSION = 1

#: FdnReverb ignores a loaded revTime equal to its default (see the notes, section 2, "Quirk").
FDN_DEFAULT_REV_TIME_S = 5.0
#: The FdnReverb of v1.14 offers 16, 32 or 64 lines; 128 and 256 need v1.15.
FDN_LINES_V114 = (16, 32, 64)
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
        return proportion if self.skew == 1.0 else proportion ** self.skew


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
        return [("ReceiverPort", "-1"), ("SenderIP", ""), ("SenderPort", "-1"),
                ("SenderOSCAddress", f"/{self.name}/"), ("SenderInterval", "100")]


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
    "highpass1": "HP (6dB/oct)", "highpass2": "HP (12dB/oct)", "highpass_lr": "HP (24dB/oct)",
    "low_shelf": "Low-shelf", "peak": "Peak", "high_shelf": "High-shelf",
    "lowpass1": "LP (6dB/Oct)", "lowpass2": "LP (12dB/oct)", "lowpass_lr": "LP (24dB/oct)",
}
_EQ_TYPE_BY_V115_VALUE = {value: name for name, value in FILTER_TYPES.items()}
_EQ_FREQUENCY_DEFAULTS = (20.0, 120.0, 500.0, 2200.0, 8000.0, 16000.0)
_EQ_TYPE_DEFAULTS_V114 = (1.0, 1.0, 1.0, 1.0, 1.0, 3.0)


def _multieq() -> PluginDef:
    params = [ParamDef("inputChannelsSetting", "Number of input channels ", "", 0, 64, 1, 0,
                       display=lambda v: "Auto" if v < 0.5 else f"{v:g}")]
    bindings: dict[str, Binding] = {}
    for i in range(N_EQ_BANDS):
        names = EQ_TYPES_V114[i]
        band = f"eq.bands[{i}]"
        params += [
            ParamDef(f"filterEnabled{i}", f"Filter Enablement {i + 1}", "", 0, 1, 1, 1, display=_texts("OFF", "ON")),
            ParamDef(f"filterType{i}", f"Filter Type {i + 1}", "", 0, len(names) - 1, 1, _EQ_TYPE_DEFAULTS_V114[i],
                     display=_texts(*(EQ_TYPE_TEXT[n] for n in names)), select_by_text=True),
            ParamDef(f"filterFrequency{i}", f"Filter Frequency {i + 1}", "Hz", 20, 20000, 1,
                     _EQ_FREQUENCY_DEFAULTS[i], skew=0.4, display=_fixed(0)),
            ParamDef(f"filterQ{i}", f"Filter Q {i + 1}", "", 0.05, 8, 0.05, 0.7, display=_fixed(2)),
            ParamDef(f"filterGain{i}", f"Filter Gain {i + 1}", "dB", -60, 15, 0.1, 0, display=_fixed(1)),
        ]
        bindings[f"filterEnabled{i}"] = Binding(f"{band}.enabled", "bool")
        bindings[f"filterType{i}"] = Binding(f"{band}.type", "filter_type", band=i)
        bindings[f"filterFrequency{i}"] = Binding(f"{band}.frequency_hz")
        bindings[f"filterQ{i}"] = Binding(f"{band}.q")
        bindings[f"filterGain{i}"] = Binding(f"{band}.gain_db")
    return PluginDef("MultiEQ", "MuEQ", tuple(params), bindings, {"inputChannelsSetting": 0.0}, channels=1,
                     role="equaliser")


def _omnicompressor() -> PluginDef:
    params = (
        ParamDef("orderSetting", "Ambisonics Order", "", 0, 8, 1, 0,
                 display=_texts("Auto", "0th", "1st", "2nd", "3rd", "4th", "5th", "6th", "7th")),
        ParamDef("useSN3D", "Normalization", "", 0, 1, 1, 1, display=_texts("N3D", "SN3D")),
        ParamDef("threshold", "Threshold", "dB", -50, 10, 0.1, -10, display=_fixed(1)),
        ParamDef("knee", "Knee", "dB", 0, 30, 0.1, 0, display=_fixed(1)),
        ParamDef("attack", "Attack Time", "ms", 0, 100, 0.1, 30, display=_fixed(1)),
        ParamDef("release", "Release Time", "ms", 0, 500, 0.1, 150, display=_fixed(1)),
        ParamDef("ratio", "Ratio", " : 1", 1, 16, 0.2, 4, display=_ratio_text),
        ParamDef("outGain", "MakeUp Gain", "dB", -10, 20, 0.1, 0, display=_fixed(1)),
        ParamDef("lookAhead", "LookAhead", "", 0, 1, 1, 0, display=_texts("OFF", "ON (5ms)")),
        ParamDef("reportLatency", "Report Latency to DAW", "", 0, 1, 1, 1, display=_texts("No", "Yes")),
    )
    bindings = {
        "threshold": Binding("compressor.threshold_db"),
        "knee": Binding("compressor.knee_db"),
        "attack": Binding("compressor.attack_ms"),
        "release": Binding("compressor.release_ms"),
        "ratio": Binding("compressor.ratio"),
        "outGain": Binding("compressor.makeup_db"),
        "lookAhead": Binding("compressor.lookahead", "bool"),
    }
    # Auto order on a mono input compresses that channel; the DAW compensates the lookahead latency.
    fixed = {"orderSetting": 0.0, "useSN3D": 1.0, "reportLatency": 1.0}
    return PluginDef("OmniCompressor", "OmCo", params, bindings, fixed, channels=1, role="compressor")


def _fdnreverb() -> PluginDef:
    params = (
        ParamDef("delayLength", "Room Size", "", 1, 30, 1, 20, display=_fixed(0)),
        ParamDef("revTime", "Reverberation Time", "s", 0.1, 9, 0.1, FDN_DEFAULT_REV_TIME_S, display=_fixed(1)),
        ParamDef("lowCutoff", "Lows Cutoff Frequency", "Hz", 20, 20000, 1, 100, skew=0.2, display=_fixed(0)),
        ParamDef("lowQ", "Lows Q Factor", "", 0.01, 0.9, 0.01, 0.5, display=_fixed(2)),
        ParamDef("lowGain", "Lows Gain", "dB/s", -80, 6, 0.1, 1, display=_fixed(1)),
        ParamDef("highCutoff", "Highs Cutoff Frequency", "Hz", 20, 20000, 1, 2000, skew=0.2, display=_fixed(0)),
        ParamDef("highQ", "Highs Q Factor", "", 0.01, 0.9, 0.01, 0.5, display=_fixed(2)),
        ParamDef("highGain", "Highs Gain", "dB/s", -80, 4, 0.1, -10, display=_fixed(1)),
        ParamDef("hpOrder", "Highpass Slope", "", 0, 3, 1, 0,
                 display=_texts("disabled", "6 dB/oct", "12 dB/oct", "24 dB/oct"), since="1.15"),
        ParamDef("hpFrequency", "Highpass Cutoff Frequency", "Hz", 20, 20000, 1, 20, skew=0.4, display=_fixed(0),
                 since="1.15"),
        ParamDef("hpQ", "Highpass Q Factor", "", 0.01, 0.9, 0.01, 0.7, display=_fixed(2), since="1.15"),
        ParamDef("dryWet", "Dry/Wet", "", 0, 1, 0.01, 0.5, display=_fixed(2)),
        ParamDef("fadeInTime", "Fade-in Time", "s", 0, 9, 0.01, 0, display=_fixed(2)),
        ParamDef("fdnSize", "Fdn Size (internal)", "", 0, 4, 1, 2,
                 display=_texts(*(str(n) for n in FDN_LINE_COUNTS)), select_by_text=True),
        ParamDef("freeze", "Freeze", "", 0, 1, 1, 0, since="1.15"),
    )
    bindings = {
        "delayLength": Binding("reverb.room_size"),
        "revTime": Binding("reverb.reverb_time_s"),
        "lowCutoff": Binding("reverb.low_cutoff_hz"),
        "lowQ": Binding("reverb.low_q"),
        "lowGain": Binding("reverb.low_gain_db_per_s"),
        "highCutoff": Binding("reverb.high_cutoff_hz"),
        "highQ": Binding("reverb.high_q"),
        "highGain": Binding("reverb.high_gain_db_per_s"),
        "dryWet": Binding("reverb.dry_wet_pct", scale=0.01),
        "fadeInTime": Binding("reverb.fade_in_s"),
        "fdnSize": Binding("reverb.fdn_lines", "fdn_lines"),
    }
    # The v1.15-only controls are written switched off, so an instance that had them on is reset;
    # v1.14 ignores PARAMs it does not know.
    fixed = {"hpOrder": 0.0, "hpFrequency": 20.0, "hpQ": 0.7, "freeze": 0.0}
    return PluginDef("FdnReverb", "FdRe", params, bindings, fixed, channels=2, role="reverb")


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
        keys.append(m.group(1))
        if m.group(2) is not None:
            keys.append(int(m.group(2)))
    return keys


def _get(data: dict, path: str):
    for key in _keys(path):
        data = data[key]
    return data


def _set(data: dict, path: str, value) -> None:
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
            setting = _get(data, binding.setting)
            if binding.kind == "bool":
                values[param.id] = 1.0 if setting else 0.0
            elif binding.kind == "filter_type":
                values[param.id] = float(EQ_TYPES_V114[binding.band].index(setting))
            elif binding.kind == "fdn_lines":
                values[param.id] = float(FDN_LINE_COUNTS.index(setting))
                if setting not in FDN_LINES_V114:
                    say("setting '%s' = %d lines needs FdnReverb v1.15; FdnReverb v1.14 offers at most %d "
                                "lines and will use %d", binding.setting, setting, FDN_LINES_V114[-1],
                                FDN_LINES_V114[-1])
            else:
                values[param.id] = _snap(plugin, param, binding, float(setting), specs[binding.setting].unit, say)
        states.append(PluginState(plugin, values))
    for i, band in enumerate(settings.eq.bands):
        q = states[0].values[f"filterQ{i}"]
        if band.enabled and band.type in ("highpass_lr", "lowpass_lr") and q != LR_DEFAULT_Q:
            say("setting 'eq.bands[%d].q' = %g shapes the 24 dB/oct filter only in MultiEQ v1.14; "
                        "MultiEQ v1.15 always uses Q 0.707 for that type", i, q)
    rev_time = states[2].values["revTime"]
    if rev_time == FDN_DEFAULT_REV_TIME_S:
        say("setting 'reverb.reverb_time_s' = %g s equals FdnReverb's default, which a fresh FdnReverb "
                    "does not apply when a preset loads (it keeps a 3 s decay): after loading, move Reverberation "
                    "Time away and back", rev_time)
    return states


def exported_settings(settings: MixSettings, states: list[PluginState]) -> MixSettings:
    """``settings`` with every plug-in setting replaced by the value the plug-in holds (what import reads)."""
    data = settings.to_dict()
    for state in states:
        for setting, value in _plugin_settings(state.plugin, state.values, state.plugin.name).items():
            _set(data, setting, value)
    return MixSettings.from_dict(data)


def snap_to_plugin_grids(settings: MixSettings) -> MixSettings:
    """``settings`` as the three plug-ins would hold them, so a render matches the exported presets.

    Unlike :func:`export_settings` this is silent: the caller asked for the snapping.
    """
    return exported_settings(settings, plugin_states(settings, warn=False))


def _quiet(*args, **kwargs) -> None:
    """A warning nobody asked for."""


def _snap(plugin: PluginDef, param: ParamDef, binding: Binding, setting: float, unit: str,
          say: Callable[..., None] = log.warning) -> float:
    """The grid value nearest ``setting`` (in plug-in units), telling ``say`` when it differs."""
    wanted = setting * binding.scale
    k, clamped = param.grid_index(wanted)
    value = param.grid_value(k)
    back = round(value / binding.scale, 9) + 0.0
    if clamped:
        low, high = round(param.start / binding.scale, 9), round(param.end / binding.scale, 9)
        say("setting '%s' = %s is outside the range %s can store (%s to %s); exported as %s",
                    binding.setting, _with_unit(setting, unit), plugin.name, f"{low:g}", _with_unit(high, unit),
                    _with_unit(back, unit))
    elif abs(value - wanted) > 1e-9 * max(1.0, abs(wanted)):
        step = round(param.interval / binding.scale, 9)
        say("setting '%s' = %s is not on %s's %s grid; exported as %s", binding.setting,
                    _with_unit(setting, unit), plugin.name, _with_unit(step, unit), _with_unit(back, unit))
    return value


# -- the pedalboard data and script ------------------------------------------------------------
def python_parameter_name(name: str) -> str:
    """The attribute name pedalboard gives a parameter: display name + unit, snake-cased.

    Our own restatement of pedalboard's rule (lower case, every run of other
    characters becomes one underscore, no leading or trailing underscores).
    """
    text = name.lower().strip().replace("#", "_sharp").replace("\u266f", "_sharp").replace("\u266d", "_flat")
    text = "".join(c if (c.isalpha() or c.isnumeric()) and c.isprintable() and ord(c) < 128 else "_" for c in text)
    return re.sub(r"_+", "_", text).strip("_")


def pedalboard_name(param: ParamDef) -> str:
    full = f"{param.name} {param.label}" if param.label and not param.label.startswith(":") else param.name
    return python_parameter_name(full)


def reverb_tail_seconds(settings: MixSettings) -> float:
    """Silence to append so the reverb can decay by 60 dB in every band (capped at 30 s)."""
    r = settings.reverb
    decay_rate = 60.0 / r.reverb_time_s  # dB/s; the shelves add their dB/s in their bands
    slowest = min(decay_rate, decay_rate - r.low_gain_db_per_s, decay_rate - r.high_gain_db_per_s)
    tail = MAX_TAIL_S if slowest <= 0 else min(MAX_TAIL_S, 60.0 / slowest)
    return round(min(MAX_TAIL_S, tail + r.fade_in_s) + 0.05, 1)


def chain_document(settings: MixSettings, states: list[PluginState]) -> dict:
    """Every parameter of the chain as data: what ``vocal_chain.json`` holds and the script embeds."""
    stages = []
    for state in states:
        plugin = state.plugin
        params = []
        for param in plugin.params:
            value = state.values[param.id]
            entry = {
                "id": param.id,
                "name": param.name,
                "label": param.label,
                "pedalboard_name": pedalboard_name(param),
                "value": value,
                "display": param.display(value),
                "range": [param.start, param.end, param.interval],
                "skew": param.skew,
            }
            if param.select_by_text:
                entry["select_by_text"] = True
            else:
                entry["normalised"] = param.normalised(value)
            if param.since != "1.14":
                entry["since_version"] = param.since
            params.append(entry)
        stage = {"plugin": plugin.name, "role": plugin.role, "vst3_file": f"{plugin.name}.vst3",
                 "vst3_class_id": plugin.class_id, "channels": plugin.channels, "parameters": params}
        if plugin.name == "FdnReverb":
            stage["tail_s"] = reverb_tail_seconds(settings)
        stages.append(stage)
    return {
        "format": CHAIN_FORMAT,
        "format_version": CHAIN_FORMAT_VERSION,
        "chain": stages,
        "vocal_gain_db": settings.level.vocal_gain_db,
        "output": {"ceiling_dbtp": settings.output.ceiling_dbtp,
                   "target_loudness_lufs": settings.output.target_loudness_lufs},
    }


_SCRIPT_TEMPLATE = r'''#!/usr/bin/env python3
"""Render the lead vocal through the real IEM plug-ins with the settings vocalmix decided.

    python vocal_chain_pedalboard.py VOCAL.wav OUT.wav PLUGIN_FOLDER [--no-tail] [--presets DIR]

Written by `vocalmix export`. Needs `pip install pedalboard numpy` and the VST3s
MultiEQ.vst3, OmniCompressor.vst3 and FdnReverb.vst3 of the IEM Plug-in Suite in
PLUGIN_FOLDER (or a folder below it).

The chain: the vocal summed to mono -> MultiEQ (mono) -> OmniCompressor (mono:
with two channels it would compress only the first) -> FdnReverb (fed a stereo
copy) -> vocal fader gain. Silence is appended so the reverb tail is kept
(--no-tail cuts the result back to the input length). OUT is a stereo float WAV.

Parameters are set by name. pedalboard names a parameter by its display name
plus unit, snake-cased ("Filter Frequency 1" in Hz -> filter_frequency_1_hz);
those names are assumed from the plug-ins' source, so each lookup also tries the
name without the unit and stops with the list of names the plug-in offers if
neither exists. Values are set as the host-side 0..1 value computed from the
plug-in's range, which the plug-in snaps to its grid; menus whose stored values
differ between plug-in versions (filter types, FDN size) are picked by their
text. After setting, the text each plug-in shows is compared with the expected
one and any difference is printed.

FdnReverb applies Reverberation Time only when it changes, and a fresh instance
decays with 3 s whatever it shows, so the script moves Reverberation Time away
and back (with a short silent render in between) before rendering.

--presets DIR loads DIR/<Plugin>.vstpreset (written by the same export) instead
of setting parameters one by one.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

CHAIN = json.loads(r"""
__CHAIN_JSON__
""")


def python_name(text):
    """pedalboard's attribute name for a display name: lower case, other characters -> one underscore."""
    text = text.lower().strip().replace("#", "_sharp")
    text = "".join(c if (c.isalpha() or c.isnumeric()) and c.isprintable() and ord(c) < 128 else "_" for c in text)
    return re.sub(r"_+", "_", text).strip("_")


def find_plugin_file(folder, file_name):
    if not folder.is_dir():
        sys.exit(f"error: {folder}: not a folder; pass the folder that holds the IEM Plug-in Suite VST3s")
    direct = folder / file_name
    if direct.exists():
        return direct
    found = sorted(folder.rglob(file_name))
    if not found:
        sys.exit(f"error: {file_name} not found in {folder}; install the IEM Plug-in Suite VST3s "
                 "or pass the folder that holds them")
    return found[0]


def find_parameter(plugin, stage, param):
    available = plugin.parameters
    candidates = [param["pedalboard_name"], python_name(param["name"])]
    for name in candidates:
        if name in available:
            return available[name]
    if param.get("since_version"):
        return None  # an older plug-in without this control
    sys.exit(f"error: {stage['plugin']} has no parameter {' or '.join(candidates)} "
             f"(it has: {', '.join(sorted(available))})")


def raw_value_for_text(parameter, text):
    steps = parameter.num_steps if 1 < parameter.num_steps <= 4096 else 1001
    for i in range(steps):
        raw = i / (steps - 1)
        if parameter.get_text_for_raw_value(raw).strip() == text:
            return raw
    return None


def set_parameter(plugin, stage, param):
    parameter = find_parameter(plugin, stage, param)
    if parameter is None:
        return  # a control only newer versions have; the export sets it to its neutral value anyway
    if param.get("select_by_text"):
        raw = raw_value_for_text(parameter, param["display"])
        if raw is None:
            print(f"warning: {stage['plugin']} '{param['name']}' offers no '{param['display']}' "
                  "(an older version?); using its last choice")
            raw = 1.0
        parameter.raw_value = raw
    else:
        parameter.raw_value = param["normalised"]


def check_display(plugin, stage):
    for param in stage["parameters"]:
        if param["display"] is None:
            continue
        names = [param["pedalboard_name"], python_name(param["name"])]
        parameter = next((plugin.parameters[n] for n in names if n in plugin.parameters), None)
        if parameter is not None and parameter.string_value.strip() != param["display"]:
            print(f"warning: {stage['plugin']} shows '{parameter.string_value}' for '{param['name']}', "
                  f"expected '{param['display']}'")


def process(plugin, audio, sample_rate, channels):
    """Process with the given channel count; if a plug-in refuses mono, feed two copies and keep the first."""
    if channels == 1:
        try:
            return plugin.process(audio, sample_rate, reset=True)
        except Exception:
            out = plugin.process(np.repeat(audio, 2, axis=0), sample_rate, reset=True)
            return out[:1]
    return plugin.process(np.repeat(audio[:1], channels, axis=0), sample_rate, reset=True)


def refresh_reverb_time(plugin, stage, sample_rate):
    """Move Reverberation Time one step away and back so FdnReverb applies it (see the docstring)."""
    param = next(p for p in stage["parameters"] if p["id"] == "revTime")
    parameter = find_parameter(plugin, stage, param)
    start, end, interval = param["range"]
    step = interval / (end - start)
    target = param["normalised"]
    parameter.raw_value = target - step if target >= step else target + step
    plugin.process(np.zeros((2, 1024), dtype=np.float32), sample_rate, reset=True)
    parameter.raw_value = target


def main(argv=None):
    parser = argparse.ArgumentParser(description="Render the vocal chain with the real IEM plug-ins.")
    parser.add_argument("vocal", type=Path, help="the lead vocal (any channel count; summed to mono)")
    parser.add_argument("output", type=Path, help="the processed vocal, a stereo WAV")
    parser.add_argument("plugin_folder", type=Path, help="folder holding MultiEQ.vst3, OmniCompressor.vst3, "
                                                         "FdnReverb.vst3")
    parser.add_argument("--no-tail", action="store_true", help="cut the result to the input length")
    parser.add_argument("--presets", type=Path, help="load <Plugin>.vstpreset from this folder instead")
    args = parser.parse_args(argv)
    if not args.plugin_folder.is_dir():
        sys.exit(f"error: {args.plugin_folder}: not a folder; pass the folder that holds MultiEQ.vst3, "
                 "OmniCompressor.vst3 and FdnReverb.vst3")
    try:
        import pedalboard
        from pedalboard.io import AudioFile
    except ImportError:
        sys.exit("error: this script needs pedalboard (pip install pedalboard)")

    with AudioFile(str(args.vocal)) as f:
        sample_rate = f.samplerate
        audio = f.read(f.frames)
    vocal = np.mean(audio, axis=0, keepdims=True).astype(np.float32)
    length = vocal.shape[1]
    reverb_stage = next(s for s in CHAIN["chain"] if s["plugin"] == "FdnReverb")
    tail = int(round(reverb_stage["tail_s"] * sample_rate))
    signal = np.concatenate([vocal, np.zeros((1, tail), dtype=np.float32)], axis=1)

    for stage in CHAIN["chain"]:
        plugin_file = find_plugin_file(args.plugin_folder, stage["vst3_file"])
        try:
            plugin = pedalboard.load_plugin(str(plugin_file))
        except Exception as exc:  # pedalboard raises ImportError, ValueError or RuntimeError for a bad bundle
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            sys.exit(f"error: {plugin_file}: not a loadable VST3 plug-in ({message})")
        if args.presets is not None:
            plugin.load_preset(str(args.presets / f"{stage['plugin']}.vstpreset"))
        else:
            for param in stage["parameters"]:
                set_parameter(plugin, stage, param)
        check_display(plugin, stage)
        if stage["plugin"] == "FdnReverb":
            refresh_reverb_time(plugin, stage, sample_rate)
        signal = process(plugin, signal, sample_rate, stage["channels"])

    signal = signal * np.float32(10 ** (CHAIN["vocal_gain_db"] / 20))
    if args.no_tail:
        signal = signal[:, :length]
    with AudioFile(str(args.output), "w", sample_rate, num_channels=signal.shape[0], bit_depth=32) as f:
        f.write(signal.astype(np.float32))
    print(f"wrote {args.output} ({signal.shape[1] / sample_rate:.2f} s, {signal.shape[0]} channels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _json_text(value, level: int = 0) -> str:
    """JSON with one parameter per line: nested objects from the parameters down stay on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value and level < 4:
        items = [f"{inner}{json.dumps(k)}: {_json_text(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value and level < 4 and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{inner}{_json_text(v, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def pedalboard_script(document: dict) -> str:
    """The runnable script, with the chain document embedded so it needs no other file."""
    text = _json_text(document)
    if '"""' in text:  # cannot happen with vocalmix's values; guards the raw string
        raise ValueError("chain document cannot be embedded")
    return _SCRIPT_TEMPLATE.replace("__CHAIN_JSON__", text)


# -- the sheet ----------------------------------------------------------------------------------
def _display_with_unit(state: PluginState, param_id: str) -> str:
    param = state.plugin.param(param_id)
    text = state.display(param_id)
    if text is None:
        text = f"{state.values[param_id]:g}"
    unit = param.label.strip()
    if param.id == "ratio":
        return f"{text} : 1" if text != "inf" else "inf (limiter)"
    return f"{text} {unit}".rstrip()


def mix_sheet(settings: MixSettings, states: list[PluginState]) -> str:
    """Markdown a person follows to dial the mix in by hand, in signal-chain order."""
    eq, comp, reverb = states
    lines = [
        "# Vocal chain settings",
        "",
        "Dial these in on the lead-vocal track, in this order. They are the IEM plug-ins' own controls "
        "(MultiEQ, OmniCompressor, FdnReverb), already rounded to the steps the plug-ins offer, so "
        "typing them in gives the same sound as the exported presets.",
        "",
        "Signal chain: vocal (mono) -> 1. MultiEQ -> 2. OmniCompressor -> 3. FdnReverb (stereo out) "
        "-> 4. vocal fader -> sum with the backing track -> 5. output stage.",
        "",
        "## 1. MultiEQ (equaliser)",
        "",
        "| Band | Filter Enablement | Filter Type | Filter Frequency | Filter Q | Filter Gain |",
        "|---|---|---|---|---|---|",
    ]
    for i in range(N_EQ_BANDS):
        cells = [_display_with_unit(eq, f"{pid}{i}")
                 for pid in ("filterEnabled", "filterType", "filterFrequency", "filterQ", "filterGain")]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Number of input channels: Auto. Q does nothing on the 6 dB/oct types; Gain acts only on shelves and "
        "peaks. Bands that are OFF are listed so the plug-in matches the preset exactly.",
        "",
        "## 2. OmniCompressor",
        "",
        "| Control | Setting |",
        "|---|---|",
    ]
    for pid in ("threshold", "ratio", "knee", "attack", "release", "outGain", "lookAhead"):
        lines.append(f"| {comp.plugin.param(pid).name} | {_display_with_unit(comp, pid)} |")
    lines += [
        "",
        "Ambisonics Order: Auto; Report Latency to DAW: Yes. Feed it the mono vocal: with a stereo input "
        "OmniCompressor compresses only the first (left) channel and passes the other unchanged. "
        "LookAhead ON delays the vocal by 5 ms, which the DAW compensates when latency is reported.",
        "",
        "## 3. FdnReverb",
        "",
        "| Control | Setting |",
        "|---|---|",
    ]
    for pid in ("delayLength", "revTime", "lowCutoff", "lowQ", "lowGain", "highCutoff", "highQ", "highGain",
                "dryWet", "fadeInTime", "fdnSize"):
        text = _display_with_unit(reverb, pid)
        if pid == "dryWet":
            text += f" ({settings.reverb.dry_wet_pct:g} % wet)"
        lines.append(f"| {reverb.plugin.param(pid).name} | {text} |")
    lines += [
        "| Highpass Slope (v1.15 only) | disabled |",
        "| Freeze (v1.15 only) | off |",
        "",
        "Feed it a stereo copy of the vocal (input and output channels 1 and 2). Dry/Wet is a fraction: "
        "0.15 means 15 % reverberated signal. Lows/Highs Gain are extra decay in dB per second below/above "
        "their cutoff.",
        "",
        "**Reverberation Time quirk:** FdnReverb applies Reverberation Time only when the value changes. "
        "A freshly inserted FdnReverb shows 5.0 s but decays like 3 s, so a preset or a typed value of "
        "5.0 s changes nothing. After loading, move Reverberation Time away and back to the value above"
        + (" - this preset uses 5.0 s, so this step is required." if reverb.values["revTime"]
           == FDN_DEFAULT_REV_TIME_S else " (harmless, and needed whenever the value is 5.0 s)."),
        "",
        "## 4. Vocal fader",
        "",
        f"Vocal level: **{_signed(settings.level.vocal_gain_db)} dB** (fader of the vocal track, after the "
        "plug-ins).",
        "",
        "## 5. Output stage (vocalmix's own, on the sum of vocal and backing)",
        "",
        f"True-peak ceiling: {_signed(settings.output.ceiling_dbtp)} dBTP. "
        + (f"Loudness target: {_signed(settings.output.target_loudness_lufs)} LUFS integrated, then a "
           "true-peak limiter." if settings.output.target_loudness_lufs is not None else
           "No loudness target: the mix is only turned down as a whole if its true peak is above the "
           "ceiling."),
        "",
    ]
    return "\n".join(lines)


def _signed(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return text if text.startswith("-") or text == "0" else f"+{text}"


# -- export -------------------------------------------------------------------------------------
def _check_formats(formats: Iterable[str]) -> list[str]:
    chosen: list[str] = []
    for item in formats:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                chosen.extend(FORMATS)
            elif name in FORMATS:
                chosen.append(name)
            else:
                raise InputError(f"unknown export format '{name}'; choose from {', '.join(FORMATS)} or all")
    if not chosen:
        raise InputError(f"no export format given; choose from {', '.join(FORMATS)} or all")
    return [f for f in FORMATS if f in chosen]


def export_files(settings: MixSettings, formats: Iterable[str] = FORMATS) -> dict[str, bytes]:
    """File name -> content for ``formats``, without writing anything (warnings are logged here)."""
    chosen = _check_formats(formats)
    settings = MixSettings.from_dict(settings.to_dict())  # validates, and works on a copy
    states = plugin_states(settings)
    # From here on only what the plug-ins hold counts, so files never depend on off-grid detail.
    settings = exported_settings(settings, states)
    files: dict[str, bytes] = {}
    if "iem" in chosen:
        for state in states:
            files[f"{state.plugin.name}.xml"] = state.xml().encode("utf-8")
        for state in states:
            files[f"{state.plugin.name}.bin"] = state.blob()
    if "vstpreset" in chosen:
        for state in states:
            files[f"{state.plugin.name}.vstpreset"] = pack_vstpreset(state.plugin.class_id, state.blob())
    if "pedalboard" in chosen:
        document = chain_document(settings, states)
        files[CHAIN_FILE] = (_json_text(document) + "\n").encode("utf-8")
        files[SCRIPT_FILE] = pedalboard_script(document).encode("utf-8")
    if "sheet" in chosen:
        files[SHEET_FILE] = mix_sheet(settings, states).encode("utf-8")
    return files


def export_paths(out_dir: Union[str, os.PathLike], formats: Iterable[str] = FORMATS) -> list[Path]:
    """The files :func:`export_settings` would write, so a caller can check them before long work."""
    names = {
        "iem": [f"{p.name}{suffix}" for suffix in (".xml", ".bin") for p in PLUGINS],
        "vstpreset": [f"{p.name}.vstpreset" for p in PLUGINS],
        "pedalboard": [CHAIN_FILE, SCRIPT_FILE],
        "sheet": [SHEET_FILE],
    }
    return [Path(out_dir) / name for fmt in _check_formats(formats) for name in names[fmt]]


def export_settings(settings: MixSettings, out_dir: Union[str, os.PathLike], formats: Iterable[str] = FORMATS,
                    force: bool = False) -> list[Path]:
    """Write ``settings`` to ``out_dir`` in ``formats`` (see :data:`FORMATS`); return the files written.

    The folder is created if needed. Existing files are refused unless ``force``,
    and nothing is written when one is refused. Each file is written to a
    temporary name in the folder and renamed, so no half-written file is left.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    # Refused before the files are made, so a refused export says only why.
    existing = [p for p in export_paths(out_dir, formats) if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise InputError(f"{existing[0]}: already exists{more} (use --force to overwrite)")
    files = export_files(settings, formats)
    targets = [out_dir / name for name in files]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the folder ({exc.strerror})") from None
    for path in targets:
        _write_atomic(path, files[path.name])
    return targets


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if path.suffix == ".py":
            os.chmod(tmp, 0o755)  # the script is meant to be run
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- import -------------------------------------------------------------------------------------
_STATE_SUFFIXES = (".xml", ".bin", ".vstpreset")


def import_settings(paths_or_dir: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
                    defaulted: Optional[list[str]] = None) -> MixSettings:
    """Read plug-in states (``.xml``, ``.bin`` blob, ``.vstpreset``) and ``vocal_chain.json`` into settings.

    A folder stands for the files an export writes into it. Settings no file
    mentions keep their :class:`MixSettings` defaults (the IEM states carry no
    vocal fader or output stage; ``vocal_chain.json`` does). Two files that set
    the same setting differently are refused, naming both.
    """
    values: dict[str, tuple[object, Path]] = {}
    for path in _expand(paths_or_dir):
        for setting, value in _read_settings(path).items():
            if setting in values and values[setting][0] != value:
                other_value, other = values[setting]
                raise InputError(f"{path}: sets '{setting}' to {value!r} but {other} sets it to {other_value!r}; "
                                 "import the one you mean")
            values[setting] = (value, path)
    data = MixSettings().to_dict()
    for setting, (value, _) in values.items():
        _set(data, setting, value)
    missing = [row["name"] for row in describe() if row["name"] not in values]
    if defaulted is not None:
        defaulted.extend(missing)
    if missing:
        relevel = " (no plug-in preset holds the vocal level: render with --settings FILE --relevel to decide it)" \
            if "level.vocal_gain_db" in missing else ""
        log.warning("%d settings are not in the imported files and keep their defaults: %s%s", len(missing),
                    _grouped(missing), relevel)
    try:
        return MixSettings.from_dict(data)
    except SettingsError as exc:  # pragma: no cover - every value was mapped into range above
        raise InputError(f"imported settings are invalid: {exc}") from None


def _grouped(names: list[str]) -> str:
    """Setting names, with a whole section or EQ band written as ``section.*`` when all of it is listed."""
    groups: dict[str, list[str]] = {}
    for row in describe():
        name = row["name"]
        key = name.rsplit(".", 1)[0] if name.startswith("eq.") else name.split(".", 1)[0]
        groups.setdefault(key, []).append(name)
    wanted, shown = set(names), []
    for key, members in groups.items():
        if all(m in wanted for m in members) and len(members) > 1:
            shown.append(f"{key}.*")
        else:
            shown.extend(m for m in members if m in wanted)
    return ", ".join(shown)


def _expand(paths_or_dir) -> list[Path]:
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else list(paths_or_dir)
    if not items:
        raise InputError("no files to import")
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = [path / f"{p.name}{suffix}" for p in PLUGINS for suffix in _STATE_SUFFIXES]
            found.append(path / CHAIN_FILE)
            found = [p for p in found if p.is_file()]
            if not found:
                raise InputError(f"{path}: no plug-in states here (expected MultiEQ/OmniCompressor/FdnReverb "
                                 f".xml, .bin or .vstpreset, or {CHAIN_FILE})")
            paths.extend(found)
        elif not path.exists():
            raise InputError(f"{path}: file not found")
        else:
            paths.append(path)
    return paths


def _read_settings(path: Path) -> dict[str, object]:
    """Settings one file sets, as ``dotted name -> value``."""
    source = str(path)
    try:
        data = path.read_bytes()
    except PermissionError:
        raise InputError(f"{source}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from None
    if data.startswith(VSTPRESET_MAGIC):
        preset = unpack_vstpreset(data, source)
        plugin = PLUGINS_BY_CLASS_ID.get(preset.class_id.upper())
        if plugin is None:
            raise InputError(f"{source}: a preset for another plug-in (class ID {preset.class_id}); expected "
                             f"{', '.join(p.name for p in PLUGINS)}")
        if COMPONENT_CHUNK not in preset.chunks:
            raise InputError(f"{source}: .vstpreset has no component state ('Comp' chunk)")
        xml_text = unpack_state(preset.chunks[COMPONENT_CHUNK], source)
        return _state_settings(xml_text, source, expected=plugin)
    if data.startswith(STATE_MAGIC):
        return _state_settings(unpack_state(data, source), source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source}: not an IEM plug-in state (neither a .vstpreset, a 'VC2!' state blob, "
                         "XML nor vocal_chain.json)") from None
    stripped = text.strip().rstrip("\0").strip()
    if stripped.startswith("<"):
        return _state_settings(stripped, source)
    if stripped.startswith("{"):
        return _chain_settings(stripped, source)
    raise InputError(f"{source}: not an IEM plug-in state (neither a .vstpreset, a 'VC2!' state blob, XML "
                     "nor vocal_chain.json)")


def _state_settings(xml_text: str, source: str, expected: Optional[PluginDef] = None) -> dict[str, object]:
    state = parse_state_xml(xml_text, source)
    plugin = PLUGINS_BY_NAME.get(state.root_tag)
    if plugin is None:
        raise InputError(f"{source}: state of '{state.root_tag}', not of {', '.join(p.name for p in PLUGINS)}")
    if expected is not None and plugin is not expected:
        raise InputError(f"{source}: the preset's class ID is {expected.name}'s but its state is {plugin.name}'s")
    return _plugin_settings(plugin, state.params, source)


def _chain_settings(text: str, source: str) -> dict[str, object]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != CHAIN_FORMAT:
        raise InputError(f"{source}: not a {CHAIN_FILE} written by vocalmix export (no \"format\": "
                         f"\"{CHAIN_FORMAT}\")")
    if doc.get("format_version") != CHAIN_FORMAT_VERSION:
        raise InputError(f"{source}: format_version {doc.get('format_version')!r} is not supported "
                         f"(expected {CHAIN_FORMAT_VERSION})")
    chain = doc.get("chain")
    if not isinstance(chain, list):
        raise InputError(f"{source}: 'chain' must be a list of plug-ins")
    result: dict[str, object] = {}
    for stage in chain:
        if not isinstance(stage, dict) or stage.get("plugin") not in PLUGINS_BY_NAME:
            raise InputError(f"{source}: each chain entry needs \"plugin\": one of "
                             f"{', '.join(PLUGINS_BY_NAME)}")
        params = stage.get("parameters")
        if not isinstance(params, list) or not all(isinstance(p, dict) and "id" in p and "value" in p
                                                   for p in params):
            raise InputError(f"{source}: {stage['plugin']} 'parameters' must be a list of {{\"id\", \"value\"}}")
        values = {p["id"]: p["value"] for p in params}
        result.update(_plugin_settings(PLUGINS_BY_NAME[stage["plugin"]], values, source))
    for key, setting in (("vocal_gain_db", "level.vocal_gain_db"),):
        if key in doc:
            result[setting] = _number(doc[key], source, key)
    output = doc.get("output", {})
    if not isinstance(output, dict):
        raise InputError(f"{source}: 'output' must be an object")
    if "ceiling_dbtp" in output:
        result["output.ceiling_dbtp"] = _number(output["ceiling_dbtp"], source, "output.ceiling_dbtp")
    if "target_loudness_lufs" in output:
        target = output["target_loudness_lufs"]
        result["output.target_loudness_lufs"] = (None if target is None else
                                                 _number(target, source, "output.target_loudness_lufs"))
    return result


def _number(value, source: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{source}: '{name}' has value {value!r}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{source}: '{name}' has value {value!r}, not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{source}: '{name}' has value {value!r}, not a finite number")
    return number


def _plugin_settings(plugin: PluginDef, raw: dict[str, object], source: str) -> dict[str, object]:
    """Map one plug-in's stored values onto settings, snapping like the plug-in does on load."""
    result: dict[str, object] = {}
    steps: dict[str, int] = {}
    filter_types: dict[int, int] = {}
    for param_id, text in raw.items():
        if param_id not in plugin.by_id:
            log.debug("%s: %s parameter '%s' is not one vocalmix knows; ignored", source, plugin.name, param_id)
            continue
        param = plugin.param(param_id)
        value = _number(text, source, f"{plugin.name}.{param_id}")
        binding = plugin.bindings.get(param_id)
        if binding is not None and binding.kind == "filter_type":
            # Stored values differ between versions, so they are decoded together below, not clamped here.
            filter_types[binding.band] = int(math.floor(value + 0.5))
            if abs(value - filter_types[binding.band]) > 1e-4:
                log.warning("%s: MultiEQ '%s' = %s is not a whole number; read as %d", source, param_id, text,
                            filter_types[binding.band])
            continue
        k, clamped = param.grid_index(value)
        grid = param.grid_value(k)
        # A stored float32 sits within float precision of its grid value; more than that means hand-editing.
        if clamped:
            log.warning("%s: %s '%s' = %s is outside its range [%g, %g]; read as %g", source, plugin.name,
                        param_id, text, param.start, param.end, grid)
        elif abs(value - grid) > 1e-4 * param.interval + 1e-6 * abs(value):
            log.warning("%s: %s '%s' = %s is not on its %g grid; read as %g", source, plugin.name, param_id,
                        text, param.interval, grid)
        steps[param_id] = k
    for band, name in _decode_filter_types(filter_types, source).items():
        result[f"eq.bands[{band}].type"] = name
    for param_id, k in steps.items():
        binding = plugin.bindings.get(param_id)
        param = plugin.param(param_id)
        if binding is None:
            if (plugin.name, param_id) in _UNSUPPORTED_SOUND_PARAMS and k != 0:
                log.warning("%s: %s '%s' is %s, which vocalmix cannot model; ignored", source, plugin.name,
                            param_id, param.display(param.grid_value(k)) or param.grid_value(k))
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
            log.warning("%s: MultiEQ 'filterType%d' = %d is not a filter type band %d offers; read as %s",
                        source, band, value, band + 1, name)
        result[band] = name
    return result


# -- command-line functions (registered by vocalmix.cli) --------------------------------------
def export_command(
    settings_json: Annotated[Path, typer.Argument(
        metavar="SETTINGS_JSON", help="Settings JSON written by 'vocalmix render' or 'vocalmix import'.",
        show_default=False)],
    to: Annotated[Path, typer.Option("--to", help="Folder to write the exports into (created if missing).",
                                     show_default=False)],
    format: Annotated[Optional[list[str]], typer.Option(
        "--format", "-f", metavar="FORMAT",
        help="What to write: iem (plug-in states .xml/.bin), vstpreset, pedalboard (script + JSON), "
             "sheet (Markdown), or all. Repeat or separate with commas.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
    fill_defaults: Annotated[bool, typer.Option(
        "--fill-defaults", help="Take settings the file leaves out from the defaults (named in a warning) "
                                "instead of refusing it.")] = False,
) -> None:
    """Export settings as IEM plug-in presets, a pedalboard script and a mix sheet."""
    settings = _load_settings_json(settings_json, fill_defaults)
    written = export_settings(settings, to, formats=format or ["all"], force=force)
    for path in written:
        typer.echo(str(path))


def import_command(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH",
        help="Plug-in states (.xml, .bin, .vstpreset), vocal_chain.json, or an export folder.",
        show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Settings JSON to write.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output if it exists.")] = False,
) -> None:
    """Read IEM plug-in states back into a settings JSON that 'vocalmix render --settings' uses."""
    if output.exists() and output.is_dir():
        raise InputError(f"{output}: is a folder; give a file name for the settings JSON")
    sources = _expand(paths)
    if any(output.resolve() == p.resolve() for p in sources):
        raise InputError(f"{output}: output path is one of the inputs; choose another name")
    if output.exists() and not force:
        raise InputError(f"{output}: already exists (use --force to overwrite)")
    if not output.parent.exists():
        raise InputError(f"{output}: folder {output.parent} does not exist")
    defaulted: list[str] = []
    settings = import_settings(sources, defaulted=defaulted)
    text = settings.to_json(method="import", report={"imported_from": [str(p) for p in sources],
                                                     "taken_from_defaults": defaulted})
    _write_atomic(output, (text + "\n").encode("utf-8"))
    typer.echo(str(output))


def _load_settings_json(path: Path, fill_defaults: bool = False) -> MixSettings:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a settings JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return MixSettings.from_json(text, source=str(path), fill_defaults=fill_defaults)
