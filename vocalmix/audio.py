"""Reading and writing audio files.

Everything read comes back as float32 ``(channels, samples)`` at the working rate
(44.1 kHz unless asked otherwise). Problems with a file raise
:class:`~vocalmix.errors.AudioFileError` whose message names the file; recoverable
oddities (resampling, clipping, padding) are logged as warnings on the
``vocalmix`` logger, which the CLI prints.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioFileError, InputError, VocalmixError
from .files import write_atomic

log = logging.getLogger("vocalmix")

WORKING_RATE = 44100
DEFAULT_MAX_SECONDS = 20 * 60.0
SILENCE_DBFS = -80.0  # a file whose peak is below this is treated as silent
MIN_VOCAL_SECONDS = 3.0  # the short-term loudness window: a shorter vocal cannot be measured
DC_WARNING_DBFS = -40.0  # DC offsets above this are reported (smaller ones are common and harmless)
FOLD_CANCEL_DB = 6.0  # stereo vocals losing more than this when averaged are not averaged

OUTPUT_SUBTYPES = {"pcm16": "PCM_16", "pcm24": "PCM_24", "float": "FLOAT"}
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


@dataclass
class Audio:
    """Samples ``(channels, samples)`` float32 at ``sample_rate``, and where they came from."""

    samples: np.ndarray
    sample_rate: int
    path: str
    original_rate: int
    original_channels: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = WORKING_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    allow_silent: bool = True,
) -> Audio:
    """Read any file libsndfile reads (WAV, FLAC, OGG, MP3, ...), resampled to ``sample_rate``."""
    samples, rate, channels = _read(Path(path), max_seconds, allow_silent)
    if _looks_clipped(samples):
        log.warning("%s: looks clipped (runs of samples at full scale); the mix will keep that distortion", path)
    return _at_rate(samples, rate, sample_rate, path, channels)


def load_vocal(
    path: str | os.PathLike,
    sample_rate: int = WORKING_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Audio:
    """The lead vocal as mono ``(1, samples)`` without DC offset, ready to be measured.

    Refuses vocals shorter than :data:`MIN_VOCAL_SECONDS` and vocals that hold only a
    DC offset; folds stereo to mono, or takes the louder channel where the two cancel.
    """
    path = Path(path)
    samples, rate, channels = _read(path, max_seconds, allow_silent=False)
    if samples.shape[-1] < MIN_VOCAL_SECONDS * rate:
        raise AudioFileError(
            path,
            f"is only {samples.shape[-1] / rate:.2f} s long; a vocal needs at least "
            f"{MIN_VOCAL_SECONDS:g} s (the short-term loudness window) to be measured",
        )
    if _looks_clipped(samples):
        log.warning("%s: looks clipped (runs of samples at full scale); the mix will keep that distortion", path)
    # Before resampling: a constant offset is exactly its mean here, with no filter edges.
    samples = remove_dc(samples, path)
    samples = fold_vocal(samples, path)
    return _at_rate(samples, rate, sample_rate, path, channels)


def _read(path: Path, max_seconds: float, allow_silent: bool) -> tuple[np.ndarray, int, int]:
    """Checked samples ``(channels, samples)`` float32 at the file's own rate, the rate, the channel count."""
    info = _check_file(path, max_seconds)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(path, f"could not be decoded ({_first_line(exc)})") from None
    samples = np.ascontiguousarray(data.T)
    if samples.shape[-1] == 0:
        raise AudioFileError(path, "contains no audio")
    if not np.all(np.isfinite(samples)):
        raise AudioFileError(path, "contains NaN or infinite samples")
    peak = float(np.max(np.abs(samples)))
    if not allow_silent and peak < 10 ** (SILENCE_DBFS / 20):
        raise AudioFileError(path, "is silent")
    return samples, rate, info.channels


def _check_file(path: Path, max_seconds: float):
    """``sf.info`` of a file that exists, is readable, holds audio, is not too long and not truncated."""
    if not path.exists():
        raise AudioFileError(path, "file not found")
    if path.is_dir():
        raise AudioFileError(path, "is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioFileError(path, "permission denied")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile reports every format problem as a RuntimeError
        raise AudioFileError(path, f"not a readable audio file ({_first_line(exc)})") from None
    if info.frames == 0 or info.samplerate <= 0:
        raise AudioFileError(path, "contains no audio")
    if info.frames / info.samplerate > max_seconds:
        raise AudioFileError(
            path, f"is {info.frames / info.samplerate / 60:.1f} min long; the limit is {max_seconds / 60:.1f} min"
        )
    truncated = _wav_truncation(path, info.samplerate)
    if truncated:
        raise AudioFileError(path, truncated)
    return info


#: Frames read from a file at a time by :class:`AudioFileBlocks` (about 6 s at 44.1 kHz).
READ_BLOCK_FRAMES = 1 << 18


class Spool:
    """A ``(channels, samples)`` float32 signal kept in an anonymous temporary file instead of memory.

    Written once in order (:meth:`append`), then read by slices like an array
    (``spool[:, a:b]``, all channels), so :class:`MixSource` takes it in place of one.
    The file is made by ``tempfile.TemporaryFile`` in the temporary folder (``TMPDIR``,
    else the system's): on POSIX its name is removed at once, so the space goes back to
    the system when the file is closed or the process ends however it ends (Ctrl-C,
    SIGTERM, SIGKILL), and nothing is left behind to clean.
    """

    def __init__(self, channels: int, samples: int | None = None):
        import tempfile

        self.growing = samples is None  # then as long as what has been written
        self.shape = (channels, 0 if samples is None else samples)
        self._file = tempfile.TemporaryFile(prefix="vocalmix-spool-")
        self._written = 0

    def append(self, block: np.ndarray) -> None:
        if block.shape[0] != self.shape[0] or (not self.growing and self._written + block.shape[1] > self.shape[1]):
            raise ValueError(f"block {block.shape} does not fit the spool {self.shape} after {self._written} samples")
        try:
            self._file.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
        except OSError as exc:  # a full or failing temporary disk is the user's to fix, not a crash
            import tempfile

            raise VocalmixError(
                f"cannot write a temporary file in {tempfile.gettempdir()}: {exc.strerror or exc} "
                f"(a render needs about 28 bytes of temporary disk per sample of song; set TMPDIR to a larger folder)"
            ) from exc
        self._written += block.shape[1]
        if self.growing:
            self.shape = (self.shape[0], self._written)

    def fill(self) -> None:
        """Pad with silence up to the full length."""
        while self._written < self.shape[1]:
            self.append(np.zeros((self.shape[0], min(READ_BLOCK_FRAMES, self.shape[1] - self._written)), np.float32))
        self._file.flush()

    def __getitem__(self, key) -> np.ndarray:
        channels, span = key
        if channels != slice(None) or not isinstance(span, slice) or span.step not in (None, 1):
            raise IndexError("a spool is read as spool[:, start:stop]")
        self._file.flush()
        start, stop, _ = span.indices(self.shape[1])
        stop = max(start, min(stop, self._written))
        frame = 4 * self.shape[0]
        data = os.pread(self._file.fileno(), (stop - start) * frame, start * frame)
        # Into a writable buffer: torch warns about (and may not write through) read-only arrays.
        return np.ascontiguousarray(np.frombuffer(bytearray(data), dtype=np.float32).reshape(-1, self.shape[0]).T)

    def head(self, samples: int) -> Spool:
        """The first ``samples`` of this spool (reading the same file; written in full first)."""
        self._file.flush()
        head = Spool.__new__(Spool)
        head.growing = False
        head._file = self._file
        head._written = min(samples, self._written)
        head.shape = (self.shape[0], head._written)
        return head

    def close(self) -> None:
        self._file.close()


class AudioFileBlocks:
    """An audio file read block by block, never whole: the checks of :func:`load_audio` (with
    ``allow_silent=False``) made in a pass over its blocks, then its samples as blocks on demand.

    ``blocks(rate, length)`` gives ``(2, m)`` float32 blocks (mono doubled, more than two
    channels refused as :func:`to_stereo` refuses them), resampled to ``rate`` block by block
    (:class:`Resampler`, the samples of :func:`resample` of the whole file) and cut or padded
    with silence to ``length`` samples: laid end to end, the file as :func:`load_audio` and
    :func:`to_stereo` would give it.
    """

    def __init__(self, path: str | os.PathLike, max_seconds: float = DEFAULT_MAX_SECONDS):
        self.path = Path(path)
        info = _check_file(self.path, max_seconds)
        self.original_rate = int(info.samplerate)
        self.original_channels = int(info.channels)
        frames, peak = 0, 0.0
        # The file is decoded once; its samples are kept in a temporary file for the later passes.
        self._spool: Spool | None = None
        spool = Spool(self.original_channels)
        for block in self._native_blocks():
            if not np.all(np.isfinite(block)):
                raise AudioFileError(self.path, "contains NaN or infinite samples")
            peak = max(peak, float(np.max(block)), -float(np.min(block)))
            frames += block.shape[-1]
            spool.append(block)
        self._spool = spool
        if frames == 0:
            raise AudioFileError(self.path, "contains no audio")
        if peak < 10 ** (SILENCE_DBFS / 20):
            raise AudioFileError(self.path, "is silent")
        self.frames = frames
        if peak >= 0.99 and self._pinned_runs(peak) > max(3, frames // 10000):  # as _looks_clipped
            log.warning("%s: looks clipped (runs of samples at full scale); the mix will keep that distortion", path)
        if self.original_channels > 2:
            to_stereo(np.zeros((self.original_channels, 0), dtype=np.float32), str(self.path))

    def _native_blocks(self) -> Iterator[np.ndarray]:
        """``(channels, m)`` float32 blocks at the file's rate (decoded the first time, then from the spool)."""
        if self._spool is not None:
            for start in range(0, self._spool.shape[1], READ_BLOCK_FRAMES):
                yield self._spool[:, start : start + READ_BLOCK_FRAMES]
            return
        try:
            with sf.SoundFile(str(self.path)) as f:
                while True:
                    data = f.read(READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if data.shape[0] == 0:
                        return
                    yield np.ascontiguousarray(data.T)
        except AudioFileError:
            raise
        except Exception as exc:  # libsndfile reports a damaged stream as a RuntimeError/LibsndfileError
            raise AudioFileError(self.path, f"could not be decoded ({_first_line(exc)})") from None

    def _pinned_runs(self, peak: float) -> int:
        """Consecutive samples pinned at the extreme (:func:`_looks_clipped`'s count), block by block."""
        runs = 0
        last = None  # each channel's pinned state of the block's last sample
        threshold = np.float32(peak) * 0.9999  # float32, as _looks_clipped's peak is
        for block in self._native_blocks():
            pinned = np.abs(block) >= threshold
            runs += int(np.count_nonzero(pinned[..., 1:] & pinned[..., :-1]))
            if last is not None:
                runs += int(np.count_nonzero(last & pinned[:, 0]))
            last = pinned[:, -1]
        return runs

    def samples_at(self, rate: int) -> int:
        """The file's length at ``rate``, as :func:`resample` makes it."""
        return self.frames if rate == self.original_rate else Resampler(self.original_rate, rate, self.frames).n_out

    def blocks(self, rate: int, length: int | None = None) -> Iterator[np.ndarray]:
        """Stereo float32 ``(2, m)`` blocks at ``rate``, cut or padded with silence to ``length``."""
        stereo = (np.repeat(b, 2, axis=0) if b.shape[0] == 1 else b for b in self._native_blocks())
        native = self.original_rate
        pieces = stereo if rate == native else resample_blocks(stereo, native, rate, self.frames)
        given = 0
        for piece in pieces:
            if length is not None and given + piece.shape[-1] > length:
                piece = piece[:, : length - given]
            if piece.shape[-1]:
                given += piece.shape[-1]
                yield piece
            if length is not None and given >= length:
                return
        while length is not None and given < length:
            pad = min(READ_BLOCK_FRAMES, length - given)
            given += pad
            yield np.zeros((2, pad), dtype=np.float32)

    def block_source(self, rate: int, length: int | None = None):
        """A callable giving :meth:`blocks` afresh at each call (a :class:`vocalmix.analysis.SongAnalysis` backing)."""
        return lambda: self.blocks(rate, length)


def _at_rate(samples: np.ndarray, rate: int, sample_rate: int, path, channels: int) -> Audio:
    if rate != sample_rate:
        samples = resample(samples, rate, sample_rate)
        log.info("%s: resampled from %d Hz to %d Hz", path, rate, sample_rate)
    return Audio(samples.astype(np.float32, copy=False), sample_rate, str(path), rate, channels)


def _wav_truncation(path: Path, sample_rate: int) -> str | None:
    """Why a RIFF/WAVE file is cut short (its data chunk promises more bytes than follow), or None.

    libsndfile silently reads what is there, so a half-copied file would pass as a short one.
    Files that state no length (0 or 0xFFFFFFFF, as streaming writers leave it) and RF64 are not judged.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "little" if head[:4] == b"RIFF" else "big"
            size = os.fstat(f.fileno()).st_size
            position, block_align = 12, 0
            while position + 8 <= size:
                f.seek(position)
                chunk = f.read(8)
                chunk_id, length = chunk[:4], int.from_bytes(chunk[4:8], order)
                if chunk_id == b"fmt ":
                    fmt = f.read(14)
                    block_align = int.from_bytes(fmt[12:14], order) if len(fmt) == 14 else 0
                elif chunk_id == b"data":
                    present = size - position - 8
                    if length in (0, 0xFFFFFFFF) or present >= length:
                        return None
                    if block_align <= 0:
                        return f"is truncated: its header promises {length} bytes of audio, the file holds {present}"
                    rate = sample_rate or 1
                    return (
                        f"is truncated: its header promises {length // block_align / rate:.2f} s of audio, "
                        f"the file holds {present // block_align / rate:.2f} s (an interrupted copy or download?)"
                    )
                position += 8 + length + (length & 1)
    except OSError:
        return None  # reading it properly reports the problem
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _looks_clipped(samples: np.ndarray) -> bool:
    # Clipping shows as consecutive samples pinned at the same extreme value.
    peak = np.max(np.abs(samples))
    if peak < 0.99:
        return False
    pinned = np.abs(samples) >= peak * 0.9999
    runs = pinned[..., 1:] & pinned[..., :-1]
    return int(np.count_nonzero(runs)) > max(3, samples.shape[-1] // 10000)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling with a long Kaiser-windowed filter (stop band below -100 dB)."""
    if from_rate == to_rate:
        return samples
    # Imported here: scipy.signal's import alone costs 1-2 s of CPU, and most renders never resample.
    from scipy import signal

    ratio = Fraction(to_rate, from_rate)
    out = signal.resample_poly(
        samples.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1, window=("kaiser", 10.0)
    )
    return out.astype(np.float32)


class Resampler:
    """:func:`resample` of a signal of ``n_in`` samples (known in advance) fed in blocks ``(channels, m)``.

    Each output sample of the polyphase filter is a sum over the input samples under its
    filter, so it can be computed from any stretch of input that holds them all (or that
    reaches the signal's end where it does): the stretch given to ``resample_poly`` starts
    on a multiple of ``down`` (so its output grid is the whole signal's) and only the
    outputs whose filter lies inside it are kept. The filter is designed once and handed
    to ``resample_poly``, the same taps in the same order, so the pieces laid end to end
    equal :func:`resample` of the whole signal bit for bit (tested). Holds one block and a
    margin of input (a few dozen samples, or up to ``down`` for the alignment).
    """

    def __init__(self, from_rate: int, to_rate: int, n_in: int):
        ratio = Fraction(to_rate, from_rate)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.n_in = n_in
        self.n_out = -(-n_in * self.up // self.down)
        self.same = from_rate == to_rate
        if not self.same:
            from scipy import signal

            max_rate = max(self.up, self.down)
            self._taps = signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 10.0))
            # Reach of one output's filter in input samples, with room to spare (its centre and the pre-padding).
            self._reach = (self._taps.shape[0] + self.down) // self.up + 2
        self._buffer: np.ndarray | None = None
        self._start = 0  # input index of the buffer's first sample (a multiple of down)
        self._fed = 0
        self._emitted = 0

    def add(self, block: np.ndarray) -> np.ndarray:
        """Take the next input block; return the output samples now complete, float32."""
        if self.same:
            self._fed += block.shape[-1]
            return block
        block = np.asarray(block, dtype=np.float64)
        self._buffer = block if self._buffer is None else np.concatenate([self._buffer, block], axis=-1)
        self._fed += block.shape[-1]
        if self._fed > self.n_in:
            raise ValueError(f"more than the {self.n_in} samples announced")
        return self._emit()

    def _emit(self) -> np.ndarray:
        from scipy import signal

        assert self._buffer is not None
        end = self._start + self._buffer.shape[-1]
        last = end >= self.n_in
        stop = self.n_out if last else max(self._emitted, ((end - self._reach) * self.up) // self.down)
        if stop <= self._emitted:
            return np.zeros(self._buffer.shape[:-1] + (0,), dtype=np.float32)
        out = signal.resample_poly(self._buffer, self.up, self.down, axis=-1, window=self._taps)
        offset = self._start * self.up // self.down  # the buffer's first output, as an output index
        piece = out[..., self._emitted - offset : stop - offset].astype(np.float32)
        self._emitted = stop
        # Keep the input the next outputs reach back to, from a multiple of down.
        first_needed = max(0, (stop * self.down) // self.up - self._reach)
        keep_from = first_needed // self.down * self.down
        if keep_from > self._start:
            self._buffer = self._buffer[..., keep_from - self._start :].copy()
            self._start = keep_from
        return piece


def resample_blocks(blocks, from_rate: int, to_rate: int, n_in: int):
    """The output of :func:`resample` in pieces, from the input in ``blocks`` (:class:`Resampler`)."""
    resampler = Resampler(from_rate, to_rate, n_in)
    for block in blocks:
        # A long block (a short song's reverb comes out in one) is taken a read block at a time:
        # the filter's float64 buffers stay a block long.
        for start in range(0, block.shape[-1], READ_BLOCK_FRAMES):
            piece = resampler.add(block[..., start : start + READ_BLOCK_FRAMES])
            if piece.shape[-1]:
                yield piece


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average all channels to one, ``(1, samples)``."""
    return samples.mean(axis=0, keepdims=True)


def remove_dc(samples: np.ndarray, path: str | os.PathLike = "audio") -> np.ndarray:
    """Subtract each channel's mean (as a vocal chain's high-pass would), refusing audio that is nothing else."""
    offsets = samples.mean(axis=-1, dtype=np.float64, keepdims=True)
    largest = float(np.max(np.abs(offsets)))
    if largest == 0.0:
        return samples
    # Each sample the float64 difference rounded to float32 (the ufunc casts through its small buffer:
    # no song-long float64 copy).
    centred = np.empty(samples.shape, dtype=np.float32)
    np.subtract(samples, offsets, out=centred, casting="same_kind")
    offset_db = 20 * np.log10(largest)
    if max(float(centred.max()), -float(centred.min())) < 10 ** (SILENCE_DBFS / 20):
        raise AudioFileError(path, f"holds only a constant (DC) offset of {offset_db:.1f} dBFS and no signal")
    if offset_db > DC_WARNING_DBFS:
        log.warning("%s: DC offset of %.1f dBFS removed before mixing", path, offset_db)
    return centred


def fold_vocal(samples: np.ndarray, path: str | os.PathLike = "vocal") -> np.ndarray:
    """Fold a vocal to mono ``(1, samples)``; where the channels cancel, take the louder one and say so.

    Averaging a stereo take whose channels are in opposite polarity (a wiring or
    plug-in mistake) leaves almost nothing of the voice. When the average is more than
    :data:`FOLD_CANCEL_DB` below the channels' mean power (equal channels with a
    correlation under -0.5; uncorrelated ones lose 3 dB), the louder channel is used.
    """
    if samples.shape[0] == 1:
        return samples
    power = np.mean(np.square(samples, dtype=np.float64), axis=-1)
    folded = to_mono(samples)
    folded_power = float(np.mean(np.square(folded, dtype=np.float64)))
    loss_db = 10 * np.log10(max(float(power.mean()), 1e-30) / max(folded_power, 1e-30))
    if loss_db <= FOLD_CANCEL_DB:
        log.info("%s: %d channels folded to mono", path, samples.shape[0])
        return folded
    # The first of the loudest channels (within 0.05 dB), so equal channels give the left one.
    louder = int(np.flatnonzero(power >= power.max() * 10 ** (-0.005))[0])
    name = ("left", "right")[louder] if samples.shape[0] == 2 else f"channel {louder + 1}"
    fold = "silent" if folded_power == 0.0 else f"{loss_db:.0f} dB below them"
    log.warning(
        "%s: its channels cancel when folded to mono (the fold is %s; one channel is probably "
        "polarity-inverted); using the %s channel alone",
        path,
        fold,
        name,
    )
    return samples[louder : louder + 1]


def to_stereo(samples: np.ndarray, path: str = "audio") -> np.ndarray:
    """Mono becomes two identical channels; stereo passes; more channels are refused."""
    channels = samples.shape[0]
    if channels == 1:
        return np.repeat(samples, 2, axis=0)
    if channels == 2:
        return samples
    raise AudioFileError(
        path, f"has {channels} channels; only mono and stereo backing tracks are supported (downmix it to stereo first)"
    )


def match_length(samples: np.ndarray, length: int, path: str = "audio") -> np.ndarray:
    """Pad with silence (or cut) to ``length`` samples, saying so."""
    n = samples.shape[-1]
    report_length_change(n, length, path)
    if n == length:
        return samples
    if n < length:
        return np.pad(samples, ((0, 0), (0, length - n)))
    return samples[..., :length]


def report_length_change(n: int, length: int, path: str = "audio") -> None:
    """The warning of :func:`match_length` for ``n`` samples made ``length`` long."""
    if n < length:
        log.warning("%s: %.2f s shorter than the other input; padded with silence", path, (length - n) / WORKING_RATE)
    elif n > length:
        log.warning("%s: %.2f s longer than the other input; the end is cut", path, (n - length) / WORKING_RATE)


def write_audio(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    subtype: str = "pcm24",
    force: bool = False,
    protected: tuple[str | os.PathLike, ...] = (),
) -> Path:
    """Write ``(channels, samples)`` atomically with the user's umask (:func:`vocalmix.files.write_atomic`).

    ``protected`` lists input files that must never be overwritten, whatever ``force`` says.
    """
    path = Path(path)
    check_output_path(path, force=force, protected=protected)
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    if subtype not in OUTPUT_SUBTYPES:
        raise InputError(f"unknown sample format {subtype!r}; choose one of {', '.join(OUTPUT_SUBTYPES)}")
    if fmt == "FLAC" and subtype == "float":
        raise InputError(f"{path}: FLAC cannot hold float samples; use --format pcm24 or a .wav output")
    data = np.asarray(samples, dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: refusing to write NaN or infinite samples")
    return write_atomic(
        path, lambda tmp: sf.write(tmp, data.T, sample_rate, subtype=OUTPUT_SUBTYPES[subtype], format=fmt)
    )


def check_output_path(path: Path, force: bool = False, protected: tuple = ()) -> None:
    """Refuse outputs that would destroy an input, clobber a file, or land nowhere."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(f"{path}: output must end in {' or '.join(OUTPUT_FORMATS)}")
    target = path.resolve()
    for p in protected:
        if Path(p).resolve() == target:
            raise InputError(f"{path}: output path is one of the inputs; choose another name")
    if not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and not force:
        raise InputError(f"{path}: already exists (use --force to overwrite)")
