"""What the parameter CNN's outputs mean: each task's targets, their ranges and normalisation.

Tasks and their targets (physical units):

- ``level``: ``relative_loudness_lu``, vocal minus backing integrated loudness (LU);
- ``compression``: ``loudness_range_lu``, the vocal's EBU loudness range (LU);
- ``eq``: ``gain_<f>hz`` for the 9 octave centres, the peak-filter gains (dB) that undo
  a random degradation (0 where the band was left alone);
- ``reverb``: the 10 FdnReverb settings (names as in :class:`vocalmix.settings.ReverbSettings`).

The networks work in [0, 1] per target (log-scaled where the range is "log"); the
training data and the inference of ``--method cnn`` share these definitions, and a
checkpoint records the ranges it was trained with (:func:`target_ranges_record`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vocalmix.errors import InputError
from vocalmix.jsonable import jsonable
from vocalmix.settings import ReverbSettings, spec_of

__all__ = [
    "LEVEL_RANGE_LU",
    "LRA_RANGE_LU",
    "OCTAVE_CENTRES_HZ",
    "REVERB_TARGETS",
    "TASKS",
    "TARGET_RANGES",
    "check_task",
    "normalise_targets",
    "denormalise_targets",
    "target_ranges_record",
]

#: Songs whose vocal-minus-backing loudness or vocal loudness range lie outside these are outliers.
LEVEL_RANGE_LU = (-10.0, 6.0)
LRA_RANGE_LU = (5.0, 30.0)

#: Octave-band centres of the EQ task (Hz), as in the research's masking EQ.
OCTAVE_CENTRES_HZ = (63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)

REVERB_TARGETS = [
    "room_size",
    "reverb_time_s",
    "low_cutoff_hz",
    "low_q",
    "low_gain_db_per_s",
    "high_cutoff_hz",
    "high_q",
    "high_gain_db_per_s",
    "dry_wet_pct",
    "fade_in_s",
]

TASKS: dict[str, list[str]] = {
    "level": ["relative_loudness_lu"],
    "compression": ["loudness_range_lu"],
    "eq": [f"gain_{c}hz" for c in OCTAVE_CENTRES_HZ],
    "reverb": list(REVERB_TARGETS),
}

#: Target name -> (minimum, maximum, scale); ``scale`` is "linear" or "log".
TARGET_RANGES: dict[str, tuple[float, float, str]] = {
    "relative_loudness_lu": (*LEVEL_RANGE_LU, "linear"),
    "loudness_range_lu": (*LRA_RANGE_LU, "linear"),
    **{name: (-15.0, 15.0, "linear") for name in TASKS["eq"]},
    **{
        name: (
            spec_of(ReverbSettings, name).minimum,
            spec_of(ReverbSettings, name).maximum,
            spec_of(ReverbSettings, name).scale,
        )
        for name in REVERB_TARGETS
    },
}


def check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def _range_tensors(task: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    names = TASKS[task]
    lo = torch.tensor([TARGET_RANGES[n][0] for n in names], dtype=like.dtype, device=like.device)
    hi = torch.tensor([TARGET_RANGES[n][1] for n in names], dtype=like.dtype, device=like.device)
    is_log = torch.tensor([TARGET_RANGES[n][2] == "log" for n in names], device=like.device)
    return lo, hi, is_log


def normalise_targets(task: str, t: torch.Tensor) -> torch.Tensor:
    """Physical targets ``(..., k)`` -> [0, 1] (log-scaled where the range is "log").

    Values outside the range map outside [0, 1]; nothing is clipped here.
    """
    check_task(task)
    t = torch.as_tensor(t, dtype=torch.float32)
    lo, hi, is_log = _range_tensors(task, t)
    lin = (t - lo) / (hi - lo)
    safe_lo = torch.where(is_log, lo, torch.ones_like(lo))
    safe_hi = torch.where(is_log, hi, torch.full_like(hi, math.e))
    safe_t = torch.where(is_log, torch.clamp(t, min=1e-12), torch.ones_like(t))
    log = (torch.log(safe_t) - torch.log(safe_lo)) / (torch.log(safe_hi) - torch.log(safe_lo))
    return torch.where(is_log, log, lin)


def denormalise_targets(task: str, u: torch.Tensor) -> torch.Tensor:
    """[0, 1] ``(..., k)`` -> physical units; ``u`` is clipped to [0, 1] first, so results stay in range."""
    check_task(task)
    u = torch.clamp(torch.as_tensor(u, dtype=torch.float32), 0.0, 1.0)
    lo, hi, is_log = _range_tensors(task, u)
    lin = lo + u * (hi - lo)
    safe_lo = torch.where(is_log, lo, torch.ones_like(lo))
    safe_hi = torch.where(is_log, hi, torch.ones_like(hi))
    log = torch.exp(torch.log(safe_lo) + u * (torch.log(safe_hi) - torch.log(safe_lo)))
    # exp(log(x)) can land a rounding error outside the range; the promise is "in range".
    return torch.minimum(torch.maximum(torch.where(is_log, log, lin), lo), hi)


def target_ranges_record(task: str) -> Any:
    """``task``'s target ranges as plain JSON-able values (stored in checkpoints, checked at inference)."""
    return jsonable({n: TARGET_RANGES[n] for n in TASKS[task]})
