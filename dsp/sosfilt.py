"""Second-order-section IIR filtering along the last axis, bit-identical to ``scipy.signal.sosfilt``.

Each sample goes through the sections with scipy's own arithmetic (transposed direct
form II, the same operations in the same order, float64), compiled by numba, so the
output equals scipy's bit for bit (``tests/test_single_pass.py``). It exists so that
the render path does not import ``scipy.signal``, whose import alone costs one to two
seconds of CPU time, and because it is faster: float32 input is read as it is (no
float64 copy first), and a two-section filter (K-weighting) keeps its state in
registers, about twice scipy's speed per channel.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["sosfilt"]


@numba.njit(cache=True, nogil=True)
def _sections(sos, x, out, zi):  # pragma: no cover - compiled
    # The operation order of scipy/signal/_sosfilt.pyx, so the results agree exactly.
    n_signals, n_samples = x.shape
    n_sections = sos.shape[0]
    for i in range(n_signals):
        for n in range(n_samples):
            x_cur = np.float64(x[i, n])
            for s in range(n_sections):
                x_new = sos[s, 0] * x_cur + zi[i, s, 0]
                zi[i, s, 0] = sos[s, 1] * x_cur - sos[s, 4] * x_new + zi[i, s, 1]
                zi[i, s, 1] = sos[s, 2] * x_cur - sos[s, 5] * x_new
                x_cur = x_new
            out[i, n] = x_cur


@numba.njit(cache=True, nogil=True)
def _two_sections(sos, x, out, zi):  # pragma: no cover - compiled
    # The same arithmetic as _sections for two sections, the state held in locals.
    n_signals, n_samples = x.shape
    b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    for i in range(n_signals):
        z00, z01, z10, z11 = zi[i, 0, 0], zi[i, 0, 1], zi[i, 1, 0], zi[i, 1, 1]
        for n in range(n_samples):
            x_cur = np.float64(x[i, n])
            x_new = b00 * x_cur + z00
            z00 = b01 * x_cur - a01 * x_new + z01
            z01 = b02 * x_cur - a02 * x_new
            x_cur = x_new
            x_new = b10 * x_cur + z10
            z10 = b11 * x_cur - a11 * x_new + z11
            z11 = b12 * x_cur - a12 * x_new
            out[i, n] = x_new
        zi[i, 0, 0], zi[i, 0, 1], zi[i, 1, 0], zi[i, 1, 1] = z00, z01, z10, z11


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None):
    """``scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)``: filter ``x`` (``(..., samples)``) by the sections
    ``sos`` ``(n_sections, 6)`` (``a0 == 1`` for each, as scipy requires); float64 out.

    Without ``zi`` the filter starts from rest and the output is returned; with ``zi``
    (scipy's layout, ``(n_sections, ..., 2)``) it starts there and ``(output, final state)``
    is returned, so a signal filtered in blocks equals one filtered whole.
    """
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] == 0:
        raise ValueError(f"sos must be (n_sections, 6), got shape {sos.shape}")
    if not np.all(sos[:, 3] == 1.0):
        raise ValueError("each section's a0 must be 1")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have a samples axis")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    shape = x.shape
    rows = np.ascontiguousarray(x.reshape(-1, shape[-1]))
    n_sections = sos.shape[0]
    if zi is None:
        state = np.zeros((rows.shape[0], n_sections, 2))
    else:
        zi = np.asarray(zi, dtype=np.float64)
        expected = (n_sections, *shape[:-1], 2)
        if zi.shape != expected:
            raise ValueError(f"zi must have shape {expected}, got {zi.shape}")
        state = np.ascontiguousarray(np.moveaxis(zi.reshape(n_sections, -1, 2), 0, 1))
    out = np.empty(rows.shape, dtype=np.float64)
    (_two_sections if n_sections == 2 else _sections)(sos, rows, out, state)
    if zi is None:
        return out.reshape(shape)
    return out.reshape(shape), np.moveaxis(state, 1, 0).reshape(zi.shape)
