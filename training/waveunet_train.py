"""Training of the Wave-U-Net mixer (``vocalmix train waveunet``).

The recipe is the research's (Koszewski et al. 2023, after Stoller et al. 2018):

- L2 loss (mean squared error) between the network's mix and the target mix;
- Adam, learning rate 1e-4, beta1 0.9, beta2 0.999; batch 16; 200 update steps per
  epoch; each example a random window of a random training song (songs drawn in
  proportion to their length);
- early stopping with patience 20 epochs on the validation loss (windows of the
  validation songs, fixed for the whole run);
- then a fine-tuning step: from the best model, batch size doubled and learning rate
  1e-5 (Wave-U-Net's fine-tuning), again until 20 epochs pass without improvement;
- the model with the lowest validation loss over both steps is kept;
- no augmentation by default (``augment=True`` swaps left and right of backing and target
  and scales a whole example by +-6 dB).

One choice is ours: the output layer starts as the plain sum (vocal to both sides,
backing left to left and right to right; the U-Net features' weights at zero), so the
untrained network already outputs vocal + backing and training learns what a mix
changes. ``sum_init=False`` gives PyTorch's default initialisation everywhere.

Files in ``out_dir``: ``manifest.json`` (songs, splits, each song's target),
``waveunet.pt`` (best), ``waveunet.last.pt`` (resume state, optimizer included),
``waveunet.log.csv`` (one row per epoch), ``audio/`` (the prepared songs, see
:mod:`vocalmix.training.waveunet_data`).

Determinism: the windows of epoch ``e`` of step ``p`` come from a generator seeded by
``(seed, p, e)``, so a resumed run follows the path of an uninterrupted one, on the CPU
bit for bit; the same command runs on CUDA (``device="cuda"``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vocalmix.errors import InputError
from vocalmix.files import write_atomic
from vocalmix.methods.waveunet import CHECKPOINT_NAME as BEST
from vocalmix.nets.checkpoints import (
    WAVEUNET_CHECKPOINT_FORMAT,
    WAVEUNET_CHECKPOINT_VERSION,
    WAVEUNET_SAMPLE_RATE,
    load_waveunet_checkpoint,
)
from vocalmix.nets.waveunet import WaveUNet, WaveUNetConfig, lengths_for_output

from .train import resolve_device, save_checkpoint, set_determinism
from .waveunet_data import MANIFEST, SongCache, discover_mix_songs, manifest_record, prepare_songs, song_splits

LAST, LOG = "waveunet.last.pt", "waveunet.log.csv"
AUGMENT_GAIN_DB = 6.0


@dataclass
class WaveUNetTrainConfig:
    """Options of ``vocalmix train waveunet``; defaults are the research's (module docstring)."""

    layers: int = 10
    filters_per_layer: int = 24
    down_kernel: int = 15
    up_kernel: int = 5
    #: Output samples per training window (rounded up to a valid length; Wave-U-Net used 16389).
    output_window: int = 16384
    batch_size: int = 16
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    steps_per_epoch: int = 200
    patience: int = 20
    finetune: bool = True
    finetune_lr: float = 1e-5
    finetune_batch_size: int = 32
    max_epochs: int = 1000  # per step (training, fine-tuning); early stopping normally ends them first
    val_windows: int = 64
    augment: bool = False
    sum_init: bool = True
    seed: int = 0
    device: str = "cpu"
    max_minutes: float | None = None  # wall-time budget of each step (training, fine-tuning)

    def model_config(self) -> WaveUNetConfig:
        return WaveUNetConfig(
            layers=self.layers,
            filters_per_layer=self.filters_per_layer,
            down_kernel=self.down_kernel,
            up_kernel=self.up_kernel,
        )


@dataclass
class WaveUNetTrainResult:
    checkpoint: Path
    best_val_loss: float
    best_epoch: int
    best_phase: str
    epochs_run: int
    history: list[dict] = field(default_factory=list)


def init_as_sum(model: WaveUNet) -> None:
    """Make the output layer add vocal (to both sides) and backing, ignoring the U-Net features."""
    with torch.no_grad():
        w = model.output.weight  # (2, features + 3, 1); the input's 3 channels are the last ones
        w.zero_()
        assert model.output.bias is not None  # the output convolution has a bias
        model.output.bias.zero_()
        f = w.shape[1] - 3
        w[0, f + 0, 0] = 1.0  # vocal -> left
        w[1, f + 0, 0] = 1.0  # vocal -> right
        w[0, f + 1, 0] = 1.0  # backing left -> left
        w[1, f + 2, 0] = 1.0  # backing right -> right


# -- checkpoints --------------------------------------------------------------------------------
def shrink_waveunet_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a best checkpoint for shipping: float16 weights, training history dropped."""
    payload = load_waveunet_checkpoint(src)
    payload["state_dict"] = {k: v.half() for k, v in payload["state_dict"].items()}
    payload["weights_dtype"] = "float16"
    payload.pop("history", None)
    save_checkpoint(Path(dst), payload)
    return Path(dst)


# -- batches ------------------------------------------------------------------------------------
class Windows:
    """Random and fixed windows of prepared songs as tensors."""

    def __init__(self, cache: SongCache, n_in: int, n_out: int, context: int):
        self.cache, self.n_in, self.n_out, self.context = cache, n_in, n_out, context

    def random_batch(self, songs: list[str], batch: int, rng: np.random.Generator, augment: bool = False):
        lengths = np.array([self.cache.length(s) for s in songs], dtype=np.float64)
        picks = rng.choice(len(songs), size=batch, p=lengths / lengths.sum())
        xs, ys = [], []
        for k in picks:
            start = int(rng.integers(0, max(1, int(lengths[k]) - self.n_out + 1)))
            x, y = self.cache.window(songs[k], start, self.n_in, self.n_out, self.context)
            if augment:
                if rng.random() < 0.5:
                    x, y = x[[0, 2, 1]], y[[1, 0]]
                g = np.float32(10 ** (rng.uniform(-AUGMENT_GAIN_DB, AUGMENT_GAIN_DB) / 20))
                x, y = x * g, y * g
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def fixed(self, songs: list[str], limit: int) -> list[tuple[str, int]]:
        """Consecutive output windows through every song, thinned evenly to at most ``limit``."""
        spots = [(s, start) for s in songs for start in range(0, self.cache.length(s), self.n_out)]
        if len(spots) > limit:
            spots = [spots[i] for i in np.linspace(0, len(spots) - 1, limit).round().astype(int)]
        return spots

    def tensors(self, spots: list[tuple[str, int]]):
        pairs = [self.cache.window(s, start, self.n_in, self.n_out, self.context) for s, start in spots]
        return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


@torch.no_grad()
def validation_loss(model: WaveUNet, windows: Windows, spots, device, batch: int = 8) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(spots), batch):
        x, y = windows.tensors(spots[i : i + batch])
        err = model(x.to(device)) - y.to(device)
        total += float(err.double().square().sum())
        count += err.numel()
    return total / max(count, 1)


def train_step(model: WaveUNet, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One update on the L2 loss between ``model(x)`` and ``y``; returns the loss before the update."""
    model.train()
    loss = torch.mean((model(x) - y) ** 2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _writer(enabled: bool) -> Callable[[str], None]:
    def write(line: str) -> None:
        if enabled:
            print(f"[waveunet] {line}", file=sys.stderr, flush=True)

    return write


def _write_json_atomic(path: Path, record: dict) -> None:
    write_atomic(path, json.dumps(record, indent=2) + "\n")


# -- training -----------------------------------------------------------------------------------
def train_waveunet(
    source,
    out_dir: str | os.PathLike,
    config: WaveUNetTrainConfig = WaveUNetTrainConfig(),
    target: str = "reference",
    layout: str = "auto",
    resume: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> WaveUNetTrainResult:
    """Train on the songs of ``source`` (see :mod:`~vocalmix.training.waveunet_data`); returns the best model."""
    write = _writer(progress)
    out_dir = Path(out_dir)
    best_path, last_path, log_path = out_dir / BEST, out_dir / LAST, out_dir / LOG
    if config.batch_size < 1 or config.steps_per_epoch < 1 or config.max_epochs < 1:
        raise InputError("batch size, steps per epoch and epochs must be at least 1")
    model_config = config.model_config()
    device = resolve_device(config.device)

    items = discover_mix_songs(source, target=target, layout=layout, seed=config.seed)
    splits = song_splits(items, config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the songs are known to be usable
    manifest = manifest_record(source, items, splits, config.seed)
    manifest_path = out_dir / MANIFEST
    if resume and manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("splits") != splits or old.get("targets") != manifest["targets"]:
            raise InputError(f"{manifest_path}: cannot resume, the songs, splits or targets differ from this run")
    _write_json_atomic(manifest_path, manifest)
    write(f"{len(items)} songs: {len(splits['train'])} train, {len(splits['val'])} val, {len(splits['test'])} test")
    cache = SongCache(prepare_songs(items, Path(cache_dir) if cache_dir else out_dir / "audio", progress=write))

    set_determinism(config.seed)
    model = WaveUNet(model_config)
    if config.sum_init:
        init_as_sum(model)
    model.to(device)
    n_in, n_out = lengths_for_output(model_config, config.output_window)
    windows = Windows(cache, n_in, n_out, model.context)
    val_songs = splits["val"]
    val_spots = windows.fixed(val_songs, config.val_windows) if val_songs else []
    if not val_spots:
        write("no validation songs: the latest epoch is kept and there is no early stopping")
    phases = [("train", config.lr, config.batch_size)]
    if config.finetune:
        phases.append(("finetune", config.finetune_lr, config.finetune_batch_size))

    base = {
        "format": WAVEUNET_CHECKPOINT_FORMAT,
        "format_version": WAVEUNET_CHECKPOINT_VERSION,
        "sample_rate_hz": WAVEUNET_SAMPLE_RATE,
        "model_config": model_config.to_dict(),
        "n_parameters": model.n_parameters(),
        "input_length": n_in,
        "output_length": n_out,
        "train_config": asdict(config),
        "target": target,
        "source": str(source),
        "data_manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "train_songs": splits["train"],
        "val_songs": val_songs,
    }

    phase_index, epoch, best_loss, best_epoch, best_phase, stale, history = 0, 0, math.inf, 0, "", 0, []
    optimizer = torch.optim.Adam(model.parameters(), lr=phases[0][1], betas=(config.beta1, config.beta2))
    if resume and last_path.is_file():
        state = load_waveunet_checkpoint(last_path)
        if state["model_config"] != model_config.to_dict():
            raise InputError(f"{last_path}: cannot resume, it holds a different network")
        model.load_state_dict(state["state_dict"])
        phase_index, epoch = int(state["phase_index"]), int(state["epoch"])
        optimizer = torch.optim.Adam(model.parameters(), lr=phases[phase_index][1], betas=(config.beta1, config.beta2))
        optimizer.load_state_dict(state["optimizer_state"])
        best_loss, best_epoch, best_phase = float(state["best_val_loss"]), int(state["best_epoch"]), state["best_phase"]
        stale, history = int(state["epochs_without_improvement"]), list(state["history"])
        write(f"resuming after {phases[phase_index][0]} epoch {epoch}")
    elif resume:
        write(f"nothing to resume in {out_dir}; starting from scratch")

    fields_ = ["phase", "epoch", "train_loss", "val_loss", "lr", "batch_size", "seconds", "best"]
    if not (resume and log_path.is_file() and history):
        with open(log_path, "w", newline="") as fh:
            csv.writer(fh).writerow(fields_)
            if val_spots:  # the untrained network (with sum_init: vocal + backing) as the point of comparison
                untrained = validation_loss(model, windows, val_spots, device)
                csv.writer(fh).writerow(["untrained", 0, "", untrained, "", "", 0, 0])
                write(f"untrained network: val {untrained:.3e}")

    while phase_index < len(phases):
        phase, lr, batch = phases[phase_index]
        started = time.monotonic()
        while epoch < config.max_epochs and not (val_spots and stale >= config.patience):
            epoch += 1
            t0 = time.monotonic()
            model.train()
            rng = np.random.default_rng([config.seed, phase_index, epoch])
            total = 0.0
            for _ in range(config.steps_per_epoch):
                x, y = windows.random_batch(splits["train"], batch, rng, config.augment)
                total += train_step(model, optimizer, x.to(device), y.to(device))
            train_loss = total / config.steps_per_epoch
            val_loss = validation_loss(model, windows, val_spots, device) if val_spots else train_loss
            improved = val_loss < best_loss
            if improved:
                best_loss, best_epoch, best_phase, stale = val_loss, epoch, phase, 0
            else:
                stale += 1
            row = {
                "phase": phase,
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": lr,
                "batch_size": batch,
                "seconds": round(time.monotonic() - t0, 2),
                "best": int(improved),
            }
            history.append(row)
            with open(log_path, "a", newline="") as fh:
                csv.writer(fh).writerow([row[f] for f in fields_])
            weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            info = {"phase": phase, "epoch": epoch, "val_loss": val_loss, "train_loss": train_loss}
            if improved:
                save_checkpoint(best_path, {**base, "state_dict": weights, "metrics": info})
            save_checkpoint(
                last_path,
                {
                    **base,
                    "state_dict": weights,
                    "metrics": info,
                    "phase_index": phase_index,
                    "epoch": epoch,
                    "optimizer_state": optimizer.state_dict(),
                    "best_val_loss": best_loss,
                    "best_epoch": best_epoch,
                    "best_phase": best_phase,
                    "epochs_without_improvement": stale,
                    "history": history,
                },
            )
            write(
                f"{phase} epoch {epoch}: train {train_loss:.3e} val {val_loss:.3e}{' *' if improved else ''} "
                f"({row['seconds']:.0f} s)"
            )
            if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
                write(f"{phase}: time budget of {config.max_minutes:g} min reached")
                break
        phase_index += 1
        if phase_index < len(phases):
            # Fine-tuning starts from the best model, with a fresh optimizer at the lower rate.
            best = load_waveunet_checkpoint(best_path)
            model.load_state_dict(best["state_dict"])
            optimizer = torch.optim.Adam(
                model.parameters(), lr=phases[phase_index][1], betas=(config.beta1, config.beta2)
            )
            epoch, stale = 0, 0
            write(
                f"fine-tuning from {best_phase} epoch {best_epoch}: batch {phases[phase_index][2]}, "
                f"lr {phases[phase_index][1]:g}"
            )
            state = load_waveunet_checkpoint(last_path)
            save_checkpoint(
                last_path,
                {
                    **state,
                    "phase_index": phase_index,
                    "epoch": 0,
                    "state_dict": best["state_dict"],
                    "optimizer_state": optimizer.state_dict(),
                    "epochs_without_improvement": 0,
                },
            )

    if not best_path.is_file():
        raise InputError("training produced no checkpoint")
    return WaveUNetTrainResult(best_path, best_loss, best_epoch, best_phase, len(history), history)


def train_waveunet_command(
    dataset,
    out: Path,
    *,
    target: str,
    layout: str,
    layers: int,
    filters: int,
    output_window: int,
    steps_per_epoch: int,
    finetune: bool,
    augment: bool,
    epochs: int | None,
    patience: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    device: str,
    resume: bool,
    max_minutes: float | None,
    quiet: bool,
) -> None:
    """``vocalmix train waveunet DATASET --out DIR``: options left as None take the research's values."""
    import typer

    defaults = WaveUNetTrainConfig()
    try:
        config = WaveUNetTrainConfig(
            layers=layers,
            filters_per_layer=filters,
            output_window=output_window,
            steps_per_epoch=steps_per_epoch,
            finetune=finetune,
            augment=augment,
            max_epochs=epochs or defaults.max_epochs,
            patience=patience or defaults.patience,
            batch_size=batch_size or defaults.batch_size,
            finetune_batch_size=2 * (batch_size or defaults.batch_size),
            lr=lr or defaults.lr,
            finetune_lr=(lr or defaults.lr) / 10,
            seed=seed,
            device=device,
            max_minutes=max_minutes,
        )
        config.model_config()
    except ValueError as exc:
        raise InputError(f"waveunet: {exc}") from None
    result = train_waveunet(str(dataset), out, config, target=target, layout=layout, resume=resume, progress=not quiet)
    typer.echo(
        f"waveunet: best {result.best_phase} epoch {result.best_epoch} ({result.epochs_run} epochs run), "
        f"validation L2 {result.best_val_loss:.4g} -> {result.checkpoint}"
    )
