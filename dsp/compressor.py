"""Differentiable model of the IEM OmniCompressor (v1.14/v1.15 DSP, identical in both).

Signal flow, per sample n (see ``shared/notes/iem-plugins.md``, OmniCompressor):

1. Detector: ``L[n] = max(20*log10|x[b, 0, n]|, -100)`` dB -- instantaneous peak of
   channel 0 only; there is no RMS and no maximum over channels.
2. Gain computer (:func:`static_gain_db`): target reduction ``G[n] <= 0`` dB from
   threshold ``T``, ratio ``R`` and knee width ``K``; ``R > 15.9`` means infinity.
3. Ballistics on ``G`` in dB: ``y[n] = y[n-1] + a_n * (G[n] - y[n-1])`` with
   ``a_n = alpha_attack`` if ``G[n] < y[n-1]`` else ``alpha_release``, ``y[-1] = 0``
   and ``alpha = 1 - exp(-1 / (fs * t))`` (``t = 0`` gives ``alpha = 1``).
4. Optional lookahead of ``D = trunc(0.005 * fs)`` samples: the reduction gets a
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

Devices: the kernels run on the CPU. A tensor on any other device is copied to the
CPU for the kernel and the result copied back (a per-sample Python loop of device
kernels would be orders of magnitude slower). Everything else, including the lookahead
backward (a ``scatter_add``), runs on the tensor's own device. There is no CUDA-only
code. Supported dtypes: float32 and float64.

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

__all__ = [
    "Compressor",
    "compressor",
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
#: Floor of the detector level and the gain below which the output is muted, in dB.
LEVEL_FLOOR_DB = -100.0

_LOOKAHEAD_SECONDS = 0.005
_DB_TO_NEPER = math.log(10.0) / 20.0  # 10^(dB/20) == exp(dB * _DB_TO_NEPER)

Param = Union[torch.Tensor, float, int]
LookaheadArg = Union[bool, torch.Tensor]


# --------------------------------------------------------------------------------------
# numba kernels (CPU). They take numpy views of contiguous tensors.
# --------------------------------------------------------------------------------------


@numba.njit(cache=True)
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
        attack_taken = torch.empty(target_cpu.shape, dtype=torch.uint8)
        _ballistics_forward_kernel(
            target_cpu.numpy(), alpha_att_np, alpha_rel_np, state.numpy(), attack_taken.numpy()
        )
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
            _cpu_numpy(grad_state), target_cpu.numpy(), state.numpy(), attack_taken.numpy(),
            alpha_att_np, alpha_rel_np, grad_target.numpy(), grad_alpha,
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
    """Lookahead delay ``D = trunc(0.005 * fs)`` in samples (220 at 44.1 kHz, 240 at 48 kHz)."""
    return int(_LOOKAHEAD_SECONDS * sr)


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
    return torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in tensors
    )


def _reduction(x, sr, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead, in_place):
    """Gain reduction in dB aligned with the output, and the normalised lookahead mask."""
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, channels, samples), got {tuple(x.shape)}")
    batch = x.shape[0]
    threshold_db, ratio, knee_db, attack_ms, release_ms = (
        _per_item(p, batch, x) for p in (threshold_db, ratio, knee_db, attack_ms, release_ms)
    )
    level = detector_level_db(x, in_place=in_place)
    target = static_gain_db(level, threshold_db, ratio, knee_db, in_place=in_place)
    reduction = _Ballistics.apply(
        target, time_constant_to_alpha(attack_ms, sr), time_constant_to_alpha(release_ms, sr)
    )
    mask = _lookahead_mask(lookahead, batch, x.device)
    ramp = lookahead_samples(sr)
    if mask is False or ramp < 1:
        return reduction, False
    # The ramps run on the reduction already delayed by D (zeros in front), so output
    # sample n gets min_k y[n - D + k] * (1 - k/D): the lead-in starts D - 1 samples
    # before the delayed transient and reaches the full reduction on it.
    padded = torch.cat([reduction.new_zeros(batch, ramp), reduction], dim=-1)
    delayed = _MinOfRamps.apply(padded, ramp)[:, : reduction.shape[-1]]
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
) -> torch.Tensor:
    """Smoothed gain reduction in dB (<= 0, without makeup), aligned with the output.

    ``x``: (batch, channels, samples); parameters as in :func:`compressor`; returns
    (batch, samples). With lookahead the curve includes the lead-in ramp and the
    D-sample delay, i.e. it is exactly the dB gain that :func:`compressor` applies to
    the (delayed) input, minus makeup.
    """
    in_place = not _needs_grad(x, threshold_db, ratio, knee_db, attack_ms, release_ms)
    return _reduction(x, sr, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead, in_place)[0]


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

    Returns:
        (batch, channels, samples) tensor with the dtype and device of ``x``.
    """
    params = (threshold_db, ratio, knee_db, attack_ms, release_ms, makeup_db)
    in_place = not _needs_grad(x, *params)
    reduction, mask = _reduction(
        x, sr, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead, in_place
    )
    makeup_neper = _column(_per_item(makeup_db, x.shape[0], x) * _DB_TO_NEPER, 2)
    # gain = 10^((reduction + makeup) / 20), muted at or below -100 dB like JUCE's
    # decibelsToGain (`threshold` mutes in one pass and passes gradients elsewhere).
    mute_below = 10.0 ** (LEVEL_FLOOR_DB / 20.0)
    if in_place:
        gain = reduction.mul_(_DB_TO_NEPER).add_(makeup_neper).exp_()
        gain = torch.nn.functional.threshold_(gain, mute_below, 0.0)
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
    """Thin module wrapper of :func:`compressor` for a fixed sample rate.

    ``forward(x, threshold_db, ratio, knee_db, attack_ms, release_ms, makeup_db,
    lookahead=False)`` takes the shapes and units of :func:`compressor`.
    """

    def __init__(self, sample_rate: float):
        super().__init__()
        self.sample_rate = float(sample_rate)

    def forward(
        self,
        x: torch.Tensor,
        threshold_db: Param,
        ratio: Param,
        knee_db: Param,
        attack_ms: Param,
        release_ms: Param,
        makeup_db: Param,
        lookahead: LookaheadArg = False,
    ) -> torch.Tensor:
        return compressor(
            x, self.sample_rate, threshold_db, ratio, knee_db, attack_ms, release_ms,
            makeup_db, lookahead,
        )

    def gain_reduction_db(
        self, x, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead=False
    ) -> torch.Tensor:
        """See :func:`gain_reduction_db`."""
        return gain_reduction_db(
            x, self.sample_rate, threshold_db, ratio, knee_db, attack_ms, release_ms, lookahead
        )

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate:g}"
