"""Training of the four CNN regressors (level, compression, eq, reverb).

Hyper-parameters follow Li & Lerch: Adam; batch 25 (EQ 30); learning rate 1e-3
for level and EQ, 1e-4 for compression, 1e-5 with weight decay 1e-5 for reverb;
MSE on targets normalised to [0, 1], except

* EQ: ``L = l_changed + 0.1 * l_unchanged`` where ``l_changed`` is the MSE over the
  bands the data generator altered and ``l_unchanged`` over the rest (so the
  model is not rewarded for predicting 0 dB everywhere);
* reverb: ``L = 10 l_dry/wet + 5 l_reverb_time + 5 l_room_size + l_rest`` with
  ``l_rest`` the MSE over the other seven parameters.

Validation is on songs the training split never contains (the dataset's
manifest splits by song); the epoch with the lowest validation loss is kept, and
training stops after ``patience`` epochs without improvement.

Files written to ``out_dir`` for task ``T``:

* ``T.pt``      best checkpoint (what inference and evaluation load);
* ``T.last.pt`` state after the latest epoch (optimizer included), for ``resume``;
* ``T.log.csv`` one row per epoch.

Determinism: batch order and dropout masks of epoch ``e`` depend only on
``(seed, e)``, so a resumed run follows the same path as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocalmix.errors import InputError
from vocalmix.features import DEFAULT_FEATURES
from vocalmix.files import write_atomic
from vocalmix.jsonable import jsonable
from vocalmix.nets.checkpoints import CNN_CHECKPOINT_FORMAT, CNN_CHECKPOINT_VERSION, load_checkpoint
from vocalmix.nets.cnn_targets import TASKS, denormalise_targets, normalise_targets, target_ranges_record
from vocalmix.nets.mixing_cnn import TASK_OUTPUTS, MixingCNN, build_model
from vocalmix.settings import SCHEMA_VERSION

from .data import load_split

#: Published hyper-parameters per task.
TASK_HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "level": {"batch_size": 25, "lr": 1e-3, "weight_decay": 0.0},
    "compression": {"batch_size": 25, "lr": 1e-4, "weight_decay": 0.0},
    "eq": {"batch_size": 30, "lr": 1e-3, "weight_decay": 0.0},
    "reverb": {"batch_size": 25, "lr": 1e-5, "weight_decay": 1e-5},
}

#: Reverb loss weights by target name; every other reverb target shares ``l_rest``.
REVERB_LOSS_WEIGHTS = {"dry_wet_pct": 10.0, "reverb_time_s": 5.0, "room_size": 5.0}
EQ_UNCHANGED_WEIGHT = 0.1

#: Loss choices: "paper" (MSE; EQ changed/unchanged split; reverb weights), "mse" (plain
#: MSE over every target, reverb weights kept) or "l1".
LOSS_KINDS = ("paper", "mse", "l1")


# -- data ------------------------------------------------------------------------------
@dataclass
class Arrays:
    """A task's examples in memory (the fields of ``vocalmix.training.data.TaskData``).

    ``features`` ``(N, 2, 128, 64)`` float32; ``targets`` ``(N, k)`` physical units;
    ``songs`` the song of each example; ``changed`` ``(N, 9)`` bool for EQ, else None.
    """

    features: np.ndarray
    targets: np.ndarray
    songs: list[str]
    changed: np.ndarray | None = None

    @classmethod
    def of(cls, data: Any) -> Arrays:
        return cls(
            np.asarray(data.features, dtype=np.float32),
            np.asarray(data.targets, dtype=np.float64),
            list(data.songs),
            None if getattr(data, "changed", None) is None else np.asarray(data.changed, bool),
        )

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def subset(self, mask: np.ndarray) -> Arrays:
        return Arrays(
            self.features[mask],
            self.targets[mask],
            [s for s, m in zip(self.songs, mask) if m],
            None if self.changed is None else self.changed[mask],
        )

    @staticmethod
    def concat(parts: Sequence[Arrays]) -> Arrays:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("no examples to concatenate")
        changed = None if parts[0].changed is None else np.concatenate([p.changed for p in parts])
        return Arrays(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.targets for p in parts]),
            [s for p in parts for s in p.songs],
            changed,
        )


def target_names(task: str) -> list[str]:
    return list(TASKS[task])


def normalise(task: str, targets: np.ndarray) -> np.ndarray:
    """Physical ``(N, k)`` -> normalised ``(N, k)`` in [0, 1] (the networks' target mapping)."""
    return np.asarray(normalise_targets(task, np.asarray(targets, dtype=np.float64)), dtype=np.float32)


def denormalise(task: str, u: np.ndarray) -> np.ndarray:
    """Normalised ``(N, k)`` -> physical ``(N, k)``, clipped to the target ranges."""
    return np.asarray(denormalise_targets(task, np.asarray(u, dtype=np.float64)), dtype=np.float64)


def load_arrays(dataset_dir: str | os.PathLike, task: str, split: str) -> Arrays:
    """One split of a task as :class:`Arrays`; a missing or empty dataset raises InputError."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "manifest.json").is_file():
        raise InputError(f"{dataset_dir}: not a vocalmix dataset (no manifest.json); build one with `vocalmix dataset`")
    try:
        return Arrays.of(load_split(dataset_dir, task, split))
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{dataset_dir}: cannot load the {task} {split} split ({exc})") from None


def manifest_sha256(dataset_dir: str | os.PathLike) -> str | None:
    path = Path(dataset_dir) / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def feature_settings_record() -> dict:
    """The feature settings of the dataset blocks (stored in checkpoints, read back at inference)."""
    return jsonable({"shape": list(DEFAULT_FEATURES.block_shape), **DEFAULT_FEATURES.to_dict()})


# -- loss ------------------------------------------------------------------------------
def task_loss(
    task: str,
    names: Sequence[str],
    prediction: torch.Tensor,
    target: torch.Tensor,
    changed: torch.Tensor | None = None,
    kind: str = "paper",
) -> torch.Tensor:
    """The loss for ``task`` on normalised ``(batch, k)`` predictions and targets.

    ``kind="paper"``: the published losses (module docstring). ``kind="mse"``: plain
    mean squared error over every target, with no changed/unchanged split for EQ (its
    optimum for a band the model cannot judge is the mean, 0 dB, not a guess). ``kind="l1"``:
    mean absolute error over every target, reverb targets weighted as the paper weights them.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss {kind!r}; use one of {', '.join(LOSS_KINDS)}")
    if kind == "mse" and task != "reverb":
        return ((prediction - target) ** 2).mean()
    if kind == "l1":
        absolute = (prediction - target).abs()
        if task == "reverb":
            weights = torch.tensor(
                [REVERB_LOSS_WEIGHTS.get(n, 1.0) for n in names], dtype=absolute.dtype, device=absolute.device
            )
            return (absolute * weights).sum(dim=1).mean() / weights.sum()
        return absolute.mean()
    squared = (prediction - target) ** 2
    if task == "eq":
        if changed is None:
            return squared.mean()
        mask = changed.to(squared.dtype)
        l_changed = (squared * mask).sum() / mask.sum().clamp(min=1.0)
        l_unchanged = (squared * (1 - mask)).sum() / (1 - mask).sum().clamp(min=1.0)
        return l_changed + EQ_UNCHANGED_WEIGHT * l_unchanged
    if task == "reverb":
        loss = squared.new_zeros(())
        rest = [i for i, n in enumerate(names) if n not in REVERB_LOSS_WEIGHTS]
        for name, weight in REVERB_LOSS_WEIGHTS.items():
            if name in names:
                loss = loss + weight * squared[:, list(names).index(name)].mean()
        if rest:
            loss = loss + squared[:, rest].mean()
        return loss
    return squared.mean()


# -- configuration and results ---------------------------------------------------------
@dataclass
class TrainConfig:
    """Training options; ``None`` for batch size, lr or weight decay means the task's published value."""

    task: str
    epochs: int = 60
    seed: int = 0
    device: str = "cpu"
    patience: int = 10
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    hidden: int = 64
    dropout: float = 0.3
    init_at_mean: bool = True
    max_minutes: float | None = None
    loss: str = "paper"
    architecture: str = "li-lerch-cnn"  # or "spectrum-mlp" (vocalmix.nets.spectrum_mlp, the EQ default)

    def resolved(self) -> TrainConfig:
        hp = TASK_HYPERPARAMETERS[self.task]
        return replace(
            self,
            batch_size=int(self.batch_size if self.batch_size is not None else hp["batch_size"]),
            lr=float(self.lr if self.lr is not None else hp["lr"]),
            weight_decay=float(self.weight_decay if self.weight_decay is not None else hp["weight_decay"]),
        )


@dataclass
class TrainResult:
    task: str
    checkpoint: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    val_mae: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    # warn_only: a few CPU kernels have no deterministic variant flag but are deterministic anyway.
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device '{device}'; use cpu, cuda or auto") from None


# -- checkpoints -----------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically so an interrupted run never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def shrink_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a best checkpoint for shipping: float16 weights (half the size), no optimizer state.

    Predictions change by far less than the models' errors (float16 has 11 bits of
    mantissa; the outputs are averaged over blocks anyway).
    """
    payload = load_checkpoint(src)
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    payload["weights_dtype"] = "float16"
    dst = Path(dst)
    save_checkpoint(dst, payload)
    return dst


# -- training --------------------------------------------------------------------------
def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    # BatchNorm cannot normalise one example; fold a lone remainder into the previous batch.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    return batches


@torch.no_grad()
def predict_normalised(
    model: MixingCNN, features: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 256
) -> np.ndarray:
    """``features`` ``(N, 2, 128, 64)`` -> raw model outputs ``(N, k)`` (normalised units, unclipped)."""
    model.eval()
    out = []
    for i in range(0, len(features), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(features[i : i + batch_size], dtype=np.float32)).to(device)
        out.append(model(x).cpu().numpy())
    if not out:
        return np.zeros((0, model.config.n_outputs), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def _evaluate_loss(
    task, names, model, data: Arrays, u_targets: np.ndarray, device, loss_kind: str = "paper"
) -> tuple[float, dict[str, float]]:
    u_pred = predict_normalised(model, data.features, device)
    with torch.no_grad():
        changed = None if data.changed is None else torch.from_numpy(data.changed)
        loss = float(task_loss(task, names, torch.from_numpy(u_pred), torch.from_numpy(u_targets), changed, loss_kind))
    physical = denormalise(task, u_pred)
    mae = np.abs(physical - data.targets).mean(axis=0)
    return loss, {n: float(v) for n, v in zip(names, mae)}


def _progress_writer(enabled: bool) -> Callable[[str], None]:
    def write(line: str) -> None:
        if enabled:
            print(line, file=sys.stderr, flush=True)

    return write


def fit(
    config: TrainConfig,
    train_data: Arrays,
    val_data: Arrays | None,
    out_dir: str | os.PathLike,
    resume: bool = False,
    metadata: dict | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train one task on in-memory data; see the module docstring for the files written.

    ``val_data`` may be None or empty (few songs): then the latest epoch is kept and
    there is no early stopping. ``metadata`` is merged into every checkpoint
    (dataset path, manifest hash, ...).
    """
    config = config.resolved()
    task = config.task
    if task not in TASK_OUTPUTS:
        raise InputError(f"unknown task '{task}'; use one of {', '.join(TASK_OUTPUTS)}")
    if len(train_data) == 0:
        raise InputError(f"no {task} training examples")
    if config.epochs < 1:
        raise InputError("epochs must be at least 1")
    names = target_names(task)
    if train_data.targets.shape[1] != len(names):
        raise InputError(f"{task}: expected {len(names)} targets per example, got {train_data.targets.shape[1]}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best_path, last_path, log_path = out_dir / f"{task}.pt", out_dir / f"{task}.last.pt", out_dir / f"{task}.log.csv"
    device = resolve_device(config.device)
    write = _progress_writer(progress)

    set_determinism(config.seed)
    model = build_model(
        task,
        hidden=config.hidden,
        dropout=config.dropout,
        input_shape=tuple(train_data.features.shape[1:]),
        architecture=config.architecture,
    ).to(device)
    u_train = normalise(task, train_data.targets)
    train_mean = train_data.targets.mean(axis=0)
    if config.init_at_mean:
        model.set_output_bias(torch.from_numpy(u_train.mean(axis=0)))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    has_val = val_data is not None and len(val_data) > 0
    u_val = normalise(task, val_data.targets) if has_val else None

    start_epoch, best_loss, best_epoch, stale, history = 1, math.inf, 0, 0, []
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        if state["task"] != task or state["model_config"] != model.config.to_dict():
            raise InputError(f"{last_path}: cannot resume, it was trained with a different task or model")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer_state"])
        start_epoch = int(state["epoch"]) + 1
        best_loss, best_epoch = float(state["best_val_loss"]), int(state["best_epoch"])
        stale, history = int(state["epochs_without_improvement"]), list(state["history"])
        write(f"[{task}] resuming after epoch {start_epoch - 1} (best epoch {best_epoch})")
    elif resume:
        write(f"[{task}] nothing to resume in {out_dir}; starting from scratch")

    base = {
        "format": CNN_CHECKPOINT_FORMAT,
        "format_version": CNN_CHECKPOINT_VERSION,
        "task": task,
        "target_names": names,
        "model_config": model.config.to_dict(),
        "target_ranges": target_ranges_record(task),
        "train_mean": [float(v) for v in train_mean],
        # The untrained model's output (see MixingCNN.set_output_bias): the mean in
        # normalised space, which for log-scaled targets is the geometric mean.
        "train_mean_normalised": [float(v) for v in u_train.mean(axis=0)],
        "settings_schema_version": SCHEMA_VERSION,
        "feature_settings": feature_settings_record(),
        "train_config": jsonable(asdict(config)),
        "n_train_examples": len(train_data),
        "n_train_songs": len(set(train_data.songs)),
        "n_val_songs": len(set(val_data.songs)) if has_val else 0,
        **jsonable(metadata or {}),
    }

    fields = ["epoch", "train_loss", "val_loss", *[f"val_mae_{n}" for n in names], "lr", "seconds", "best"]
    if start_epoch == 1 or not log_path.is_file():
        with open(log_path, "w", newline="") as fh:
            csv.writer(fh).writerow(fields)

    started = time.monotonic()
    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        if stale >= config.patience and has_val:
            stopped_early = True
            epoch -= 1
            break
        t0 = time.monotonic()
        model.train()
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout masks of this epoch
        total, count = 0.0, 0
        for idx in _batches(len(train_data), config.batch_size, rng):
            x = torch.from_numpy(train_data.features[idx]).to(device)
            y = torch.from_numpy(u_train[idx]).to(device)
            changed = None if train_data.changed is None else torch.from_numpy(train_data.changed[idx]).to(device)
            loss = task_loss(task, names, model(x), y, changed, config.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        train_loss = total / max(count, 1)

        if has_val:
            val_loss, val_mae = _evaluate_loss(task, names, model, val_data, u_val, device, config.loss)
        else:
            val_loss, val_mae = train_loss, {n: float("nan") for n in names}
        improved = val_loss < best_loss - 1e-12
        if improved:
            best_loss, best_epoch, stale = val_loss, epoch, 0
        else:
            stale += 1
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            **{f"val_mae_{n}": val_mae[n] for n in names},
            "lr": config.lr,
            "seconds": round(time.monotonic() - t0, 3),
            "best": int(improved),
        }
        history.append(row)
        with open(log_path, "a", newline="") as fh:
            csv.writer(fh).writerow([row[f] for f in fields])

        state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        metrics = {"val_loss": val_loss, "train_loss": train_loss, "val_mae": val_mae, "epoch": epoch}
        if improved:
            save_checkpoint(best_path, {**base, "state_dict": state_dict, "epoch": epoch, "metrics": metrics})
        save_checkpoint(
            last_path,
            {
                **base,
                "state_dict": state_dict,
                "epoch": epoch,
                "metrics": metrics,
                "optimizer_state": optimizer.state_dict(),
                "best_val_loss": best_loss,
                "best_epoch": best_epoch,
                "epochs_without_improvement": stale,
                "history": jsonable(history),
            },
        )
        mae_text = " ".join(f"{n}={v:.3g}" for n, v in list(val_mae.items())[:3])
        write(
            f"[{task}] epoch {epoch}/{config.epochs} train {train_loss:.4f} val {val_loss:.4f} "
            f"{mae_text}{' *' if improved else ''}"
        )
        if config.max_minutes is not None and (time.monotonic() - started) > 60 * config.max_minutes:
            write(f"[{task}] time budget of {config.max_minutes:g} min reached")
            break

    if not best_path.is_file():
        raise InputError(f"{task}: training produced no checkpoint")
    best = load_checkpoint(best_path)
    return TrainResult(
        task=task,
        checkpoint=best_path,
        best_epoch=int(best["epoch"]),
        best_val_loss=best_loss,
        epochs_run=epoch,
        stopped_early=stopped_early,
        val_mae=dict(best["metrics"]["val_mae"]),
        history=history,
    )


def train(
    task: str,
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int = 60,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    patience: int = 10,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    hidden: int = 64,
    init_at_mean: bool = True,
    max_minutes: float | None = None,
    progress: bool = True,
    loss: str = "paper",
    architecture: str = "li-lerch-cnn",
    dropout: float = 0.3,
) -> TrainResult:
    """Train ``task`` on the dataset's train split, validating on its val split (different songs).

    Returns a :class:`TrainResult`; the best checkpoint is ``out_dir/<task>.pt``.
    """
    if task not in TASK_OUTPUTS:
        raise InputError(f"unknown task '{task}'; use one of {', '.join(TASK_OUTPUTS)}")
    train_data = load_arrays(dataset_dir, task, "train")
    if len(train_data) == 0:
        raise InputError(f"{dataset_dir}: the {task} train split has no examples")
    val_data = load_arrays(dataset_dir, task, "val")
    overlap = set(train_data.songs) & set(val_data.songs)
    if overlap:
        raise InputError(f"{dataset_dir}: songs in both train and val splits ({sorted(overlap)[0]}, ...)")
    config = TrainConfig(
        task=task,
        epochs=epochs,
        seed=seed,
        device=device,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        hidden=hidden,
        init_at_mean=init_at_mean,
        max_minutes=max_minutes,
        loss=loss,
        architecture=architecture,
        dropout=dropout,
    )
    metadata = {
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "data_manifest_sha256": manifest_sha256(dataset_dir),
        "train_songs": sorted(set(train_data.songs)),
        "val_songs": sorted(set(val_data.songs)),
    }
    return fit(config, train_data, val_data, out_dir, resume=resume, metadata=metadata, progress=progress)
