"""One conversion of nested results to strict JSON values, for every report, manifest and record written."""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` with plain JSON types only.

    Dataclass instances become dicts, dict keys strings, tuples and arrays lists, numpy
    scalars Python numbers; non-finite floats (not valid JSON) become ``None``; anything
    else that JSON cannot hold becomes its ``str``.
    """
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) or value is None:
        return value
    return str(value)
