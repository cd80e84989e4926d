"""The vocal chain rendered by the real IEM plug-ins (``vocalmix render --engine iem``, ``vocalmix verify``).

The same settings that :func:`vocalmix.mixing.process_vocal` renders with
:mod:`vocalmix.dsp` are exported as the plug-ins' own state blobs
(:func:`vocalmix.plugins.plugin_states`, the bytes ``vocalmix export`` writes as
``<Plugin>.bin``) and loaded into fresh instances of Debian's
``iem-plugin-suite-vst`` (v1.14, VST2) through :mod:`vocalmix.vst_host`. Each
stage is run the way a DAW would run it on a mono vocal track:

* MultiEQ and OmniCompressor get the mono vocal on input 0 (OmniCompressor's
  automatic Ambisonics order is then 0, so that channel is compressed);
* FdnReverb gets the vocal on inputs 0 and 1, and its outputs 0 and 1 are the
  stereo result (what a DAW does with a mono track into a stereo insert);
* the latency a plug-in reports after it is prepared (OmniCompressor's 5 ms
  LookAhead: ``trunc(0.005f * fs)`` samples) is compensated as a DAW does: the
  input is padded with that many zeros and the output advanced by it;
* FdnReverb applies Reverberation Time only when the value changes, so a loaded
  state with the default 5.0 s would decay with 3 s (shared note, "Quirk"). The
  engine moves the parameter one grid step away and back after loading, so the
  plug-in decays with the time the settings say;
* the vocal fader is a float32 gain, as in :func:`vocalmix.dsp.chain.gain`.

Every plug-in instance is new for each render (the plug-ins keep state) and is
closed afterwards. Audio goes through in host blocks of :data:`BLOCK_SIZE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from .plugins import PLUGINS_BY_NAME, PluginState, plugin_states
from .settings import MixSettings
from .vst_host import VstError, VstPlugin

PACKAGE = "iem-plugin-suite-vst"
#: A folder holding libMultiEQ.so, libOmniCompressor.so and libFdnReverb.so; when set, the only one used.
DIR_VARIABLE = "VOCALMIX_IEM_VST_DIR"
#: Where Debian and Ubuntu install the VST2 plug-ins (multiarch paths first).
SEARCH_DIRS = (
    "/usr/lib/x86_64-linux-gnu/iem-plugin-suite/vst",
    "/usr/lib/aarch64-linux-gnu/iem-plugin-suite/vst",
    "/usr/lib/iem-plugin-suite/vst",
    "/usr/local/lib/iem-plugin-suite/vst",
)
PLUGIN_NAMES = ("MultiEQ", "OmniCompressor", "FdnReverb")
STAGES = ("eq", "compressor", "reverb", "level")
STAGE_PLUGIN = {"eq": "MultiEQ", "compressor": "OmniCompressor", "reverb": "FdnReverb"}
#: Host block size: a common DAW buffer. OmniCompressor's lookahead ramp restarts per block,
#: so the block size is part of what a render means (see docs/iem-engine.md).
BLOCK_SIZE = 512


class PluginsNotInstalled(VstError):
    """The IEM VST2 plug-ins are not on this machine."""


def library_file(name: str) -> str:
    return f"lib{name}.so"


def find_plugin_dir() -> Path:
    """The folder with the three IEM VST2 libraries, or :class:`PluginsNotInstalled` naming the package."""
    override = os.environ.get(DIR_VARIABLE)
    # The variable, when set, is the only place looked at: it says which plug-ins to use.
    candidates = [Path(override)] if override else [Path(d) for d in SEARCH_DIRS]
    for folder in candidates:
        if all((folder / library_file(n)).is_file() for n in PLUGIN_NAMES):
            return folder
    where = f"{override} ({DIR_VARIABLE})" if override else SEARCH_DIRS[0]
    raise PluginsNotInstalled(
        f"the IEM plug-ins (MultiEQ, OmniCompressor, FdnReverb VST2) are not installed: no "
        f"{', '.join(library_file(n) for n in PLUGIN_NAMES)} in {where}; install the package {PACKAGE} "
        f"(sudo apt-get install {PACKAGE}) or set {DIR_VARIABLE} to the folder that holds them"
    )


def plugins_available() -> Optional[str]:
    """``None`` if the plug-ins can be used, else the reason they cannot (for skips and messages)."""
    try:
        find_plugin_dir()
    except PluginsNotInstalled as exc:
        return str(exc)
    return None


def open_plugin(
    name: str, sample_rate: float, block_size: int = BLOCK_SIZE, plugin_dir: Optional[Path] = None
) -> VstPlugin:
    """A fresh, running instance of one IEM plug-in."""
    if name not in PLUGIN_NAMES:
        raise VstError(f"unknown IEM plug-in {name!r}; one of {', '.join(PLUGIN_NAMES)}")
    folder = plugin_dir if plugin_dir is not None else find_plugin_dir()
    return VstPlugin(folder / library_file(name), sample_rate, block_size)


def refresh_reverb_time(plugin: VstPlugin) -> None:
    """Move FdnReverb's Reverberation Time one grid step away and back, so the loaded value takes effect."""
    param = PLUGINS_BY_NAME["FdnReverb"].param("revTime")
    index = plugin.parameter_index(param.name)
    value = plugin.get_parameter(index)
    step = param.interval / (param.end - param.start)
    plugin.set_parameter(index, value - step if value >= step else value + step)
    plugin.set_parameter(index, value)


def load_state(plugin: VstPlugin, blob: bytes) -> None:
    """Load a "VC2!" state, apply FdnReverb's reverb time, and re-prepare so the latency is current."""
    plugin.set_chunk(blob)
    if plugin.unique_id == PLUGINS_BY_NAME["FdnReverb"].code:
        refresh_reverb_time(plugin)
    plugin.reset()


def run_compensated(plugin: VstPlugin, audio: np.ndarray, outputs: int) -> np.ndarray:
    """Process ``audio`` ``(channels, n)`` and return ``(outputs, n)`` with the reported latency removed."""
    latency = plugin.latency
    channels, n = audio.shape
    if latency > 0:
        audio = np.concatenate([audio, np.zeros((channels, latency), dtype=audio.dtype)], axis=1)
    return plugin.process(audio, outputs)[:, latency : latency + n]


def render_stage(
    name: str,
    state: PluginState | bytes,
    audio: np.ndarray,
    sample_rate: float,
    block_size: int = BLOCK_SIZE,
    plugin_dir: Optional[Path] = None,
) -> np.ndarray:
    """Run one plug-in, loaded with ``state``, on ``audio`` (``(1, n)`` vocal, or ``(2, n)`` for FdnReverb).

    A mono input to FdnReverb is fed to inputs 0 and 1; the result is stereo.
    """
    blob = state.blob() if isinstance(state, PluginState) else bytes(state)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if name == "FdnReverb" and audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    with open_plugin(name, sample_rate, block_size, plugin_dir) as plugin:
        load_state(plugin, blob)
        out = run_compensated(plugin, audio, audio.shape[0])
    if not np.all(np.isfinite(out)):
        # FdnReverb with shelf boosts above its decay rate grows without bound (vocalmix.dsp guards it).
        raise VstError(
            f"{name}: the plug-in's output overflowed (not finite); with FdnReverb, lower the shelf "
            "gains or the reverberation time so the tail decays"
        )
    return out


def process_vocal_iem(
    vocal: np.ndarray,
    sample_rate: int,
    settings: MixSettings,
    upto: str = "level",
    start: str = "eq",
    block_size: int = BLOCK_SIZE,
    plugin_dir: Optional[Path] = None,
) -> np.ndarray:
    """:func:`vocalmix.mixing.process_vocal` with the real plug-ins: stages ``start`` to ``upto``.

    ``vocal`` is ``(1, samples)`` (``(2, samples)`` when starting at the level
    stage); returns ``(1, samples)`` before the reverb and ``(2, samples)`` from it on.
    """
    for name in (start, upto):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; one of {STAGES}")
    first, last = STAGES.index(start), STAGES.index(upto)
    if first > last:
        raise ValueError(f"stage {start!r} comes after {upto!r}")
    if plugin_dir is None:
        plugin_dir = find_plugin_dir()
    states = {state.plugin.name: state for state in _quiet_states(settings)}
    if "reverb" in STAGES[first : last + 1] and settings.reverb.fdn_lines > 64:
        import logging

        logging.getLogger("vocalmix").warning(
            "setting 'reverb.fdn_lines' = %d needs FdnReverb v1.15; the installed plug-in (v1.14) renders 64 lines",
            settings.reverb.fdn_lines,
        )
    y = np.ascontiguousarray(vocal, dtype=np.float32)
    for stage in STAGES[first : last + 1]:
        if stage == "level":
            y = y * np.float32(10.0 ** (settings.level.vocal_gain_db / 20.0))
        else:
            name = STAGE_PLUGIN[stage]
            y = render_stage(name, states[name], y, sample_rate, block_size, plugin_dir)
    return y


def _quiet_states(settings: MixSettings) -> list[PluginState]:
    """The plug-in states of ``settings``; snapping warnings stay silent (render snaps on purpose)."""
    import logging

    log = logging.getLogger("vocalmix")
    previous = log.disabled
    log.disabled = True
    try:
        return plugin_states(settings)
    finally:
        log.disabled = previous


def vocal_before_level_iem(vocal: np.ndarray, sample_rate: int, settings: MixSettings) -> np.ndarray:
    """:func:`vocalmix.mixing.vocal_before_level` with the real plug-ins: EQ, compressor and reverb,
    ``(2, samples)``, the lookahead latency compensated (the ``chain`` of ``render --engine iem``)."""
    return process_vocal_iem(vocal, sample_rate, settings, upto="reverb")


# -- vocalmix verify --------------------------------------------------------------------------------
#: A stage passes ``verify`` when its difference is at most this (the parity tests' bound).
VERIFY_TOLERANCE_DB = -60.0
#: Below this many dB under the stage's input, a difference is measured against that level instead
#: of the (tiny) output: there both sides are float32 rounding.
QUIET_OUTPUT_FLOOR_DB = -40.0
VERIFY_MAX_TAIL_S = 5.0


def difference_db(ours: np.ndarray, theirs: np.ndarray, source: np.ndarray) -> float:
    """Energy of ``ours - theirs`` relative to ``theirs`` (or to ``source`` - 40 dB if that is more), in dB."""
    ours, theirs, source = (np.asarray(a, np.float64) for a in (ours, theirs, source))
    reference = max(
        np.sum(theirs**2), np.sum(source**2) * theirs.shape[0] / source.shape[0] * 10 ** (QUIET_OUTPUT_FLOOR_DB / 10)
    )
    difference = np.sum((ours - theirs) ** 2)
    if difference == 0.0:
        return float("-inf")  # sample-identical
    if reference == 0.0:
        return float("inf")
    return float(10 * np.log10(difference / reference))


def read_preset_blobs(preset_dir: Path) -> dict[str, bytes]:
    """The state blob of each plug-in in an exported folder: ``<Plugin>.bin``, else ``.vstpreset``, else ``.xml``."""
    from .errors import InputError
    from .preset_formats import COMPONENT_CHUNK, STATE_MAGIC, pack_state, unpack_vstpreset

    preset_dir = Path(preset_dir)
    if not preset_dir.is_dir():
        raise InputError(f"{preset_dir}: not a folder (give the folder vocalmix export wrote)")
    blobs = {}
    for name in PLUGIN_NAMES:
        bin_path, preset_path, xml_path = (preset_dir / f"{name}{s}" for s in (".bin", ".vstpreset", ".xml"))
        try:
            if bin_path.is_file():
                blob = bin_path.read_bytes()
                if not blob.startswith(STATE_MAGIC):
                    raise InputError(f"{bin_path}: not a plug-in state (no 'VC2!' header)")
            elif preset_path.is_file():
                preset = unpack_vstpreset(preset_path.read_bytes(), str(preset_path))
                if COMPONENT_CHUNK not in preset.chunks:
                    raise InputError(f"{preset_path}: .vstpreset has no component state ('Comp' chunk)")
                blob = preset.chunks[COMPONENT_CHUNK]
            elif xml_path.is_file():
                blob = pack_state(xml_path.read_text(encoding="utf-8"))
            else:
                raise InputError(f"{preset_dir}: no {name}.bin, {name}.vstpreset or {name}.xml here")
        except OSError as exc:
            raise InputError(f"{preset_dir}: cannot read the {name} preset ({exc.strerror})") from None
        blobs[name] = blob
    return blobs


def _dsp_stage(x: np.ndarray, sample_rate: int, settings: MixSettings, stage: str) -> np.ndarray:
    """One stage of vocalmix's chain, with the compressor's lookahead delay removed as a DAW would."""
    from .dsp.compressor import lookahead_samples
    from .mixing import process_vocal

    delay = lookahead_samples(sample_rate) if stage == "compressor" and settings.compressor.lookahead else 0
    y = process_vocal(np.pad(x, ((0, 0), (0, delay))), sample_rate, settings, upto=stage, start=stage)
    return y[:, delay:]


def verify_presets(
    preset_dir: Path, vocal: np.ndarray, sample_rate: int, block_size: int = BLOCK_SIZE, progress=lambda message: None
) -> list[dict]:
    """Render ``vocal`` ``(1, samples)`` through the presets in the real plug-ins and through vocalmix.

    Per stage: ``stage_db`` feeds both the same input (vocalmix's output of the
    stages before), so it isolates that stage; ``chain_db`` compares the two chains
    up to and including the stage. Both are :func:`difference_db`.
    """
    from .plugins import reverb_tail_seconds
    from .preset_import import import_settings

    blobs = read_preset_blobs(preset_dir)
    settings = import_settings(preset_dir)
    plugin_dir = find_plugin_dir()
    tail = int(round(min(reverb_tail_seconds(settings), VERIFY_MAX_TAIL_S) * sample_rate))
    x = np.pad(np.asarray(vocal, np.float32), ((0, 0), (0, tail)))
    ours, theirs, rows = x, x, []  # the same object until the first stage has rendered
    for stage in ("eq", "compressor", "reverb"):
        name = STAGE_PLUGIN[stage]
        progress(f"{name}: rendering with the plug-in and with vocalmix")
        ours_next = _dsp_stage(ours, sample_rate, settings, stage)
        isolated = render_stage(name, blobs[name], ours, sample_rate, block_size, plugin_dir)
        # Until the chains part, the chain's input is the same array and its render is the isolated one.
        theirs = (
            isolated if theirs is ours else render_stage(name, blobs[name], theirs, sample_rate, block_size, plugin_dir)
        )
        rows.append(
            {
                "stage": stage,
                "plugin": name,
                "stage_db": difference_db(ours_next, isolated, ours),
                "chain_db": difference_db(ours_next, theirs, x),
            }
        )
        ours = ours_next
    return rows
