"""Read exported plug-in states and ``vocal_chain.json`` back into settings (``vocalmix import``).

Plug-in states come as the state XML, the "VC2!" blob or a ``.vstpreset``, of any
of the three plug-ins; export -> import -> export reproduces the files byte for byte.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Optional, Union

from .errors import InputError, SettingsError
from .pedalboard_script import CHAIN_FILE, CHAIN_FORMAT, CHAIN_FORMAT_VERSION
from .plugins import PLUGINS, PLUGINS_BY_CLASS_ID, PLUGINS_BY_NAME, PluginDef, plugin_settings, read_number, set_path
from .preset_formats import (
    COMPONENT_CHUNK,
    STATE_MAGIC,
    VSTPRESET_MAGIC,
    parse_state_xml,
    unpack_state,
    unpack_vstpreset,
)
from .settings import MixSettings, describe

log = logging.getLogger("vocalmix")

_STATE_SUFFIXES = (".xml", ".bin", ".vstpreset")


def import_settings(
    paths_or_dir: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], defaulted: Optional[list[str]] = None
) -> MixSettings:
    """Read plug-in states (``.xml``, ``.bin`` blob, ``.vstpreset``) and ``vocal_chain.json`` into settings.

    A folder stands for the files an export writes into it. Settings no file
    mentions keep their :class:`MixSettings` defaults (the IEM states carry no
    vocal fader or output stage; ``vocal_chain.json`` does). Two files that set
    the same setting differently are refused, naming both.
    """
    values: dict[str, tuple[object, Path]] = {}
    for path in expand_import_paths(paths_or_dir):
        for setting, value in _read_settings(path).items():
            if setting in values and values[setting][0] != value:
                other_value, other = values[setting]
                raise InputError(
                    f"{path}: sets '{setting}' to {value!r} but {other} sets it to {other_value!r}; "
                    "import the one you mean"
                )
            values[setting] = (value, path)
    data = MixSettings().to_dict()
    for setting, (value, _) in values.items():
        set_path(data, setting, value)
    missing = [row["name"] for row in describe() if row["name"] not in values]
    if defaulted is not None:
        defaulted.extend(missing)
    if missing:
        relevel = (
            " (no plug-in preset holds the vocal level: render with --settings FILE --relevel to decide it)"
            if "level.vocal_gain_db" in missing
            else ""
        )
        log.warning(
            "%d settings are not in the imported files and keep their defaults: %s%s",
            len(missing),
            _grouped(missing),
            relevel,
        )
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


def expand_import_paths(paths_or_dir: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]]) -> list[Path]:
    """The files to import: a folder stands for the plug-in states and chain file an export writes there."""
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
                raise InputError(
                    f"{path}: no plug-in states here (expected MultiEQ/OmniCompressor/FdnReverb "
                    f".xml, .bin or .vstpreset, or {CHAIN_FILE})"
                )
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
            raise InputError(
                f"{source}: a preset for another plug-in (class ID {preset.class_id}); expected "
                f"{', '.join(p.name for p in PLUGINS)}"
            )
        if COMPONENT_CHUNK not in preset.chunks:
            raise InputError(f"{source}: .vstpreset has no component state ('Comp' chunk)")
        xml_text = unpack_state(preset.chunks[COMPONENT_CHUNK], source)
        return _state_settings(xml_text, source, expected=plugin)
    if data.startswith(STATE_MAGIC):
        return _state_settings(unpack_state(data, source), source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"{source}: not an IEM plug-in state (neither a .vstpreset, a 'VC2!' state blob, XML nor vocal_chain.json)"
        ) from None
    stripped = text.strip().rstrip("\0").strip()
    if stripped.startswith("<"):
        return _state_settings(stripped, source)
    if stripped.startswith("{"):
        return _chain_settings(stripped, source)
    raise InputError(
        f"{source}: not an IEM plug-in state (neither a .vstpreset, a 'VC2!' state blob, XML nor vocal_chain.json)"
    )


def _state_settings(xml_text: str, source: str, expected: Optional[PluginDef] = None) -> dict[str, object]:
    state = parse_state_xml(xml_text, source)
    plugin = PLUGINS_BY_NAME.get(state.root_tag)
    if plugin is None:
        raise InputError(f"{source}: state of '{state.root_tag}', not of {', '.join(p.name for p in PLUGINS)}")
    if expected is not None and plugin is not expected:
        raise InputError(f"{source}: the preset's class ID is {expected.name}'s but its state is {plugin.name}'s")
    return plugin_settings(plugin, state.params, source)


def _chain_settings(text: str, source: str) -> dict[str, object]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != CHAIN_FORMAT:
        raise InputError(f'{source}: not a {CHAIN_FILE} written by vocalmix export (no "format": "{CHAIN_FORMAT}")')
    if doc.get("format_version") != CHAIN_FORMAT_VERSION:
        raise InputError(
            f"{source}: format_version {doc.get('format_version')!r} is not supported (expected {CHAIN_FORMAT_VERSION})"
        )
    chain = doc.get("chain")
    if not isinstance(chain, list):
        raise InputError(f"{source}: 'chain' must be a list of plug-ins")
    result: dict[str, object] = {}
    for stage in chain:
        if not isinstance(stage, dict) or stage.get("plugin") not in PLUGINS_BY_NAME:
            raise InputError(f'{source}: each chain entry needs "plugin": one of {", ".join(PLUGINS_BY_NAME)}')
        params = stage.get("parameters")
        if not isinstance(params, list) or not all(isinstance(p, dict) and "id" in p and "value" in p for p in params):
            raise InputError(f'{source}: {stage["plugin"]} \'parameters\' must be a list of {{"id", "value"}}')
        values = {p["id"]: p["value"] for p in params}
        result.update(plugin_settings(PLUGINS_BY_NAME[stage["plugin"]], values, source))
    for key, setting in (("vocal_gain_db", "level.vocal_gain_db"),):
        if key in doc:
            result[setting] = read_number(doc[key], source, key)
    output = doc.get("output", {})
    if not isinstance(output, dict):
        raise InputError(f"{source}: 'output' must be an object")
    if "ceiling_dbtp" in output:
        result["output.ceiling_dbtp"] = read_number(output["ceiling_dbtp"], source, "output.ceiling_dbtp")
    if "target_loudness_lufs" in output:
        target = output["target_loudness_lufs"]
        result["output.target_loudness_lufs"] = (
            None if target is None else read_number(target, source, "output.target_loudness_lufs")
        )
    return result
