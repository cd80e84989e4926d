"""Reverb settings from audio: a blind estimator for wet vocals, and IR fitting.

The research estimated impulse responses from wet vocals with a commercial plug-in and
fitted FdnReverb settings to them with a genetic algorithm. Here:

**Estimator** (:class:`ReverbEstimator`). A small MLP maps summary statistics of a wet
vocal to the 10 FdnReverb settings (normalised to [0, 1] as
:data:`vocalmix.training.data.TARGET_RANGES` defines). It is trained on dry vocals
reverberated by our own FdnReverb with known random settings, so its labels are exact;
the settings come from the lead-vocal prior of
:meth:`vocalmix.training.synthesis.BatchRenderer.sample_reverb_settings`, so it is meant
for vocals with a typical vocal reverb (its outputs still span the plug-in's ranges).
The statistics are chosen for what reverb changes (all in dB on 16 mel bands, from
frames of 2048 samples, hop 512):

- mid (L+R) and side (L-R) energy: FdnReverb's two heard lines differ only in their
  wet part, so side/mid measures the wet share (dry/wet) per band;
- decay statistics of the mid and side envelopes: percentiles of the frame-to-frame
  level drops (the slope after notes end is set by the reverb time and the shelves);
- the envelope's modulation depth (a long reverb fills the gaps between notes).

A mono vocal has no side signal; the estimator then sees a "no side" input and leans on
the decay statistics alone, which is weaker (documented limitation).

**IR fitting** (:func:`fit_impulse_response`): where an impulse response is known,
gradient descent through the differentiable FdnReverb
(:func:`vocalmix.dsp.reverb.fdn_impulse_response`) on the continuous settings, matching
multi-resolution log-magnitude spectrograms; room size (which sets integer delay
lengths and has no gradient) is chosen by a coarse search over a few candidates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocalmix.audio import resample
from vocalmix.dsp.reverb import fdn_impulse_response
from vocalmix.features import mel_filterbank
from vocalmix.files import write_atomic
from vocalmix.nets.cnn_targets import REVERB_TARGETS, denormalise_targets, normalise_targets
from vocalmix.settings import ReverbSettings

from .synthesis import BatchRenderer, reverb_params_from_settings, synthetic_vocal

__all__ = [
    "ESTIMATOR_SECONDS",
    "reverb_features",
    "ReverbEstimator",
    "make_estimator_data",
    "train_estimator",
    "evaluate_estimator",
    "fit_impulse_response",
]

ESTIMATOR_SECONDS = 4.0  # clip length the estimator is trained on and predicts from
_N_BANDS = 16
_N_FFT = 2048
_HOP = 512
#: Loss weights per setting, after the research's reverb loss (10 DW, 5 RT, 5 RS, 1 rest).
LOSS_WEIGHTS = {"dry_wet_pct": 10.0, "reverb_time_s": 5.0, "room_size": 5.0}


def _band_matrix(sr: int) -> torch.Tensor:
    return mel_filterbank(sr, _N_FFT, _N_BANDS, 40.0, min(16000.0, sr / 2))


def reverb_features(audio: torch.Tensor, sr: int) -> torch.Tensor:
    """Summary statistics ``(B, n_features)`` of wet vocals ``audio`` ``(B, 1|2, T)``.

    Level-independent: every dB quantity is taken relative to the clip's loudest frame.
    """
    audio = audio.to(torch.float32)
    if audio.shape[1] == 1:
        audio = audio.expand(-1, 2, -1)
    mid = 0.5 * (audio[:, 0] + audio[:, 1])
    side = 0.5 * (audio[:, 0] - audio[:, 1])
    window = torch.hann_window(_N_FFT, device=audio.device)
    bands = _band_matrix(sr).to(audio.device)

    def band_db(x):
        spec = torch.stft(x, _N_FFT, _HOP, window=window, center=False, return_complex=True).abs() ** 2
        return 10 * torch.log10(torch.matmul(bands, spec) + 1e-12)  # (B, bands, frames)

    m_db, s_db = band_db(mid), band_db(side)
    ref = m_db.amax(dim=(1, 2), keepdim=True)
    m_db = torch.clamp(m_db - ref, min=-100.0)
    s_db = torch.clamp(s_db - ref, min=-100.0)
    active = (m_db.amax(dim=1, keepdim=True) > -50.0).float()  # frames with signal
    n_active = active.sum(dim=-1).clamp(min=1.0)

    def masked_mean(x):
        return (x * active).sum(dim=-1) / n_active

    feats = [masked_mean(m_db), masked_mean(s_db), masked_mean(s_db - m_db)]
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], device=audio.device)
    for x in (m_db, s_db):
        drops = x[..., 1:] - x[..., :-1]
        feats.append(torch.quantile(drops, q[:3], dim=-1).permute(1, 2, 0).reshape(x.shape[0], -1))
        feats.append(torch.quantile(x, q, dim=-1).permute(1, 2, 0).reshape(x.shape[0], -1))
    # Broadband envelope: how deep the gaps between notes are, and how they decay.
    env = 10 * torch.log10(torch.pow(10.0, m_db / 10).sum(dim=1) + 1e-12)
    env_drops = env[:, 1:] - env[:, :-1]
    feats.append(torch.quantile(env, q, dim=-1).T)
    feats.append(torch.quantile(env_drops, torch.tensor([0.01, 0.05, 0.1, 0.2], device=audio.device), dim=-1).T)
    return torch.cat(feats, dim=1) / 20.0


class _Mlp(nn.Module):
    def __init__(self, n_in: int, n_out: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, n_out),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.net(x)


@dataclass
class ReverbEstimator:
    """Feature standardisation + MLP; predicts normalised settings in [0, 1]."""

    model: _Mlp
    mean: torch.Tensor
    std: torch.Tensor
    sample_rate: int = 44100
    meta: dict | None = None

    # -- persistence -------------------------------------------------------------------
    def state(self) -> dict:
        """A plain, picklable state (weights as CPU tensors) for saving or sending to workers."""
        return {
            "weights": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "mean": self.mean.cpu(),
            "std": self.std.cpu(),
            "sample_rate": self.sample_rate,
            "n_in": int(self.mean.numel()),
            "meta": self.meta or {},
        }

    @classmethod
    def from_state(cls, state: dict) -> ReverbEstimator:
        model = _Mlp(state["n_in"], len(REVERB_TARGETS))
        model.load_state_dict(state["weights"])
        model.eval()
        return cls(model, state["mean"], state["std"], state["sample_rate"], state.get("meta"))

    def save(self, path: str | Path) -> None:
        state = self.state()
        write_atomic(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path) -> ReverbEstimator:
        return cls.from_state(torch.load(path, map_location="cpu", weights_only=True))

    _cache: dict = None  # type: ignore[assignment]

    @classmethod
    def cached(cls, state: dict) -> ReverbEstimator:
        """One instance per state and process (workers label many songs with one model)."""
        if cls._cache is None:
            cls._cache = {}
        key = id(state)
        if key not in cls._cache:
            cls._cache[key] = cls.from_state(state)
        return cls._cache[key]

    # -- prediction ----------------------------------------------------------------------
    def predict_normalised(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio`` ``(B, 1|2, T)`` at the estimator's rate -> ``(B, 10)`` in [0, 1]."""
        with torch.no_grad():
            f = (reverb_features(audio, self.sample_rate) - self.mean) / self.std
            return self.model(f)

    def predict(self, vocal, sr: int) -> dict[str, float]:
        """Settings of a whole wet vocal ``(channels, samples)`` (numpy or torch).

        The vocal is cut into windows of :data:`ESTIMATOR_SECONDS`; windows with little
        signal are skipped and the median of the window predictions (in the normalised
        domain) is returned in physical units, room size rounded to a whole number.
        """
        x = torch.as_tensor(np.asarray(vocal, dtype=np.float32))
        if x.dim() == 1:
            x = x[None]
        if sr != self.sample_rate:
            x = torch.from_numpy(resample(x.numpy(), sr, self.sample_rate))
        x = x[:2]
        n = int(ESTIMATOR_SECONDS * self.sample_rate)
        if x.shape[-1] < n:
            x = torch.nn.functional.pad(x, (0, n - x.shape[-1]))
        windows = x.unfold(-1, n, n).permute(1, 0, 2)  # (W, C, n)
        rms = windows.pow(2).mean(dim=(1, 2)).sqrt()
        keep = rms >= rms.max() * 0.1 if rms.max() > 0 else torch.ones_like(rms, dtype=torch.bool)
        u = self.predict_normalised(windows[keep]).median(dim=0).values
        values = denormalise_targets("reverb", u[None])[0]
        out = {name: float(v) for name, v in zip(REVERB_TARGETS, values)}
        out["room_size"] = float(round(out["room_size"]))
        return out


# ---------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------


def _dry_clips(
    n: int, sr: int, seed: int, dry_sources: list[np.ndarray] | None, seconds: float = ESTIMATOR_SECONDS
) -> torch.Tensor:
    """``n`` dry clips ``(n, 1, T)`` of :data:`ESTIMATOR_SECONDS`: synthetic vocals, and random
    excerpts of ``dry_sources`` (mono arrays) when given (every other clip)."""
    rng = np.random.default_rng(seed)
    length = int(seconds * sr)
    clips = np.zeros((n, 1, length), dtype=np.float32)
    for i in range(n):
        if dry_sources and i % 2 == 1:
            src = dry_sources[int(rng.integers(len(dry_sources)))]
            start = int(rng.integers(0, max(1, src.shape[-1] - length)))
            piece = src[start : start + length]
            clips[i, 0, : piece.shape[-1]] = piece / (np.max(np.abs(piece)) or 1.0) * 0.5
        else:
            clips[i] = synthetic_vocal(seconds, sr, rng, phrase_spread_db=float(rng.uniform(0, 12)))
    return torch.from_numpy(clips)


def make_estimator_data(
    n_settings: int,
    clips_per_setting: int = 2,
    sr: int = 44100,
    seed: int = 0,
    dry_sources: list[np.ndarray] | None = None,
    batch: int = 32,
    progress=None,
    seconds: float = ESTIMATOR_SECONDS,
):
    """Wet clips with known settings: ``(features (N, F), targets_normalised (N, 10), settings)``.

    Each random setting's impulse responses are computed once with the differentiable
    FdnReverb and applied to ``clips_per_setting`` different dry clips (the plug-in's
    output is ``w·(x * h) + (1 - w)·x``, exactly what :func:`vocalmix.dsp.reverb.fdn_reverb`
    computes), which keeps the cost of the per-sample network recursion per setting, not
    per clip. ``N = n_settings * clips_per_setting``; clips are ``seconds`` long (the
    estimator is meant for :data:`ESTIMATOR_SECONDS`; shorter only for quick tests).
    """
    renderer = BatchRenderer(sr, device="cpu", seed=seed)
    length = int(seconds * sr)
    feats, targets, settings_all = [], [], []
    done = 0
    while done < n_settings:
        b = min(batch, n_settings - done)
        s = renderer.sample_reverb_settings(b)
        ir_arguments = reverb_params_from_settings(s).arguments()
        w_fraction = ir_arguments.pop("dry_wet")  # mixed below, per clip
        with torch.no_grad():
            h = fdn_impulse_response(sr, **ir_arguments, n_samples=length, mono_input=True)  # (b, 2, length)
            dry = _dry_clips(b * clips_per_setting, sr, seed * 7919 + done, dry_sources, seconds)  # (b*k, 1, T)
            h_rep = h.repeat_interleave(clips_per_setting, dim=0)
            n_fft = 1 << int(math.ceil(math.log2(2 * length)))
            wet = torch.fft.irfft(torch.fft.rfft(dry, n_fft) * torch.fft.rfft(h_rep, n_fft), n_fft)[..., :length]
            w = w_fraction.repeat_interleave(clips_per_setting).view(-1, 1, 1)
            out = w * wet + (1 - w) * dry
            feats.append(reverb_features(out, sr))
        tgt = torch.stack([s[k] for k in REVERB_TARGETS], dim=1).repeat_interleave(clips_per_setting, dim=0)
        targets.append(normalise_targets("reverb", tgt))
        settings_all.append(tgt)
        done += b
        if progress:
            progress(done, n_settings)
    return torch.cat(feats), torch.cat(targets), torch.cat(settings_all)


def _loss_weights() -> torch.Tensor:
    return torch.tensor([LOSS_WEIGHTS.get(k, 1.0) for k in REVERB_TARGETS])


def train_estimator(
    features: torch.Tensor,
    targets: torch.Tensor,
    epochs: int = 300,
    seed: int = 0,
    lr: float = 2e-3,
    sample_rate: int = 44100,
    meta: dict | None = None,
) -> ReverbEstimator:
    """Fit the MLP on ``features`` ``(N, F)`` and normalised ``targets`` ``(N, 10)`` (full batch
    Adam with the research's weighted MSE)."""
    torch.manual_seed(seed)
    mean = features.mean(0)
    std = features.std(0).clamp(min=1e-3)
    x = (features - mean) / std
    model = _Mlp(features.shape[1], len(REVERB_TARGETS))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    weights = _loss_weights()
    gen = torch.Generator().manual_seed(seed)
    batch = 256
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], batch):
            idx = order[i : i + batch]
            loss = ((model(x[idx]) - targets[idx]) ** 2 * weights).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return ReverbEstimator(model, mean, std, sample_rate, meta)


def evaluate_estimator(
    estimator: ReverbEstimator,
    features: torch.Tensor,
    settings: torch.Tensor,
    train_settings: torch.Tensor | None = None,
) -> dict:
    """Mean absolute error per setting (physical units) on held-out ``features`` with known
    ``settings`` ``(N, 10)``, next to the error of always predicting the training mean (in
    the normalised domain, as the research's "mean" baseline)."""
    with torch.no_grad():
        u = estimator.model((features - estimator.mean) / estimator.std)
    pred = denormalise_targets("reverb", u)
    pred[:, REVERB_TARGETS.index("room_size")] = torch.round(pred[:, REVERB_TARGETS.index("room_size")])
    mae = (pred - settings).abs().mean(0)
    ref = train_settings if train_settings is not None else settings
    mean_u = normalise_targets("reverb", ref).mean(0, keepdim=True)
    baseline = (denormalise_targets("reverb", mean_u.expand_as(settings)) - settings).abs().mean(0)
    return {name: {"mae": float(m), "mean_baseline_mae": float(b)} for name, m, b in zip(REVERB_TARGETS, mae, baseline)}


def build_estimator(
    n_settings: int = 1200,
    clips_per_setting: int = 2,
    held_out: int = 200,
    sr: int = 44100,
    seed: int = 0,
    epochs: int = 300,
    dry_sources: list[np.ndarray] | None = None,
    progress=None,
) -> ReverbEstimator:
    """Make data, train, and validate on ``held_out`` unseen settings (and unseen clips).

    The validation MAE is stored in ``estimator.meta["validation"]``.
    """
    t0 = time.time()
    x, u, s = make_estimator_data(n_settings, clips_per_setting, sr, seed, dry_sources, progress=progress)
    xv, uv, sv = make_estimator_data(held_out, 1, sr, seed + 1_000_003, dry_sources)
    meta = {
        "n_settings": n_settings,
        "clips_per_setting": clips_per_setting,
        "held_out": held_out,
        "seed": seed,
        "epochs": epochs,
        "clip_seconds": ESTIMATOR_SECONDS,
        "dry_sources": len(dry_sources or []),
    }
    est = train_estimator(x, u, epochs=epochs, seed=seed, sample_rate=sr, meta=meta)
    validation = evaluate_estimator(est, xv, sv, train_settings=s)
    est.meta = {**(est.meta or {}), "validation": validation, "seconds": round(time.time() - t0, 1)}
    return est


# ---------------------------------------------------------------------------------------
# Fitting settings to a known impulse response
# ---------------------------------------------------------------------------------------

_FIT_NAMES = [n for n in REVERB_TARGETS if n not in ("room_size",)]


def _log_spectrogram(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=x.dtype)
    spec = torch.stft(x, n_fft, n_fft // 4, window=window, center=True, return_complex=True)
    return torch.log(spec.abs() ** 2 + 1e-8)


def spectrogram_distance(a: torch.Tensor, b: torch.Tensor, resolutions=(256, 1024, 4096)) -> torch.Tensor:
    """Multi-resolution L1 distance of log power spectrograms of ``a`` and ``b`` ``(C, T)``,
    each first scaled to unit energy (the fit ignores overall level)."""
    a = a / a.pow(2).sum().sqrt().clamp(min=1e-12)
    b = b / b.pow(2).sum().sqrt().clamp(min=1e-12)
    total = torch.zeros((), dtype=a.dtype)
    for n in resolutions:
        total = total + (_log_spectrogram(a, n) - _log_spectrogram(b, n)).abs().mean()
    return total / len(resolutions)


def _fdn_ir(sr, room, p: dict, n: int) -> torch.Tensor:
    """Plug-in output for a unit impulse ``(2, n)``: ``w·h + (1 - w)·δ``."""
    h = fdn_impulse_response(
        sr,
        torch.tensor([float(room)]),
        p["reverb_time_s"][None],
        p["low_cutoff_hz"][None],
        p["low_q"][None],
        p["low_gain_db_per_s"][None],
        p["high_cutoff_hz"][None],
        p["high_q"][None],
        p["high_gain_db_per_s"][None],
        p["fade_in_s"][None],
        n_samples=n,
        mono_input=True,
    )[0]
    w = p["dry_wet_pct"] / 100.0
    delta = torch.zeros(n, dtype=h.dtype)
    delta[0] = 1.0
    return w * h + (1 - w) * delta[None]


def fit_impulse_response(
    ir,
    sr: int,
    rooms=(5, 12, 20, 28),
    search_steps: int = 25,
    steps: int = 120,
    lr: float = 0.05,
    max_seconds: float = 1.5,
    init: dict | None = None,
    fit_fade_in: bool = False,
    progress=None,
) -> dict:
    """FdnReverb settings whose impulse response matches ``ir`` ``(channels, samples)``.

    The continuous settings are optimised with Adam in the normalised domain (a logit per
    setting, so every step stays in range) through the differentiable reverb; the loss is
    :func:`spectrogram_distance` on the first ``max_seconds`` of the IR. Each candidate
    room size gets ``search_steps`` steps, the best one then ``steps`` more. The fade-in
    time is held at 0 unless ``fit_fade_in`` (measured IRs rarely have one, and the
    fade-in's twin network doubles the cost of every step).
    ``progress(done, total, loss)``, if given, is called after every step (``total`` is
    ``len(rooms) * search_steps + steps``; ``loss`` the step's spectrogram distance).
    Returns ``{"settings": {name: value}, "loss": float, "history": [...]}``.
    """
    total_steps = len(rooms) * search_steps + steps
    done_steps = [0]
    target = torch.as_tensor(np.asarray(ir, dtype=np.float32))
    if target.dim() == 1:
        target = target[None]
    target = target[:2]
    n = min(target.shape[-1], int(max_seconds * sr))
    target = target[:, :n]
    # A mono IR is compared with the mean of the two heard lines.
    start = {k: torch.tensor([v]) for k, v in (init or {}).items() if k in _FIT_NAMES}
    defaults = ReverbSettings()
    base = {k: torch.tensor([float(start[k][0]) if k in start else float(getattr(defaults, k))]) for k in _FIT_NAMES}
    base["fade_in_s"] = torch.clamp(base["fade_in_s"], min=0.01) if fit_fade_in else torch.zeros(1)
    base["dry_wet_pct"] = torch.clamp(base["dry_wet_pct"], 2.0, 98.0)

    def to_logits(values: dict) -> torch.Tensor:
        full = torch.stack([values[k][0] if k in values else torch.tensor(1.0) for k in REVERB_TARGETS])
        u = normalise_targets("reverb", full).clamp(0.02, 0.98)
        return torch.log(u / (1 - u))

    def settings_of(logits: torch.Tensor) -> dict:
        phys = denormalise_targets("reverb", torch.sigmoid(logits))
        out = {k: phys[i] for i, k in enumerate(REVERB_TARGETS) if k in _FIT_NAMES}
        if not fit_fade_in:
            out["fade_in_s"] = torch.zeros(())
        return out

    def loss_of(room, logits):
        out = _fdn_ir(sr, room, settings_of(logits), n)
        pred = out if target.shape[0] == 2 else out.mean(0, keepdim=True)
        return spectrogram_distance(pred, target)

    def run(room, logits, n_steps):
        logits = logits.clone().requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=lr)
        history = []
        best = (math.inf, logits.detach().clone())
        for _ in range(n_steps):
            loss = loss_of(room, logits)
            value = float(loss.detach())
            history.append(value)
            if value < best[0]:
                best = (value, logits.detach().clone())  # the logits this loss belongs to
            opt.zero_grad()
            loss.backward()
            # Room size has no gradient path; keep its (unused) logit still.
            logits.grad[REVERB_TARGETS.index("room_size")] = 0.0
            if not fit_fade_in:
                logits.grad[REVERB_TARGETS.index("fade_in_s")] = 0.0
            opt.step()
            done_steps[0] += 1
            if progress is not None:
                progress(done_steps[0], total_steps, value)
        return best, history

    logits0 = to_logits(base)
    results = []
    for room in rooms:
        (loss, logits), hist = run(room, logits0, search_steps)
        results.append((loss, room, logits, hist))
    loss, room, logits, hist = min(results, key=lambda r: r[0])
    (loss, logits), hist2 = run(room, logits, steps)
    with torch.no_grad():
        final = {k: float(v) for k, v in settings_of(logits).items()}
    final["room_size"] = float(room)
    return {
        "settings": {k: final[k] for k in REVERB_TARGETS},
        "loss": loss,
        "history": hist + hist2,
        "room_search": {float(r[1]): r[0] for r in results},
    }
