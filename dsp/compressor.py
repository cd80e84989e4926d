"""Differentiable model of the IEM OmniCompressor (v1.14/v1.15 DSP, identical in both).

Signal flow, per sample n (see ``shared/notes/iem-plugins.md``, OmniCompressor):

1. Detector: ``L[n] = max(20*log10|x[b, 0, n]|, -100)`` dB -- instantaneous peak of
   channel 0 only; there is no RMS and no maximum over channels.
2. Gain computer (:func:`static_gain_db`): target reduction ``G[n] <= 0`` dB from
   threshold ``T``, ratio ``R`` and knee width ``K``; ``R > 15.9`` means infinity.
3. Ballistics on ``G`` in dB: ``y[n] = y[n-1] + a_n * (G[n] - y[n-1])`` with
   ``a_n = alpha_attack`` if ``G[n] < y[n-1]`` else ``alpha_release``, ``y[-1] = 0``
   and ``alpha = 1 - exp(-1 / (fs * t))`` (``t = 0`` gives ``alpha = 1``).
4. Optional lookahead of ``D = trunc(0.005f * fs)`` samples: the reduction gets a
   linear lead-in ``r[m] = min_{0<=k<D} y[m+k] * (1 - k/D)`` and is delayed by ``D``,
   together with every input channel. (The plug-in re-anchors its ramp at block
   edges; this is the block-free form.)
5. Output: ``x * 10^((reduction + makeup) / 20)``, or 0 where that exponent is
   ``<= -100`` dB. The same gain multiplies every channel.

Channels: the plug-in runs as an Ambisonics processor, so a *stereo* input is order 0
and only channel 0 is compressed there (channel 1 passes, merely delayed with
lookahead). vocalmix deliberately applies the gain to **all** channels: the detector
still listens to channel 0 only, but every channel gets the same gain, which is the
plug-in's behaviour for 1 or 4 channels and what a linked stereo compressor should do.

Implementation: the detector and the gain computer are plain torch (vectorised and
differentiable by autograd). The two sequential parts -- the ballistic recursion and
the lookahead min-of-ramps -- are numba kernels (``@numba.njit(cache=True)``) inside
custom autograd functions with exact hand-written backward passes (first order only:
no double backward). The recursion carries its state in float64; the gradient w.r.t.
the attack/release coefficients reads the stored output, so it is exact for float64
input and exact to float32 rounding otherwise.

Backends and devices (``backend="auto"|"numba"|"torch"``, :func:`select_backend`):
``auto`` runs the numba kernels for CPU tensors and a pure-torch implementation of the
same two parts for tensors on any other device (CUDA, MPS), so a device path never
copies to the CPU. The torch path (tests force it on the CPU, where it agrees with
numba to float32 rounding, gradients included):

* Ballistics: the recursion is linear once the branch pattern is known, so per window
  of 32768 samples it guesses the pattern, solves ``y[n] = (1 - a_n) y[n-1] + a_n G[n]``
  by a blocked parallel scan (float64), recomputes the branches from the result and
  repeats until they agree; each round fixes at least one more leading sample, and
  after 8 rounds the consistent prefix is kept and the next window starts there.
  The backward is the same adjoint as the numba kernel's, solved by the same scan.
* Lookahead: a sliding-window minimum over D ramped values (``unfold``, in chunks),
  with the same scatter backward.

Measured torch-path speed on the 2-core CPU (synthetic vocal, batch 1, no grad;
numba takes <= 0.1 s for all of these): 10-s clip 0.11 s (threshold -30, 5/100 ms),
0.16 s with lookahead, 0.27 s / 0.38 s for a hard case (attack 0, release 10 ms, whose
branch search needs many rounds); 3-minute signal 1.4 s / 2.4 s with lookahead, hard
case 4.6 s / 8.2 s. Its cost is dominated by the number of small torch ops, so on a GPU
it is launch-bound; it exists so the device path uses nothing CPU-only.

With ``backend="numba"`` a tensor on another device is copied to the CPU for the
kernel and the result copied back. Supported dtypes: float32 and float64.

When no gradient is needed (``torch.no_grad()`` or no input requires grad) the
elementwise passes run in place on internal buffers, which roughly halves the time on
long signals; results are the same.

All parameters are ``(batch,)`` tensors (Python numbers are broadcast) in physical
units: threshold, knee and makeup in dB, ratio as ``R:1``, times in milliseconds.
Plug-in ranges: threshold -50..10, ratio 1..16, knee 0..30, attack 0..100,
release 0..500, makeup -10..20. The plug-in snaps values to its parameter grid (0.1 dB,
0.2 ratio, 0.1 ms); this module does not, so gradients stay useful.

Gradients are exact for this piecewise-smooth model. Some are zero by construction:
``d/d ratio`` for ratio > 15.9 (the plug-in switches to infinity), ``d/d knee`` at
knee 0 (a hard knee stays hard for small widening), ``d/d time`` at a time of 0 ms
(``alpha`` is flat there), and everything that acts through ``G`` while the signal
stays below the knee or at ratio 1.
"""

from __future__ import annotations

import math
from typing import Union

import numba
import numpy as np
import torch
from torch import nn

from .params import CompressorParams

__all__ = [
    "Compressor",
    "compressor",
    "select_backend",
    "gain_reduction_db",
    "static_gain_db",
    "detector_level_db",
    "time_constant_to_alpha",
    "lookahead_samples",
    "INFINITE_RATIO_ABOVE",
    "LEVEL_FLOOR_DB",
]

#: Ratios strictly above this value are treated as infinite (limiting), as in the plug-in.
INFINITE_RATIO_ABOVE = 15.9
#: Extra width (dB) of the softplus whose gradient stands in for the gain computer's in
#: training (``compressor(..., training=True)``).
SURROGATE_SOFTNESS_DB = 6.0
#: Floor of the detector level and the gain below which the output is muted, in dB.
LEVEL_FLOOR_DB = -100.0

_LOOKAHEAD_SECONDS = 0.005
_DB_TO_NEPER = math.log(10.0) / 20.0  # 10^(dB/20) == exp(dB * _DB_TO_NEPER)

Param = Union[torch.Tensor, float, int]
LookaheadArg = Union[bool, torch.Tensor]


# --------------------------------------------------------------------------------------
# numba kernels (CPU). They take numpy views of contiguous tensors.
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _ballistics_forward_kernel(target_db, alpha_attack, alpha_release, state_db, attack_taken):
    """Attack/release smoothing of ``target_db`` (batch, n) into ``state_db`` (same dtype).

    ``attack_taken[b, n]`` records the branch (1 = attack) for the backward pass. The
    running state is carried in float64 even for float32 input: with release times of
    hundreds of ms the per-sample step is ~1e-4 of the state, and a float32 state
    stalls a few hundredths of a dB short of its target.
    """
    batch, length = target_db.shape
    for b in range(batch):
        a_att = alpha_attack[b]
        a_rel = alpha_release[b]
        state = 0.0
        for n in range(length):
            diff = target_db[b, n] - state
            if diff < 0.0:
                state += a_att * diff
                attack_taken[b, n] = 1
            else:
                state += a_rel * diff
                attack_taken[b, n] = 0
            state_db[b, n] = state


@numba.njit(cache=True, nogil=True)
def _ballistics_render_kernel(target_db, alpha_attack, alpha_release, state_db):
    """:func:`_ballistics_forward_kernel` without the branch record (no gradient wanted),
    four items at a time: each sample's attack/release step waits for the previous one,
    so four independent items in flight (and a select instead of a branch the predictor
    misses) run about 3x faster per item on a batch. The same operations per item, so the
    same values bit for bit."""
    batch, length = target_db.shape
    first = 0
    while first + 4 <= batch:
        t0, t1, t2, t3 = target_db[first], target_db[first + 1], target_db[first + 2], target_db[first + 3]
        o0, o1, o2, o3 = state_db[first], state_db[first + 1], state_db[first + 2], state_db[first + 3]
        aa0, aa1, aa2, aa3 = alpha_attack[first : first + 4]
        ar0, ar1, ar2, ar3 = alpha_release[first : first + 4]
        s0 = s1 = s2 = s3 = 0.0
        for n in range(length):
            d0 = t0[n] - s0
            d1 = t1[n] - s1
            d2 = t2[n] - s2
            d3 = t3[n] - s3
            s0 += (aa0 if d0 < 0.0 else ar0) * d0
            s1 += (aa1 if d1 < 0.0 else ar1) * d1
            s2 += (aa2 if d2 < 0.0 else ar2) * d2
            s3 += (aa3 if d3 < 0.0 else ar3) * d3
            o0[n] = s0
            o1[n] = s1
            o2[n] = s2
            o3[n] = s3
        first += 4
    for b in range(first, batch):
        a_att = alpha_attack[b]
        a_rel = alpha_release[b]
        state = 0.0
        for n in range(length):
            diff = target_db[b, n] - state
            state += (a_att if diff < 0.0 else a_rel) * diff
            state_db[b, n] = state


@numba.njit(cache=True, nogil=True)
def _gain_computer_kernel(level_db, phi_squared, corner, inv_knee, knee, slope):
    """In place on ``level_db`` (batch, n) float32: ``relu(L - corner - knee) * slope``, and
    ``clamp((L - corner) * inv_knee, 0, 1)^2`` into ``phi_squared``, each step a float32
    operation as torch's in-place sequence performs it (:func:`static_gain_db`)."""
    batch, length = level_db.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for b in range(batch):
        c, ik, k, sl = corner[b], inv_knee[b], knee[b], slope[b]
        row, phi = level_db[b], phi_squared[b]
        for n in range(length):
            u = row[n] - c
            p = u * ik
            p = min(max(p, zero), one)
            phi[n] = p * p
            v = u - k
            row[n] = (v if v > zero else zero) * sl


@numba.njit(cache=True)
def _ballistics_backward_kernel(
    grad_state, target_db, state_db, attack_taken, alpha_attack, alpha_release, grad_target, grad_alpha
):
    """Adjoint of :func:`_ballistics_forward_kernel`.

    With ``y[n] = (1 - a_n) y[n-1] + a_n G[n]`` the adjoint ``lam[n] = dLoss/dy[n]``
    (total) obeys ``lam[n] = grad_state[n] + (1 - a_{n+1}) lam[n+1]``, run backwards
    in time. Then ``dLoss/dG[n] = a_n lam[n]`` and ``dLoss/da_n = lam[n] (G[n] - y[n-1])``,
    summed into the attack or release coefficient according to the branch taken.
    ``y[n-1]`` is read from the stored output, i.e. rounded to its dtype; that only
    matters at float32 precision (float64 input gives the exact gradient).
    """
    batch, length = target_db.shape
    for b in range(batch):
        a_att = alpha_attack[b]
        a_rel = alpha_release[b]
        carry = 0.0  # (1 - a_{n+1}) * lam[n+1]
        g_att = 0.0
        g_rel = 0.0
        for n in range(length - 1, -1, -1):
            previous = state_db[b, n - 1] if n > 0 else 0.0
            diff = target_db[b, n] - previous
            lam = grad_state[b, n] + carry
            if attack_taken[b, n]:
                a = a_att
                g_att += lam * diff
            else:
                a = a_rel
                g_rel += lam * diff
            grad_target[b, n] = a * lam
            carry = (1.0 - a) * lam
        grad_alpha[b, 0] = g_att
        grad_alpha[b, 1] = g_rel


@numba.njit(cache=True)
def _min_of_ramps_kernel(values, ramp_length, out, winner, record_winner):
    """``out[m] = min_{0<=k<D, m+k<n} values[m+k] * (1 - k/D)``; ``winner[m]`` = that m+k.

    Requires ``values <= 0`` (gain reductions). Each sample j draws its ramp backwards
    over the previous D-1 positions and the walk stops at the first position whose
    current value is already <= the ramp. The stop is exact: that value comes from the
    ramp of an earlier sample j' < j (or is the sample itself); both ramps are straight
    lines, and j''s is below j''s here and also where j's reaches 0 (j''s value there is
    <= 0), hence over every remaining position. Typical cost is far below n * D.
    ``winner`` is written only if ``record_winner`` (it may then be a dummy array).
    """
    batch, length = values.shape
    inv = 1.0 / ramp_length
    for b in range(batch):
        for j in range(length):
            v = values[b, j]
            out[b, j] = v
            if record_winner:
                winner[b, j] = j
            for k in range(1, ramp_length):
                p = j - k
                if p < 0:
                    break
                ramp = v * (1.0 - k * inv)
                if ramp < out[b, p]:
                    out[b, p] = ramp
                    if record_winner:
                        winner[b, p] = j
                else:
                    break


# --------------------------------------------------------------------------------------
# autograd functions
# --------------------------------------------------------------------------------------


def _cpu_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").contiguous().numpy()


class _Ballistics(torch.autograd.Function):
    """``(G (batch, n), alpha_attack (batch,), alpha_release (batch,)) -> y (batch, n)``."""

    @staticmethod
    def forward(ctx, target_db, alpha_attack, alpha_release):
        target_cpu = target_db.detach().to("cpu").contiguous()
        alpha_att_np = _cpu_numpy(alpha_attack).astype(np.float64)
        alpha_rel_np = _cpu_numpy(alpha_release).astype(np.float64)
        state = torch.empty_like(target_cpu)
        if not any(ctx.needs_input_grad):
            _ballistics_render_kernel(target_cpu.numpy(), alpha_att_np, alpha_rel_np, state.numpy())
            return state.to(target_db.device)
        attack_taken = torch.empty(target_cpu.shape, dtype=torch.uint8)
        _ballistics_forward_kernel(target_cpu.numpy(), alpha_att_np, alpha_rel_np, state.numpy(), attack_taken.numpy())
        ctx.save_for_backward(target_cpu, state, attack_taken)
        ctx.alphas = (alpha_att_np, alpha_rel_np)
        ctx.alpha_meta = (alpha_attack.device, alpha_attack.dtype, alpha_release.device, alpha_release.dtype)
        return state.to(target_db.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_state):
        target_cpu, state, attack_taken = ctx.saved_tensors
        alpha_att_np, alpha_rel_np = ctx.alphas
        grad_target = torch.empty_like(target_cpu)
        grad_alpha = np.empty((target_cpu.shape[0], 2), dtype=np.float64)
        _ballistics_backward_kernel(
            _cpu_numpy(grad_state),
            target_cpu.numpy(),
            state.numpy(),
            attack_taken.numpy(),
            alpha_att_np,
            alpha_rel_np,
            grad_target.numpy(),
            grad_alpha,
        )
        dev_a, dt_a, dev_r, dt_r = ctx.alpha_meta
        grad_alpha_t = torch.from_numpy(grad_alpha)
        return (
            grad_target.to(grad_state.device),
            grad_alpha_t[:, 0].to(device=dev_a, dtype=dt_a),
            grad_alpha_t[:, 1].to(device=dev_r, dtype=dt_r),
        )


class _MinOfRamps(torch.autograd.Function):
    """``values (batch, n) <= 0 -> min over the next D samples of values * (1 - k/D)``."""

    @staticmethod
    def forward(ctx, values, ramp_length: int):
        values_np = _cpu_numpy(values)
        out = np.empty_like(values_np)
        record = bool(ctx.needs_input_grad[0])
        winner = np.empty(values_np.shape if record else (1, 1), dtype=np.int64)
        _min_of_ramps_kernel(values_np, ramp_length, out, winner, record)
        if record:
            ctx.save_for_backward(torch.from_numpy(winner).to(values.device))
        ctx.ramp_length = ramp_length
        return torch.from_numpy(out).to(values.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (winner,) = ctx.saved_tensors
        position = torch.arange(winner.shape[-1], device=winner.device)
        weight = 1.0 - (winner - position).to(grad_out.dtype) / ctx.ramp_length
        grad_values = torch.zeros_like(grad_out)
        grad_values.scatter_add_(-1, winner, grad_out * weight)
        return grad_values, None


# --------------------------------------------------------------------------------------
# torch backend (any device): the same two sequential parts without numpy/numba
# --------------------------------------------------------------------------------------

BACKENDS = ("auto", "numba", "torch")

#: Samples per window of the torch ballistics' branch search (see :func:`_ballistics_torch`).
TORCH_BALLISTICS_WINDOW = 32768
_TORCH_BRANCH_ITERATIONS = 8
_SCAN_BLOCK = 64


def select_backend(device: torch.device | str, backend: str = "auto") -> str:
    """The kernel backend for tensors on ``device``: ``"numba"`` or ``"torch"``.

    ``backend="auto"`` picks numba on the CPU and torch on every other device (CUDA,
    MPS, ...), so no device path copies to the CPU; ``"numba"`` or ``"torch"`` force
    one (numba on a non-CPU device copies to the CPU and back).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return "numba" if torch.device(device).type == "cpu" else "torch"


def _scan_in_place(a: torch.Tensor, b: torch.Tensor) -> None:
    """Inclusive scan of ``y[k] = a[k] y[k-1] + b[k]`` along the last axis (y[-1] = 0).

    Hillis-Steele: log2(K) doubling steps. Afterwards ``b`` holds y and ``a`` the
    running products of the coefficients. Only products of numbers in [0, 1] and
    sums of bounded terms occur, so it is as stable as the sequential recursion.
    """
    k = a.shape[-1]
    d = 1
    while d < k:
        b[..., d:] += a[..., d:] * b[..., :-d]
        a[..., d:] = a[..., d:] * a[..., :-d]  # via a temporary: the slices overlap
        d *= 2


def _linear_recurrence(a: torch.Tensor, b: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
    """``y[n] = a[n] y[n-1] + b[n]`` with ``y[-1] = y0``: (B, n) coefficients, (B,) y0.

    Blocked parallel scan, no Python loop over time: scans of :data:`_SCAN_BLOCK`
    samples run in parallel, and the block-to-block carries (a recurrence of the same
    form, n / 64 long) are solved recursively. ``a`` must lie in [0, 1]. Not
    differentiable (the callers write their own backward). Inputs are not modified.
    """
    batch, n = a.shape
    k = _SCAN_BLOCK
    if n <= k:
        a = a.clone()
        b = b.clone()
        _scan_in_place(a, b)
        return b.addcmul_(a, y0[:, None])
    m = -(-n // k)
    pad = m * k - n
    a_blocks = torch.nn.functional.pad(a, (0, pad), value=1.0).reshape(batch, m, k)
    b_blocks = torch.nn.functional.pad(b, (0, pad)).reshape(batch, m, k)
    _scan_in_place(a_blocks, b_blocks)  # padded copies: safe to overwrite
    ends = _linear_recurrence(a_blocks[..., -1], b_blocks[..., -1], y0)  # y at each block end
    carry = torch.cat([y0[:, None], ends[:, :-1]], dim=1)
    return b_blocks.addcmul_(a_blocks, carry[..., None]).reshape(batch, m * k)[:, :n]


def _ballistics_torch(target: torch.Tensor, alpha_attack: torch.Tensor, alpha_release: torch.Tensor):
    """Torch forward of the ballistics: ``(state (B, n) float64, attack_taken (B, n) bool)``.

    The recursion is linear once the branch pattern (attack where ``G[n] < y[n-1]``)
    is known. Per window of :data:`TORCH_BALLISTICS_WINDOW` samples we guess the
    pattern, solve the linear recursion by a parallel scan, recompute the pattern from
    the result, and repeat until it no longer changes. Each round makes at least one
    more leading sample consistent (a consistent prefix keeps its values, and the next
    branch is decided by them), so the search cannot cycle; if it has not settled
    after a few rounds, only the consistent prefix (common to the batch) is kept and
    the next window starts there. The state is float64, as in the numba kernel.
    """
    g_all = target.detach().to(torch.float64)
    batch, n = g_all.shape
    a_att = alpha_attack.detach().to(device=g_all.device, dtype=torch.float64)[:, None]
    a_rel = alpha_release.detach().to(device=g_all.device, dtype=torch.float64)[:, None]
    state_all = torch.empty_like(g_all)
    attack_all = torch.empty(g_all.shape, dtype=torch.bool, device=g_all.device)
    state = g_all.new_zeros(batch)
    start = 0
    guess = None
    while start < n:
        stop = min(start + TORCH_BALLISTICS_WINDOW, n)
        g = g_all[:, start:stop]
        width = stop - start
        # First guess: the tail of the previous window's last pattern, else "attack
        # wherever the target is below the current state".
        pattern = g < state[:, None]
        if guess is not None and guess.shape[1] > 0:
            known = min(guess.shape[1], width)
            pattern[:, :known] = guess[:, :known]
        for _ in range(_TORCH_BRANCH_ITERATIONS):
            used = pattern
            a = torch.where(used, a_att, a_rel)
            y = _linear_recurrence(1.0 - a, a * g, state)
            previous = torch.cat([state[:, None], y[:, :-1]], dim=1)
            pattern = (g - previous) < 0.0  # the branches this trajectory implies
            mismatch = pattern != used
            if not bool(mismatch.any()):
                done = width
                break
        else:
            # Keep the consistent prefix of the last round, common to the batch. It
            # has at least one sample: sample 0's branch depends on `state` only.
            first = torch.where(
                mismatch.any(dim=1),
                mismatch.to(torch.uint8).argmax(dim=1),
                torch.full((batch,), width, dtype=torch.long, device=g.device),
            )
            done = max(int(first.min()), 1)
        state_all[:, start : start + done] = y[:, :done]
        attack_all[:, start : start + done] = used[:, :done]
        state = y[:, done - 1].clone()
        guess = pattern[:, done:] if done < width else None
        start += done
    return state_all, attack_all


class _BallisticsTorch(torch.autograd.Function):
    """Same contract as :class:`_Ballistics`, all in torch on the input's device."""

    @staticmethod
    def forward(ctx, target_db, alpha_attack, alpha_release):
        state64, attack = _ballistics_torch(target_db, alpha_attack, alpha_release)
        state = state64.to(target_db.dtype)
        ctx.save_for_backward(target_db.detach(), state, attack, alpha_attack.detach(), alpha_release.detach())
        return state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_state):
        target, state, attack, alpha_attack, alpha_release = ctx.saved_tensors
        f64 = torch.float64
        a = torch.where(attack, alpha_attack.to(f64)[:, None], alpha_release.to(f64)[:, None])
        # Adjoint lam[n] = grad[n] + (1 - a[n+1]) lam[n+1], solved forwards on the
        # time-reversed arrays (see _ballistics_backward_kernel).
        decay = torch.flip(1.0 - a, dims=[1])
        decay = torch.cat([torch.ones_like(decay[:, :1]), decay[:, :-1]], dim=1)
        lam = torch.flip(
            _linear_recurrence(
                decay, torch.flip(grad_state.to(f64), dims=[1]), grad_state.new_zeros(a.shape[0], dtype=f64)
            ),
            dims=[1],
        )
        previous = torch.cat([torch.zeros_like(state[:, :1]), state[:, :-1]], dim=1).to(f64)
        weighted = lam * (target.to(f64) - previous)
        g_att = torch.where(attack, weighted, 0.0).sum(dim=1)
        g_rel = torch.where(attack, 0.0, weighted).sum(dim=1)
        return (
            (a * lam).to(grad_state.dtype),
            g_att.to(alpha_attack.dtype),
            g_rel.to(alpha_release.dtype),
        )


#: Output samples per chunk of the torch min-of-ramps (a chunk holds chunk x D values).
_RAMP_CHUNK_ELEMENTS = 1 << 20  # measured: 4x faster than 1 << 22 (cache)


class _MinOfRampsTorch(torch.autograd.Function):
    """Same contract as :class:`_MinOfRamps`: a sliding-window minimum of ramped values."""

    @staticmethod
    def forward(ctx, values, ramp_length: int):
        batch, n = values.shape
        f64 = torch.float64
        weights = 1.0 - torch.arange(ramp_length, device=values.device, dtype=f64) / ramp_length
        # +inf past the end: ramps only reach samples that exist.
        padded = torch.nn.functional.pad(values.detach().to(f64), (0, ramp_length - 1), value=math.inf)
        out = torch.empty_like(values)
        winner = torch.empty(values.shape, dtype=torch.long, device=values.device)
        chunk = max(1, _RAMP_CHUNK_ELEMENTS // (ramp_length * batch))
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            window = padded[:, s : e + ramp_length - 1].unfold(1, ramp_length, 1)  # (B, e-s, D)
            best, k = torch.min(window * weights, dim=-1)
            out[:, s:e] = best.to(values.dtype)
            winner[:, s:e] = k + torch.arange(s, e, device=values.device)
        ctx.save_for_backward(winner)
        ctx.ramp_length = ramp_length
        return out

    backward = _MinOfRamps.backward  # type: ignore[assignment]


# --------------------------------------------------------------------------------------
# torch parts: detector, gain computer, coefficients
# --------------------------------------------------------------------------------------
#
# The full-length elementwise passes come in two flavours selected by `in_place`:
# out-of-place when autograd records (the default), and in place on buffers this
# module owns when no gradient is needed. For a 3-minute signal every fresh temporary
# is 32 MB whose page faults cost about as much as the arithmetic, so the inference
# path reuses two buffers instead of allocating about a dozen. Both flavours are the
# same formula, op for op; the tests check they agree.


def lookahead_samples(sr: float) -> int:
    """Lookahead delay ``D = trunc(0.005f * fs)`` in samples: the plug-in's delay is the float32
    constant 0.005f (a hair under 0.005) times the double rate, so 220 at 44.1 kHz, 239 at 48 kHz."""
    return int(float(np.float32(_LOOKAHEAD_SECONDS)) * sr)


def time_constant_to_alpha(time_ms: torch.Tensor, sr: float) -> torch.Tensor:
    """Smoothing coefficient ``alpha = 1 - exp(-1 / (fs * t))``; ``t <= 0`` gives 1.

    ``time_ms``: any shape, milliseconds. ``expm1`` keeps the small coefficients of long
    times accurate in float32. The masked denominator keeps the gradient at t = 0
    finite (it is 0 there: alpha is flat as t -> 0).
    """
    positive = time_ms > 0
    safe_ms = torch.where(positive, time_ms, torch.ones_like(time_ms))
    alpha = -torch.expm1(-1000.0 / (sr * safe_ms))
    return torch.where(positive, alpha, torch.ones_like(alpha))


def detector_level_db(x: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """Detector level ``max(20 log10 |x[:, 0]|, -100)`` in dB: (batch, channels, n) -> (batch, n).

    ``in_place`` only changes how the result is computed (see above); ``x`` is never
    modified.
    """
    floor = 10.0 ** (LEVEL_FLOOR_DB / 20.0)
    # Clamping the amplitude (not the dB value) keeps log10 and its gradient finite at 0.
    if in_place:
        return x[:, 0].abs().clamp_(min=floor).log10_().mul_(20.0)
    return 20.0 * torch.log10(torch.clamp(x[:, 0].abs(), min=floor))


def _per_item(p: Param, batch: int, like: torch.Tensor) -> torch.Tensor:
    """A parameter as a (batch,) tensor on ``like``'s device and dtype."""
    if not isinstance(p, torch.Tensor):
        # Build Python numbers in the signal's dtype: a float32 detour would round them.
        p = torch.tensor(float(p), dtype=like.dtype, device=like.device)
    if p.dim() == 0:
        p = p.expand(batch)
    if p.shape != (batch,):
        raise ValueError(f"parameters must be scalars or of shape ({batch},), got {tuple(p.shape)}")
    return p.to(device=like.device, dtype=like.dtype)


def _column(p: torch.Tensor, ndim: int) -> torch.Tensor:
    return p.reshape(p.shape + (1,) * (ndim - 1))


def static_gain_db(
    level_db: torch.Tensor,
    threshold_db: torch.Tensor,
    ratio: torch.Tensor,
    knee_db: torch.Tensor,
    in_place: bool = False,
) -> torch.Tensor:
    """Gain computer: target gain change ``G <= 0`` dB for a detector level.

    ``level_db``: (batch, ...) in dB; parameters (batch,). With ``o = L - T`` and
    slope ``s = 1/R - 1`` (``-1`` for R > 15.9)::

        G = 0                       if o <= -K/2
            s (o + K/2)^2 / (2K)    if -K/2 < o <= K/2
            s o                     otherwise

    Ratios below 1 are clamped to 1 (this is a compressor; it also keeps G <= 0, which
    the lookahead kernel relies on). ``in_place=True`` overwrites ``level_db`` with the
    result (no-gradient use only).
    """
    nd = level_db.dim()
    ratio = torch.clamp(ratio, min=1.0)
    knee = torch.clamp(knee_db, min=0.0)
    slope = torch.where(ratio > INFINITE_RATIO_ABOVE, -torch.ones_like(ratio), 1.0 / ratio - 1.0)
    # The three branches as one branch-free expression: fewer full-length passes, and no
    # masked-out branch whose gradient could be inf * 0. With u = o + K/2 (dB above the
    # knee's lower corner) and the knee fraction phi = clamp(u/K, 0, 1):
    #     G = s * (max(u - K, 0) + K/2 * phi^2).
    # phi is computed as clamp(u / max(K, eps)), so at K = 0 it is exactly 0 or 1 and
    # d/dK is the one-sided limit (the knee term is K/2, not K^2 / (2 eps)).
    corner = _column(threshold_db - 0.5 * knee, nd)
    knee_col = _column(knee, nd)
    inv_knee = _column(1.0 / torch.clamp(knee, min=1e-6), nd)
    slope_col = _column(slope, nd)
    knee_coef = _column(0.5 * slope * knee, nd)
    if in_place:
        if level_db.dtype == torch.float32 and level_db.device.type == "cpu" and level_db.dim() == 2:
            # The elementwise steps in one compiled pass (the same float32 operations in the same
            # order); the last multiply-add stays torch's addcmul_, which fuses it (one rounding).
            u = level_db.contiguous()
            phi_squared = torch.empty_like(u)
            _gain_computer_kernel(
                u.numpy(),
                phi_squared.numpy(),
                *(t.reshape(-1).contiguous().numpy() for t in (corner, inv_knee, knee_col, slope_col)),
            )
            return u.addcmul_(phi_squared, knee_coef)
        u = level_db.sub_(corner)
        phi_squared = torch.mul(u, inv_knee).clamp_(0.0, 1.0).square_()
        return u.sub_(knee_col).relu_().mul_(slope_col).addcmul_(phi_squared, knee_coef)
    u = level_db - corner
    phi = torch.clamp(u * inv_knee, 0.0, 1.0)
    return torch.addcmul(torch.relu(u - knee_col) * slope_col, phi.square(), knee_coef)


def _lookahead_mask(lookahead: LookaheadArg, batch: int, device) -> Union[torch.Tensor, bool]:
    """``True``/``False`` when the whole batch agrees, else a (batch,) bool tensor."""
    if isinstance(lookahead, torch.Tensor):
        lookahead = lookahead.to(device=device, dtype=torch.bool)
        if lookahead.dim() == 0:
            return bool(lookahead)
        if lookahead.shape != (batch,):
            raise ValueError(f"lookahead must be a bool or a ({batch},) bool tensor")
        if bool(lookahead.all()):
            return True
        if not bool(lookahead.any()):
            return False
        return lookahead
    return bool(lookahead)


def _delay(signal: torch.Tensor, samples: int) -> torch.Tensor:
    """Delay along the last axis by ``samples``, zero-filled, same length."""
    n = signal.shape[-1]
    pad = signal.new_zeros(signal.shape[:-1] + (min(samples, n),))
    return torch.cat([pad, signal[..., : max(n - samples, 0)]], dim=-1)


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _straight_through(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``exact``'s value with ``surrogate``'s gradient."""
    return exact + (surrogate - surrogate.detach())


def _surrogate_gain_db(level_db, threshold_db, ratio, knee_db):
    """A smooth stand-in for :func:`static_gain_db`, used only for its gradient in training.

    The slope ``1/R - 1`` continues through the infinite-ratio switch (R > 15.9), and the
    hinge ``max(u - K, 0) + K/2 phi^2`` is replaced by a softplus of width
    ``K/2 + SURROGATE_SOFTNESS_DB``, so a threshold above every level still feels the peaks.
    """
    nd = level_db.dim()
    slope = _column(1.0 / torch.clamp(ratio, min=1.0) - 1.0, nd)
    width = _column(0.5 * torch.clamp(knee_db, min=0.0) + SURROGATE_SOFTNESS_DB, nd)
    return slope * width * torch.nn.functional.softplus((level_db - _column(threshold_db, nd)) / width)


def _reduction(
    x, sr, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead, in_place, backend="auto", training=False
):
    """Gain reduction in dB aligned with the output, and the normalised lookahead mask."""
    use_torch = select_backend(x.device, backend) == "torch"
    ballistics = _BallisticsTorch if use_torch else _Ballistics
    min_of_ramps = _MinOfRampsTorch if use_torch else _MinOfRamps
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, channels, samples), got {tuple(x.shape)}")
    batch = x.shape[0]
    threshold_db, ratio, knee_db, attack_ms, release_ms = (
        _per_item(p, batch, x) for p in (threshold_db, ratio, knee_db, attack_ms, release_ms)
    )
    level = detector_level_db(x, in_place=in_place)
    surrogate = training and not in_place
    if surrogate:
        # The exact curve carries the value and the gradient to the level (so to the
        # input); the settings get the surrogate's gradient instead.
        exact = static_gain_db(level, threshold_db.detach(), ratio.detach(), knee_db.detach())
        target = _straight_through(exact, _surrogate_gain_db(level.detach(), threshold_db, ratio, knee_db))
    else:
        target = static_gain_db(level, threshold_db, ratio, knee_db, in_place=in_place)
    alpha_attack = time_constant_to_alpha(attack_ms, sr)
    alpha_release = time_constant_to_alpha(release_ms, sr)
    if surrogate:
        # alpha is flat at t = 0; one sample period added gives the surrogate a slope there.
        one_sample_ms = 1000.0 / sr
        alpha_attack = _straight_through(alpha_attack, time_constant_to_alpha(attack_ms + one_sample_ms, sr))
        alpha_release = _straight_through(alpha_release, time_constant_to_alpha(release_ms + one_sample_ms, sr))
    reduction = ballistics.apply(target, alpha_attack, alpha_release)
    mask = _lookahead_mask(lookahead, batch, x.device)
    ramp = lookahead_samples(sr)
    if mask is False or ramp < 1:
        return reduction, False
    # The ramps run on the reduction already delayed by D (zeros in front), so output
    # sample n gets min_k y[n - D + k] * (1 - k/D): the lead-in starts D - 1 samples
    # before the delayed transient and reaches the full reduction on it.
    padded = torch.cat([reduction.new_zeros(batch, ramp), reduction], dim=-1)
    delayed = min_of_ramps.apply(padded, ramp)[:, : reduction.shape[-1]]
    if mask is True:
        return delayed, True
    return torch.where(mask[:, None], delayed, reduction), mask


def gain_reduction_db(
    x: torch.Tensor,
    sr: float,
    threshold_db: Param,
    ratio: Param,
    knee_db: Param,
    attack_ms: Param,
    release_ms: Param,
    lookahead: LookaheadArg = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Smoothed gain reduction in dB (<= 0, without makeup), aligned with the output.

    ``x``: (batch, channels, samples); parameters as in :func:`compressor`; returns
    (batch, samples). With lookahead the curve includes the lead-in ramp and the
    D-sample delay, i.e. it is exactly the dB gain that :func:`compressor` applies to
    the (delayed) input, minus makeup. ``backend``: see :func:`select_backend`.
    """
    in_place = not _needs_grad(x, threshold_db, ratio, knee_db, attack_ms, release_ms)
    return _reduction(x, sr, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead, in_place, backend)[0]


def compressor(
    x: torch.Tensor,
    sr: float,
    threshold_db: Param,
    ratio: Param,
    knee_db: Param,
    attack_ms: Param,
    release_ms: Param,
    makeup_db: Param,
    lookahead: LookaheadArg = False,
    backend: str = "auto",
    training: bool = False,
) -> torch.Tensor:
    """OmniCompressor on a batch of signals.

    Args:
        x: (batch, channels, samples) float tensor. The detector uses channel 0; the
            resulting gain multiplies every channel (see the module docstring).
        sr: sample rate in Hz.
        threshold_db, ratio, knee_db, attack_ms, release_ms, makeup_db: (batch,)
            tensors (or Python numbers, broadcast to the batch) in dB, ``R:1``, dB, ms,
            ms, dB. A ratio above 15.9 is infinite.
        lookahead: a Python bool for the whole batch, or a (batch,) bool tensor to set
            it per item. Where on, every channel is delayed by ``lookahead_samples(sr)``
            and the output keeps the input length, so the last D input samples are not
            heard (pad the input if they matter).
        backend: ``"auto"`` (numba on the CPU, torch on other devices), ``"numba"``
            or ``"torch"``; see :func:`select_backend`. Both agree to float32 rounding.
        training: render exactly the same output, but give the settings surrogate
            gradients that have no dead zones (straight-through): the gain computer's
            gradient comes from a softplus curve (:data:`SURROGATE_SOFTNESS_DB` wider than
            the knee, slope 1/R - 1 also above R = 15.9), so a threshold above the signal,
            a hard knee and the infinite ratio still get gradients; attack and release get
            the slope of ``alpha`` at the time plus one sample, so 0 ms is not flat. The
            input's gradient stays exact. For training parameterisations that start in
            those zones (issue 18); a render never needs it.

    Returns:
        (batch, channels, samples) tensor with the dtype and device of ``x``.
    """
    params = (threshold_db, ratio, knee_db, attack_ms, release_ms, makeup_db)
    in_place = not _needs_grad(x, *params)
    reduction, mask = _reduction(
        x, sr, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead, in_place, backend, training
    )
    makeup_neper = _column(_per_item(makeup_db, x.shape[0], x) * _DB_TO_NEPER, 2)
    # gain = 10^((reduction + makeup) / 20), muted at or below -100 dB like JUCE's
    # decibelsToGain (`threshold` mutes in one pass and passes gradients elsewhere).
    mute_below = 10.0 ** (LEVEL_FLOOR_DB / 20.0)
    if in_place:
        gain = reduction.mul_(_DB_TO_NEPER).add_(makeup_neper).exp_()
        gain = torch.nn.functional.threshold_(gain, mute_below, 0.0)  # type: ignore[attr-defined]
    else:
        gain = torch.exp(torch.add(makeup_neper, reduction, alpha=_DB_TO_NEPER))
        gain = torch.nn.functional.threshold(gain, mute_below, 0.0)
    if mask is False:
        return x * gain[:, None, :]
    delayed = _delay(x, lookahead_samples(sr))
    if mask is not True:
        delayed = torch.where(mask[:, None, None], delayed, x)
    # `delayed` is always a fresh tensor here.
    return delayed.mul_(gain[:, None, :]) if in_place else delayed * gain[:, None, :]


class Compressor(nn.Module):
    """Thin module wrapper of :func:`compressor` for a fixed sample rate: ``forward(x, params)``
    with the :class:`.params.CompressorParams` of the batch; ``backend`` is passed on (see
    :func:`select_backend`).
    """

    def __init__(self, sample_rate: float, backend: str = "auto"):
        super().__init__()
        select_backend("cpu", backend)  # validate early
        self.sample_rate = float(sample_rate)
        self.backend = backend

    def forward(self, x: torch.Tensor, params: CompressorParams) -> torch.Tensor:
        return compressor(x, self.sample_rate, **_arguments(params), backend=self.backend)

    def gain_reduction_db(self, x: torch.Tensor, params: CompressorParams) -> torch.Tensor:
        """See :func:`gain_reduction_db` (``params.makeup_db`` is not part of it)."""
        arguments = _arguments(params)
        del arguments["makeup_db"]
        return gain_reduction_db(x, self.sample_rate, **arguments, backend=self.backend)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate:g}, backend={self.backend!r}"


def _arguments(params: CompressorParams) -> dict:
    if not isinstance(params, CompressorParams):
        raise TypeError(f"Compressor takes CompressorParams, got {type(params).__name__}")
    return params.arguments()


# --------------------------------------------------------------------------------------
# block by block (rendering long signals in bounded memory)
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _ballistics_resume_kernel(target_db, alpha_attack, alpha_release, state_db, carried):
    """:func:`_ballistics_forward_kernel` starting from the float64 states ``carried`` (batch,),
    which it leaves at the last sample's state: blocks in a row give the whole signal's output."""
    batch, length = target_db.shape
    for b in range(batch):
        a_att = alpha_attack[b]
        a_rel = alpha_release[b]
        state = carried[b]
        for n in range(length):
            diff = target_db[b, n] - state
            if diff < 0.0:
                state += a_att * diff
            else:
                state += a_rel * diff
            state_db[b, n] = state
        carried[b] = state


class CompressorStream:
    """:func:`compressor` (numba backend, no gradients) on a signal that arrives in blocks.

    ``process(x)`` takes the next ``(batch, channels, m)`` block and returns the next ``m``
    output samples; the blocks' outputs laid end to end are :func:`compressor`'s output
    for the whole signal bit for bit (the same float32 operations, the ballistics' float64
    state carried between blocks, the lookahead's last D reductions and input samples
    kept). With lookahead the output is delayed by D samples, as :func:`compressor`'s.
    Parameters as in :func:`compressor`, one value per batch item.
    """

    def __init__(
        self,
        sr: float,
        threshold_db: Param,
        ratio: Param,
        knee_db: Param,
        attack_ms: Param,
        release_ms: Param,
        makeup_db: Param,
        lookahead: bool = False,
        batch: int = 1,
    ):
        like = torch.zeros(batch, 1, 1)
        self.batch = batch
        self.threshold_db, self.ratio, self.knee_db = (
            _per_item(p, batch, like) for p in (threshold_db, ratio, knee_db)
        )
        self.alpha_attack = time_constant_to_alpha(_per_item(attack_ms, batch, like), sr).numpy().astype(np.float64)
        self.alpha_release = time_constant_to_alpha(_per_item(release_ms, batch, like), sr).numpy().astype(np.float64)
        self.makeup_neper = _column(_per_item(makeup_db, batch, like) * _DB_TO_NEPER, 2)
        self.delay = lookahead_samples(sr) if lookahead else 0
        self._state = np.zeros(batch, dtype=np.float64)
        self._reductions = torch.zeros(batch, self.delay)  # the last D reductions (zeros before the start)
        self._inputs: torch.Tensor | None = None  # the last D input samples, per channel

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.batch or x.dtype != torch.float32:
            raise ValueError(f"blocks must be float32 ({self.batch}, channels, samples), got {tuple(x.shape)}")
        level = detector_level_db(x, in_place=True)
        target = static_gain_db(level, self.threshold_db, self.ratio, self.knee_db, in_place=True).contiguous()
        reduction = torch.empty_like(target)
        _ballistics_resume_kernel(target.numpy(), self.alpha_attack, self.alpha_release, reduction.numpy(), self._state)
        if self.delay:
            # Output m needs the reductions m - D .. m - 1 (the ramps of compressor()), so a block's
            # ramps run over the D reductions before it and its own.
            values = torch.cat([self._reductions, reduction], dim=-1).contiguous()
            out = np.empty_like(values.numpy())
            _min_of_ramps_kernel(values.numpy(), self.delay, out, np.empty((1, 1), dtype=np.int64), False)
            self._reductions = values[:, values.shape[-1] - self.delay :].clone()
            reduction = torch.from_numpy(out[:, : reduction.shape[-1]])
        gain = reduction.mul_(_DB_TO_NEPER).add_(self.makeup_neper).exp_()
        gain = torch.nn.functional.threshold_(gain, 10.0 ** (LEVEL_FLOOR_DB / 20.0), 0.0)  # type: ignore[attr-defined]
        if not self.delay:
            return x * gain[:, None, :]
        if self._inputs is None:
            self._inputs = x.new_zeros(x.shape[0], x.shape[1], self.delay)
        joined = torch.cat([self._inputs, x], dim=-1)
        self._inputs = joined[..., joined.shape[-1] - self.delay :].clone()
        return joined[..., : x.shape[-1]].mul_(gain[:, None, :])
