"""The pedalboard form of an export: every parameter as data, and a script that renders the vocal
with the real plug-ins.

``vocal_chain.json`` holds :func:`chain_document`; ``vocal_chain_pedalboard.py`` is
the template ``templates/vocal_chain_pedalboard.py.in`` (package data) with that
document embedded, so the script needs no other file.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from .plugins import ParamDef, PluginState, reverb_tail_seconds
from .settings import MixSettings

CHAIN_FILE = "vocal_chain.json"
SCRIPT_FILE = "vocal_chain_pedalboard.py"
CHAIN_FORMAT = "vocalmix-vocal-chain"
CHAIN_FORMAT_VERSION = 1
_TEMPLATE = "templates/vocal_chain_pedalboard.py.in"


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
                "range": [_plain(param.start), _plain(param.end), param.interval],
                "skew": param.skew,
            }
            if param.select_by_text:
                entry["select_by_text"] = True
            else:
                entry["normalised"] = param.normalised(value)
            if param.since != "1.14":
                entry["since_version"] = param.since
            params.append(entry)
        stage = {
            "plugin": plugin.name,
            "role": plugin.role,
            "vst3_file": f"{plugin.name}.vst3",
            "vst3_class_id": plugin.class_id,
            "channels": plugin.channels,
            "parameters": params,
        }
        if plugin.name == "FdnReverb":
            stage["tail_s"] = reverb_tail_seconds(settings)
        stages.append(stage)
    return {
        "format": CHAIN_FORMAT,
        "format_version": CHAIN_FORMAT_VERSION,
        "chain": stages,
        "vocal_gain_db": settings.level.vocal_gain_db,
        "output": {
            "ceiling_dbtp": settings.output.ceiling_dbtp,
            "target_loudness_lufs": settings.output.target_loudness_lufs,
        },
    }


def json_text(value: Any, level: int = 0) -> str:
    """JSON with one parameter per line: nested objects from the parameters down stay on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value and level < 4:
        items = [f"{inner}{json.dumps(k)}: {json_text(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value and level < 4 and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{inner}{json_text(v, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def pedalboard_script(document: dict) -> str:
    """The runnable script, with the chain document embedded so it needs no other file."""
    text = json_text(document)
    if '"""' in text:  # cannot happen with vocalmix's values; guards the raw string
        raise ValueError("chain document cannot be embedded")
    template = resources.files("vocalmix").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    return template.replace("__CHAIN_JSON__", text)


def _plain(value: float) -> float:
    """A range end as the file has always written it: whole numbers without a decimal point (-50, not -50.0)."""
    return int(value) if float(value).is_integer() else value
