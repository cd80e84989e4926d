"""vocalmix.jsonable: the one conversion of results to strict JSON."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmix.jsonable import jsonable


@dataclass
class _Point:
    x: float
    tags: tuple


def test_known_conversions():
    value = {
        1: np.float32(0.5),
        "nan": math.nan,
        "inf": np.float64(-np.inf),
        "n": np.int64(7),
        "flag": np.bool_(True),
        "pair": (1, 2.5),
        "array": np.array([[1.0, np.nan]]),
        "point": _Point(2.0, ("a",)),
        "path": Path("/x/y"),
        "none": None,
        "text": "t",
        "true": True,
    }
    out = jsonable(value)
    assert out == {
        "1": 0.5,
        "nan": None,
        "inf": None,
        "n": 7,
        "flag": True,
        "pair": [1, 2.5],
        "array": [[1.0, None]],
        "point": {"x": 2.0, "tags": ["a"]},
        "path": "/x/y",
        "none": None,
        "text": "t",
        "true": True,
    }
    assert [type(out[k]) for k in ("1", "n", "flag", "true")] == [float, int, bool, bool]
    json.dumps(out, allow_nan=False)  # strict JSON


def test_plain_values_pass_unchanged():
    value = {"a": [1, 2.25, "x", None, False], "b": {"c": -0.0}}
    assert jsonable(value) == value
    assert json.dumps(jsonable(value)) == json.dumps(value)
