"""Differentiable re-implementation of the IEM FdnReverb (feedback delay network).

The plug-in's signal flow, per sample n and delay line ch (see
``shared/notes/iem-plugins.md``, FdnReverb)::

    u_ch[n] = s_ch[n] + x_ch[n]                  (x only on lines fed by the input)
    v_ch[n] = lowShelf_ch(highShelf_ch(u_ch))[n]
    y_ch[n] = w * v_ch[n] + (1 - w) * x_ch[n]    (only lines that are heard)
    s[n + L] = (H / sqrt(N)) (g * v[n])          (Sylvester Hadamard, natural order)

with per-line decay gains ``g_ch = 10^(-3 L_ch / (fs T60))`` and shelf gains of
``lowGain``/``highGain`` dB per second scaled by the line's delay in seconds. The
wet signal contains the input itself (filtered, delay 0). With a fade-in time a
twin network with T60 = fadeInTime and dry/wet 1 is subtracted:
``y = w * (v - v_fade) + (1 - w) * x``.

Method
------
The network is linear and time-invariant for fixed settings, so the output is
the input convolved with the network's impulse responses (IRs). We compute
those IRs exactly by running the true per-sample recursion, then convolve with
FFTs (overlap-save for long inputs).

* **IR recursion: numba, float64, per sample.** One job per (batch item, fed
  line set, main/fade twin). The jobs release the GIL and run on a thread pool, one
  thread per core. The kernel is single-threaded and runs the recursion in blocks
  of up to 64 samples (at most the shortest delay, so a block's line inputs are all
  known when it starts), mixing a whole block at once: the per-sample recursion's
  values bit for bit, about 2x faster. Timings on the 2-core development machine
  (N = 64, 44.1 kHz, room 20, CPU time, load average 7.5 from other jobs):
  0.07 s for RT = 2 s (a 3.5-s IR) and 0.20 s for RT = 9 s (a 14-s IR).
* **Backends** (``backend="auto"|"numba"|"torch"``, ``select_backend``): ``auto``
  runs the numba kernels for CPU tensors and a pure-torch recursion on every other
  device, so a CUDA render copies nothing to the CPU for the recursion. The torch
  path runs chunks of C <= the shortest delay samples (all reads inside a chunk come
  from earlier chunks; the history is stored pre-delayed, so reads are one slice and
  writes one ``scatter_``), the two shelves per line as one exact (C+4)x(C+4)
  block matrix (Toeplitz impulse response, state observation and update), and the
  Hadamard mixing as a dense matmul. Its backward is a custom function running the
  transposed network backwards by the same chunks; autograd carries the gradient of
  the block matrices to the shelf coefficients. Tests on the CPU (backend "torch")
  check IRs, outputs and gradients against numba. Measured on the loaded 2-core
  machine (CPU, N = 64, 44.1 kHz, room 20, RT = 2 s, 3.6-s IR, C = 30): 1.2-1.8 s
  forward (numba: 0.09 s, above), backward about 2x the forward; on the CPU it runs
  single-threaded because its tensors are tiny.
* **Host and device:** all float arithmetic on the parameters (line gains, shelf
  designs, the loop-gain analysis and the stability guard) is torch on the
  parameters' device, shared by both backends; Python-number parameters are made on
  the input's device. Only integers that decide tensor shapes stay on the host: the
  rounded room sizes, the delay lengths (the plug-in's float32 recipe in numpy,
  :func:`fdn_delay_lengths`, copied to the device as integers), which items have a
  fade-in twin, and the automatic IR lengths, which are computed on the device and
  read back as integers (no float leaves the device). The numba backend then copies the line coefficients to
  its CPU kernels.
* **Gradients (numba path): a hand-written adjoint (custom ``torch.autograd.Function``).**
  The transposed network (same delays, the symmetric Hadamard matrix,
  time-reversed shelves) runs backwards in time. Correlating it with the stored
  forward line inputs gives exact gradients of the per-line decay gains and biquad
  coefficients. Torch autograd carries them on to reverb time, shelf
  gains/frequencies/Qs and fade-in time; dry/wet enters outside the kernel. Only the
  line inputs ``u`` (IR length x N per job) are kept for the backward pass, in the
  parameters' dtype (float32: 41 MB per job for a 3.6-s IR at N = 64). The
  backward re-creates the shelf outputs in cache-sized segments from checkpointed
  shelf states and costs about 3 forward passes (measured, one 5-s IR at N = 64 on
  one core: forward 0.13 s, adjoint 0.40 s; 0.62 s when it re-created them whole).
  The test suite checks it with gradcheck.
* **Convolution:** the dry path is folded into the IR as a unit impulse, so one
  FFT convolution makes the output. Overlap-save is used with FFT blocks of about
  4x the IR length. A 3-minute mono vocal at 44.1 kHz with RT = 2 s renders in
  about 0.5 s in all (IR included), and in about 1.0 s with RT = 9 s.
* **IR length:** until the slowest decay reaches -90 dB, plus the longest delay,
  for each network of a batch separately (a short reverb, or a fade-in twin, next to
  a long one costs its own length; its later samples are zero, exactly as when it is
  rendered alone). The lengths are integers computed on the parameters' device.
  The slowest decay is the worst per-line loop gain over frequency, in dB/s,
  including the shelves and any overshoot from Q > 0.707. The IR is capped at
  :data:`IR_MAX_SECONDS` (20 s) and at the input length, since later IR samples
  cannot reach the output. With lowGain = 6 dB/s and RT = 9 s the low band still
  decays (T60 = 60/(60/9 - 6) = 90 s), but only by about 13 dB in 20 s. The cap
  then truncates the tail.
* **Stability guard (deviation from the plug-in):** a shelf boost larger than
  60/T60 dB/s, e.g. lowGain 6 + highGain 4 with overlapping shelves at RT 9 s,
  makes the plug-in's network grow without bound. When the worst decay rate
  falls below :data:`MIN_DECAY_DB_PER_S` (0.5 dB/s), every line gets the same extra
  attenuation in dB/s that lifts it back to that rate. Settings that already
  decay at least that fast are untouched. The guard is not differentiated
  through (its factor is a constant).

Training (``scripts/bench_train_step.py``)
------------------------------------------
* **Repeated settings** in a batch share one recursion (and its stored line inputs);
  each item keeps its own adjoint, so its gradient is its own.
* ``training=True`` ends each IR 80 dB down (:data:`TRAINING_IR_FLOOR_DB`) instead of
  90; the output stays within -80 dB of the render (measured -118 dB on the benchmark
  batch). It buys little when IRs are already cut at the clip length.
* **Spectral IRs** (``ir_method="spectral"``, any device): the transfer function
  ``(I - D(z) H diag(g F(z)) / sqrt(N))^-1`` solved per bin of an exponentially windowed
  FFT grid (:func:`_fdn_impulse_responses_spectral`), the recursion's IRs to about
  -140 dB, gradients by autograd with bin blocks recomputed. No sequential loop: the
  work is O(K N^3) per network in batched solves, where the chunked torch recursion
  runs ~7,350 dependent chunks each way for a 5-s IR at 44.1 kHz, whatever the batch.
  Measured on this CPU (one thread): N = 64, 16,384 samples: 4.0 s forward, 12 s
  backward (numba: 0.05 s / 0.03 s); N = 16, 1 s: 2.3 s / 0.9 s. So on a CPU it is a
  reference, not a speed-up.
* **GPU design figure (estimated, not measured):** batch 16 x 5 s at N = 64 is 16
  networks (+ fade twins) x 131,073 bins of 64 x 64 complex LU solves, about 1.5e12
  real flop forward and 3x that with the backward (6e12 per step). At 25-50 % of an
  A100's 9.7 TFLOP/s in float64 that is 1.2-2.5 s a step, about what the chunked
  recursion costs in kernel launches (7,350 chunks x ~8 launches x 2 passes x ~10 us =
  1.2 s; issue 18 estimated about 2 s), so neither is "seconds-free" at N = 64. With
  ``fdn_lines=16`` the spectral path needs 64x fewer flops (~0.02-0.04 s); at N = 64
  the better GPU plan is float32 solves (2x, 4x with TF32; the loop gain near 1 limits
  them to roughly -75 dB) or fewer bins (an IR cut at the decay floor, not the clip).

Measured decay (48 kHz, N = 64, room 20, flat shelves): the T30 of the 500 Hz,
1 kHz and 2 kHz octaves is within 3% of RT for 2..9 s and within 10% for
0.3..1 s. At RT = 0.1 s the longest delays (0.53 s) are far longer than the
decay, so the sparse echoes give no meaningful T30.

Not modelled:

* the v1.15 in-loop high-pass (``hpOrder``, ``hpFrequency``, ``hpQ``) and ``freeze``;
* the legacy filters' snap of |y| < 1e-8 to zero (below -160 dBFS);
* the plug-in's start-up quirk (T60 = 3 s until revTime changes);
* parameter changes within a render.

Other deviations from the plug-in:

* Shelf cutoffs are clamped to 0.49 fs instead of 0.5 fs. This matters only below
  40 kHz, where a cutoff of fs/2 makes a degenerate shelf.
* The recursion runs in float64. Gains and coefficients are designed in float64 and
  kept there, while the plug-in stores them as float32. That rounding moves the
  near-DC loop gain of a short line's low shelf at a low cutoff by several dB/s,
  comparable to 60/T60 = 6.7 dB/s at RT 9 s. Reproducing it would make the
  low-frequency decay depend on rounding noise.

Shapes: audio ``(batch, channels, samples)``; parameters ``(batch,)`` tensors in
physical units.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numba
import numpy as np
import torch
import torch.nn.functional as F

from . import biquads
from .compressor import Param, select_backend
from .constants import FDN_LINE_COUNTS
from .convolution import overlap_save
from .params import ReverbParams

__all__ = [
    "IR_MAX_SECONDS",
    "IR_FLOOR_DB",
    "TRAINING_IR_FLOOR_DB",
    "IR_METHODS",
    "MIN_DECAY_DB_PER_S",
    "fdn_delay_lengths",
    "fdn_ir_length",
    "fdn_impulse_response",
    "fdn_reverb",
    "FdnReverb",
    "select_backend",
]

IR_MAX_SECONDS = 20.0
IR_FLOOR_DB = 90.0
#: How the IRs are computed: the sample recursion (numba or torch backend) or the
#: transfer function on an FFT grid (:func:`_fdn_impulse_responses_spectral`).
IR_METHODS = ("recursion", "spectral")
#: Decay floor of the training-time reverb (``fdn_reverb(..., training=True)``).
TRAINING_IR_FLOOR_DB = 80.0
MIN_DECAY_DB_PER_S = 0.5

# Frequency grid (fractions of Nyquist) for the worst-case loop gain, log-spaced
# because the shelves' transition bands matter most at low frequencies.
_GRID_POINTS = 1024
# Shelf cutoffs are clamped to this fraction of the sample rate (the plug-in: 0.5).
_MAX_CUTOFF_FRACTION = 0.49
# Samples per re-created segment in the adjoint kernel: 2 x (segment x N) float64
# buffers (2 MB at N = 64) stay in cache.
_ADJOINT_SEGMENT = 2048


# ---------------------------------------------------------------------------
# Delay lengths
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _odd_primes(count: int = 5000) -> np.ndarray:
    """The first ``count`` odd primes (3, 5, 7, 11, ...), as the plug-in's table."""
    limit = 60000  # pi(60000) = 6057 > count + 1
    sieve = np.ones(limit, dtype=bool)
    sieve[:2] = False
    for p in range(2, int(limit**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = False
    primes = np.nonzero(sieve)[0]
    return primes[1 : count + 1].astype(np.int64)


def _round_half_away(value: np.float32) -> int:
    # C's round() for a positive float: the float32 value is exact in float64, so
    # adding 0.5 there cannot round up a value just below x.5.
    return int(math.floor(float(value) + 0.5))


@lru_cache(maxsize=256)
def _delay_lengths_cached(room_size: int, fdn_lines: int, sr: float) -> tuple:
    primes = _odd_primes()
    first = room_size // 10
    spread = np.float32(abs(room_size - first)) / np.float32(fdn_lines)
    indices = [1 if first < 1 else first]
    for k in range(1, fdn_lines):
        # float32 throughout, in the plug-in's operation order.
        increment = np.float32(first) + spread * np.float32(k)
        if increment < 1:
            increment = np.float32(1.0)
        indices.append(_round_half_away(np.float32(indices[-1]) + increment))
    lengths = []
    for idx in indices:
        ms = np.float32(primes[idx]) / np.float32(10.0)
        seconds = ms / np.float32(1000.0)
        lengths.append(int(float(seconds) * float(sr)))  # truncation toward zero
    return tuple(lengths)


def fdn_delay_lengths(room_size: int, fdn_lines: int, sr: float) -> np.ndarray:
    """Delay of each line in samples, exactly as the plug-in computes it.

    ``room_size`` is the plug-in's Room Size (``delayLength``, 1..30); ``fdn_lines``
    one of :data:`FDN_LINE_COUNTS`; ``sr`` in Hz. Returns int64 ``(fdn_lines,)``, increasing.
    Example: room 20, 64 lines, 48 kHz gives 33, 62, 110, ..., 25252 samples.
    """
    room_size = int(round(float(room_size)))
    if not 1 <= room_size <= 30:
        raise ValueError(f"room_size must be in 1..30, got {room_size}")
    if fdn_lines not in FDN_LINE_COUNTS:
        raise ValueError(f"fdn_lines must be one of {FDN_LINE_COUNTS}, got {fdn_lines}")
    return np.array(_delay_lengths_cached(room_size, int(fdn_lines), float(sr)), dtype=np.int64)


# ---------------------------------------------------------------------------
# numba kernels: forward recursion and its adjoint
# ---------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _fwht_inplace(vec):
    # Unnormalised Sylvester-Hadamard transform, natural order.
    n = vec.shape[0]
    half = 1
    while half < n:
        for start in range(0, n, 2 * half):
            for k in range(start, start + half):
                a = vec[k]
                b = vec[k + half]
                vec[k] = a + b
                vec[k + half] = a - b
        half *= 2


#: Samples per block of the forward kernel (also at most the shortest delay): a block's
#: (lines x samples) buffers stay in the L1/L2 cache at 64 lines.
_FORWARD_BLOCK = 64


@numba.njit(cache=True, nogil=True)
def _fdn_forward_kernel(delays, gains, hs, ls, excite, out, u_store, store_u):
    """Impulse response of one network, heard at lines 0 and 1.

    delays (N,) int64 samples; gains (N,) per-line decay gains; hs, ls (N, 5)
    biquads (b0, b1, b2, a1, a2); excite (N,) input weights of the unit impulse at
    n = 0; out (2, T) written; u_store (T + 2, N) receives the line inputs u[n] in
    row n + 2 when ``store_u`` (time-major, so each sample's lines are contiguous;
    rows 0 and 1 stay zero as the filters' history for the adjoint).

    The recursion runs in blocks of c <= min(delays) samples: every line input of a
    block was written at least c samples earlier, so a block reads all its inputs
    first, runs the shelves sample by sample (the lines side by side), then mixes all
    its samples at once, the Hadamard butterflies running along time (contiguous, so
    they vectorise). Each value is computed by the same operations on the same operands
    as a sample-by-sample loop, so the result is that loop's bit for bit (tested against
    an independent per-sample recursion in tests/test_dsp_reverb.py); measured about
    2x faster at 64 lines.
    """
    n_lines = delays.shape[0]
    n_samples = out.shape[1]
    scale = 1.0 / math.sqrt(n_lines)
    base = np.zeros(n_lines, dtype=np.int64)  # start of each line's ring buffer
    for i in range(1, n_lines):
        base[i] = base[i - 1] + delays[i - 1]
    ring = np.zeros(base[n_lines - 1] + delays[n_lines - 1])
    pos = np.zeros(n_lines, dtype=np.int64)  # each ring's slot for the current sample
    fb = gains * scale  # the Hadamard normalisation folded into the gains
    # One contiguous array per coefficient so the per-line loop vectorises.
    hb0, hb1, hb2 = hs[:, 0].copy(), hs[:, 1].copy(), hs[:, 2].copy()
    ha1, ha2 = hs[:, 3].copy(), hs[:, 4].copy()
    lb0, lb1, lb2 = ls[:, 0].copy(), ls[:, 1].copy(), ls[:, 2].copy()
    la1, la2 = ls[:, 3].copy(), ls[:, 4].copy()
    hs1 = np.zeros(n_lines)
    hs2 = np.zeros(n_lines)
    ls1 = np.zeros(n_lines)
    ls2 = np.zeros(n_lines)
    block = min(_FORWARD_BLOCK, delays.min())
    by_time = np.empty((block, n_lines))  # line inputs, then shelf outputs: (sample, line)
    by_line = np.empty((n_lines, block))  # the mixing: (line, sample)
    half_lines = n_lines // 2
    n0 = 0
    while n0 < n_samples:
        c = min(block, n_samples - n0)
        for i in range(n_lines):
            length, p, b = delays[i], pos[i], base[i]
            unwrapped = min(c, length - p)
            for t in range(unwrapped):
                by_time[t, i] = ring[b + p + t]
            for t in range(unwrapped, c):
                by_time[t, i] = ring[b + p + t - length]
        if n0 == 0:
            for i in range(n_lines):
                by_time[0, i] += excite[i]
        if store_u:
            for t in range(c):
                for i in range(n_lines):
                    u_store[n0 + t + 2, i] = by_time[t, i]
        for t in range(c):
            for i in range(n_lines):
                # Transposed direct form II, high shelf then low shelf.
                u = by_time[t, i]
                w = hb0[i] * u + hs1[i]
                hs1[i] = hb1[i] * u - ha1[i] * w + hs2[i]
                hs2[i] = hb2[i] * u - ha2[i] * w
                v = lb0[i] * w + ls1[i]
                ls1[i] = lb1[i] * w - la1[i] * v + ls2[i]
                ls2[i] = lb2[i] * w - la2[i] * v
                by_time[t, i] = v
            out[0, n0 + t] = by_time[t, 0]
            out[1, n0 + t] = by_time[t, 1]
        for i in range(n_lines):
            g = fb[i]
            for t in range(c):
                by_line[i, t] = by_time[t, i] * g
        # Unnormalised Sylvester-Hadamard transform over the lines, natural order; its
        # last stage writes straight into the rings.
        half = 1
        while half < half_lines:
            for first in range(0, n_lines, 2 * half):
                for k in range(first, first + half):
                    for t in range(c):
                        a = by_line[k, t]
                        b = by_line[k + half, t]
                        by_line[k, t] = a + b
                        by_line[k + half, t] = a - b
            half *= 2
        for k in range(half_lines):
            k2 = k + half_lines
            length, p, b = delays[k], pos[k], base[k]
            length2, p2, b2 = delays[k2], pos[k2], base[k2]
            if p + c <= length and p2 + c <= length2:  # neither ring wraps: a loop that vectorises
                for t in range(c):
                    a = by_line[k, t]
                    bb = by_line[k2, t]
                    ring[b + p + t] = a + bb
                    ring[b2 + p2 + t] = a - bb
                continue
            for t in range(c):
                a = by_line[k, t]
                bb = by_line[k2, t]
                q = p + t
                if q >= length:
                    q -= length
                q2 = p2 + t
                if q2 >= length2:
                    q2 -= length2
                ring[b + q] = a + bb
                ring[b2 + q2] = a - bb
        for i in range(n_lines):
            p = pos[i] + c
            if p >= delays[i]:
                p -= delays[i]
            pos[i] = p
        n0 += c


@numba.njit(cache=True, nogil=True)
def _fdn_adjoint_kernel(delays, gains, hs, ls, u_store, grad_out, grad_gains, grad_hs, grad_ls, seg):
    """Gradients of sum(grad_out * out) w.r.t. one network's gains and biquads.

    Runs the transposed network backwards in time. For a biquad
    y[n] = sum_k b_k x[n-k] - sum_k a_k y[n-k], with yhat the adjoint of y including
    its own recursion (yhat[n] = ybar[n] - a1 yhat[n+1] - a2 yhat[n+2]):
    dJ/db_k = sum_n yhat[n] x[n-k], dJ/da_k = -sum_n yhat[n] y[n-k],
    xbar[n] = sum_k b_k yhat[n+k]. The feedback gives
    vbar_i[n] = out_bar_i[n] + g_i (A ubar[n + L])_i and dJ/dg_i = sum_n v_i[n] (A ubar[n + L])_i.

    u_store (T + 2, N) from the forward pass; grad_out (2, T); results are added to
    grad_gains (N,), grad_hs and grad_ls (N, 5). Signals are indexed by m = n + 2,
    so the two leading zero rows stand for n = -1 and n = -2 without branches.

    The shelf outputs w and v are re-created from u segment by segment
    (``seg`` samples, :data:`_ADJOINT_SEGMENT` in use; latest first) from shelf states recorded by one
    forward sweep, so the working set is two small buffers instead of two float64
    copies of the whole recursion (2 x 113 MB for a 5-s IR at N = 64, whose page
    faults and cache misses cost more than the arithmetic). Every value is computed by
    the same operations in the same order as a whole-length re-creation.
    """
    n_lines = delays.shape[0]
    n_samples = grad_out.shape[1]
    scale = 1.0 / math.sqrt(n_lines)
    u = u_store
    # Coefficients and gradient accumulators one array each, so per-line loops vectorise.
    hb0, hb1, hb2 = hs[:, 0].copy(), hs[:, 1].copy(), hs[:, 2].copy()
    ha1, ha2 = hs[:, 3].copy(), hs[:, 4].copy()
    lb0, lb1, lb2 = ls[:, 0].copy(), ls[:, 1].copy(), ls[:, 2].copy()
    la1, la2 = ls[:, 3].copy(), ls[:, 4].copy()
    n_segments = (n_samples + seg - 1) // seg
    # Sweep 1: the shelf states (s1, s2, t1, t2) at each segment's start and the shelf
    # outputs of the two samples before it (w[n-1], w[n-2], v[n-1], v[n-2]).
    checkpoints = np.zeros((n_segments, 8, n_lines))
    s1 = np.zeros(n_lines)
    s2 = np.zeros(n_lines)
    t1 = np.zeros(n_lines)
    t2 = np.zeros(n_lines)
    w1 = np.zeros(n_lines)
    w2 = np.zeros(n_lines)
    v1 = np.zeros(n_lines)
    v2 = np.zeros(n_lines)
    for m in range(2, n_samples + 2):
        if (m - 2) % seg == 0:
            k = (m - 2) // seg
            for i in range(n_lines):
                checkpoints[k, 0, i] = s1[i]
                checkpoints[k, 1, i] = s2[i]
                checkpoints[k, 2, i] = t1[i]
                checkpoints[k, 3, i] = t2[i]
                checkpoints[k, 4, i] = w1[i]
                checkpoints[k, 5, i] = w2[i]
                checkpoints[k, 6, i] = v1[i]
                checkpoints[k, 7, i] = v2[i]
        for i in range(n_lines):
            un = u[m, i]
            wn = hb0[i] * un + s1[i]
            s1[i] = hb1[i] * un - ha1[i] * wn + s2[i]
            s2[i] = hb2[i] * un - ha2[i] * wn
            vn = lb0[i] * wn + t1[i]
            t1[i] = lb1[i] * wn - la1[i] * vn + t2[i]
            t2[i] = lb2[i] * wn - la2[i] * vn
            w2[i] = w1[i]
            w1[i] = wn
            v2[i] = v1[i]
            v1[i] = vn
    # One segment of w and v; row r holds sample n = first + r - 2 of the current segment.
    w = np.zeros((seg + 2, n_lines))
    v = np.zeros((seg + 2, n_lines))
    base = np.zeros(n_lines, dtype=np.int64)
    for i in range(1, n_lines):
        base[i] = base[i - 1] + delays[i - 1]
    ring = np.zeros(base[n_lines - 1] + delays[n_lines - 1])
    # Position n mod L: the slot holding ubar[n + L], written L steps earlier.
    pos = np.empty(n_lines, dtype=np.int64)
    for i in range(n_lines):
        pos[i] = (n_samples - 1) % delays[i]
    lo_hat1 = np.zeros(n_lines)
    lo_hat2 = np.zeros(n_lines)
    hi_hat1 = np.zeros(n_lines)
    hi_hat2 = np.zeros(n_lines)
    fbar = np.empty(n_lines)
    vbar = np.empty(n_lines)
    ubar = np.empty(n_lines)
    gg = np.zeros(n_lines)
    g_lb = np.zeros((3, n_lines))
    g_la = np.zeros((2, n_lines))
    g_hb = np.zeros((3, n_lines))
    g_ha = np.zeros((2, n_lines))
    first = n_samples  # start of the segment held in w and v
    for n in range(n_samples - 1, -1, -1):
        m = n + 2
        if n < first:
            # Re-create the segment that ends at n from its checkpoint.
            k = n // seg
            first = k * seg
            for i in range(n_lines):
                s1[i] = checkpoints[k, 0, i]
                s2[i] = checkpoints[k, 1, i]
                t1[i] = checkpoints[k, 2, i]
                t2[i] = checkpoints[k, 3, i]
                w[1, i] = checkpoints[k, 4, i]
                w[0, i] = checkpoints[k, 5, i]
                v[1, i] = checkpoints[k, 6, i]
                v[0, i] = checkpoints[k, 7, i]
            for r in range(2, n - first + 3):
                mu = first + r
                for i in range(n_lines):
                    un = u[mu, i]
                    wn = hb0[i] * un + s1[i]
                    s1[i] = hb1[i] * un - ha1[i] * wn + s2[i]
                    s2[i] = hb2[i] * un - ha2[i] * wn
                    vn = lb0[i] * wn + t1[i]
                    t1[i] = lb1[i] * wn - la1[i] * vn + t2[i]
                    t2[i] = lb2[i] * wn - la2[i] * vn
                    w[r, i] = wn
                    v[r, i] = vn
        r = n - first + 2
        for i in range(n_lines):
            fbar[i] = ring[base[i] + pos[i]]
        _fwht_inplace(fbar)
        for i in range(n_lines):
            fb = fbar[i] * scale
            gg[i] += v[r, i] * fb
            vbar[i] = gains[i] * fb
        vbar[0] += grad_out[0, n]
        vbar[1] += grad_out[1, n]
        for i in range(n_lines):
            # Low shelf: input w, output v.
            yhat = vbar[i] - la1[i] * lo_hat1[i] - la2[i] * lo_hat2[i]
            wbar = lb0[i] * yhat + lb1[i] * lo_hat1[i] + lb2[i] * lo_hat2[i]
            g_lb[0, i] += yhat * w[r, i]
            g_lb[1, i] += yhat * w[r - 1, i]
            g_lb[2, i] += yhat * w[r - 2, i]
            g_la[0, i] -= yhat * v[r - 1, i]
            g_la[1, i] -= yhat * v[r - 2, i]
            lo_hat2[i] = lo_hat1[i]
            lo_hat1[i] = yhat
            # High shelf: input u, output w.
            yhat = wbar - ha1[i] * hi_hat1[i] - ha2[i] * hi_hat2[i]
            ubar[i] = hb0[i] * yhat + hb1[i] * hi_hat1[i] + hb2[i] * hi_hat2[i]
            g_hb[0, i] += yhat * u[m, i]
            g_hb[1, i] += yhat * u[m - 1, i]
            g_hb[2, i] += yhat * u[m - 2, i]
            g_ha[0, i] -= yhat * w[r - 1, i]
            g_ha[1, i] -= yhat * w[r - 2, i]
            hi_hat2[i] = hi_hat1[i]
            hi_hat1[i] = yhat
        for i in range(n_lines):
            ring[base[i] + pos[i]] = ubar[i]
            pos[i] -= 1
            if pos[i] < 0:
                pos[i] = delays[i] - 1
    for i in range(n_lines):
        grad_gains[i] += gg[i]
        for k in range(3):
            grad_hs[i, k] += g_hb[k, i]
            grad_ls[i, k] += g_lb[k, i]
        for k in range(2):
            grad_hs[i, 3 + k] += g_ha[k, i]
            grad_ls[i, 3 + k] += g_la[k, i]


def _run_jobs(kernel, jobs) -> None:
    """Run a nogil kernel once per argument tuple, on up to one thread per core."""
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        for args in jobs:
            kernel(*args)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(kernel, *args) for args in jobs]:
            future.result()


def _longest_first(lengths) -> list[int]:
    """Job order for the thread pool: long jobs first, so the cores finish together."""
    return sorted(range(len(lengths)), key=lambda j: -lengths[j])


class _FdnImpulseResponses(torch.autograd.Function):
    """Exact IRs of a set of networks (jobs), differentiable in gains and biquads.

    Inputs: gains (J, N), hs (J, N, 5), ls (J, N, 5) float64 tensors; delays and
    excite (J, N) numpy arrays; ``lengths``, a list of J IR lengths; ``store_dtype``
    for the saved line inputs. Output (J, 2, max(lengths)) float64: the wet signal v
    at lines 0 and 1, zero after each job's own length (those samples are not computed).
    """

    @staticmethod
    def forward(ctx, gains, hs, ls, delays, excite, lengths, store_dtype):
        n_jobs, n_lines = delays.shape
        needs_grad = any(ctx.needs_input_grad[:3])
        g_np = np.ascontiguousarray(gains.detach().cpu().numpy())
        hs_np = np.ascontiguousarray(hs.detach().cpu().numpy())
        ls_np = np.ascontiguousarray(ls.detach().cpu().numpy())
        # Jobs with identical networks (a batch that repeats a setting) run once and share
        # their IR and stored line inputs; each keeps its own adjoint in the backward.
        first_of: dict[tuple, int] = {}
        source = []
        for j in range(n_jobs):
            key = (
                lengths[j],
                delays[j].tobytes(),
                g_np[j].tobytes(),
                hs_np[j].tobytes(),
                ls_np[j].tobytes(),
                np.asarray(excite[j]).tobytes(),
            )
            source.append(first_of.setdefault(key, j))
        unique = sorted(first_of.values())
        outs: list[np.ndarray | None] = [None] * n_jobs
        u_store: list[np.ndarray | None] = [None] * n_jobs
        for j in unique:
            outs[j] = np.zeros((2, lengths[j]))
            u_store[j] = np.zeros((lengths[j] + 2, n_lines) if needs_grad else (1, 1), dtype=store_dtype)
        _run_jobs(
            _fdn_forward_kernel,
            [
                (delays[j], g_np[j], hs_np[j], ls_np[j], excite[j], outs[j], u_store[j], needs_grad)
                for j in _longest_first(lengths)
                if source[j] == j
            ],
        )
        outs = [outs[source[j]] for j in range(n_jobs)]
        u_store = [u_store[source[j]] for j in range(n_jobs)]
        if needs_grad:
            ctx.save_for_backward(gains, hs, ls)
            ctx.fdn = (delays, u_store, lengths)
        out = torch.zeros(n_jobs, 2, max(lengths), dtype=torch.float64)
        for j, o in enumerate(outs):
            out[j, :, : lengths[j]] = torch.from_numpy(o)
        return out.to(gains.device)

    @staticmethod
    def backward(ctx, grad_out):
        gains, hs, ls = ctx.saved_tensors
        delays, u_store, lengths = ctx.fdn
        n_jobs, n_lines = delays.shape
        grad_g = np.zeros((n_jobs, n_lines))
        grad_hs = np.zeros((n_jobs, n_lines, 5))
        grad_ls = np.zeros((n_jobs, n_lines, 5))
        g_np = np.ascontiguousarray(gains.detach().cpu().numpy())
        hs_np = np.ascontiguousarray(hs.detach().cpu().numpy())
        ls_np = np.ascontiguousarray(ls.detach().cpu().numpy())
        go = grad_out.detach().cpu().to(torch.float64).numpy()
        _run_jobs(
            _fdn_adjoint_kernel,
            [
                (
                    delays[j],
                    g_np[j],
                    hs_np[j],
                    ls_np[j],
                    u_store[j],
                    np.ascontiguousarray(go[j, :, : lengths[j]]),
                    grad_g[j],
                    grad_hs[j],
                    grad_ls[j],
                    _ADJOINT_SEGMENT,
                )
                for j in _longest_first(lengths)
            ],
        )
        dev = gains.device
        return (
            torch.from_numpy(grad_g).to(dev),
            torch.from_numpy(grad_hs).to(dev),
            torch.from_numpy(grad_ls).to(dev),
            None,
            None,
            None,
            None,
        )


# ---------------------------------------------------------------------------
# torch backend (any device): chunked recursion, differentiable by autograd
# ---------------------------------------------------------------------------

#: Upper bound of the torch recursion's chunk length (it is also <= the shortest delay).
TORCH_MAX_CHUNK = 128


def _cascade_state_space(hs: torch.Tensor, ls: torch.Tensor):
    """State space (A (..., 4, 4), B (..., 4), C (..., 4), D (...)) of high shelf -> low shelf.

    Both biquads in transposed direct form II, as in the numba kernel; the state is
    (s1, s2) of the high shelf followed by (t1, t2) of the low shelf.
    """
    hb0, hb1, hb2, ha1, ha2 = hs.unbind(-1)
    lb0, lb1, lb2, la1, la2 = ls.unbind(-1)
    zero, one = torch.zeros_like(hb0), torch.ones_like(hb0)
    lc1 = lb1 - la1 * lb0  # low-shelf state inputs per unit of w = hb0 u + s1
    lc2 = lb2 - la2 * lb0
    a = torch.stack(
        [
            torch.stack([-ha1, one, zero, zero], -1),
            torch.stack([-ha2, zero, zero, zero], -1),
            torch.stack([lc1, zero, -la1, one], -1),
            torch.stack([lc2, zero, -la2, zero], -1),
        ],
        -2,
    )
    b = torch.stack([hb1 - ha1 * hb0, hb2 - ha2 * hb0, lc1 * hb0, lc2 * hb0], -1)
    c = torch.stack([lb0, zero, one, zero], -1)
    return a, b, c, lb0 * hb0


def _chunk_matrices(hs: torch.Tensor, ls: torch.Tensor, chunk: int):
    """Exact block form of the shelf cascade over ``chunk`` samples, per (job, line).

    For input u (chunk,) and state s (4,): output ``v = T u + O s`` and new state
    ``s' = S_u u + S_s s``. T (..., C, C) is lower-triangular Toeplitz in the impulse
    response; O (..., C, 4), S_u (..., 4, C), S_s (..., 4, 4).
    """
    a, b, c, d = _cascade_state_space(hs, ls)
    powers = [torch.eye(4, dtype=a.dtype, device=a.device).expand_as(a)]
    for _ in range(chunk):
        powers.append(powers[-1] @ a)
    stacked = torch.stack(powers[:chunk], dim=-3)  # (..., C, 4, 4): A^0 .. A^(C-1)
    observe = torch.einsum("...k,...ckl->...cl", c, stacked)  # C A^c
    drive = torch.einsum("...ckl,...l->...ck", stacked, b)  # A^c B
    control = drive.flip(-2).transpose(-1, -2)  # column m: A^(C-1-m) B
    impulse = torch.cat([d[..., None], torch.einsum("...k,...ck->...c", c, drive[..., : chunk - 1, :])], -1)
    lag = torch.arange(chunk, device=a.device)
    lag = lag[:, None] - lag[None, :]
    toeplitz = impulse[..., lag.clamp(min=0)] * (lag >= 0)
    return toeplitz, observe, control, powers[chunk]


def _hadamard(n: int, dtype, device) -> torch.Tensor:
    """Sylvester-Hadamard matrix (natural order) divided by sqrt(n)."""
    h = torch.ones(1, 1, dtype=dtype, device=device)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


class _single_thread_on_cpu:
    """Run tiny per-chunk torch ops single-threaded on the CPU (restored afterwards).

    With intra-op threads each small op waited for a busy core: on the loaded 2-core
    test machine a 64 x 34 x 34 batched matmul took 8 ms with 2 threads and 0.1 ms
    with 1. Other devices are untouched.
    """

    def __init__(self, device):
        self.active = torch.device(device).type == "cpu"

    def __enter__(self):
        if self.active:
            self.threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.active:
            torch.set_num_threads(self.threads)


def _fdn_impulse_responses_torch(gains, hs, ls, delays, excite, n_samples: int) -> torch.Tensor:
    """Torch twin of :class:`_FdnImpulseResponses`: (J, 2, n_samples) float64 on the gains' device.

    gains (J, N), hs and ls (J, N, 5) float64 tensors; delays (J, N) an int numpy
    array (host-side: it decides shapes and indices), excite (J, N) a float64 tensor on
    the gains' device. The recursion runs in chunks of C <= the shortest delay samples, so
    every delay-line read inside a chunk was written by an earlier chunk. Per chunk
    and line the shelf cascade is one exact (C + 4) x (C + 4) block matrix
    (:func:`_chunk_matrices`), then the decay gains and a dense Hadamard matmul. The
    chunk matrices come from hs/ls by autograd; the recursion itself is a custom
    autograd function whose backward runs the transposed network backwards in time
    by the same chunks (:class:`_ChunkedFdn`).
    """
    f64 = torch.float64
    chunk = int(max(1, min(int(delays.min()), TORCH_MAX_CHUNK, n_samples)))
    toeplitz, observe, control, transition = _chunk_matrices(hs.to(f64), ls.to(f64), chunk)
    # [v; s'] = [[T, O], [S_u, S_s]] [u; s].
    step = torch.cat([torch.cat([toeplitz, observe], -1), torch.cat([control, transition], -1)], -2)
    return _ChunkedFdn.apply(step, gains.to(f64), delays, excite, n_samples)


class _ChunkedFdn(torch.autograd.Function):
    """(step (J, N, C+4, C+4), gains (J, N)) -> heard lines (J, 2, n_samples), all torch.

    The line history is stored pre-delayed (line i's output at time n sits at index
    n + L_i), so a chunk's reads are one aligned slice and its writes one
    ``scatter_``. The last chunk runs in full on zero-padded input (the recursion is
    causal, so its first samples are unaffected) and is cut. The forward keeps each
    chunk's [u; s] (J x N x (C + 4) per chunk) for the backward.
    """

    @staticmethod
    def forward(ctx, step, gains, delays, excite, n_samples):
        device, f64 = step.device, torch.float64
        n_jobs, n_lines = gains.shape
        chunk = step.shape[-1] - 4
        n_chunks = -(-n_samples // chunk)
        feedback = _hadamard(n_lines, f64, device)
        lengths = torch.as_tensor(delays, dtype=torch.long, device=device)
        offsets = lengths[..., None] + torch.arange(chunk, device=device)  # (J, N, C)
        span = n_chunks * chunk + int(delays.max()) + chunk
        history = torch.zeros(n_jobs, n_lines, span, dtype=f64, device=device)
        history[..., 0] = torch.as_tensor(excite, dtype=f64, device=device)
        inputs = torch.empty(n_jobs, n_lines, n_chunks, chunk + 4, dtype=f64, device=device)
        heard = torch.empty(n_jobs, 2, n_chunks, chunk, dtype=f64, device=device)
        state = torch.zeros(n_jobs, n_lines, 4, dtype=f64, device=device)
        g = gains[..., None]
        with _single_thread_on_cpu(device):
            for k in range(n_chunks):
                start = k * chunk
                z = inputs[:, :, k]
                z[..., :chunk] = history[..., start : start + chunk]
                z[..., chunk:] = state
                both = (step @ z[..., None])[..., 0]
                v, state = both[..., :chunk], both[..., chunk:]
                heard[:, :, k] = v[:, :2]
                history.scatter_(2, offsets + start, feedback @ (g * v))
        ctx.save_for_backward(step, gains, inputs, offsets)
        ctx.n_samples = n_samples
        return heard.reshape(n_jobs, 2, n_chunks * chunk)[..., :n_samples]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_heard):
        step, gains, inputs, offsets = ctx.saved_tensors
        device, f64 = step.device, torch.float64
        n_jobs, n_lines, n_chunks, width = inputs.shape
        chunk = width - 4
        feedback = _hadamard(n_lines, f64, device)  # symmetric: its own transpose
        grad_heard = F.pad(grad_heard.to(f64), (0, n_chunks * chunk - ctx.n_samples))
        grad_heard = grad_heard.reshape(n_jobs, 2, n_chunks, chunk)
        grad_inputs = torch.zeros(n_jobs, n_lines, offsets.max() + n_chunks * chunk + 1, dtype=f64, device=device)
        grad_outputs = torch.empty_like(inputs)  # adjoint of [v; s'] per chunk
        grad_state = torch.zeros(n_jobs, n_lines, 4, dtype=f64, device=device)
        grad_gains = torch.zeros_like(gains)
        step_t = step.transpose(-1, -2)
        g = gains[..., None]
        with _single_thread_on_cpu(device):
            for k in range(n_chunks - 1, -1, -1):
                start = k * chunk
                z = inputs[:, :, k]
                # Adjoint of this chunk's delay-line writes: what later chunks read.
                mixed_bar = feedback @ grad_inputs.gather(2, offsets + start)
                v = (step[..., :chunk, :] @ z[..., None])[..., 0]
                grad_gains += (v * mixed_bar).sum(-1)
                y_bar = grad_outputs[:, :, k]
                y_bar[..., :chunk] = g * mixed_bar
                y_bar[:, :2, :chunk] += grad_heard[:, :, k]
                y_bar[..., chunk:] = grad_state
                z_bar = (step_t @ y_bar[..., None])[..., 0]
                grad_inputs[..., start : start + chunk] = z_bar[..., :chunk]
                grad_state = z_bar[..., chunk:]
            grad_step = grad_outputs.transpose(-1, -2) @ inputs  # sum_k y_bar_k z_k^T
        return grad_step, grad_gains, None, None, None


# ---------------------------------------------------------------------------
# Spectral IRs (any device): the network's transfer function on an FFT grid
# ---------------------------------------------------------------------------

#: Frequency bins per batched solve of the spectral path (bounds its memory).
SPECTRAL_BINS_PER_SOLVE = 2048
#: Time-aliasing suppression of the spectral path: r^-K for the exponential window.
_SPECTRAL_ALIAS = 1e-7


def _biquad_on_circle(c: torch.Tensor, zinv: torch.Tensor) -> torch.Tensor:
    """(b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2) for c (..., 5) at zinv (K,)."""
    b0, b1, b2, a1, a2 = (t[..., None] for t in c.unbind(-1))
    return (b0 + zinv * (b1 + zinv * b2)) / (1.0 + zinv * (a1 + zinv * a2))


def _spectral_block(gains, hs, ls, lengths, excite, zinv, hadamard):
    """Heard-line spectra (J, 2, k) at the points ``zinv`` (k,) (z^-1 values)."""
    n_lines = gains.shape[1]
    shelves = _biquad_on_circle(hs, zinv) * _biquad_on_circle(ls, zinv)  # (J, N, k)
    delay = torch.exp(lengths[..., None] * torch.log(zinv))  # z^-L, (J, N, k)
    # u = e + D H (g / sqrt(N) F u)  ->  (I - D H diag(g F / sqrt(N))) u = e, per bin.
    column = (gains.to(shelves.dtype)[..., None] * shelves / math.sqrt(n_lines)).permute(0, 2, 1)  # (J, k, N)
    row = delay.permute(0, 2, 1)  # (J, k, N)
    identity = torch.eye(n_lines, dtype=shelves.dtype, device=shelves.device)
    system = identity - row[..., :, None] * hadamard * column[..., None, :]
    rhs = excite.to(shelves.dtype)[:, None, :, None].expand(-1, zinv.shape[0], -1, 1)
    u = torch.linalg.solve(system, rhs)[..., 0]  # (J, k, N)
    return (u[..., :2] * shelves[:, :2].permute(0, 2, 1)).permute(0, 2, 1)  # v = F u on lines 0, 1


def _fdn_impulse_responses_spectral(gains, hs, ls, delays, excite, n_samples: int) -> torch.Tensor:
    """The IRs of :class:`_FdnImpulseResponses` from the transfer function, (J, 2, n_samples).

    Per bin of a K-point grid (K >= n_samples, a power of two) the network is a linear
    system ``(I - D(z) H diag(g F(z)) / sqrt(N)) u = e`` (D the delays, H the unnormalised
    Hadamard, F the shelf cascade per line), solved by ``torch.linalg.solve`` in
    complex128; the heard lines are ``F u``. The grid lies on the circle |z| = r with
    r^-K = 1e-7 (an exponential window), so the inverse FFT gives h[n] r^-n with the
    time-aliased tail attenuated by 140 dB; multiplying by r^n restores h. No sample
    loop: a few dozen batched ops per block of :data:`SPECTRAL_BINS_PER_SOLVE` bins, on
    any device, differentiable by autograd (blocks are recomputed in the backward, so
    memory stays at one block). Cost is O(K N^3) per network: cheap for few lines or
    short IRs, a GPU's work for N = 64 and seconds-long IRs.
    """
    f64, c128 = torch.float64, torch.complex128
    device = gains.device
    n_fft = 1 << max(1, int(math.ceil(math.log2(max(n_samples, 2)))))
    log_r = -math.log(_SPECTRAL_ALIAS) / n_fft
    omega = 2.0 * math.pi * torch.arange(n_fft // 2 + 1, dtype=f64, device=device) / n_fft
    zinv = torch.polar(torch.full_like(omega, math.exp(-log_r)), -omega)
    hadamard = (_hadamard(gains.shape[1], f64, device) * math.sqrt(gains.shape[1])).to(c128)
    lengths = torch.as_tensor(delays, dtype=f64, device=device).to(c128)
    excite = torch.as_tensor(excite, dtype=f64, device=device)
    blocks = []
    for start in range(0, zinv.shape[0], SPECTRAL_BINS_PER_SOLVE):
        args = (
            gains.to(f64),
            hs.to(f64),
            ls.to(f64),
            lengths,
            excite,
            zinv[start : start + SPECTRAL_BINS_PER_SOLVE],
            hadamard,
        )
        if torch.is_grad_enabled() and any(t.requires_grad for t in args[:3]):
            blocks.append(torch.utils.checkpoint.checkpoint(_spectral_block, *args, use_reentrant=False))
        else:
            blocks.append(_spectral_block(*args))
    windowed = torch.fft.irfft(torch.cat(blocks, dim=-1), n=n_fft)[..., :n_samples]
    return windowed * torch.exp(log_r * torch.arange(n_samples, dtype=f64, device=device))


# ---------------------------------------------------------------------------
# Parameters -> per-line gains and shelves
# ---------------------------------------------------------------------------


def _as_batch(value, batch: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """A (batch,) float tensor on ``like``'s device; Python numbers take its dtype.

    Without ``like``: float32, and Python numbers are made on the CPU.
    """
    if not torch.is_tensor(value):
        value = torch.tensor(
            value,
            dtype=like.dtype if like is not None else torch.float32,
            device=like.device if like is not None else None,
        )
    elif like is not None:
        value = value.to(like.device)
    t = value if torch.is_floating_point(value) else value.to(torch.float32)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"parameters must be scalars or (batch,) tensors, got shape {tuple(t.shape)}")
    return t


def _line_seconds(delays, sr, device) -> torch.Tensor:
    """Delays in seconds, (B, N) float64 on ``device``, from the int (B, N) array ``delays``.

    The integers are copied to the device and divided there (the same IEEE division
    as ``delays / sr`` in numpy).
    """
    return torch.as_tensor(delays, dtype=torch.float64, device=device) / float(sr)


def _line_coefficients(seconds, sr, reverb_time_s, low_cutoff_hz, low_q, low_gain, high_cutoff_hz, high_q, high_gain):
    """Per-line decay gains (B, N) and shelves (B, N, 5), float64.

    ``seconds`` is the (B, N) float64 tensor of :func:`_line_seconds`; the other
    parameters are (B,) tensors on its device.
    """
    f64 = torch.float64
    rt = reverb_time_s.to(f64).clamp(min=1e-3).unsqueeze(1)
    # 10^(-3 L / (fs T60)) in one power: the per-second factor 10^(-3/T60) underflows
    # to 0 for T60 below ~1 ms (a short fade-in twin), and pow(0, L) has an inf x 0
    # (NaN) gradient with respect to T60. Here the exponent stays finite, so a gain
    # that underflows gets an exactly-zero gradient instead.
    gains = torch.pow(10.0, -3.0 * seconds / rt)

    def shelf(design, cutoff, q, gain_db_per_s):
        # The plug-in clamps at fs/2, where a shelf degenerates into a double pole at
        # z = -1 (only reachable below 40 kHz); a hair lower keeps it a proper filter.
        freq = cutoff.to(f64).clamp(max=_MAX_CUTOFF_FRACTION * sr).unsqueeze(1).expand_as(seconds)
        qq = q.to(f64).unsqueeze(1).expand_as(seconds)
        gain_db = gain_db_per_s.to(f64).unsqueeze(1) * seconds
        b, a = design(freq, gain_db, qq, float(sr))
        return torch.cat([b, a[..., 1:]], dim=-1)

    hs = shelf(biquads.high_shelf, high_cutoff_hz, high_q, high_gain)
    ls = shelf(biquads.low_shelf, low_cutoff_hz, low_q, low_gain)
    return gains, hs, ls


def _grid_cosines(sr: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(omega) and cos(2 omega) on the loop-gain grid (float64, on ``device``).

    omega / pi is 0 followed by :data:`_GRID_POINTS` log-spaced points from 1 / (sr / 2)
    (1 Hz) to 1 (Nyquist).
    """
    # numpy.logspace's recipe: start + k * step, the last point exactly 0.
    start = math.log10(1.0 / (0.5 * sr))
    exponents = torch.arange(_GRID_POINTS, dtype=torch.float64, device=device) * (-start / (_GRID_POINTS - 1))
    exponents = F.pad((exponents + start)[:-1], (0, 1))
    omega = math.pi * F.pad(torch.pow(10.0, exponents), (1, 0))  # 0, then the log grid
    return torch.cos(omega), torch.cos(2.0 * omega)


def _shelf_peak_db(hs, ls, sr) -> torch.Tensor:
    """Peak over frequency of |HS_i LS_i| in dB per line, (B, N) float64 (no grad).

    Evaluated on the loop-gain grid (:func:`_grid_cosines`); the costly part of
    :func:`_loop_decay_rates`, shared by a network and its fade-in twin.
    """
    cos1, cos2 = _grid_cosines(sr, hs.device)

    def power(c0, c1, c2):
        # |c0 + c1 z + c2 z^2|^2 on the unit circle, written with real cosines.
        return c0**2 + c1**2 + c2**2 + 2.0 * (c0 * c1 + c1 * c2) * cos1 + 2.0 * c0 * c2 * cos2

    def shelf_power(c):
        b0, b1, b2, a1, a2 = c.detach().to(torch.float64)[..., None].unbind(-2)
        return power(b0, b1, b2) / power(1.0, a1, a2).clamp(min=1e-300)

    return 10.0 * torch.log10(torch.amax(shelf_power(hs) * shelf_power(ls), dim=-1))


def _loop_decay_rates(gains, hs, ls, seconds, sr, shelf_db=None) -> torch.Tensor:
    """Slowest decay over lines and frequency, dB per second, (B,) float64 (no grad).

    Per line the loop gain is g_i |HS_i LS_i|, spent over L_i / fs seconds. ``gains``
    and ``seconds`` (B, N), ``hs`` and ``ls`` (B, N, 5) are torch tensors on one
    device; everything is computed there (both backends use this function).
    ``shelf_db``: :func:`_shelf_peak_db` of ``hs`` and ``ls`` if already computed.
    """
    loop_db = _shelf_peak_db(hs, ls, sr) if shelf_db is None else shelf_db  # (B, N)
    loop_db = loop_db + 20.0 * torch.log10(gains.detach().to(torch.float64).clamp(min=1e-300))
    return torch.amin(-loop_db / seconds, dim=-1)


def fdn_ir_length(
    decay_db_per_s: float | np.ndarray | torch.Tensor, longest_delay: int, sr: float, max_samples: int | None = None
) -> int:
    """IR length in samples: -90 dB at the slowest decay plus the longest delay.

    ``decay_db_per_s`` is a float, an array or a tensor (its slowest rate is used). Capped at
    :data:`IR_MAX_SECONDS` and at ``max_samples``.
    """
    if torch.is_tensor(decay_db_per_s):
        slowest = float(decay_db_per_s.detach().min())  # one scalar to the host: a length
    else:
        slowest = float(np.min(np.asarray(decay_db_per_s, dtype=np.float64)))
    seconds = IR_FLOOR_DB / max(slowest, 1e-9) + longest_delay / sr
    n = int(math.ceil(min(seconds, IR_MAX_SECONDS) * sr))
    if max_samples is not None:
        n = min(n, int(max_samples))
    return max(n, 1)


def _item_ir_lengths(rates, delays, sr: float, max_samples: int | None, floor_db: float = IR_FLOOR_DB):
    """Per-network IR lengths (int64 tensor on the rates' device), :func:`fdn_ir_length`'s
    rule applied to each network's own slowest decay and longest delay.

    ``rates`` (J,) dB/s; ``delays`` (J, N) int numpy array. The same IEEE operations as
    :func:`fdn_ir_length` in float64, so a batch item gets the length it gets alone.
    """
    longest = torch.as_tensor(delays.max(axis=1), dtype=torch.float64, device=rates.device)
    seconds = floor_db / rates.detach().to(torch.float64).clamp(min=MIN_DECAY_DB_PER_S) + longest / sr
    n = torch.ceil(seconds.clamp(max=IR_MAX_SECONDS) * sr).to(torch.int64)
    if max_samples is not None:
        n = n.clamp(max=int(max_samples))
    return n.clamp(min=1)


def _guard(gains, rates, seconds):
    """Extra uniform dB/s loss that brings a (near-)unstable setting to the minimum rate.

    gains and ``seconds`` (B, N), rates (B,), all torch on one device. Items that
    decay fast enough get a factor of exactly 1 (10^-0), so no host-side branch is
    needed. The factor is a constant for autograd (the rates carry no gradient).
    """
    deficit = (MIN_DECAY_DB_PER_S - rates).clamp(min=0.0)  # (B,)
    return gains * torch.pow(10.0, -deficit[:, None] * seconds / 20.0).to(gains)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def fdn_impulse_response(
    sr: float,
    room_size: Param,
    reverb_time_s: Param,
    low_cutoff_hz: Param,
    low_q: Param,
    low_gain_db_per_s: Param,
    high_cutoff_hz: Param,
    high_q: Param,
    high_gain_db_per_s: Param,
    fade_in_s: Param | None = None,
    fdn_lines: int = 64,
    n_samples: int | None = None,
    mono_input: bool = False,
    backend: str = "auto",
    ir_method: str = "recursion",
    max_samples: int | None = None,
) -> torch.Tensor:
    """Wet impulse responses of the network (the signal v heard at lines 0 and 1).

    Parameters are ``(batch,)`` tensors (or scalars) in plug-in units: room size
    1..30, reverb time in s, cutoffs in Hz, Qs, shelf gains in dB/s, fade-in
    time in s (0 or None: no fade-in twin). ``n_samples`` fixes the IR length, or
    by default :func:`fdn_ir_length`'s rule chooses it per item (the result is as long
    as the longest; each item is zero after its own length).

    Returns float64 if the reverb time is float64, else float32, shaped
    ``(batch, 2 fed lines, 2 heard lines, n)``. With ``mono_input`` lines 0 and 1
    are fed the same signal and the result is ``(batch, 2 heard lines, n)``.
    The plug-in's output is ``w * (x conv IR) + (1 - w) * x`` (see :func:`fdn_reverb`).
    ``backend``: ``"auto"`` (numba recursion for CPU tensors, torch elsewhere),
    ``"numba"`` or ``"torch"``; the device is the reverb time's. ``max_samples`` caps
    the automatic length as :func:`fdn_reverb` caps it at its input's length, so
    ``reverb_with_ir(x, h[:, None], w)`` with ``max_samples=x.shape[-1]`` is
    ``fdn_reverb(x, ...)`` bit for bit (mono ``x``).
    """
    h = _impulse_responses(
        sr,
        room_size,
        reverb_time_s,
        low_cutoff_hz,
        low_q,
        low_gain_db_per_s,
        high_cutoff_hz,
        high_q,
        high_gain_db_per_s,
        fade_in_s,
        fdn_lines,
        n_samples,
        mono_input,
        max_samples=max_samples,
        backend=backend,
        ir_method=ir_method,
    )
    return h[:, 0] if mono_input else h


def _impulse_responses(
    sr,
    room_size,
    reverb_time_s,
    low_cutoff_hz,
    low_q,
    low_gain_db_per_s,
    high_cutoff_hz,
    high_q,
    high_gain_db_per_s,
    fade_in_s,
    fdn_lines,
    n_samples,
    mono_input,
    max_samples=None,
    backend="auto",
    ir_floor_db=IR_FLOOR_DB,
    ir_method="recursion",
):
    """Wet IRs (B, E, 2, n), E = 1 (mono feed) or 2 fed lines.

    ``max_samples`` caps the automatic length (the input length in :func:`fdn_reverb`);
    ``ir_floor_db`` is the decay at which the automatic length ends.
    """
    if fdn_lines not in FDN_LINE_COUNTS:
        raise ValueError(f"fdn_lines must be one of {FDN_LINE_COUNTS}, got {fdn_lines}")
    if ir_method not in IR_METHODS:
        raise ValueError(f"ir_method must be one of {IR_METHODS}, got {ir_method!r}")
    rt = torch.as_tensor(reverb_time_s)
    if not torch.is_floating_point(rt):
        rt = rt.to(torch.float32)
    param_dtype = rt.dtype
    # Scalars broadcast over the batch that the (batch,) tensors define.
    batch = max(
        [1]
        + [
            v.numel()
            for v in (
                rt,
                room_size,
                low_cutoff_hz,
                low_q,
                low_gain_db_per_s,
                high_cutoff_hz,
                high_q,
                high_gain_db_per_s,
                fade_in_s,
            )
            if torch.is_tensor(v)
        ]
    )
    rt = _as_batch(rt.reshape(-1) if rt.numel() == batch else rt.reshape(()), batch)
    p = [
        _as_batch(v, batch, like=rt)
        for v in (rt, low_cutoff_hz, low_q, low_gain_db_per_s, high_cutoff_hz, high_q, high_gain_db_per_s)
    ]
    # Host-side integers (they decide tensor shapes): the rounded room sizes, the delay
    # lengths, which items have a fade-in twin, and below the IR length.
    rooms = _as_batch(room_size, batch).detach().round().to(torch.int64).tolist()
    delays = np.stack([fdn_delay_lengths(r, fdn_lines, sr) for r in rooms])
    # Everything float from here on is torch on the parameters' device.
    seconds = _line_seconds(delays, sr, rt.device)
    gains, hs, ls = _line_coefficients(seconds, sr, *p)

    fade = None
    fade_items: list[int] = []
    if fade_in_s is not None:
        fade = _as_batch(fade_in_s, batch, like=rt)
        fade_items = torch.nonzero(fade.detach() != 0.0).flatten().tolist()
    fade_gains = None
    if fade_items:
        # The twin shares delays and shelves; only its T60 differs.
        fade_gains, _, _ = _line_coefficients(seconds, sr, fade, *p[1:])

    shelf_db = _shelf_peak_db(hs, ls, sr)  # the twin shares the shelves
    rates = _loop_decay_rates(gains, hs, ls, seconds, sr, shelf_db)
    gains = _guard(gains, rates, seconds)
    slowest = rates
    if fade_items:
        fade_rates = _loop_decay_rates(fade_gains, hs, ls, seconds, sr, shelf_db)
        fade_gains = _guard(fade_gains, fade_rates, seconds)
        slowest = torch.cat([rates, fade_rates[fade_items]])
    job_lengths = None
    if n_samples is None:
        # Each network runs until its own decay floor (the guard lifts every rate to at
        # least the minimum), so a batch item's IR is the one it gets when rendered alone
        # and short reverbs and fade-in twins cost their own length, not the batch's
        # longest. The lengths are integers computed on the device.
        job_lengths = _item_ir_lengths(slowest, delays[list(range(batch)) + fade_items], sr, max_samples, ir_floor_db)
        n_samples = int(job_lengths.max())  # an integer to the host: it sets the shape
    n_samples = int(n_samples)

    # Jobs: every (network, fed line set); the twin networks follow the main ones.
    feeds = [[1.0, 1.0]] if mono_input else [[1.0, 0.0], [0.0, 1.0]]
    n_feeds = len(feeds)
    job_items = list(range(batch)) + fade_items
    job_gains = torch.cat([gains] + ([fade_gains[fade_items]] if fade_gains is not None else []))
    job_gains = job_gains.repeat_interleave(n_feeds, dim=0)
    job_hs = hs[job_items].repeat_interleave(n_feeds, dim=0)
    job_ls = ls[job_items].repeat_interleave(n_feeds, dim=0)
    job_delays = np.ascontiguousarray(np.repeat(delays[job_items], n_feeds, axis=0))
    excite = torch.zeros(job_delays.shape, dtype=torch.float64, device=job_gains.device)  # (J, N)
    excite[:, :2] = torch.tensor(feeds, dtype=torch.float64, device=job_gains.device).repeat(len(job_items), 1)
    if job_lengths is not None:
        job_lengths = job_lengths.repeat_interleave(n_feeds)
    if ir_method == "spectral":
        out = _fdn_impulse_responses_spectral(job_gains, job_hs, job_ls, job_delays, excite, n_samples)
        if job_lengths is not None:
            keep = torch.arange(n_samples, device=out.device) < job_lengths[:, None, None]
            out = out * keep
    elif select_backend(job_gains.device, backend) == "torch":
        out = _fdn_impulse_responses_torch(job_gains, job_hs, job_ls, job_delays, excite, n_samples)
        if job_lengths is not None:
            # The recursion runs in lockstep to the longest; later samples are cut as the
            # numba path never computes them.
            keep = torch.arange(n_samples, device=out.device) < job_lengths[:, None, None]
            out = out * keep
    else:
        store_dtype = np.float64 if param_dtype == torch.float64 else np.float32
        lengths = [n_samples] * len(job_delays) if job_lengths is None else job_lengths.tolist()
        out = _FdnImpulseResponses.apply(
            job_gains.contiguous(),
            job_hs.contiguous(),
            job_ls.contiguous(),
            job_delays,
            excite.cpu().numpy(),
            lengths,
            store_dtype,
        )
    out = out.reshape(len(job_items), n_feeds, 2, n_samples)
    h = out[:batch]
    if fade_items:
        # out = y - w * v_fade: the twin's wet response is subtracted.
        twin = torch.zeros_like(h).index_copy(0, torch.tensor(fade_items, device=h.device), out[batch:])
        h = h - twin
    return h.to(param_dtype)


def _spectral_product(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """sum_e X[b, e, ..., f] * H[b, e, o, f] -> (b, o, ..., f), broadcasting directly."""
    extra = X.dim() - 3  # frame axes between channel and frequency
    Hx = H.reshape(H.shape[:3] + (1,) * extra + H.shape[-1:])
    prod = X.unsqueeze(2) * Hx
    return prod[:, 0] if X.shape[1] == 1 else prod.sum(dim=1)


class _OneFftConvolution(torch.autograd.Function):
    """``y_o = sum_e x_e * h_eo`` by one FFT of ``n_fft >= T + K - 1`` (no wrap-around),
    truncated to the input length T; x (B, E, T), h (B, E, O, K) -> (B, O, T).

    The backward reuses the forward's spectra: with G the spectrum of the output
    gradient, ``grad x_e = irfft(sum_o G_o conj(H_eo))`` and ``grad h_eo = irfft(G_o conj(X_e))``
    (circular correlations that cannot wrap, for the same reason), cut to T and K: one
    forward and two inverse FFTs, about a third of what autograd spends through the
    generic FFT and complex-product backward.
    """

    @staticmethod
    def forward(ctx, x, h, n_fft):
        X = torch.fft.rfft(x, n=n_fft)
        H = torch.fft.rfft(h, n=n_fft)
        ctx.save_for_backward(X if ctx.needs_input_grad[1] else None, H if ctx.needs_input_grad[0] else None)
        ctx.shapes = (n_fft, x.shape[-1], h.shape[-1])
        return torch.fft.irfft(_spectral_product(X, H), n=n_fft)[..., : x.shape[-1]]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        X, H = ctx.saved_tensors
        n_fft, n_in, k = ctx.shapes
        G = torch.fft.rfft(grad_y, n=n_fft)  # (B, O, F)
        grad_x = grad_h = None
        if H is not None:
            grad_x = torch.fft.irfft((G.unsqueeze(1) * H.conj()).sum(2), n=n_fft)[..., :n_in]
        if X is not None:
            grad_h = torch.fft.irfft(G.unsqueeze(1) * X.conj().unsqueeze(2), n=n_fft)[..., :k]
        return grad_x, grad_h, None


def _fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal convolution truncated to the input length.

    x (B, E, T), h (B, E, O, K) -> (B, O, T) with y_o = sum_e x_e * h_eo.
    Uses one FFT for short inputs and overlap-save with blocks of about 4 K
    (measured faster than one long FFT for minutes of audio) for long ones.
    """
    n_in = x.shape[-1]
    k = h.shape[-1]
    block = 1 << max(15, int(math.ceil(math.log2(4 * k))))
    if n_in + k <= 2 * block:
        n_fft = 1 << int(math.ceil(math.log2(n_in + k - 1)))
        return _OneFftConvolution.apply(x, h, n_fft)
    H = torch.fft.rfft(h, n=block)
    return overlap_save(x, block, k - 1, lambda frames: _spectral_product(frames, H))


def fdn_reverb(
    x: torch.Tensor,
    sr: float,
    room_size: Param,
    reverb_time_s: Param,
    low_cutoff_hz: Param,
    low_q: Param,
    low_gain_db_per_s: Param,
    high_cutoff_hz: Param,
    high_q: Param,
    high_gain_db_per_s: Param,
    dry_wet: Param,
    fade_in_s: Param,
    fdn_lines: int = 64,
    backend: str = "auto",
    training: bool = False,
    ir_method: str = "recursion",
) -> torch.Tensor:
    """FdnReverb on ``x`` (batch, 1 or 2, samples) -> (batch, 2, samples).

    Parameters are ``(batch,)`` tensors or scalars in plug-in units (see
    :func:`fdn_impulse_response`); ``dry_wet`` is a fraction 0..1 and ``fade_in_s``
    seconds (0 disables the fade-in). A mono input is fed to lines 0 and 1, as a
    DAW feeds a mono track into the stereo plug-in, so the output is stereo.
    The output has the input's length: pad the input to keep the tail.
    Differentiable in every parameter except ``room_size`` and ``fdn_lines``.
    ``backend`` selects the IR recursion: ``"auto"`` (numba for CPU tensors, torch
    on other devices), ``"numba"`` or ``"torch"``.

    ``training=True`` (the training-time reverb) ends each IR where its slowest decay
    reaches :data:`TRAINING_IR_FLOOR_DB` (80 dB) instead of :data:`IR_FLOOR_DB` (90 dB):
    the tail left out is below -80 dB of the wet energy, and the recursion and its
    adjoint, which dominate a training step, are that much shorter. Everything else
    (delays, lines, coefficients) is the render's. For a network with fewer lines
    (cheaper, but a different sound: other delays) pass a smaller ``fdn_lines``.

    ``ir_method="spectral"`` computes the IRs from the network's transfer function on
    an FFT grid (batched linear solves, no sample loop; see
    :func:`_fdn_impulse_responses_spectral`) instead of the recursion: the same IRs to
    about -140 dB, for GPUs, where the recursion's thousands of sequential steps are
    bound by kernel launches.
    """
    if x.dim() != 3 or x.shape[1] not in (1, 2):
        raise ValueError(f"x must be (batch, 1 or 2, samples), got {tuple(x.shape)}")
    batch, channels, n_in = x.shape
    rt = _as_batch(reverb_time_s, batch, like=x)
    h = _impulse_responses(
        sr,
        room_size,
        rt,
        low_cutoff_hz,
        low_q,
        low_gain_db_per_s,
        high_cutoff_hz,
        high_q,
        high_gain_db_per_s,
        fade_in_s,
        fdn_lines,
        None,
        channels == 1,
        max_samples=n_in,  # later IR samples never reach the output
        backend=select_backend(x.device, backend),
        ir_floor_db=TRAINING_IR_FLOOR_DB if training else IR_FLOOR_DB,
        ir_method=ir_method,
    )
    return reverb_with_ir(x, h, dry_wet)


def reverb_with_ir(x: torch.Tensor, h: torch.Tensor, dry_wet) -> torch.Tensor:
    """The plug-in's output ``w * (x conv h) + (1 - w) * x`` for wet IRs already computed.

    ``x`` (batch, E, samples), ``h`` (batch, E, 2, n) as :func:`fdn_impulse_response`
    returns them (add the fed-line axis for a mono feed), ``dry_wet`` a fraction 0..1
    (``(batch,)`` or scalar) -> (batch, 2, samples). :func:`fdn_reverb` is the IRs
    followed by this; a caller that renders many items with the same reverb settings
    (the training-data renderer) computes each IR once and calls this.
    """
    batch, channels = x.shape[:2]
    w = _as_batch(dry_wet, batch, like=x).to(x.dtype).clamp(0.0, 1.0).view(batch, 1, 1, 1)
    # The dry path is a unit impulse from channel e to output e (both outputs for a
    # mono input); folding it into the IR saves a pass over the whole output.
    dry = torch.zeros_like(h[..., :1])
    if channels == 1:
        dry[:, 0, :, 0] = 1.0
    else:
        dry[:, 0, 0, 0] = dry[:, 1, 1, 0] = 1.0
    h = w * h.to(x.dtype)
    h = torch.cat([h[..., :1] + (1.0 - w) * dry.to(x.dtype), h[..., 1:]], dim=-1)
    return _fft_convolve(x, h)


class FdnReverb(torch.nn.Module):
    """Module wrapper of :func:`fdn_reverb` with a fixed sample rate: ``forward(x, params)`` with
    the batch's :class:`.params.ReverbParams` (which carry the network size)."""

    def __init__(self, sample_rate: float, backend: str = "auto", training: bool = False):
        super().__init__()
        self.training_reverb = bool(training)
        select_backend("cpu", backend)  # validate early
        self.backend = backend
        self.sample_rate = float(sample_rate)

    def forward(self, x: torch.Tensor, params: ReverbParams) -> torch.Tensor:
        if not isinstance(params, ReverbParams):
            raise TypeError(f"FdnReverb takes ReverbParams, got {type(params).__name__}")
        return fdn_reverb(
            x, self.sample_rate, **params.arguments(), backend=self.backend, training=self.training_reverb
        )
