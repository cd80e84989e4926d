"""``vocalmix train`` and ``vocalmix evaluate``: typer command functions.

``vocalmix.cli`` lists them in ``LAZY_COMMANDS``: this module (and torch) is imported only
when one of them runs, so its imports can be plain module-level ones.

Bad input raises :class:`~vocalmix.errors.InputError`, which the main CLI prints as
one line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vocalmix.errors import InputError
from vocalmix.methods.cnn import default_model_dir
from vocalmix.nets.cnn_targets import TASKS

from .e2e import train_e2e_command
from .evaluate import cross_validate, evaluate
from .train import train
from .waveunet_train import train_waveunet_command

_TASKS_HELP = ", ".join(TASKS)


def train_command(
    task: str = typer.Argument(
        ...,
        help=f"Which model to train: {_TASKS_HELP}, or 'all'; or cnn-e2e "
        "(end to end through the effects; DATASET is then a folder of dry vocals "
        "or synthetic:N); or waveunet (Wave-U-Net mixer; DATASET is then a song "
        "source: MUSDB18-HQ, song folders, a CSV, MIR-1K files or synthetic:N).",
    ),
    dataset: Path = typer.Argument(
        ...,
        help="For the CNN tasks: a folder made by `vocalmix dataset build` (has "
        "manifest.json); for cnn-e2e and waveunet: see TASK.",
    ),
    out: Path = typer.Option(
        Path("models"),
        "--out",
        "-o",
        help="Folder for <task>.pt (best), <task>.last.pt (resume state) and <task>.log.csv.",
    ),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", min=1, help="Maximum number of epochs (default 60; waveunet: 1000 per step)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed and data give the same model."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/<task>.last.pt if it exists."),
    patience: Optional[int] = typer.Option(
        None,
        "--patience",
        min=1,
        help="Stop after this many epochs without a lower validation loss (default 10; waveunet 20).",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=2, help="Examples per step (default: 25, EQ 30, as published)."
    ),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Adam learning rate (default: the published per-task value)."
    ),
    weight_decay: Optional[float] = typer.Option(
        None, "--weight-decay", help="Adam weight decay (default: 1e-5 for reverb, else 0)."
    ),
    hidden: int = typer.Option(64, "--hidden", min=0, help="Hidden width of the MLP head (0: one linear layer)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop a task after this much wall time."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines on stderr."),
    loss: str = typer.Option(
        "paper",
        "--loss",
        help="paper: the published losses (MSE; EQ weights unchanged bands 0.1); mse: plain MSE "
        "on every target (the default models' EQ); l1: mean absolute error.",
    ),
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help="cnn-e2e: start from this model folder or checkpoint: a cnn-e2e checkpoint gives the whole "
        "predictor, a parameter-trained CNN folder the convolutional layers of its first CNN "
        "(eq, compression, reverb, level).",
    ),
    steps: int = typer.Option(600, "--steps", min=1, help="cnn-e2e: optimiser steps."),
    pairs: int = typer.Option(256, "--pairs", min=8, help="cnn-e2e: undo pairs built from DATASET."),
    synthetic_vocals: int = typer.Option(
        0, "--synthetic-vocals", min=0, help="cnn-e2e: also use this many synthetic vocals."
    ),
    fresh_pairs: bool = typer.Option(
        False,
        "--fresh-pairs",
        help="cnn-e2e: draw new undo pairs every step (seeded by step); the fixed pairs only validate.",
    ),
    lr_final: Optional[float] = typer.Option(
        None, "--lr-final", help="cnn-e2e: cosine decay of the learning rate to this over --steps (default: constant)."
    ),
    val_every: Optional[int] = typer.Option(
        None, "--val-every", min=1, help="cnn-e2e: validate (and keep the best checkpoint) every N steps (default 50)."
    ),
    context_blocks: int = typer.Option(
        1,
        "--context-blocks",
        min=1,
        help="cnn-e2e with --fresh-pairs: train on clips of this many feature blocks (1.6 s each), "
        "the settings averaged over them as at inference.",
    ),
    formant_voices: int = typer.Option(
        0,
        "--formant-voices",
        min=0,
        help="cnn-e2e with --fresh-pairs: also train on this many source-filter synthetic voices.",
    ),
    target: str = typer.Option(
        "reference",
        "--target",
        help="waveunet: reference (the songs' own mixes), rules or "
        "cnn (mixes rendered by that method), auto (reference where there is one, else rules).",
    ),
    layout: str = typer.Option("auto", "--layout", help="waveunet: auto, musdb, folders, csv or mir1k."),
    layers: int = typer.Option(10, "--layers", min=1, help="waveunet: U-Net levels."),
    filters: int = typer.Option(24, "--filters", min=1, help="waveunet: extra filters per level."),
    output_window: int = typer.Option(16384, "--output-window", min=1, help="waveunet: output samples per window."),
    steps_per_epoch: int = typer.Option(200, "--steps-per-epoch", min=1, help="waveunet: updates per epoch."),
    finetune: bool = typer.Option(
        True, "--finetune/--no-finetune", help="waveunet: fine-tuning step after early stopping."
    ),
    augment: bool = typer.Option(
        False,
        "--augment",
        help="waveunet: swap left/right and scale examples by +-6 dB; cnn-e2e (with --fresh-pairs): each "
        "drawn clip as another voice (speed +-4 semitones, another microphone and recording).",
    ),
):
    """Train a model on a dataset, validating on held-out songs: the Li & Lerch CNN regressors, cnn-e2e or the
    Wave-U-Net."""
    if task == "cnn-e2e":
        train_e2e_command(
            dataset,
            out,
            init=init,
            steps=steps,
            pairs=pairs,
            synthetic_vocals=synthetic_vocals,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
            resume=resume,
            max_minutes=max_minutes,
            quiet=quiet,
            fresh_pairs=fresh_pairs,
            lr_final=lr_final,
            val_every=val_every,
            augment_voices=augment,
            formant_voices=formant_voices,
            context_blocks=context_blocks,
        )
        return
    if task == "waveunet":
        train_waveunet_command(
            dataset,
            out,
            target=target,
            layout=layout,
            layers=layers,
            filters=filters,
            output_window=output_window,
            steps_per_epoch=steps_per_epoch,
            finetune=finetune,
            augment=augment,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
            resume=resume,
            max_minutes=max_minutes,
            quiet=quiet,
        )
        return
    epochs, patience = epochs or 60, patience or 10
    tasks = list(TASKS) if task == "all" else [task]
    if any(t not in TASKS for t in tasks):
        raise InputError(f"unknown task '{task}'; use one of {_TASKS_HELP} or all")
    if not dataset.exists():
        raise InputError(f"{dataset}: dataset folder not found")
    if loss not in ("paper", "mse", "l1"):
        raise InputError(f"--loss {loss!r}: choose paper, mse or l1")
    for t in tasks:
        result = train(
            t,
            dataset,
            out,
            epochs=epochs,
            seed=seed,
            device=device,
            resume=resume,
            patience=patience,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            hidden=hidden,
            max_minutes=max_minutes,
            progress=not quiet,
            loss=loss,
        )
        mae = ", ".join(f"{k} {v:.3g}" for k, v in result.val_mae.items())
        typer.echo(
            f"{t}: best epoch {result.best_epoch} of {result.epochs_run}, validation loss "
            f"{result.best_val_loss:.4g}; MAE {mae} -> {result.checkpoint}"
        )


def evaluate_command(
    dataset: Path = typer.Argument(..., help="Dataset folder (has manifest.json)."),
    models: Optional[Path] = typer.Option(
        None, "--models", "-m", help="Folder with <task>.pt checkpoints (default: the shipped models)."
    ),
    split: str = typer.Option("test", "--split", help="Held-out split to score: test or val."),
    folds: int = typer.Option(
        0,
        "--folds",
        min=0,
        help="k-fold cross-validation by song over all splits (trains k models per task; "
        "ignores --models). 0 = score the given models on --split.",
    ),
    tasks: Optional[list[str]] = typer.Option(None, "--task", "-t", help=f"Only these tasks ({_TASKS_HELP})."),
    aggregate: str = typer.Option(
        "song",
        "--aggregate",
        help="song: average outputs over a song's blocks, as inference does; block: score every block.",
    ),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the table as CSV here."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Epochs per fold (with --folds)."),
    seed: int = typer.Option(0, "--seed", help="Seed for fold assignment and training (with --folds)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto (with --folds)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines (with --folds)."),
):
    """Mean absolute error per target (physical units) on held-out songs, CNN vs the training-mean baseline."""
    for t in tasks or []:
        if t not in TASKS:
            raise InputError(f"unknown task '{t}'; use one of {_TASKS_HELP}")
    if aggregate not in ("song", "block"):
        raise InputError(f"--aggregate {aggregate!r}: choose song or block")
    if split not in ("test", "val"):
        raise InputError(f"--split {split!r}: choose test or val")
    if not dataset.exists():
        raise InputError(f"{dataset}: dataset folder not found")
    if folds == 1:
        raise InputError("--folds must be 0 (no cross-validation) or at least 2")
    if folds:
        result = cross_validate(
            dataset,
            folds=folds,
            tasks=tasks,
            epochs=epochs,
            seed=seed,
            device=device,
            aggregate=aggregate,
            progress=not quiet,
        )
    else:
        result = evaluate(dataset, models or default_model_dir(), tasks=tasks, split=split, aggregate=aggregate)
    typer.echo(result.format_table())
    if csv is not None:
        result.to_csv(csv)
        typer.echo(f"wrote {csv}", err=True)
