"""The one interface behind which every way of deciding settings sits.

A method looks at the vocal and the backing and returns a :class:`Decision`: the
:class:`~vocalmix.settings.MixSettings` it chose and a JSON-able report of the
measurements behind each choice. Methods are looked up by name so the CLI, the
evaluation and the tests treat them alike; a method whose code needs optional
parts (a trained model) is imported only when asked for.

Each method lives in its own module of this package (the rules in :mod:`vocalmix.rules`);
the networks they run and the checkpoints they read are in :mod:`vocalmix.nets`. None of
it imports :mod:`vocalmix.training`: rendering needs no training code.

An *audio method* (:data:`AUDIO_METHODS`, e.g. the Wave-U-Net) mixes the audio itself:
its Decision carries the stereo ``mix`` and no effect settings (``settings`` keeps the
defaults and is not used); renders apply only the output stage to that mix, and there is
nothing to export and no stems.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from ..errors import InputError
from ..settings import MixSettings

#: The checkpoints shipped with the package, one folder per method (``cnn``, ``cnn_e2e``, ``waveunet``).
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass
class Decision:
    settings: MixSettings
    report: dict[str, Any] = field(default_factory=dict)
    #: An audio method's mix ``(2, samples)`` at the working rate; None for settings methods.
    mix: Optional[np.ndarray] = None


class Method(Protocol):
    """Decides settings for ``vocal`` ``(1, samples)`` and ``backing`` ``(2, samples)`` at ``sample_rate``."""

    name: str

    def decide(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> Decision: ...


# name -> "module:factory"; the factory takes the method's keyword options.
_REGISTRY: dict[str, str] = {
    "rules": "vocalmix.rules.method:RulesMethod",
    "cnn": "vocalmix.methods.cnn:CnnMethod",
    "cnn-e2e": "vocalmix.methods.cnn_e2e:CnnE2EMethod",
    "waveunet": "vocalmix.methods.waveunet:WaveUNetMethod",
}

#: Methods that the research defines but that are not built yet.
PLANNED: dict[str, str] = {}

#: Methods that output the mix itself instead of effect settings.
AUDIO_METHODS = {"waveunet": "Wave-U-Net"}


def check_audio_method_outputs(name: str, stems: bool = False, export: bool = False) -> None:
    """InputError if an audio method is asked for what only effect settings give (stems, presets)."""
    if name in AUDIO_METHODS and (stems or export):
        option = "--stems" if stems else "--export"
        raise InputError(
            f"{option}: the {name} method ({AUDIO_METHODS[name]}) outputs only the mix, with no effect "
            "settings; there are no stems or presets to write"
        )


def available() -> list[str]:
    return list(_REGISTRY)


def get_method(name: str, **options: Any) -> Method:
    if name in PLANNED and name not in _REGISTRY:
        raise InputError(f"method '{name}' ({PLANNED[name]}) is not available yet; use one of {', '.join(_REGISTRY)}")
    if name not in _REGISTRY:
        raise InputError(f"unknown method '{name}'; use one of {', '.join(_REGISTRY)}")
    module_name, factory_name = _REGISTRY[name].split(":")
    factory: Callable[..., Method] = getattr(importlib.import_module(module_name), factory_name)
    return factory(**options)
