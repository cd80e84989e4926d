"""Export settings in forms real tools load (``vocalmix export``, ``vocalmix render --export``).

For the three IEM plug-ins the vocal chain is modelled on (MultiEQ -> OmniCompressor
-> FdnReverb, see ``shared/notes/iem-plugins.md``; the plug-ins and the mapping are
in :mod:`vocalmix.plugins`) the formats are:

* ``iem``: ``<Plugin>.xml`` - the plug-in state as the plug-in stores it (JUCE APVTS
  XML, the plug-in's parameter IDs with plain values), and ``<Plugin>.bin`` - the
  same XML in the "VC2!" blob that ``getStateInformation`` returns (a VST2 chunk, a
  VST3 component state);
* ``vstpreset``: ``<Plugin>.vstpreset`` - that blob in a VST3 preset file;
* ``pedalboard``: ``vocal_chain.json`` and ``vocal_chain_pedalboard.py`` - every
  parameter as data, and a script that renders the vocal with the real plug-ins
  through pedalboard (:mod:`vocalmix.pedalboard_script`);
* ``sheet``: ``mix_sheet.md`` - the settings to dial in by hand, in signal-chain
  order (:mod:`vocalmix.mix_sheet`).

Every value is snapped to the nearest value the plug-in can hold, and each change is
logged as a warning naming the setting. :mod:`vocalmix.preset_import` reads the
files back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Union

from .errors import InputError
from .files import write_atomic
from .mix_sheet import SHEET_FILE, mix_sheet
from .pedalboard_script import CHAIN_FILE, SCRIPT_FILE, chain_document, json_text, pedalboard_script
from .plugins import PLUGINS, exported_settings, plugin_states
from .preset_formats import pack_vstpreset
from .settings import MixSettings

log = logging.getLogger("vocalmix")

FORMATS = ("iem", "vstpreset", "pedalboard", "sheet")


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
        files[CHAIN_FILE] = (json_text(document) + "\n").encode("utf-8")
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


def export_settings(
    settings: MixSettings, out_dir: Union[str, os.PathLike], formats: Iterable[str] = FORMATS, force: bool = False
) -> list[Path]:
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
        write_file(path, files[path.name])
    return targets


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with the user's umask (the script executable); an unwritable
    path is a one-line error naming it."""
    try:
        write_atomic(path, data, executable=path.suffix == ".py")
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
