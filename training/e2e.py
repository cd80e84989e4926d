"""``cnn-e2e``: a settings-predicting CNN trained end to end through the differentiable chain.

Predictor
    The Li & Lerch CNN (:class:`vocalmix.nets.mixing_cnn.MixingCNN`) on the existing mel
    blocks of vocal and backing, with one output per decided setting
    (:data:`vocalmix.nets.e2e_outputs.DECIDED`: high-pass, four peaks with frequency, gain
    and Q, high shelf, compressor threshold/ratio/knee/attack/release, the reverb's time,
    shelves and dry/wet, and the vocal-to-backing level); a sigmoid and the e2e
    parameterisation turn them into physical settings. Its output bias starts at the
    target prior's centre, so an untrained predictor proposes the mean settings;
    ``--init`` starts it from a parameter-trained CNN's convolutional layers or from an
    earlier cnn-e2e checkpoint (:func:`init_predictor`).

Training ("undo" pairs, self-supervised)
    A dry vocal clip is rendered through the chain with settings drawn from
    :data:`TARGET_PRIOR` (a lead-vocal prior) at a drawn vocal-to-backing loudness: the
    *target*. The same dry clip, degraded by known random processing (:func:`degrade`: EQ
    resonances and tilt, dynamic expansion, sometimes a short room reverb, a gain), is what
    the network sees, with the backing. Its settings render the degraded clip through the
    chain; the loss (:func:`e2e_loss`) compares that render with the target: MR-STFT of the
    vocal and of the mix, the K-weighted relative loudness, the dynamics term and a weak
    prior. Per-group gradient balancing sits between the network and the settings.

What each kind of data teaches: dry vocals (the CC BY clips, or any dry take) and synthetic
vocals teach *undoing* a degradation towards a prior-drawn target (EQ, compression,
reverb), which is a property of the vocal, learnable from any voice. The *taste* (what a
professional mix would choose for this song, e.g. its level or reverb against this
backing) needs targets made by people: processed stems (MUSDB18-HQ) as targets; synthetic
backings and drawn targets carry no such information, and a model trained on them
learns the prior's centre for those.

Training renders with ``fdn_lines`` (default 16) lines in the reverb to keep a step near a
second on a CPU; inference and the shipped settings use the plug-in's 64. Decay times and
shelves mean the same at any size; only the echo density differs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import typer

from vocalmix.audio import load_audio
from vocalmix.dsp.chain import apply_eq, apply_level, apply_reverb, vocal_chain
from vocalmix.dsp.params import EQParams, LevelParams, ReverbParams
from vocalmix.errors import InputError
from vocalmix.features import DEFAULT_FEATURES, frontend, normalise_block
from vocalmix.methods.cnn_e2e import CHECKPOINT_NAME, TASK, predict_units
from vocalmix.nets import e2e_outputs as E2E
from vocalmix.nets.checkpoints import CNN_CHECKPOINT_FORMAT, CNN_CHECKPOINT_VERSION, load_checkpoint
from vocalmix.nets.mixing_cnn import MixingCNN
from vocalmix.nets.model_config import ModelConfig
from vocalmix.settings import FILTER_TYPES, SCHEMA_VERSION, LevelSettings, spec_of

from . import e2e_params as P
from .eq_voices import SHIFT_SEMITONES, augment_vocal, synthetic_voice
from .losses import (
    GroupGradientBalance,
    MultiResolutionSTFT,
    dynamics_loss,
    k_loudness,
    relative_loudness_loss,
    settings_prior,
)
from .synthesis import synthetic_backing, synthetic_vocal
from .train import feature_settings_record, resolve_device, save_checkpoint, set_determinism

SAMPLE_RATE = 44100
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: Target chain settings for the undo pairs: ``name -> (kind, low, high)``, physical units.
#: The network never sees these draws (it sees the *degraded dry* vocal), so whatever
#: spread they have is distance no predictor can remove; they are therefore kept narrow
#: around a plausible lead-vocal chain (rumble filter, gentle EQ, about 3:1 compression
#: 10-20 dB under the peak, a 1-2 s reverb at 10-25 % wet, a level near Li & Lerch's mean
#: of -1.77 LU). What the network can learn is to *undo the degradation* (:func:`degrade`)
#: on the way to that chain.
TARGET_PRIOR: dict[str, tuple[str, float, float]] = {
    "eq.highpass.frequency_hz": ("log", 70.0, 110.0),
    **{f"eq.peak{k}.frequency_hz": ("log", lo * 1.8, hi / 1.8) for k, (lo, hi) in enumerate(E2E.PEAK_REGIONS_HZ, 1)},
    **{f"eq.peak{k}.gain_db": ("uniform", -1.5, 1.5) for k in range(1, 5)},
    **{f"eq.peak{k}.q": ("log", 0.7, 1.4) for k in range(1, 5)},
    "eq.high_shelf.frequency_hz": ("log", 6000.0, 10000.0),
    "eq.high_shelf.gain_db": ("uniform", 0.0, 3.0),
    "compressor.threshold_relative_db": ("uniform", -20.0, -10.0),
    "compressor.ratio": ("log", 2.5, 4.0),
    "compressor.knee_db": ("uniform", 3.0, 9.0),
    "compressor.attack_ms": ("log", 5.0, 20.0),
    "compressor.release_ms": ("log", 80.0, 200.0),
    "reverb.reverb_time_s": ("log", 1.0, 2.0),
    "reverb.low_cutoff_hz": ("log", 80.0, 200.0),
    "reverb.low_q": ("uniform", 0.4, 0.6),
    "reverb.low_gain_db_per_s": ("uniform", -6.0, 0.0),
    "reverb.high_cutoff_hz": ("log", 3000.0, 6000.0),
    "reverb.high_q": ("uniform", 0.4, 0.6),
    "reverb.high_gain_db_per_s": ("uniform", -15.0, -5.0),
    "reverb.dry_wet_pct": ("uniform", 10.0, 25.0),
    "level.relative_loudness_lu": ("uniform", -2.5, -1.0),
}


def prior_centre() -> dict[str, float]:
    """The centre of :data:`TARGET_PRIOR` (geometric for log kinds): the "mean settings"."""
    return {n: (math.sqrt(lo * hi) if kind == "log" else 0.5 * (lo + hi)) for n, (kind, lo, hi) in TARGET_PRIOR.items()}


def sample_prior(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``n`` draws of the target settings, ``{name: (n,)}`` float32."""
    out = {}
    for name in E2E.NAMES:
        kind, lo, hi = TARGET_PRIOR[name]
        u = torch.rand(n, generator=generator)
        out[name] = torch.exp(math.log(lo) + u * math.log(hi / lo)) if kind == "log" else lo + u * (hi - lo)
    return out


# -- rendering through the chain -------------------------------------------------------------
def render(
    vocal: torch.Tensor,
    backing: torch.Tensor,
    phys: dict[str, torch.Tensor],
    sample_rate: int,
    fdn_lines: int = 16,
    training: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Render ``vocal`` ``(B, 1, T)`` with the decided physical settings; returns ``(B, 2, T)``.

    The compressor threshold is placed relative to the EQ output's sample peak (a
    measurement, not differentiated), and the vocal gain so that the K-weighted loudness of
    the result sits ``level.relative_loudness_lu`` from the backing's (differentiated: the
    gain follows every other setting, so level and makeup are never interchangeable).
    """
    params = P.chain_params(phys, torch.zeros_like(phys[E2E.NAMES[0]]), None, fdn_lines, training)
    # training=True: the dsp's training-time effects (reverb IR ends 80 dB down; renders
    # differ from exact ones by less than -80 dB), far cheaper for long reverb times.
    eq_out = vocal_chain(vocal, sample_rate, params, upto="eq", training=training)
    peak_db = 20.0 * torch.log10(eq_out.detach().abs().amax(dim=(1, 2)).clamp_min(1e-6))
    threshold_db = E2E.physical_threshold_db(phys["compressor.threshold_relative_db"], peak_db)
    params = replace(params, compressor=replace(params.compressor, threshold_db=threshold_db))
    wet = vocal_chain(eq_out, sample_rate, params, start="compressor", upto="reverb", training=training)
    gain_spec = spec_of(LevelSettings, "vocal_gain_db")
    gain_db = phys["level.relative_loudness_lu"] + k_loudness(backing, sample_rate) - k_loudness(wet, sample_rate)
    gain_db = torch.clamp(gain_db, gain_spec.minimum, gain_spec.maximum)
    out = apply_level(wet, LevelParams(vocal_gain_db=gain_db))
    return out, {"input_peak_db": peak_db, "vocal_gain_db": gain_db}


# -- degradations ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DegradationConfig:
    """The known random processing of the undo pairs (all uniform unless log)."""

    resonances: int = 2
    resonance_gain_db: float = 9.0  # peaks U[-g, g]
    resonance_hz: tuple[float, float] = (150.0, 8000.0)  # log-uniform
    resonance_q: tuple[float, float] = (0.7, 3.0)  # log-uniform
    tilt_db: float = 6.0  # low shelf at 200 Hz U[-t, t], high shelf at 4 kHz U[-t, t]
    expansion: tuple[float, float] = (0.0, 0.5)  # level L -> L + k (L - L_peak) on a 30 ms envelope
    room_probability: float = 0.2
    room_time_s: tuple[float, float] = (0.2, 0.8)
    room_wet_pct: tuple[float, float] = (5.0, 20.0)
    gain_db: tuple[float, float] = (-18.0, 0.0)


#: The parts of the degradation that can be kept alone (``all``: every part; ``none``: the gain only).
DEGRADATION_PARTS = ("all", "eq", "dynamics", "room", "none")


def degradation_part(part: str, config: DegradationConfig = DegradationConfig()) -> DegradationConfig:
    """``config`` with only ``part`` of its processing kept (the gain always; ``room``: a room on every pair),
    for measuring what each part of the degradation costs a predictor."""
    if part not in DEGRADATION_PARTS:
        raise ValueError(f"unknown degradation part {part!r}; one of {', '.join(DEGRADATION_PARTS)}")
    no_eq = {"resonance_gain_db": 0.0, "tilt_db": 0.0}
    no_dynamics = {"expansion": (0.0, 0.0)}
    off: dict[str, dict] = {
        "all": {},
        "eq": {**no_dynamics, "room_probability": 0.0},
        "dynamics": {**no_eq, "room_probability": 0.0},
        "room": {**no_eq, **no_dynamics, "room_probability": 1.0},
        "none": {**no_eq, **no_dynamics, "room_probability": 0.0},
    }
    return replace(config, **off[part])


def degrade(
    dry: torch.Tensor, sample_rate: int, generator: torch.Generator, config: DegradationConfig = DegradationConfig()
) -> tuple[torch.Tensor, dict]:
    """Degrade ``dry`` ``(B, 1, T)`` by known random processing; returns the audio and what was done."""
    c = config
    b = dry.shape[0]

    def uni(lo, hi, shape=(b,)):
        return lo + (hi - lo) * torch.rand(shape, generator=generator)

    def logu(lo, hi, shape=(b,)):
        return torch.exp(uni(math.log(lo), math.log(hi), shape))

    n_bands = c.resonances + 2
    n_res = c.resonances
    freqs = torch.cat([torch.full((b, 1), 200.0), logu(*c.resonance_hz, (b, n_res)), torch.full((b, 1), 4000.0)], 1)
    gains = torch.cat(
        [
            uni(-c.tilt_db, c.tilt_db, (b, 1)),
            uni(-c.resonance_gain_db, c.resonance_gain_db, (b, n_res)),
            uni(-c.tilt_db, c.tilt_db, (b, 1)),
        ],
        1,
    )
    qs = torch.cat([torch.full((b, 1), 0.7), logu(*c.resonance_q, (b, c.resonances)), torch.full((b, 1), 0.7)], 1)
    types = torch.tensor(
        [FILTER_TYPES["low_shelf"]] + [FILTER_TYPES["peak"]] * c.resonances + [FILTER_TYPES["high_shelf"]]
    ).expand(b, n_bands)
    eq = EQParams(
        frequency_hz=freqs, gain_db=gains, q=qs, filter_type=types, enabled=torch.ones(b, n_bands, dtype=torch.bool)
    )
    with torch.no_grad():
        x = apply_eq(dry, sample_rate, eq)
        k = uni(*c.expansion)
        env = _envelope_db(x, sample_rate)
        x = x * torch.pow(10.0, (k[:, None, None] * (env - env.amax(dim=-1, keepdim=True))) / 20.0)
        room = torch.rand(b, generator=generator) < c.room_probability
        rt, wet = uni(*c.room_time_s), uni(*c.room_wet_pct)
        if bool(room.any()):
            idx = torch.nonzero(room).flatten()
            y = apply_reverb(x[idx], sample_rate, room_params(rt[idx], wet[idx] / 100.0))
            x = x.clone()
            x[idx] = y.mean(dim=1, keepdim=True)
        g = uni(*c.gain_db)
        x = x * torch.pow(10.0, g / 20.0)[:, None, None]
        peak = x.abs().amax(dim=(1, 2), keepdim=True)
        x = torch.where(peak > 0.99, x * 0.99 / peak.clamp_min(1e-9), x)
    record = {
        "eq_frequency_hz": freqs,
        "eq_gain_db": gains,
        "eq_q": qs,
        "expansion": k,
        "room": room,
        "room_time_s": rt,
        "room_wet_pct": wet,
        "gain_db": g,
    }
    return x.float(), record


def room_params(reverb_time_s: torch.Tensor, dry_wet: torch.Tensor) -> ReverbParams:
    """The short room of :func:`degrade`: a small, darkened FdnReverb of 16 lines, the
    given decay times and wet fractions ``(batch,)``, everything else fixed."""

    def full(value: float) -> torch.Tensor:
        return torch.full_like(reverb_time_s, value)

    return ReverbParams(
        room_size=full(10.0),
        reverb_time_s=reverb_time_s,
        low_cutoff_hz=full(100.0),
        low_q=full(0.5),
        low_gain_db_per_s=full(0.0),
        high_cutoff_hz=full(2000.0),
        high_q=full(0.5),
        high_gain_db_per_s=full(-10.0),
        dry_wet=dry_wet,
        fade_in_s=full(0.0),
        fdn_lines=16,
    )


def _envelope_db(x: torch.Tensor, sample_rate: int, window_s: float = 0.03) -> torch.Tensor:
    """Level envelope (dB) of ``x`` ``(B, 1, T)``: RMS over a centred moving window, floored at -80 dB."""
    win = max(1, int(window_s * sample_rate)) | 1
    half = win // 2
    # Centred moving average of x² by a running sum (zero-padded ends), float64 against drift.
    padded = torch.nn.functional.pad(x.double() ** 2, (half + 1, half))
    csum = torch.cumsum(padded, dim=-1)
    ms = (csum[..., win:] - csum[..., :-win]) / win
    return 10.0 * torch.log10(ms.clamp_min(1e-8)).to(x.dtype)


# -- data ------------------------------------------------------------------------------------------
@dataclass
class PairConfig:
    n_pairs: int = 256
    clip_seconds: float = 1.6
    synthetic_vocals: int = 0
    seed: int = 0
    fdn_lines: int = 16
    val_fraction: float = 0.125


def _load_sources(
    dataset: str | os.PathLike, synthetic: int, seed: int, formant_voices: int = 0
) -> tuple[list[np.ndarray], list[dict]]:
    """Dry vocals (mono, 44.1 kHz) from a folder of audio files and/or generated ones.

    ``synthetic``: :func:`~vocalmix.training.synthesis.synthetic_vocal` (one fixed source
    slope); ``formant_voices``: :func:`~vocalmix.training.eq_voices.synthetic_voice`
    (source-filter singing, a different vocal tract and source tilt each).
    """
    sources, records = [], []
    text = str(dataset)
    if text.startswith("synthetic:"):
        try:
            synthetic += int(text.split(":", 1)[1])
        except ValueError:
            raise InputError(f"{text}: expected synthetic:N with a whole number N") from None
    else:
        folder = Path(dataset)
        if not folder.is_dir():
            raise InputError(f"{folder}: dataset folder not found (a folder of dry vocal files, or synthetic:N)")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise InputError(f"{folder}: no audio files (dry vocals) found")
        for path in files:
            audio = load_audio(path, SAMPLE_RATE)
            mono = audio.samples.mean(axis=0).astype(np.float32)
            peak = float(np.abs(mono).max())
            if peak <= 0:
                continue
            sources.append(mono / peak * 0.5)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            records.append(
                {"file": str(path.relative_to(folder)), "sha256": digest, "seconds": round(len(mono) / SAMPLE_RATE, 3)}
            )
    rng = np.random.default_rng([seed, 7])
    for i in range(synthetic):
        sources.append(synthetic_vocal(8.0, SAMPLE_RATE, rng)[0])
        records.append({"synthetic_vocal": i, "seconds": 8.0})
    voice_rng = np.random.default_rng([seed, 31])
    for i in range(formant_voices):
        sources.append(synthetic_voice(8.0, voice_rng, SAMPLE_RATE))
        records.append({"formant_voice": i, "seconds": 8.0})
    if not sources:
        raise InputError(f"{dataset}: no usable (non-silent) vocals")
    return sources, records


def _active_starts(x: np.ndarray, n: int, floor_db: float = -12.0) -> np.ndarray:
    """Start samples of ``n``-sample clips whose power is within ``floor_db`` of the loudest clip's."""
    hop = SAMPLE_RATE // 20
    if len(x) <= n:
        return np.array([0])
    csum = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, len(x) - n, hop)
    power = (csum[starts + n] - csum[starts]) / n
    keep = starts[power >= power.max() * 10 ** (floor_db / 10)]
    return keep if len(keep) else starts


def _draw_clips(
    sources: list[np.ndarray], count: int, clip_seconds: float, rng: np.random.Generator, augment: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sung clips ``(count, 1, T)`` from random sources and synthetic backings ``(count, 2, T)``.

    ``augment``: each clip as another voice and recording (:func:`~vocalmix.training.eq_voices.augment_vocal`:
    played up to 4 semitones faster or slower, formants with it, then another microphone,
    band limit and noise floor), cut from a stretch long enough for the slowest speed.
    """
    n = int(round(clip_seconds * SAMPLE_RATE))
    span = int(math.ceil(n * 2 ** (SHIFT_SEMITONES / 12))) + 1 if augment else n
    dry, backing = [], []
    for _ in range(count):
        src = sources[int(rng.integers(len(sources)))]
        starts = _active_starts(src, span)
        s = int(starts[int(rng.integers(len(starts)))])
        clip = np.zeros(n, dtype=np.float32)
        seg = src[s : s + span]
        if augment:
            seg = augment_vocal(seg, rng)[:n]
        else:
            seg = seg[:n]
        clip[: len(seg)] = seg
        dry.append(clip)
        backing.append(synthetic_backing(clip_seconds + 0.05, SAMPLE_RATE, rng)[:, :n])
    return torch.from_numpy(np.stack(dry))[:, None], torch.from_numpy(np.stack(backing).astype(np.float32))


def fresh_batch(
    sources: list[np.ndarray],
    count: int,
    clip_seconds: float,
    seed: int,
    step: int,
    fdn_lines: int = 16,
    augment: bool = False,
    context_blocks: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` new undo pairs for training step ``step``: (degraded, backing, target).

    Clip, backing, target settings and degradation are all drawn anew from generators
    seeded by ``(seed, step)``, so a run is deterministic and resumes exactly, and no pair
    is seen twice. With a fixed set of pairs the network learns the pairs (shipped run of
    session 2: training MR-STFT 0.645 -> 0.44 over 700 steps while validation stayed near
    0.62). Targets render with the training-time effects (reverb IR ending 80 dB down), a
    tenth of the exact render's cost; a step costs about a quarter more than with fixed pairs.
    ``augment`` draws each clip as another voice (:func:`_draw_clips`); ``context_blocks``
    makes each clip that many times ``clip_seconds`` long.
    """
    rng = np.random.default_rng([seed, 23, step])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    dry, backing = _draw_clips(sources, count, clip_seconds * context_blocks, rng, augment)
    with torch.no_grad():
        target, _ = render(dry, backing, sample_prior(count, gen), SAMPLE_RATE, fdn_lines, training=True)
    degraded, _ = degrade(dry, SAMPLE_RATE, gen)
    return degraded, backing, target


def make_pairs(dataset: str | os.PathLike, config: PairConfig, progress=None) -> dict:
    """Undo pairs as tensors: ``degraded`` (N, 1, T), ``backing`` (N, 2, T), ``target`` (N, 2, T),
    ``target_settings`` {name: (N,)}, ``degradation`` {...}, ``manifest`` (a JSON-able dict)."""
    sources, records = _load_sources(dataset, config.synthetic_vocals, config.seed)
    rng = np.random.default_rng([config.seed, 11])
    gen = torch.Generator().manual_seed(config.seed)
    dry_t, backing_t = _draw_clips(sources, config.n_pairs, config.clip_seconds, rng)
    targets, degraded, settings, degradations = [], [], [], []
    chunk = 16
    for start in range(0, config.n_pairs, chunk):
        sl = slice(start, start + chunk)
        phys = sample_prior(dry_t[sl].shape[0], gen)
        with torch.no_grad():
            target, _ = render(dry_t[sl], backing_t[sl], phys, SAMPLE_RATE, config.fdn_lines, training=False)
        deg, record = degrade(dry_t[sl], SAMPLE_RATE, gen)
        targets.append(target)
        degraded.append(deg)
        settings.append(phys)
        degradations.append(record)
        if progress:
            progress(f"pairs {min(config.n_pairs, start + chunk)}/{config.n_pairs}")
    manifest = {
        "kind": "cnn-e2e undo pairs",
        "sources": records,
        "config": asdict(config),
        "target_prior": TARGET_PRIOR,
        "degradation": asdict(DegradationConfig()),
    }
    return {
        "degraded": torch.cat(degraded),
        "backing": backing_t,
        "target": torch.cat(targets),
        "target_settings": {k: torch.cat([s[k] for s in settings]) for k in E2E.NAMES},
        "degradation": {k: torch.cat([d[k] for d in degradations]) for k in degradations[0]},
        "manifest": manifest,
    }


def manifest_sha256(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


# -- features and the predictor ----------------------------------------------------------------
def clip_blocks(vocal: torch.Tensor, backing: torch.Tensor, n_blocks: int = 1) -> torch.Tensor:
    """The first ``n_blocks`` mel blocks (no gate) of each clip, side by side:
    ``(B * n_blocks, 2, 128, 64)``, clip by clip, as the CNN takes them.

    Training clips are chosen where the vocal sings, so the gate of :func:`song_features`
    (used at inference) would keep nearly every frame anyway.
    """
    s = DEFAULT_FEATURES
    b = vocal.shape[0]
    mono = torch.cat([vocal.mean(dim=1), backing.mean(dim=1)], dim=0)
    mel, _ = frontend(s, vocal.device)(mono)
    frames = n_blocks * s.block_frames
    if mel.shape[-1] < frames:
        raise ValueError(f"clips of {vocal.shape[-1]} samples are shorter than {n_blocks} feature block(s)")
    mel = mel[..., :frames].unflatten(-1, (n_blocks, s.block_frames)).movedim(-2, 1)  # (2B, K, mels, frames)
    pair = torch.stack([mel[:b], mel[b:]], dim=2)  # (B, K, 2, mels, frames)
    return normalise_block(pair.flatten(0, 1), s)


def predict_clip_units(model: MixingCNN, vocal: torch.Tensor, backing: torch.Tensor, n_blocks: int = 1):
    """Settings in (0, 1) ``(B, N_OUTPUTS)`` of each clip: the mean over its ``n_blocks`` blocks,
    as inference averages over a song's blocks."""
    u = predict_units(model, clip_blocks(vocal, backing, n_blocks))
    return u.unflatten(0, (vocal.shape[0], n_blocks)).mean(dim=1)


def build_predictor(hidden: int = 64, dropout: float = 0.1) -> MixingCNN:
    model = MixingCNN(ModelConfig(n_outputs=E2E.N_OUTPUTS, hidden=hidden, dropout=dropout, architecture="li-lerch-cnn"))
    centre = E2E.to_unit(prior_centre()).clamp(1e-3, 1 - 1e-3)
    model.set_output_bias(torch.log(centre / (1 - centre)))  # sigmoid(bias) = the prior centre
    return model


#: Parameter-trained CNN checkpoints whose convolutional layers can start the predictor, in
#: the order :func:`init_predictor` tries them (a shipped ``eq.pt`` is a spectrum MLP since
#: 8e74c46 and is then skipped).
INIT_CNN_TASKS = ("eq", "compression", "reverb", "level")


def init_predictor(model: MixingCNN, source: str | os.PathLike) -> str:
    """Start ``model`` from ``source``; returns the checkpoint used.

    ``source`` is a checkpoint file or a model folder. A cnn-e2e checkpoint
    (``cnn_e2e.pt``, task ``cnn-e2e``) gives the whole predictor (to continue training
    on other data or with another schedule). A folder without one gives the
    convolutional layers of its first Li & Lerch CNN among :data:`INIT_CNN_TASKS`
    (the head, whose outputs mean other targets, keeps its fresh weights and the bias
    at the prior's centre). A cnn-e2e resume state (``cnn_e2e.last.pt``) also carries the
    optimiser and gradient-balance state, which :func:`train_e2e` then continues.
    """
    path = Path(source)
    if path.is_dir():
        candidates = [path / CHECKPOINT_NAME] + [path / f"{t}.pt" for t in INIT_CNN_TASKS]
        found = [c for c in candidates if c.exists()]
        usable = [c for c in found if _is_cnn_checkpoint(c)]
        if not usable:
            listed = ", ".join(c.name for c in found) or "no checkpoints"
            raise InputError(f"{path}: no CNN checkpoint to start cnn-e2e from ({listed}; none is a Li & Lerch CNN)")
        path = usable[0]
    payload = load_checkpoint(path)
    if not _is_cnn_checkpoint(path, payload):
        raise InputError(f"{path}: not a Li & Lerch CNN checkpoint; cnn-e2e cannot start from it")
    if payload.get("task") == TASK:
        state = {k: v.float() for k, v in payload["state_dict"].items()}
        target = model
    else:
        prefix = "features."
        state = {k[len(prefix) :]: v.float() for k, v in payload["state_dict"].items() if k.startswith(prefix)}
        target = model.features
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc)[:120]
        raise InputError(f"{path}: its layers do not fit the cnn-e2e predictor ({reason})") from None
    return str(path)


def _is_cnn_checkpoint(path: Path, payload: dict | None = None) -> bool:
    payload = load_checkpoint(path) if payload is None else payload
    return payload.get("model_config", {}).get("architecture") == "li-lerch-cnn"


# -- loss -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossWeights:
    vocal_stft: float = 1.0
    mix_stft: float = 0.5
    loudness: float = 0.1
    dynamics: float = 0.05
    prior: float = 0.01


def e2e_loss(
    rendered: torch.Tensor,
    target: torch.Tensor,
    backing: torch.Tensor,
    u: torch.Tensor,
    stft: MultiResolutionSTFT,
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict]:
    """Total loss (mean over the batch) and its terms (floats)."""
    centre = E2E.to_unit(prior_centre())
    terms = {
        "vocal_stft": stft(rendered, target),
        # The mix term on the mid channel (L+R)/2: what a listener hears of the balance, at half the cost.
        "mix_stft": stft((rendered + backing).mean(dim=1, keepdim=True), (target + backing).mean(dim=1, keepdim=True)),
        "loudness": relative_loudness_loss(rendered, target, backing, SAMPLE_RATE),
        "dynamics": dynamics_loss(rendered, target, SAMPLE_RATE),
        "prior": settings_prior(u, centre),
    }
    total = sum(getattr(weights, k) * v.mean() for k, v in terms.items())
    return total, {k: float(v.detach().mean()) for k, v in terms.items()}


# -- training ---------------------------------------------------------------------------------------
@dataclass
class E2EConfig:
    steps: int = 600
    batch_size: int = 8
    lr: float = 3e-4
    seed: int = 0
    val_every: int = 50
    n_pairs: int = 256
    clip_seconds: float = 1.6
    synthetic_vocals: int = 0
    fdn_lines: int = 16
    hidden: int = 64
    #: Draw new undo pairs every step (:func:`fresh_batch`) instead of cycling the fixed
    #: training pairs; the fixed pairs' validation part still selects the checkpoint.
    fresh_pairs: bool = False
    #: Cosine decay of the learning rate from ``lr`` to this over ``steps`` (None: constant).
    lr_final: float | None = None
    #: With ``fresh_pairs``: every drawn clip as another voice and recording (:func:`_draw_clips`).
    augment_voices: bool = False
    #: With ``fresh_pairs``: this many source-filter synthetic voices join the training sources.
    formant_voices: int = 0
    #: With ``fresh_pairs``: clips of this many feature blocks (``clip_seconds`` each), the
    #: settings averaged over them as inference averages over a song's blocks; one degradation
    #: and one target per clip. Validation stays on the fixed one-block pairs.
    context_blocks: int = 1


def learning_rate(config: E2EConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based): constant, or cosine to ``lr_final``."""
    if config.lr_final is None:
        return config.lr
    t = min(1.0, step / max(1, config.steps))
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1.0 + math.cos(math.pi * t))


@dataclass
class E2EResult:
    checkpoint: Path
    steps_run: int
    best_step: int
    best_val: float
    start_val: float
    examples_per_second: float


def _payload(model: MixingCNN, manifest_hash: str, config: E2EConfig, extra: dict | None = None) -> dict:
    return {
        "format": CNN_CHECKPOINT_FORMAT,
        "format_version": CNN_CHECKPOINT_VERSION,
        "task": TASK,
        "model_config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "target_names": list(E2E.NAMES),
        "settings_schema_version": SCHEMA_VERSION,
        "search_ranges": [[d.low, d.high, d.scale] for d in E2E.DECIDED],
        "feature_settings": feature_settings_record(),
        "dataset_manifest_sha256": manifest_hash,
        "train_config": asdict(config),
        **(extra or {}),
    }


def _validate(model, balance, data, idx, stft, fdn_lines) -> float:
    model.eval()
    losses = []
    dev = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(idx), 16):
            sel = idx[start : start + 16]
            deg, bak, tgt = (data[k][sel].to(dev) for k in ("degraded", "backing", "target"))
            u = predict_units(model, clip_blocks(deg, bak))
            out, _ = render(deg, bak, E2E.to_physical(u), SAMPLE_RATE, fdn_lines)
            losses.append(stft(out, tgt, per_item=True).cpu())
    model.train()
    return float(torch.cat(losses).mean())


def train_e2e(
    dataset: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: E2EConfig = E2EConfig(),
    init: str | os.PathLike | None = None,
    device: str = "cpu",
    max_minutes: float | None = None,
    progress: bool = True,
) -> E2EResult:
    """Fine-tune the predictor end to end; resumable from ``out_dir/cnn_e2e.last.pt``.

    Writes ``cnn_e2e.pt`` (best validation MR-STFT), ``cnn_e2e.last.pt`` (resume state),
    ``cnn_e2e.log.csv`` and ``pairs.pt`` (the undo pairs, built once from ``dataset``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda m: print(f"cnn-e2e: {m}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    dev = resolve_device(device)
    set_determinism(config.seed)

    pair_config = PairConfig(
        n_pairs=config.n_pairs,
        clip_seconds=config.clip_seconds,
        synthetic_vocals=config.synthetic_vocals,
        seed=config.seed,
        fdn_lines=config.fdn_lines,
    )
    pairs_path = out / "pairs.pt"
    data = None
    if pairs_path.exists():
        data = torch.load(pairs_path, weights_only=True)
        if data["manifest"]["config"] != asdict(pair_config):
            raise InputError(
                f"{pairs_path}: built with other settings ({data['manifest']['config']}); use another --out folder"
            )
    if data is None:
        say(f"building {config.n_pairs} undo pairs from {dataset}")
        data = make_pairs(dataset, pair_config, progress=say)
        save_checkpoint(pairs_path, data)
    manifest_hash = manifest_sha256(data["manifest"])
    n_val = max(1, int(round(config.n_pairs * pair_config.val_fraction)))
    val_idx = torch.arange(config.n_pairs - n_val, config.n_pairs)
    n_train = config.n_pairs - n_val

    model = build_predictor(config.hidden).to(dev)
    init_path = None
    if init is not None:
        init_path = init_predictor(model, init)
    balance = GroupGradientBalance(P.group_index()).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    stft = MultiResolutionSTFT()
    last_path, best_path, log_path = out / "cnn_e2e.last.pt", out / CHECKPOINT_NAME, out / "cnn_e2e.log.csv"
    if init_path is not None and not last_path.exists():
        warm = load_checkpoint(init_path)
        if warm.get("task") == TASK and "optimizer" in warm and "balance" in warm:
            # A resume state (cnn_e2e.last.pt) of another run: its Adam moments and gradient
            # scales continue too; a fresh Adam would move every weight by about lr in its
            # first steps, knocking a trained predictor off its optimum.
            optimizer.load_state_dict(warm["optimizer"])
            balance.load_state_dict(warm["balance"])
            say(f"optimiser and gradient balance continue from {init_path}")
    step, best_val, best_step, start_val = 0, math.inf, 0, None
    if last_path.exists():
        state = load_checkpoint(last_path)
        same = {k: v for k, v in asdict(config).items() if k != "steps"}
        # Options added since a run started were off in it: their defaults fill its record.
        saved = {**asdict(E2EConfig()), **state.get("train_config", {})}
        if (
            state.get("dataset_manifest_sha256") != manifest_hash
            or {k: v for k, v in saved.items() if k != "steps"} != same
        ):
            raise InputError(f"{last_path}: from a run with other data or settings; use another --out folder")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        balance.load_state_dict(state["balance"])
        torch.set_rng_state(state["torch_rng"])
        step, best_val, best_step, start_val = state["step"], state["best_val"], state["best_step"], state["start_val"]
        say(f"resuming at step {step}")
    else:
        start_val = _validate(model, balance, data, val_idx, stft, config.fdn_lines)
        say(f"validation MR-STFT at the start (mean settings{' + init' if init_path else ''}): {start_val:.4f}")
        with open(log_path, "w", newline="") as fh:
            csv.writer(fh).writerow(
                [
                    "step",
                    "loss",
                    "vocal_stft",
                    "mix_stft",
                    "loudness",
                    "dynamics",
                    "prior",
                    "val_vocal_stft",
                    "seconds",
                    "examples_per_s",
                ]
            )

    sources = None
    if config.fresh_pairs:
        sources = _load_sources(dataset, config.synthetic_vocals, config.seed, config.formant_voices)[0]
    model.train()
    t0 = time.perf_counter()
    steps_done_here, examples_time = 0, 0.0
    deadline = None if max_minutes is None else t0 + 60.0 * max_minutes
    while step < config.steps:
        epoch, pos = divmod(step * config.batch_size, n_train)
        order = np.random.default_rng([config.seed, epoch]).permutation(n_train)
        sel = torch.from_numpy(np.resize(order, pos + config.batch_size)[pos : pos + config.batch_size].copy())
        ts = time.perf_counter()
        if sources is not None:
            deg, bak, tgt = (
                x.to(dev)
                for x in fresh_batch(
                    sources,
                    config.batch_size,
                    config.clip_seconds,
                    config.seed,
                    step,
                    config.fdn_lines,
                    config.augment_voices,
                    config.context_blocks,
                )
            )
        else:
            deg, bak, tgt = (data[k][sel].to(dev) for k in ("degraded", "backing", "target"))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        u = balance(predict_clip_units(model, deg, bak, config.context_blocks))
        rendered, _ = render(deg, bak, E2E.to_physical(u), SAMPLE_RATE, config.fdn_lines)
        loss, terms = e2e_loss(rendered, tgt, bak, u, stft)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        examples_time += time.perf_counter() - ts
        step += 1
        steps_done_here += 1
        val = ""
        if step % config.val_every == 0 or step == config.steps:
            val_value = _validate(model, balance, data, val_idx, stft, config.fdn_lines)
            val = f"{val_value:.5f}"
            if val_value < best_val:
                best_val, best_step = val_value, step
                save_checkpoint(
                    best_path,
                    _payload(
                        model, manifest_hash, config, {"step": step, "val_vocal_stft": val_value, "init": init_path}
                    ),
                )
            save_checkpoint(
                last_path,
                {
                    **_payload(model, manifest_hash, config),
                    "optimizer": optimizer.state_dict(),
                    "balance": balance.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "best_val": best_val,
                    "best_step": best_step,
                    "start_val": start_val,
                },
            )
        rate = steps_done_here * config.batch_size / max(examples_time, 1e-9)
        with open(log_path, "a", newline="") as fh:
            csv.writer(fh).writerow(
                [
                    step,
                    f"{loss.item():.5f}",
                    *(f"{terms[k]:.5f}" for k in ("vocal_stft", "mix_stft", "loudness", "dynamics", "prior")),
                    val,
                    f"{time.perf_counter() - t0:.1f}",
                    f"{rate:.2f}",
                ]
            )
        if step % 10 == 0 or val:
            say(
                f"step {step}/{config.steps} loss {loss.item():.4f} (vocal {terms['vocal_stft']:.4f})"
                + (f" val {val}" if val else "")
                + f" {rate:.2f} examples/s"
            )
        if deadline is not None and time.perf_counter() > deadline:
            say(f"stopping at step {step}: --max-minutes reached (resume with the same command)")
            break
    if not best_path.exists():
        raise InputError(f"{out}: no validation ran yet; train for at least {config.val_every} steps")
    rate = steps_done_here * config.batch_size / max(examples_time, 1e-9) if steps_done_here else 0.0
    return E2EResult(best_path, step, best_step, best_val, start_val, rate)


def train_e2e_command(
    dataset,
    out,
    init=None,
    steps=600,
    pairs=256,
    synthetic_vocals=0,
    batch_size=None,
    lr=None,
    seed=0,
    device="cpu",
    resume=False,
    max_minutes=None,
    quiet=False,
    fresh_pairs=False,
    lr_final=None,
    val_every=None,
    augment_voices=False,
    formant_voices=0,
    context_blocks=1,
) -> None:
    """``vocalmix train cnn-e2e DATASET --out DIR``: checks, training, one summary line."""
    out = Path(out)
    if not str(dataset).startswith("synthetic:") and not Path(dataset).is_dir():
        raise InputError(f"{dataset}: dataset folder not found (a folder of dry vocal files, or synthetic:N)")
    if (out / "cnn_e2e.last.pt").exists() and not resume:
        raise InputError(f"{out}: holds an earlier cnn-e2e run; pass --resume to continue it or choose another --out")
    if init is not None and not Path(init).exists():
        raise InputError(f"{init}: --init model folder or checkpoint not found")
    if (augment_voices or formant_voices or context_blocks > 1) and not fresh_pairs:
        raise InputError("--augment, --formant-voices and --context-blocks change fresh pairs; add --fresh-pairs")
    config = E2EConfig(
        steps=steps,
        batch_size=batch_size or E2EConfig.batch_size,
        lr=lr or E2EConfig.lr,
        seed=seed,
        n_pairs=pairs,
        synthetic_vocals=synthetic_vocals,
        fresh_pairs=fresh_pairs,
        lr_final=lr_final,
        val_every=val_every or E2EConfig.val_every,
        augment_voices=augment_voices,
        formant_voices=formant_voices,
        context_blocks=context_blocks,
    )
    result = train_e2e(dataset, out, config, init=init, device=device, max_minutes=max_minutes, progress=not quiet)
    typer.echo(
        f"cnn-e2e: best step {result.best_step} of {result.steps_run}, validation MR-STFT "
        f"{result.best_val:.4f} (start {result.start_val:.4f}); {result.examples_per_second:.2f} examples/s "
        f"-> {result.checkpoint}"
    )
