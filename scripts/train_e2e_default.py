"""Train the shipped cnn-e2e checkpoint (vocalmix/models/cnn_e2e/cnn_e2e.pt).

Data whose licence allows shipping weights only: the CC BY dry vocals in
``shared/audio/dry`` (vocadito, VocalSet) plus synthetic vocals, synthetic backings, undo
pairs made from them (see ``vocalmix.training.e2e``). Starts from the convolutional layers
of the shipped parameter-trained CNNs (``--init vocalmix/models/cnn``: its first Li & Lerch
CNN, ``compression.pt``, since ``eq.pt`` is a spectrum MLP), or from any model folder or
checkpoint ``--init`` names (a cnn-e2e checkpoint continues as a whole; ``--init none``:
fresh weights), and trains through ``train_e2e_command`` (what ``vocalmix train cnn-e2e``
runs, which takes the same options: ``--fresh-pairs --lr-final --val-every --augment
--formant-voices``) with two recipe choices the command's defaults do not make: new undo
pairs every step (``fresh_pairs``; the fixed pairs only validate) and a cosine
learning-rate decay. Resumable (run it again to continue); at the end it copies the best
checkpoint as float16 into the package (``--no-ship``: not). The model card gives the
commands of the shipped checkpoint.

    OMP_NUM_THREADS=1 python scripts/train_e2e_default.py [--work DIR] [--steps N] [--max-minutes M]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRY = ROOT.parent / "shared" / "audio" / "dry"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("e2e-default-run"))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--pairs", type=int, default=192, help="fixed pairs; the last eighth validates")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-final", type=float, default=5e-5, help="cosine decay to this over --steps")
    ap.add_argument("--val-every", type=int, default=25)
    ap.add_argument("--fixed-pairs", action="store_true", help="cycle the fixed pairs instead of fresh ones")
    ap.add_argument("--synthetic-vocals", type=int, default=8)
    ap.add_argument("--formant-voices", type=int, default=0, help="source-filter synthetic voices (fresh pairs)")
    ap.add_argument("--augment", action="store_true", help="each drawn clip as another voice (fresh pairs)")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--dry", type=Path, default=DRY, help="folder of the CC BY dry vocals")
    ap.add_argument(
        "--init",
        default=str(ROOT / "vocalmix" / "models" / "cnn"),
        help="model folder or checkpoint that starts the predictor (a parameter-trained CNN's "
        "convolutional layers, or a whole cnn-e2e checkpoint); 'none' for fresh weights",
    )
    ap.add_argument("--no-ship", action="store_true", help="do not copy the best checkpoint into the package")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from vocalmix.methods.cnn_e2e import CHECKPOINT_NAME
    from vocalmix.training.e2e import train_e2e_command
    from vocalmix.training.train import shrink_checkpoint

    torch.set_num_threads(1)
    if not args.dry.is_dir():
        print(f"{args.dry}: the CC BY dry vocals are not here", file=sys.stderr)
        return 2
    resume = (args.work / "cnn_e2e.last.pt").exists()
    train_e2e_command(
        args.dry,
        args.work,
        init=None if args.init == "none" else Path(args.init),
        steps=args.steps,
        pairs=args.pairs,
        synthetic_vocals=args.synthetic_vocals,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        resume=resume,
        max_minutes=args.max_minutes,
        fresh_pairs=not args.fixed_pairs,
        lr_final=args.lr_final,
        val_every=args.val_every,
        augment_voices=args.augment,
        formant_voices=args.formant_voices,
    )
    if args.no_ship:
        return 0
    dst = ROOT / "vocalmix" / "models" / "cnn_e2e" / CHECKPOINT_NAME
    shrink_checkpoint(args.work / CHECKPOINT_NAME, dst)
    print(f"shipped {dst} ({dst.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
