"""Second-order-section IIR filtering along the last axis, bit-identical to ``scipy.signal.sosfilt``.

The recursion is scipy's own (transposed direct form II per section, the same
operations in the same order, float64), compiled by numba. It exists so that the
render path does not import ``scipy.signal``, whose import alone costs one to two
seconds of CPU time; ``tests/test_single_pass.py`` checks it equals scipy's output
bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["sosfilt"]


@numba.njit(cache=True, nogil=True)
def _sosfilt_rows(sos, x, zi):  # pragma: no cover - compiled
    # The operation order of scipy/signal/_sosfilt.pyx, so the results agree exactly.
    n_signals, n_samples = x.shape
    n_sections = sos.shape[0]
    for i in range(n_signals):
        for n in range(n_samples):
            x_cur = x[i, n]
            for s in range(n_sections):
                x_new = sos[s, 0] * x_cur + zi[i, s, 0]
                zi[i, s, 0] = sos[s, 1] * x_cur - sos[s, 4] * x_new + zi[i, s, 1]
                zi[i, s, 1] = sos[s, 2] * x_cur - sos[s, 5] * x_new
                x_cur = x_new
            x[i, n] = x_cur


def sosfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Filter ``x`` (``(samples,)`` or ``(..., samples)``) along its last axis by the sections ``sos``
    ``(n_sections, 6)`` (``a0 == 1`` for each, as scipy requires), starting from rest; float64 out."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] == 0:
        raise ValueError(f"sos must be (n_sections, 6), got shape {sos.shape}")
    if not np.all(sos[:, 3] == 1.0):
        raise ValueError("each section's a0 must be 1")
    shape = np.shape(x)
    rows = np.array(np.reshape(x, (-1, shape[-1]) if len(shape) else (1, 1)), dtype=np.float64, order="C")
    _sosfilt_rows(sos, rows, np.zeros((rows.shape[0], sos.shape[0], 2)))
    return rows.reshape(shape)
