"""The one interface behind which every way of deciding settings sits.

A method looks at the vocal and the backing and returns a :class:`Decision`: the
:class:`~vocalmix.settings.MixSettings` it chose and a JSON-able report of the
measurements behind each choice. Methods are looked up by name so the CLI, the
evaluation and the tests treat them alike; a method whose code needs optional
parts (a trained model) is imported only when asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .errors import InputError
from .settings import MixSettings


@dataclass
class Decision:
    settings: MixSettings
    report: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    """Decides settings for ``vocal`` ``(1, samples)`` and ``backing`` ``(2, samples)`` at ``sample_rate``."""

    name: str

    def decide(self, vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> Decision: ...


# name -> "module:factory"; the factory takes the method's keyword options.
_REGISTRY: dict[str, str] = {
    "rules": "vocalmix.rules.method:RulesMethod",
    "cnn": "vocalmix.training.inference:CnnMethod",
}

#: Methods that the research defines but that produce no settings or are not built yet.
PLANNED = {"cnn-e2e": "end-to-end fine-tuned CNN", "waveunet": "Wave-U-Net (outputs audio, no settings)"}


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
