"""The mix sheet: Markdown a person follows to dial the vocal chain in by hand."""

from __future__ import annotations

from .plugins import FDN_DEFAULT_REV_TIME_S, PluginState
from .settings import N_EQ_BANDS, MixSettings

SHEET_FILE = "mix_sheet.md"


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
        cells = [
            _display_with_unit(eq, f"{pid}{i}")
            for pid in ("filterEnabled", "filterType", "filterFrequency", "filterQ", "filterGain")
        ]
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
    for pid in (
        "delayLength",
        "revTime",
        "lowCutoff",
        "lowQ",
        "lowGain",
        "highCutoff",
        "highQ",
        "highGain",
        "dryWet",
        "fadeInTime",
        "fdnSize",
    ):
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
        + (
            " - this preset uses 5.0 s, so this step is required."
            if reverb.values["revTime"] == FDN_DEFAULT_REV_TIME_S
            else " (harmless, and needed whenever the value is 5.0 s)."
        ),
        "",
        "## 4. Vocal fader",
        "",
        f"Vocal level: **{_signed(settings.level.vocal_gain_db)} dB** (fader of the vocal track, after the plug-ins).",
        "",
        "## 5. Output stage (vocalmix's own, on the sum of vocal and backing)",
        "",
        f"True-peak ceiling: {_signed(settings.output.ceiling_dbtp)} dBTP. "
        + (
            f"Loudness target: {_signed(settings.output.target_loudness_lufs)} LUFS integrated, then a "
            "true-peak limiter."
            if settings.output.target_loudness_lufs is not None
            else "No loudness target: the mix is only turned down as a whole if its true peak is above the ceiling."
        ),
        "",
    ]
    return "\n".join(lines)


def _signed(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return text if text.startswith("-") or text == "0" else f"+{text}"
