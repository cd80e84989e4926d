"""Rendering a long song in bounded memory: the vocal chain, the output stage and the files, block by block.

Issue 19 item 9. The whole-song functions of :mod:`vocalmix.mixing` hold every stage of a
render as a song-long float64 array (the mix, the 4x-oversampled mix for its true peak,
the gain curve, the K-weighted copies for loudness); here each stage is a pass over blocks
of :data:`BLOCK_SAMPLES` with its state carried from block to block.

Which parts need the whole song, and how each is computed here
--------------------------------------------------------------

* **The vocal chain** (:func:`wet_blocks`): EQ, compressor and reverb are causal, so they
  run block by block with their state carried: the EQ's second-order sections keep their
  float64 state (:func:`vocalmix.dsp.eq.multi_eq_sections`), the compressor its float64
  ballistics state and, with lookahead, the last D reductions and input samples
  (:class:`vocalmix.dsp.compressor.CompressorStream`); the reverb is the FDN's impulse
  response (:func:`vocalmix.dsp.reverb.fdn_impulse_response`, computed once, as long as
  it is for the whole song) convolved by overlap-save on the very frames
  ``dsp.reverb``'s whole-song convolution uses, so every output sample comes from the
  same FFT of the same input. The latency compensation drops the first D outputs and
  feeds D zeros at the end, as :func:`vocalmix.mixing.vocal_before_level` pads.
* **The vocal level, decided last on the rendered chain at the output rate**: needs the
  processed vocal's momentary loudness series and the backing's integrated loudness. Both
  are K-weighted 100 ms hop energies (:class:`LoudnessMeter`: the K-weighting recursion
  with its state carried, the hops summed as :mod:`vocalmix.analysis` sums them); the
  series is a few numbers per second, so the level rule works on it as before.
* **The output stage's decision** (static gain or loudness drive, :func:`decide_output`):
  needs the mix's true peak (:class:`TruePeakMeter`: the same interpolator on the same
  row-aligned chunks as :func:`vocalmix.analysis.true_peak`, a running maximum) and, with
  a loudness target, its integrated loudness. One pass measures both. With a target the
  limiter runs as further passes (at most ``LOUDNESS_PASSES``), each producing its gain
  curve block by block (:func:`_limiter_curve_blocks`: each block is computed with a
  margin of input on both sides wider than the look-ahead's reach, the one-pole release
  carried across blocks) and measuring the limited mix's true peak and loudness on the
  fly; the final trim a pass decides is a scalar, so the loudness after it is the
  measured hop energies scaled. The curve itself is never stored: the writing pass makes
  it again from the same numbers.
* **The files** (:func:`write_outputs`): written block by block to temporary files renamed
  at the end (:func:`vocalmix.files.write_atomic`); each block is also read back as the
  file holds it (16/24-bit rounding) and measured, so the ceiling is checked on the
  written samples; if rounding lifted a peak over it the files are written again,
  trimmed (rare; at most four times, as :func:`vocalmix.mixing.hold_ceiling_as_written`).

What is held whole, and what is not
-----------------------------------

* **In memory, song-long: the mono vocal at 44.1 kHz and its renders while the rules decide**
  (float32, 4 bytes a sample each): the vocal, its EQ'd copy, and the compressor search's
  step renders (two at a time and the best so far; each rendered block by block,
  :func:`compress_in_blocks`), which the search measures whole (loudness range). The
  chosen step's render is handed to the render, whose reverb then runs on it block by
  block (:func:`reverb_blocks`).
* **Never in memory: the backing.** It is decoded once, block by block, with the load's
  checks (:class:`vocalmix.audio.AudioFileBlocks`), into an anonymous temporary file
  (:class:`vocalmix.audio.Spool`), and every later pass reads blocks from there: its
  loudness, tempo onset envelope and masked octave bands for the rules
  (:class:`vocalmix.analysis.SongAnalysis` with a block source; each equal to the reading
  of the whole array, bit for bit), and the output. A backing at another rate than
  44.1 kHz is resampled block by block for the analysis (:class:`vocalmix.audio.Resampler`,
  the samples of resampling it whole).
* **On disk, not in memory: the processed vocal and the backing at the output rate**
  (:class:`vocalmix.audio.Spool`, float32), which the output stage's passes read block by
  block (:class:`MixSource` takes a spool in place of an array); the processed vocal is
  resampled to the output rate block by block.
* **Bounded by the reverb, not by the song**: the FDN's impulse response and the reverb's
  FFT frames (``--reverb-ir-max``); a song shorter than about twice the frame (a few
  minutes) is convolved in one FFT, as before.

Temporary files are anonymous (``tempfile.TemporaryFile``: their name is removed when they
are made), so they go away however the process ends, SIGKILL included. The networks
(``--method cnn``, ``cnn-e2e``, ``waveunet``), the reverb's return-level mode and
``--engine iem`` still take the backing and the chain whole (``SongAnalysis.backing``).

Equality with the whole-song functions: the chain, the level's loudness series, the
true peak, the static output gain and the written samples are the same operations on
the same numbers in the same order, so they are equal bit for bit (tested); the
limiter's moving average and its loudness after the trim differ at float64 rounding
(tested within 1e-9 relative).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np
import torch

from . import analysis
from .audio import Spool
from .dsp import reverb as dsp_reverb
from .dsp.compressor import CompressorStream, lookahead_samples
from .dsp.eq import multi_eq_sections
from .settings import FILTER_TYPES, CompressorSettings, EQSettings, MixSettings

log = logging.getLogger("vocalmix")

#: Samples per block of every pass (about 6 s at 44.1 kHz).
BLOCK_SAMPLES = 1 << 18
#: Most reverb overlap-save frames transformed at once.
REVERB_FRAMES_PER_STEP = 2


def _sosfilt_carried(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """``x`` (channels, m) through ``sos`` from the state ``zi`` (sections, channels, 2), which is updated;
    float64 out. Blocks in a row give scipy's ``sosfilt`` of the whole signal bit for bit."""
    try:  # the compiled recursion (scipy's operations in scipy's order) spares the scipy.signal import
        from .dsp.sosfilt import sosfilt

        y, zi[...] = sosfilt(sos, x, zi=zi)
    except TypeError:  # a vocalmix.dsp.sosfilt without a state argument
        from scipy.signal import sosfilt as scipy_sosfilt

        y, zi[...] = scipy_sosfilt(sos, np.asarray(x, dtype=np.float64), axis=-1, zi=zi)
    return y


# ------------------------------------------------------------------------------------------------
# meters
# ------------------------------------------------------------------------------------------------


class LoudnessMeter:
    """BS.1770 loudness of a signal fed in blocks ``(channels, m)``.

    The K-weighting recursion keeps its state between blocks and each 100 ms hop is
    summed as :mod:`vocalmix.analysis` sums it, so the readings equal
    :func:`vocalmix.analysis.integrated_loudness` and :func:`~vocalmix.analysis.momentary_loudness`
    of the whole signal.
    """

    def __init__(self, sr: float, channels: int):
        self.sr = sr
        self.channels = channels
        self.hop = analysis._hop_samples(sr)
        self.sos = analysis.k_weighting_sos(sr)
        self._zi = np.zeros((self.sos.shape[0], channels, 2))
        self._rest = np.zeros((channels, 0))
        self._parts: list[np.ndarray] = []
        self.scale = 1.0  # a gain applied to the signal after it was measured (energies scale by its square)

    def add(self, block: np.ndarray) -> None:
        weighted = _sosfilt_carried(self.sos, block, self._zi)
        joined = np.concatenate([self._rest, weighted], axis=1) if self._rest.shape[1] else weighted
        n_hops = joined.shape[1] // self.hop
        if n_hops:
            hops = joined[:, : n_hops * self.hop].reshape(self.channels, n_hops, self.hop)
            self._parts.append(np.einsum("cjh,cjh->cj", hops, hops))
        self._rest = joined[:, n_hops * self.hop :].copy()

    def energies(self) -> np.ndarray:
        """Channel-weighted K-weighted energy per hop, as the whole-signal analysis computes it."""
        if not self._parts:
            return np.zeros(0)
        per_channel = np.concatenate(self._parts, axis=1)
        energies = analysis._channel_weights(self.channels) @ per_channel
        return energies * (self.scale * self.scale) if self.scale != 1.0 else energies

    def _powers(self) -> np.ndarray:
        powers = analysis._window_powers(self.energies(), analysis._MOMENTARY_HOPS, self.hop)
        if powers.shape[0] == 0:
            raise ValueError("a signal shorter than one 400 ms gating block cannot be measured block by block")
        return powers

    def momentary(self) -> np.ndarray:
        """Momentary loudness series (LUFS), :func:`vocalmix.analysis.momentary_loudness`."""
        return analysis._powers_to_db(self._powers(), analysis._LOUDNESS_OFFSET_DB)

    def integrated(self) -> float:
        """Integrated loudness (LUFS), :func:`vocalmix.analysis.integrated_loudness`."""
        return analysis._gated_mean_loudness(self._powers())


class TruePeakMeter:
    """True peak (dBTP) of a signal fed in blocks ``(channels, m)``, :func:`vocalmix.analysis.true_peak`.

    The same interpolator matrices run on the same row-aligned chunks of each channel
    (float32, the signal taken to be surrounded by silence), and the peak is a maximum,
    so the reading equals the whole-signal one exactly.
    """

    CHUNK_ROWS = 512  # as analysis._interpolated_peak

    def __init__(self, sr: float, channels: int):
        self.factor = analysis._oversampling_factor(sr)
        self.current, self.following = analysis._interpolator_matrices(self.factor)
        self.taps = self.current.shape[0]
        self.worst_gain = float(np.max(np.abs(self.current).sum(axis=0) + np.abs(self.following).sum(axis=0)))
        self.chunk = self.CHUNK_ROWS * self.taps
        self.channels = channels
        self.samples = 0
        self.peak = 0.0
        self._chunks_done = 0
        # Each channel's padded signal (taps // 2 leading zeros) from the first chunk not yet measured.
        self._pending = np.zeros((channels, self.taps // 2), dtype=np.float32)

    def add(self, block: np.ndarray) -> None:
        if block.shape[-1] == 0:
            return
        self.peak = max(self.peak, analysis._largest_magnitude(block))
        self.samples += block.shape[-1]
        self._pending = np.concatenate([self._pending, block.astype(np.float32)], axis=1)
        self._measure()

    def _measure(self) -> None:
        """Measure the whole chunks pending (each also reads the first row of the next)."""
        count = max(self._pending.shape[1] - self.taps, 0) // self.chunk
        for index in range(count):
            piece = self._pending[:, index * self.chunk : (index + 1) * self.chunk + self.taps]
            if analysis._largest_magnitude(piece) * self.worst_gain <= self.peak:
                continue  # no interpolated value here can beat the peak so far
            for channel in piece:
                rows = channel.reshape(self.CHUNK_ROWS + 1, self.taps)
                values = rows[: self.CHUNK_ROWS] @ self.current
                values += rows[1:] @ self.following
                self.peak = max(self.peak, float(values.max()), -float(values.min()))
        self._pending = self._pending[:, count * self.chunk :].copy()
        self._chunks_done += count

    def finish(self) -> float:
        """The true peak in dBTP (SILENCE_DB for silence); call once, after the last block."""
        # The whole-signal layout: silence after the signal up to whole chunks plus one spare row.
        rows_needed = -(-(self.samples + self.taps // 2 + self.taps) // self.taps)
        n_chunks = -(-rows_needed // self.CHUNK_ROWS)
        wanted = (n_chunks - self._chunks_done) * self.chunk + self.taps
        self._pending = np.pad(self._pending, ((0, 0), (0, wanted - self._pending.shape[1])))
        self._measure()
        if self.peak == 0.0:
            return analysis.SILENCE_DB
        return analysis._power_to_db(self.peak * self.peak)


# ------------------------------------------------------------------------------------------------
# the vocal chain
# ------------------------------------------------------------------------------------------------


def _f32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


class _OverlapSaveReverb:
    """``dsp.reverb.reverb_with_ir`` of a mono signal of known length, fed in blocks: the same folded
    impulse response and the same overlap-save frames (or the one FFT of a short signal)."""

    def __init__(self, h: torch.Tensor, dry_wet: float, n_in: int):
        # reverb_with_ir: the dry path folded into the IR's first sample, both outputs.
        h = h[:, None]  # (1, 1 fed line, 2 heard lines, k)
        w = _f32([dry_wet]).clamp(0.0, 1.0).view(1, 1, 1, 1)
        dry = torch.zeros_like(h[..., :1])
        dry[:, 0, :, 0] = 1.0
        h = w * h.to(torch.float32)
        self.h = torch.cat([h[..., :1] + (1.0 - w) * dry.to(torch.float32), h[..., 1:]], dim=-1)
        self.k = k = self.h.shape[-1]
        self.n_in = n_in
        block = 1 << max(15, int(math.ceil(math.log2(4 * k))))  # dsp.reverb._fft_convolve's choice
        self.whole = n_in + k <= 2 * block
        self._buffer: list[torch.Tensor] = []
        if not self.whole:
            self.block = block
            self.hop = block - k + 1
            self.n_frames = -(-n_in // self.hop)
            self.H = torch.fft.rfft(self.h, n=block)
            self._pending = torch.zeros(1, 1, k - 1)  # the k - 1 leading zeros of the padded input
            self._padded_fed = k - 1
            self._frames_done = 0

    def process(self, x: torch.Tensor, last: bool = False) -> torch.Tensor:
        """Take the next input block (1, 1, m); return the output samples now complete (1, 2, *)."""
        if self.whole:
            self._buffer.append(x)
            if not last:
                return torch.zeros(1, 2, 0)
            whole = torch.cat(self._buffer, dim=-1)
            self._buffer = []
            n_fft = 1 << int(math.ceil(math.log2(self.n_in + self.k - 1)))
            spectrum = dsp_reverb._spectral_product(torch.fft.rfft(whole, n=n_fft), torch.fft.rfft(self.h, n=n_fft))
            return torch.fft.irfft(spectrum, n=n_fft)[..., : self.n_in]
        pending = torch.cat([self._pending, x], dim=-1)
        self._padded_fed += x.shape[-1]
        if last:
            # The padded input ends with zeros up to n_frames whole hops.
            tail = self.k - 1 + self.n_frames * self.hop - self._padded_fed
            pending = torch.nn.functional.pad(pending, (0, tail))
        outputs = []
        while True:
            # MKL transforms a batch of one row differently from a batch of several (which agree
            # row for row with the whole song's batch), so no group is ever a single frame.
            left = self.n_frames - self._frames_done
            count = left if left <= REVERB_FRAMES_PER_STEP + 1 else REVERB_FRAMES_PER_STEP
            if count == 0 or pending.shape[-1] < self.block + (count - 1) * self.hop:
                break
            frames = pending[..., : self.block + (count - 1) * self.hop].unfold(-1, self.block, self.hop)
            spectrum = dsp_reverb._spectral_product(torch.fft.rfft(frames, n=self.block), self.H)
            y = torch.fft.irfft(spectrum, n=self.block)[..., self.k - 1 :]  # the hop valid samples of each frame
            outputs.append(y.reshape(1, 2, count * self.hop))
            pending = pending[..., count * self.hop :]
            self._frames_done += count
        self._pending = pending.clone()
        out = torch.cat(outputs, dim=-1) if outputs else torch.zeros(1, 2, 0)
        if last:
            out = out[..., : out.shape[-1] - (self.n_frames * self.hop - self.n_in)]
        return out


def _reverb_ir(settings: MixSettings, sr: int, n_in: int) -> torch.Tensor:
    r = settings.reverb
    return dsp_reverb.fdn_impulse_response(
        sr,
        _f32([r.room_size]),
        _f32([r.reverb_time_s]),
        _f32([r.low_cutoff_hz]),
        _f32([r.low_q]),
        _f32([r.low_gain_db_per_s]),
        _f32([r.high_cutoff_hz]),
        _f32([r.high_q]),
        _f32([r.high_gain_db_per_s]),
        _f32([r.fade_in_s]),
        fdn_lines=r.fdn_lines,
        mono_input=True,
        max_samples=n_in,
    )


def eq_in_blocks(
    vocal: np.ndarray, sr: int, eq: EQSettings, length: int | None = None, block: int = BLOCK_SAMPLES
) -> np.ndarray:
    """The EQ stage (``process_vocal(fit_length(vocal, length), sr, settings, upto="eq")``) of ``vocal``
    ``(channels, n)``, float32 ``(channels, length)`` (``length`` defaults to ``n``; the vocal is taken
    to go on in silence or to be cut there), computed block by block with the filter state carried:
    the same samples, without a padded copy or the whole-song float64 temporaries of the one-pass filter."""
    length = vocal.shape[-1] if length is None else length
    sos = _eq_sections(eq, sr)
    out = np.empty((vocal.shape[0], length), dtype=np.float32)
    state = np.zeros((sos.shape[0], vocal.shape[0], 2))
    for start in range(0, length, block):
        stop = min(start + block, length)
        x = np.zeros((vocal.shape[0], stop - start), dtype=np.float32)
        real = max(0, min(stop, vocal.shape[-1]) - start)
        x[:, :real] = vocal[:, start : start + real]
        out[:, start:stop] = _sosfilt_carried(sos, x, state) if len(sos) else x
    return out


def compress_in_blocks(x: np.ndarray, sr: int, c: CompressorSettings, block: int = BLOCK_SAMPLES) -> np.ndarray:
    """The compressor stage (``dsp.chain.apply_compressor``) of ``x`` ``(channels, n)`` float32, computed block by
    block (:class:`vocalmix.dsp.compressor.CompressorStream`: the same samples) into one float32 array, so a
    render of the whole song holds its output and one block of the compressor's working arrays."""
    stream = _compressor_stream(c, sr)
    out = np.empty(x.shape, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, x.shape[-1], block):
            piece = torch.from_numpy(np.ascontiguousarray(x[:, start : start + block], dtype=np.float32))
            out[:, start : start + block] = stream.process(piece.unsqueeze(0))[0].numpy()
    return out


def compress_to_spool(
    x: np.ndarray, sr: int, c: CompressorSettings, measured_samples: int | None = None, block: int = BLOCK_SAMPLES
) -> tuple[Spool, analysis.Loudness]:
    """:func:`compress_in_blocks` into a :class:`Spool` (on disk, not in memory), and the
    :class:`~vocalmix.analysis.Loudness` of its first ``measured_samples`` (default all), measured on the
    blocks as they come (the readings of the whole array, bit for bit)."""
    stream = _compressor_stream(c, sr)
    spool = Spool(x.shape[0], x.shape[-1])
    measured = x.shape[-1] if measured_samples is None else min(measured_samples, x.shape[-1])

    def rendered() -> Iterator[np.ndarray]:
        with torch.no_grad():
            for start in range(0, x.shape[-1], block):
                piece = torch.from_numpy(np.ascontiguousarray(x[:, start : start + block], dtype=np.float32))
                y = stream.process(piece.unsqueeze(0))[0].numpy()
                spool.append(y)
                yield y[:, : max(0, measured - start)]

    loudness = analysis.Loudness.from_blocks(rendered(), sr, x.shape[0])
    return spool, loudness


def _eq_sections(eq: EQSettings, sr: int) -> np.ndarray:
    bands = eq.bands
    return multi_eq_sections(
        sr,
        _f32([[b.frequency_hz for b in bands]]),
        _f32([[b.gain_db for b in bands]]),
        _f32([[b.q for b in bands]]),
        torch.tensor([[FILTER_TYPES[b.type] for b in bands]], dtype=torch.long),
        torch.tensor([[b.enabled for b in bands]], dtype=torch.bool),
    )[0]


def _compressor_stream(c: CompressorSettings, sr: int) -> CompressorStream:
    return CompressorStream(
        sr,
        _f32([c.threshold_db]),
        _f32([c.ratio]),
        _f32([c.knee_db]),
        _f32([c.attack_ms]),
        _f32([c.release_ms]),
        _f32([c.makeup_db]),
        c.lookahead,
    )


def reverb_blocks(
    compressed: np.ndarray, sr: int, settings: MixSettings, block: int = BLOCK_SAMPLES
) -> Iterator[np.ndarray]:
    """The reverb stage of ``settings`` on ``compressed`` ``(1, n)`` (the vocal after EQ and a compressor
    without lookahead) as ``(2, m)`` float32 pieces: :func:`wet_blocks` from the reverb on, the samples of
    ``process_vocal(compressed, sr, settings, start="reverb", upto="reverb")``."""
    if settings.compressor.lookahead:
        raise ValueError("a compressor with lookahead delays its output; render the chain with wet_blocks")
    n = compressed.shape[-1]
    reverb = _OverlapSaveReverb(_reverb_ir(settings, sr, n), settings.reverb.dry_wet_pct / 100.0, n)
    for start in range(0, max(n, 1), block):
        stop = min(start + block, n)
        x = torch.from_numpy(np.ascontiguousarray(compressed[:, start:stop], dtype=np.float32)).unsqueeze(0)
        wet = reverb.process(x, last=stop >= n)[0].numpy()
        if wet.shape[-1]:
            yield wet


def wet_blocks(vocal: np.ndarray, sr: int, settings: MixSettings, block: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """:func:`vocalmix.mixing.vocal_before_level` of ``vocal`` ``(1, n)`` as ``(2, m)`` float32 pieces.

    Laid end to end the pieces are that function's output bit for bit (tested), but no
    stage holds more than a block, the reverb's impulse response and its FFT frames.
    """
    n = vocal.shape[-1]
    delay = lookahead_samples(sr) if settings.compressor.lookahead else 0
    n_in = n + delay
    sos = _eq_sections(settings.eq, sr)
    eq_state = np.zeros((sos.shape[0], 1, 2))
    compressor = _compressor_stream(settings.compressor, sr)
    reverb = _OverlapSaveReverb(_reverb_ir(settings, sr, n_in), settings.reverb.dry_wet_pct / 100.0, n_in)
    to_drop = delay
    for start in range(0, max(n_in, 1), block):
        stop = min(start + block, n_in)
        x = np.zeros((1, stop - start), dtype=np.float32)
        real = max(0, min(stop, n) - start)
        x[:, :real] = vocal[:, start : start + real]
        if len(sos):
            x = _sosfilt_carried(sos, x, eq_state).astype(np.float32)
        y = compressor.process(torch.from_numpy(x).unsqueeze(0))
        wet = reverb.process(y, last=stop >= n_in)[0].numpy()
        if to_drop:
            dropped = min(to_drop, wet.shape[-1])
            wet, to_drop = wet[:, dropped:], to_drop - dropped
        if wet.shape[-1]:
            yield wet


# ------------------------------------------------------------------------------------------------
# the output stage
# ------------------------------------------------------------------------------------------------


class MixSource:
    """The mix before the output stage, made block by block from what is held whole.

    ``vocal`` ``(2, n)``: the processed vocal before the fader, at the output rate (float32);
    ``backing`` ``(2, n)`` or None (a network's mix is all "vocal"). A block of the mix is
    ``vocal * 10^(gain/20) + backing`` in float64, as :func:`vocalmix.mixing.render_mix` makes it.
    """

    def __init__(self, vocal: np.ndarray, backing: np.ndarray | None, vocal_gain_db: float = 0.0):
        if backing is not None and backing.shape != vocal.shape:
            raise ValueError(f"vocal {vocal.shape} and backing {backing.shape} differ in shape")
        self.vocal, self.backing = vocal, backing
        self.vocal_gain = 10 ** (vocal_gain_db / 20)
        self.samples = vocal.shape[-1]

    def parts(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        vocal = self.vocal[:, start:stop].astype(np.float64) * self.vocal_gain
        backing = None if self.backing is None else self.backing[:, start:stop].astype(np.float64)
        return vocal, backing

    def mix(self, start: int, stop: int) -> np.ndarray:
        vocal, backing = self.parts(start, stop)
        return vocal if backing is None else vocal + backing

    def spans(self, block: int) -> Iterator[tuple[int, int]]:
        for start in range(0, self.samples, block):
            yield start, min(start + block, self.samples)


@dataclass
class OutputGain:
    """The output stage's gain: a static ``gain``, or (``limiter``) the drive ``gain`` times the
    true-peak limiter's curve for the mix so driven, times its final ``trim``."""

    gain: float
    ceiling_dbtp: float
    limiter: bool = False
    trim: float = 1.0

    def curves(self, source: MixSource, sr: int, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, curve (1, m))`` in order over the song: the per-sample gain, float64."""
        if not self.limiter:
            for start, stop in source.spans(block):
                yield start, stop, np.full((1, stop - start), self.gain)
            return
        for start, stop, inner in _limiter_curve_blocks(source, sr, self.ceiling_dbtp, self.gain, block):
            if self.trim != 1.0:
                inner *= self.trim
            yield start, stop, (self.gain * inner)[None, :]


@numba.njit(cache=True)
def _release_carried(target, coeff, g):
    """:func:`vocalmix.mixing._release` from the state ``g``; returns the curve and the last state."""
    out = np.empty_like(target)
    for n in range(target.shape[0]):
        g = g + coeff * (1.0 - g)
        if target[n] < g:
            g = target[n]
        out[n] = g
    return out, g


def _limiter_curve_blocks(
    source: MixSource, sr: int, ceiling_dbtp: float, drive: float, block: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """:func:`vocalmix.mixing.true_peak_limiter_gain` of ``source``'s mix times ``drive``, block by block,
    before its final trim: ``(start, stop, curve (m,))``.

    Each block's needed gain is computed on the block widened by a margin on both sides
    (more than the reach of the look-ahead's minimum and mean and of the oversampling
    filter), so it is the whole song's wherever the margin is inside the song and the
    song's own edges are treated as there; the release recursion carries its state.
    """
    from scipy import ndimage

    from .mixing import LIMITER_LOOKAHEAD_S, LIMITER_RELEASE_S, _true_peak_envelope

    ceiling = 10 ** (ceiling_dbtp / 20)
    lookahead = max(1, int(round(LIMITER_LOOKAHEAD_S * sr)))
    margin = 2 * lookahead + 64
    release = 1 - math.exp(-1 / (LIMITER_RELEASE_S * sr))
    g = 1.0
    n = source.samples
    for start, stop in source.spans(block):
        lo, hi = max(0, start - margin), min(n, stop + margin)
        envelope = _true_peak_envelope(source.mix(lo, hi) * drive)
        needed = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
        held = ndimage.minimum_filter1d(needed, size=2 * lookahead + 1, mode="nearest")
        smoothed = ndimage.uniform_filter1d(held, size=lookahead, mode="nearest")
        smoothed = np.minimum(smoothed, needed)[start - lo : stop - lo]
        curve, g = _release_carried(smoothed, release, g)
        yield start, stop, curve


def decide_output(
    source: MixSource, sr: int, ceiling_dbtp: float, target_lufs: float | None, block: int = BLOCK_SAMPLES
) -> tuple[OutputGain, dict]:
    """:func:`vocalmix.mixing.output_gain` of ``source``'s mix, in passes over blocks.

    The report has the same fields. One pass measures the mix; with a loudness target and
    a true peak over the ceiling each limiting round is one more pass.
    """
    from .mixing import LOUDNESS_PASSES, LOUDNESS_TOLERANCE_LU, report_limiting

    report: dict = {"ceiling_dbtp": ceiling_dbtp}
    peak_meter = TruePeakMeter(sr, 2)
    loudness_meter = LoudnessMeter(sr, 2) if target_lufs is not None else None
    for start, stop in source.spans(block):
        mix = source.mix(start, stop)
        if loudness_meter is not None:
            loudness_meter.add(mix)
        peak_meter.add(mix)
    pre_gain_db = 0.0
    if loudness_meter is not None:
        loudness = loudness_meter.integrated()
        if loudness > analysis.SILENCE_LUFS:
            pre_gain_db = target_lufs - loudness
        report["target_loudness_lufs"] = target_lufs
    report["gain_db"] = pre_gain_db
    pre_gain = 10 ** (pre_gain_db / 20)
    peak_db = peak_meter.finish() + pre_gain_db
    if peak_db <= ceiling_dbtp:
        report["limiter"] = "off"
        return OutputGain(pre_gain, ceiling_dbtp), report
    if target_lufs is None:
        # No loudness target: one static gain keeps the mix as it is, only quieter.
        trim_db = ceiling_dbtp - peak_db - 0.01
        report["gain_db"] = trim_db
        report["limiter"] = "off"
        return OutputGain(10 ** (trim_db / 20), ceiling_dbtp), report
    # Limiting takes loudness away; raise the drive by what is missing and limit again.
    for _ in range(LOUDNESS_PASSES):
        stage = OutputGain(pre_gain, ceiling_dbtp, limiter=True)
        lowest, achieved = _limit_pass(source, sr, stage, block)
        shortfall = target_lufs - achieved
        if abs(shortfall) < LOUDNESS_TOLERANCE_LU:
            break
        pre_gain *= 10 ** (shortfall / 20)
    # After the last round pre_gain may have moved on from the curve kept, as in output_gain.
    reduction_db = float(-20 * np.log10(stage.gain * lowest / pre_gain))
    report_limiting(report, pre_gain, reduction_db, achieved, target_lufs, ceiling_dbtp)
    return stage, report


def _limit_pass(source: MixSource, sr: int, stage: OutputGain, block: int) -> tuple[float, float]:
    """One limiting round: sets ``stage.trim`` (the final trim that makes the ceiling a guarantee) and
    returns the lowest limiter gain after it and the loudness of the mix so limited."""
    peak_meter = TruePeakMeter(sr, 2)
    loudness_meter = LoudnessMeter(sr, 2)
    lowest = 1.0
    for start, stop, inner in _limiter_curve_blocks(source, sr, stage.ceiling_dbtp, stage.gain, block):
        driven = source.mix(start, stop) * stage.gain
        peak_meter.add(driven * inner)
        loudness_meter.add(source.mix(start, stop) * (stage.gain * inner))
        lowest = min(lowest, float(inner.min()))
    # Interpolation between samples can still graze the ceiling; a final trim makes it a guarantee.
    overshoot = peak_meter.finish() - stage.ceiling_dbtp
    stage.trim = 10 ** (-(overshoot + 0.01) / 20) if overshoot > -0.005 else 1.0
    loudness_meter.scale = stage.trim
    return lowest * stage.trim, loudness_meter.integrated()


# ------------------------------------------------------------------------------------------------
# the files
# ------------------------------------------------------------------------------------------------

#: Trims of the written samples before the ceiling is given up as unreachable (hold_ceiling_as_written's).
WRITTEN_TRIM_ATTEMPTS = 5


def write_outputs(
    paths: dict[str, Path],
    source: MixSource,
    stage: OutputGain,
    sr: int,
    sample_format: str,
    block: int = BLOCK_SAMPLES,
    progress: Callable[[str], None] = lambda m: None,
) -> dict:
    """Write the mix (``paths["mix"]``) and optionally the stems (``"vocal"``, ``"backing"``) block by block.

    Each file goes to a temporary file renamed at the end (:func:`vocalmix.files.write_atomic`).
    While writing, every block of the mix is read back as the file holds it
    (:func:`vocalmix.mixing.as_written`) and measured; if rounding lifted its true peak over
    the ceiling, all files are written again with the mix trimmed (as
    :func:`vocalmix.mixing.hold_ceiling_as_written`). Returns the report of the samples
    written: ``true_peak_dbtp``, ``written_trim_db``, ``integrated_loudness_lufs``.
    """
    import soundfile as sf

    from .audio import OUTPUT_FORMATS, OUTPUT_SUBTYPES
    from .errors import InputError
    from .mixing import as_written

    subtype = OUTPUT_SUBTYPES[sample_format]
    kinds = [kind for kind in ("mix", "vocal", "backing") if kind in paths]
    formats = {}
    for kind in kinds:
        formats[kind] = OUTPUT_FORMATS[paths[kind].suffix.lower()]
        if formats[kind] == "FLAC" and sample_format == "float":
            raise InputError(f"{paths[kind]}: FLAC cannot hold float samples; use --format pcm24 or a .wav output")
    report: dict = {}

    def write_all(temporaries: dict[str, Path]) -> None:
        scales: list[np.float32] = []
        trim_db = 0.0
        for attempt in range(WRITTEN_TRIM_ATTEMPTS):
            peak_meter, loudness_meter = TruePeakMeter(sr, 2), LoudnessMeter(sr, 2)
            files = {
                kind: sf.SoundFile(str(temporaries[kind]), "w", sr, 2, subtype=subtype, format=formats[kind])
                for kind in kinds
            }
            try:
                for start, stop, curve in stage.curves(source, sr, block):
                    vocal, backing = source.parts(start, stop)
                    vocal = (vocal * curve).astype(np.float32)
                    backing = None if backing is None else (backing * curve).astype(np.float32)
                    mix = vocal if backing is None else vocal + backing
                    for scale in scales:
                        mix, vocal = mix * scale, vocal * scale
                        backing = None if backing is None else backing * scale
                    if not np.all(np.isfinite(mix)):
                        raise InputError(f"{paths['mix']}: refusing to write NaN or infinite samples")
                    written = as_written(mix, sr, subtype)
                    peak_meter.add(written)
                    loudness_meter.add(written)
                    blocks = {"mix": mix, "vocal": vocal, "backing": backing}
                    for kind, f in files.items():
                        f.write(blocks[kind].T)
            finally:
                for f in files.values():
                    f.close()
            peak = peak_meter.finish()
            ceiling = stage.ceiling_dbtp
            if peak <= ceiling or attempt == WRITTEN_TRIM_ATTEMPTS - 1:  # the report describes the samples written
                break
            step_db = ceiling - peak - 0.005
            trim_db += step_db
            scales.append(np.float32(10 ** (step_db / 20)))
            progress("trimming the mix: rounding to the file's format lifted a peak over the ceiling")
        report.update(
            true_peak_dbtp=peak, written_trim_db=trim_db, integrated_loudness_lufs=loudness_meter.integrated()
        )

    _write_atomically([paths[kind] for kind in kinds], kinds, write_all)
    return report


def _write_atomically(paths: list[Path], kinds: list[str], write: Callable[[dict[str, Path]], None]) -> None:
    """``write`` the temporary files of ``paths`` (one per kind) at once; each is renamed into place
    when all are written, and all are removed if the writing fails or is interrupted."""
    from .files import write_atomic

    def nest(index: int, temporaries: dict[str, Path]) -> None:
        if index == len(paths):
            write(temporaries)
            return
        write_atomic(paths[index], lambda tmp: nest(index + 1, {**temporaries, kinds[index]: Path(tmp)}))

    nest(0, {})


# ------------------------------------------------------------------------------------------------
# a render
# ------------------------------------------------------------------------------------------------


def mix_source(
    vocal: np.ndarray,
    backing: np.ndarray | Spool,
    sr: int,
    out_rate: int,
    settings: MixSettings,
    *,
    relevel_to: float | None = None,
    chain: Callable | None = None,
    compressed: np.ndarray | None = None,
    reverb_ir_max_s: float | None = None,
    backing_lufs: float | None = None,
    block: int = BLOCK_SAMPLES,
) -> tuple[MixSource, MixSettings, dict]:
    """The first half of :func:`vocalmix.mixing.render_mix` in passes over blocks: the vocal chain and the
    vocal level decided last. Returns the mix to master, the settings as rendered and the report so far.

    ``vocal`` ``(1, n)`` at ``sr`` goes through the chain: ``chain(vocal, sr, settings)`` when given
    (a whole-song callable: the real plug-ins), else :func:`wet_blocks`; ``compressed``: the vocal
    after EQ and compressor as the method already rendered it (``(1, n)``, no lookahead), so only
    the reverb runs, block by block. ``backing`` ``(2, samples)`` at ``out_rate`` (an array or a
    :class:`Spool`) sets the output's length. The processed vocal is kept at the output rate in
    a :class:`Spool`, not in memory.
    """
    report: dict = {}
    wet = _wet_at_output_rate(
        vocal, sr, out_rate, backing.shape[-1], settings, chain, compressed, reverb_ir_max_s, block
    )
    if relevel_to is not None:
        from .rules.level import decide_level_from_loudness

        vocal_meter = LoudnessMeter(out_rate, 2)
        backing_meter = LoudnessMeter(out_rate, 2) if backing_lufs is None else None
        for start in range(0, wet.shape[-1], block):
            vocal_meter.add(wet[:, start : start + block])
            if backing_meter is not None:
                backing_meter.add(backing[:, start : start + block])
        if backing_meter is not None:
            backing_lufs = backing_meter.integrated()
        level, report["level"] = decide_level_from_loudness(vocal_meter.momentary(), backing_lufs, relevel_to)
        settings = replace(settings, level=level)
    return MixSource(wet, backing, settings.level.vocal_gain_db), settings, report


def spool_blocks(blocks: Iterator[np.ndarray], channels: int, samples: int) -> Spool:
    """``blocks`` laid end to end in a :class:`Spool` of ``samples``, cut there or padded with silence."""
    spool = Spool(channels, samples)
    filled = 0
    for piece in blocks:
        take = min(piece.shape[-1], samples - filled)
        if take > 0:
            spool.append(piece[:, :take])
            filled += take
    spool.fill()
    return spool


def master_and_write(
    paths: dict[str, Path],
    source: MixSource,
    settings: MixSettings,
    out_rate: int,
    sample_format: str = "pcm24",
    block: int = BLOCK_SAMPLES,
    progress: Callable[[str], None] = lambda m: None,
) -> dict:
    """The output stage (:func:`decide_output`) and the files (:func:`write_outputs`): the report of
    :func:`vocalmix.mixing.output_gain` and of :func:`~vocalmix.mixing.hold_ceiling_as_written`."""
    stage, report = decide_output(
        source, out_rate, settings.output.ceiling_dbtp, settings.output.target_loudness_lufs, block
    )
    progress(f"writing {', '.join(str(p) for p in paths.values())}")
    report.update(write_outputs(paths, source, stage, out_rate, sample_format, block, progress))
    return report


def _wet_at_output_rate(
    vocal: np.ndarray,
    sr: int,
    out_rate: int,
    length: int,
    settings: MixSettings,
    chain: Callable | None,
    compressed: np.ndarray | None,
    reverb_ir_max_s: float | None,
    block: int,
) -> Spool:
    """The processed vocal before the fader, ``(2, length)`` float32 at ``out_rate``, in a :class:`Spool`.

    Resampled block by block (:class:`vocalmix.audio.Resampler`: the samples of resampling it whole)."""
    from .audio import resample_blocks
    from .mixing import reverb_ir_limit

    with reverb_ir_limit(reverb_ir_max_s):
        if chain is not None:
            whole = chain(vocal, sr, settings)
            pieces: Iterator[np.ndarray] = (whole[:, i : i + block] for i in range(0, whole.shape[-1], block))
            n_wet = whole.shape[-1]
        elif compressed is not None:
            pieces, n_wet = reverb_blocks(compressed, sr, settings, block), compressed.shape[-1]
        else:
            pieces, n_wet = wet_blocks(vocal, sr, settings, block), vocal.shape[-1]
        if out_rate != sr:
            pieces = resample_blocks(pieces, sr, out_rate, n_wet)
        return spool_blocks(pieces, 2, length)
