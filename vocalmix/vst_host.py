"""A minimal VST 2.4 host in ctypes, enough to run the IEM plug-ins headless.

It speaks the public VST 2.4 binary interface (no SDK files): a plug-in library
exports ``VSTPluginMain(audioMasterCallback)``, which returns a pointer to an
``AEffect`` structure (first field the magic ``'VstP'``); the host talks to it
through the structure's ``dispatcher`` (opcodes below), ``setParameter``,
``getParameter`` and ``processReplacing`` (``float**`` in, ``float**`` out, one
pointer per channel). The host callback answers ``audioMasterVersion`` with 2400,
the sample rate and block size when asked, and 0 to everything else; that is all
the JUCE-built IEM plug-ins need to load without an X server.

Usage::

    with VstPlugin("/usr/lib/x86_64-linux-gnu/iem-plugin-suite/vst/libMultiEQ.so", 44100, 512) as eq:
        eq.set_chunk(blob)                  # a "VC2!" state from vocalmix export
        y = eq.process(x)                   # x: (channels, samples) float32

Safety: a VST plug-in is native code, so a wrong call can crash the interpreter.
Everything this module passes in is checked first: parameter indices against
``numParams``, channel counts against the plug-in's inputs, audio as contiguous
float32, blocks never longer than the block size announced to the plug-in, and no
call after :meth:`VstPlugin.close`. Problems are raised as :class:`VstError` (an
:class:`~vocalmix.errors.InputError`, so the CLI prints one line).

The library stays loaded after ``close`` (JUCE plug-ins do not survive being
unloaded and reloaded in one process); every :class:`VstPlugin` is a fresh
instance with its own state.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .errors import InputError

# -- the public VST 2.4 ABI ------------------------------------------------------------------------
VST_MAGIC = struct.unpack(">i", b"VstP")[0]  # stored as a native int32 whose big-endian bytes spell VstP

# dispatcher opcodes
EFF_OPEN = 0
EFF_CLOSE = 1
EFF_GET_PARAM_LABEL = 6
EFF_GET_PARAM_DISPLAY = 7
EFF_GET_PARAM_NAME = 8
EFF_SET_SAMPLE_RATE = 10
EFF_SET_BLOCK_SIZE = 11
EFF_MAINS_CHANGED = 12
EFF_GET_CHUNK = 23
EFF_SET_CHUNK = 24
EFF_GET_EFFECT_NAME = 45
EFF_GET_VENDOR_STRING = 47
EFF_GET_PRODUCT_STRING = 48
EFF_GET_VST_VERSION = 58
EFF_START_PROCESS = 71
EFF_STOP_PROCESS = 72

# host callback opcodes
AUDIO_MASTER_VERSION = 1
AUDIO_MASTER_GET_SAMPLE_RATE = 16
AUDIO_MASTER_GET_BLOCK_SIZE = 17

# AEffect flags
EFF_FLAGS_CAN_REPLACING = 1 << 4
EFF_FLAGS_PROGRAM_CHUNKS = 1 << 5

HOST_VST_VERSION = 2400
TEXT_BUFFER_BYTES = 256  # the spec's limits are 8-64 characters; JUCE may write more, so leave room
MAX_BLOCK_SIZE = 1 << 16

_intptr = ctypes.c_ssize_t


class AEffect(ctypes.Structure):
    pass


_DISPATCHER = ctypes.CFUNCTYPE(
    _intptr, ctypes.POINTER(AEffect), ctypes.c_int32, ctypes.c_int32, _intptr, ctypes.c_void_p, ctypes.c_float
)
_HOST_CALLBACK = ctypes.CFUNCTYPE(
    _intptr, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, _intptr, ctypes.c_void_p, ctypes.c_float
)
_PROCESS = ctypes.CFUNCTYPE(
    None,
    ctypes.POINTER(AEffect),
    ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
    ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
    ctypes.c_int32,
)
_SET_PARAMETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(AEffect), ctypes.c_int32, ctypes.c_float)
_GET_PARAMETER = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.POINTER(AEffect), ctypes.c_int32)

AEffect._fields_ = [
    ("magic", ctypes.c_int32),
    ("dispatcher", _DISPATCHER),
    ("process", ctypes.c_void_p),  # deprecated accumulating process; never called
    ("setParameter", _SET_PARAMETER),
    ("getParameter", _GET_PARAMETER),
    ("numPrograms", ctypes.c_int32),
    ("numParams", ctypes.c_int32),
    ("numInputs", ctypes.c_int32),
    ("numOutputs", ctypes.c_int32),
    ("flags", ctypes.c_int32),
    ("resvd1", _intptr),
    ("resvd2", _intptr),
    ("initialDelay", ctypes.c_int32),
    ("realQualities", ctypes.c_int32),
    ("offQualities", ctypes.c_int32),
    ("ioRatio", ctypes.c_float),
    ("object", ctypes.c_void_p),
    ("user", ctypes.c_void_p),
    ("uniqueID", ctypes.c_int32),
    ("version", ctypes.c_int32),
    ("processReplacing", _PROCESS),
    ("processDoubleReplacing", ctypes.c_void_p),
    ("future", ctypes.c_char * 56),
]

_ENTRY = ctypes.CFUNCTYPE(ctypes.POINTER(AEffect), _HOST_CALLBACK)


class VstError(InputError):
    """A plug-in that cannot be loaded or a call this host refuses to make; the message is one line."""


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter as the plug-in describes it: name, unit label, display text, host-side 0..1 value."""

    index: int
    name: str
    label: str
    display: str
    value: float


# The host's view of each live instance, read by the callback (keyed by AEffect address).
_HOST_STATE: dict[int, tuple[float, int]] = {}


def _host_callback(effect, opcode, index, value, ptr, opt):
    if opcode == AUDIO_MASTER_VERSION:
        return HOST_VST_VERSION
    if effect and opcode in (AUDIO_MASTER_GET_SAMPLE_RATE, AUDIO_MASTER_GET_BLOCK_SIZE):
        rate, block = _HOST_STATE.get(effect, (0.0, 0))
        return int(rate) if opcode == AUDIO_MASTER_GET_SAMPLE_RATE else block
    return 0


_CALLBACK = _HOST_CALLBACK(_host_callback)  # kept alive for as long as the module is
_LIBRARIES: dict[str, ctypes.CDLL] = {}  # loaded once per process, never unloaded


def _load_library(path: Path) -> ctypes.CDLL:
    key = str(path.resolve())
    if key not in _LIBRARIES:
        try:
            _LIBRARIES[key] = ctypes.CDLL(key, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as exc:
            detail = str(exc).split(":")[-1].strip() or "cannot be loaded"
            raise VstError(f"{path}: not a loadable plug-in library ({detail})") from None
    return _LIBRARIES[key]


def _text(buffer: ctypes.Array) -> str:
    return buffer.value.decode("utf-8", errors="replace").strip()


class VstPlugin:
    """One instance of a VST2 plug-in, opened, at ``sample_rate`` with blocks of at most ``block_size``.

    The instance is switched on (``effMainsChanged`` 1, ``effStartProcess``) when
    created; :meth:`reset` switches it off and on again, which clears the DSP state
    and makes JUCE plug-ins re-read their latency.
    """

    def __init__(self, path: Union[str, os.PathLike], sample_rate: float = 44100.0, block_size: int = 512):
        self.path = Path(path)
        if not self.path.exists():
            raise VstError(f"{self.path}: plug-in file not found")
        if not self.path.is_file():
            raise VstError(f"{self.path}: not a file")
        sample_rate = float(sample_rate)
        if not (np.isfinite(sample_rate) and 1000.0 <= sample_rate <= 768000.0):
            raise VstError(f"{self.path}: sample rate {sample_rate:g} Hz is outside 1000..768000")
        if (
            isinstance(block_size, bool)
            or not isinstance(block_size, (int, np.integer))
            or not (1 <= block_size <= MAX_BLOCK_SIZE)
        ):
            raise VstError(f"{self.path}: block size {block_size!r} must be a whole number in 1..{MAX_BLOCK_SIZE}")
        library = _load_library(self.path)
        try:
            entry_address = ctypes.cast(library.VSTPluginMain, ctypes.c_void_p).value
        except AttributeError:
            try:
                entry_address = ctypes.cast(library.main, ctypes.c_void_p).value
            except AttributeError:
                raise VstError(f"{self.path}: not a VST2 plug-in (no VSTPluginMain entry point)") from None
        if not entry_address:
            raise VstError(f"{self.path}: not a VST2 plug-in (its VSTPluginMain entry point is null)")
        pointer = _ENTRY(entry_address)(_CALLBACK)
        if not pointer:
            raise VstError(f"{self.path}: the plug-in refused to create an instance")
        self._effect = pointer.contents
        if self._effect.magic != VST_MAGIC:
            raise VstError(f"{self.path}: not a VST2 plug-in (bad AEffect magic {self._effect.magic:#x})")
        if not self._effect.flags & EFF_FLAGS_CAN_REPLACING or not self._effect.processReplacing:
            raise VstError(f"{self.path}: the plug-in has no processReplacing (too old a VST2 plug-in)")
        self._pointer = pointer
        self._address = ctypes.addressof(self._effect)
        self._closed = False
        self.sample_rate = sample_rate
        self.block_size = int(block_size)
        _HOST_STATE[self._address] = (self.sample_rate, self.block_size)
        self._dispatch(EFF_OPEN)
        self._dispatch(EFF_SET_SAMPLE_RATE, opt=self.sample_rate)
        self._dispatch(EFF_SET_BLOCK_SIZE, value=self.block_size)
        self._running = False
        self._start()
        self.name = self._string(EFF_GET_EFFECT_NAME) or self.path.stem
        n_in, n_out = self._effect.numInputs, self._effect.numOutputs
        # One reusable array of channel pointers each way, and silent/scratch buffers.
        self._in_buffers = np.zeros((n_in, self.block_size), dtype=np.float32)
        self._out_buffers = np.zeros((n_out, self.block_size), dtype=np.float32)
        self._in_pointers = (ctypes.POINTER(ctypes.c_float) * max(1, n_in))(
            *[row.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for row in self._in_buffers]
        )
        self._out_pointers = (ctypes.POINTER(ctypes.c_float) * max(1, n_out))(
            *[row.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for row in self._out_buffers]
        )

    # -- plumbing ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise VstError(f"{self.path}: the plug-in instance is closed")

    def _dispatch(self, opcode: int, index: int = 0, value: int = 0, ptr=None, opt: float = 0.0) -> int:
        self._check_open()
        return self._effect.dispatcher(self._pointer, opcode, index, value, ptr, opt)

    def _string(self, opcode: int, index: int = 0) -> str:
        buffer = ctypes.create_string_buffer(TEXT_BUFFER_BYTES)
        self._dispatch(opcode, index, 0, ctypes.cast(buffer, ctypes.c_void_p))
        return _text(buffer)

    def _start(self) -> None:
        self._dispatch(EFF_MAINS_CHANGED, value=1)
        self._dispatch(EFF_START_PROCESS)
        self._running = True

    def _stop(self) -> None:
        if self._running:
            self._dispatch(EFF_STOP_PROCESS)
            self._dispatch(EFF_MAINS_CHANGED, value=0)
            self._running = False

    # -- description ---------------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return int(self._effect.numInputs)

    @property
    def num_outputs(self) -> int:
        return int(self._effect.numOutputs)

    @property
    def num_parameters(self) -> int:
        return int(self._effect.numParams)

    @property
    def unique_id(self) -> str:
        """The four-character plug-in code (``MuEQ``, ``OmCo``, ``FdRe`` for the IEM plug-ins)."""
        return struct.pack(">i", self._effect.uniqueID).decode("latin-1")

    @property
    def latency(self) -> int:
        """The latency in samples the plug-in reports (``AEffect.initialDelay``).

        JUCE plug-ins update it when they are prepared, so after a change that
        alters it (OmniCompressor's LookAhead) call :meth:`reset` before reading it.
        """
        self._check_open()
        return int(self._effect.initialDelay)

    def _check_index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise VstError(f"{self.path}: parameter index must be a whole number, got {index!r}")
        if not (0 <= index < self.num_parameters):
            raise VstError(f"{self.path}: parameter index {index} is outside 0..{self.num_parameters - 1}")
        return int(index)

    def parameter_name(self, index: int) -> str:
        return self._string(EFF_GET_PARAM_NAME, self._check_index(index))

    def parameter_label(self, index: int) -> str:
        return self._string(EFF_GET_PARAM_LABEL, self._check_index(index))

    def parameter_display(self, index: int) -> str:
        return self._string(EFF_GET_PARAM_DISPLAY, self._check_index(index))

    def get_parameter(self, index: int) -> float:
        """The host-side (normalised, 0..1) value of a parameter."""
        index = self._check_index(index)
        self._check_open()
        return float(self._effect.getParameter(self._pointer, index))

    def set_parameter(self, index: int, value: float) -> None:
        """Set a parameter by its normalised 0..1 value (the plug-in snaps it to its grid)."""
        index = self._check_index(index)
        value = float(value)
        if not (np.isfinite(value) and 0.0 <= value <= 1.0):
            raise VstError(f"{self.path}: normalised value {value!r} for parameter {index} is outside 0..1")
        self._check_open()
        self._effect.setParameter(self._pointer, index, value)

    def parameters(self) -> list[ParameterInfo]:
        """Every parameter with its name, label, current display text and normalised value."""
        return [
            ParameterInfo(
                i, self.parameter_name(i), self.parameter_label(i), self.parameter_display(i), self.get_parameter(i)
            )
            for i in range(self.num_parameters)
        ]

    def parameter_index(self, name: str) -> int:
        """The index of the parameter whose name (as shown by the plug-in) is ``name``."""
        names = [self.parameter_name(i) for i in range(self.num_parameters)]
        stripped = [n.strip() for n in names]
        if name.strip() not in stripped:
            raise VstError(f"{self.path}: no parameter named {name!r}")
        return stripped.index(name.strip())

    # -- state ---------------------------------------------------------------------------------
    def get_chunk(self) -> bytes:
        """The plug-in's whole state (``effGetChunk``, bank form); for JUCE plug-ins the "VC2!" blob."""
        if not self._effect.flags & EFF_FLAGS_PROGRAM_CHUNKS:
            raise VstError(f"{self.path}: the plug-in does not store its state as a chunk")
        data = ctypes.c_void_p()
        size = self._dispatch(EFF_GET_CHUNK, 0, 0, ctypes.cast(ctypes.byref(data), ctypes.c_void_p))
        if size <= 0 or not data.value:
            raise VstError(f"{self.path}: the plug-in returned no state")
        return ctypes.string_at(data.value, size)  # copied at once: the plug-in frees its buffer later

    def set_chunk(self, blob: bytes) -> None:
        """Load a whole state (``effSetChunk``, bank form)."""
        if not isinstance(blob, (bytes, bytearray)) or len(blob) == 0:
            raise VstError(f"{self.path}: a state must be non-empty bytes")
        if not self._effect.flags & EFF_FLAGS_PROGRAM_CHUNKS:
            raise VstError(f"{self.path}: the plug-in does not load its state as a chunk")
        buffer = ctypes.create_string_buffer(bytes(blob), len(blob))
        self._dispatch(EFF_SET_CHUNK, 0, len(blob), ctypes.cast(buffer, ctypes.c_void_p))

    # -- audio ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Switch the plug-in off and on: clears its delay lines and filters and updates its latency."""
        self._stop()
        self._start()

    def process(self, audio: np.ndarray, outputs: Optional[int] = None) -> np.ndarray:
        """Run ``audio`` ``(channels, samples)`` through the plug-in in blocks of at most ``block_size``.

        The channels feed the plug-in's first inputs; the others get silence.
        Returns the first ``outputs`` output channels (default: as many as the
        input has) as float32. State carries over between calls.
        """
        self._check_open()
        audio = np.asarray(audio)
        if audio.ndim != 2:
            raise VstError(f"{self.path}: audio must be (channels, samples), got shape {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise VstError(f"{self.path}: audio must be floating point, got {audio.dtype}")
        channels, n = audio.shape
        if channels > self.num_inputs:
            raise VstError(f"{self.path}: {channels} channels but the plug-in has {self.num_inputs} inputs")
        outputs = channels if outputs is None else outputs
        if (
            isinstance(outputs, bool)
            or not isinstance(outputs, (int, np.integer))
            or not (1 <= outputs <= self.num_outputs)
        ):
            raise VstError(f"{self.path}: outputs must be 1..{self.num_outputs}, got {outputs!r}")
        if not np.all(np.isfinite(audio)):
            raise VstError(f"{self.path}: audio contains NaN or infinite samples")
        if not self._running:
            self._start()
        result = np.empty((outputs, n), dtype=np.float32)
        self._in_buffers[:] = 0.0
        for start in range(0, n, self.block_size):
            frames = min(self.block_size, n - start)
            self._in_buffers[:channels, :frames] = audio[:, start : start + frames]
            self._effect.processReplacing(self._pointer, self._in_pointers, self._out_pointers, frames)
            result[:, start : start + frames] = self._out_buffers[:outputs, :frames]
        return result

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Switch the plug-in off and destroy the instance (idempotent)."""
        if self._closed:
            return
        try:
            self._stop()
            self._dispatch(EFF_CLOSE)
        finally:
            self._closed = True
            _HOST_STATE.pop(self._address, None)

    def __enter__(self) -> VstPlugin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.sample_rate:g} Hz, blocks of {self.block_size}"
        return f"VstPlugin({str(self.path)!r}, {self.name!r}, {state})"
