"""How far the chain itself can undo the cnn-e2e degradation: settings optimised per pair.

For each validation undo pair (the fixed pairs' last eighth, as training validates), the 27
decided settings are optimised directly, by Adam on their logits from the prior's centre,
to minimise the vocal MR-STFT distance of the render to the *target* (which the oracle, unlike
any predictor, sees). The result is the chain's own floor for this degradation: no predictor
of these settings can get closer. Printed beside it, on the same pairs: the mean settings on
the degraded clip, the mean settings on the clean clip (a predictor's floor when it undoes
the degradation perfectly but cannot know the target's own draw), and any cnn-e2e
checkpoints given. The pairs are those of a training run's ``pairs.pt`` (``--pairs``) or
built from ``--dry`` with the default recipe's settings.

    OMP_NUM_THREADS=1 python scripts/e2e_oracle.py [--pairs RUN/pairs.pt] [--steps 150] [CHECKPOINT ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DRY = ROOT.parent / "shared" / "audio" / "dry"


def main(argv=None) -> int:
    from vocalmix.training import e2e

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="*", type=Path, help="cnn-e2e checkpoints to score on the same pairs")
    ap.add_argument("--pairs", type=Path, default=None, help="a training run's pairs.pt (default: build them)")
    ap.add_argument("--dry", type=Path, default=DRY, help="folder of the CC BY dry vocals")
    ap.add_argument("--steps", type=int, default=150, help="Adam steps of the per-pair optimisation")
    ap.add_argument("--lr", type=float, default=0.05, help="Adam learning rate on the settings' logits")
    ap.add_argument("--limit", type=int, default=None, help="only the first N validation pairs")
    ap.add_argument(
        "--degradation",
        choices=e2e.DEGRADATION_PARTS,
        default="all",
        help="degrade the clean clips again with only this part (seeded; the targets stay)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from vocalmix.methods.cnn_e2e import predict_units
    from vocalmix.nets import e2e_outputs as E2E
    from vocalmix.nets.checkpoints import load_checkpoint
    from vocalmix.training.losses import MultiResolutionSTFT

    if args.pairs is not None:
        pairs = torch.load(args.pairs, weights_only=True)
        config = e2e.PairConfig(**pairs["manifest"]["config"])
    else:
        config = e2e.PairConfig(n_pairs=192, synthetic_vocals=8)
        pairs = e2e.make_pairs(args.dry, config)
    # The clean clips are not stored; they are drawn again exactly as make_pairs drew them.
    sources, _ = e2e._load_sources(args.dry, config.synthetic_vocals, config.seed)
    dry, backing = e2e._draw_clips(
        sources, config.n_pairs, config.clip_seconds, np.random.default_rng([config.seed, 11])
    )
    if not torch.equal(backing, pairs["backing"]):
        print(f"{args.pairs}: its clips are not the ones {args.dry} gives; pass the dry folder it was built from")
        return 2
    n_val = max(1, int(round(config.n_pairs * config.val_fraction)))
    idx = torch.arange(config.n_pairs - n_val, config.n_pairs)[: args.limit]
    sr = e2e.SAMPLE_RATE
    tgt, deg, bak, clean = pairs["target"][idx], pairs["degraded"][idx], pairs["backing"][idx], dry[idx]
    if args.degradation != "all":
        deg, _ = e2e.degrade(clean, sr, torch.Generator().manual_seed(7), e2e.degradation_part(args.degradation))
    stft = MultiResolutionSTFT()
    centre = E2E.to_unit(e2e.prior_centre()).clamp(1e-3, 1 - 1e-3)

    def distance(x, u):
        out, _ = e2e.render(x, bak, E2E.to_physical(u), sr, config.fdn_lines)
        return stft(out, tgt, per_item=True)

    rows = {}
    with torch.no_grad():
        mean_u = centre.expand(len(idx), -1)
        rows["mean settings"] = distance(deg, mean_u)
        rows["bound: clean clip + mean settings"] = distance(clean, mean_u)
        for path in args.checkpoints:
            payload = load_checkpoint(path)
            model = e2e.build_predictor(payload["model_config"]["hidden"])
            model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
            model.eval()
            rows[str(path)] = distance(deg, predict_units(model, e2e.clip_blocks(deg, bak)))

    logits = torch.log(centre / (1 - centre)).expand(len(idx), -1).clone().requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=args.lr)
    start = time.perf_counter()
    for step in range(args.steps):
        d = distance(deg, torch.sigmoid(logits))
        opt.zero_grad()
        d.mean().backward()
        opt.step()
        if (step + 1) % 25 == 0:
            print(
                f"oracle step {step + 1}: {float(d.detach().mean()):.4f} ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    with torch.no_grad():
        rows["oracle: settings optimised on the target"] = distance(deg, torch.sigmoid(logits))

    mean = float(rows["mean settings"].mean())
    print(
        f"\n{len(idx)} validation undo pairs ({config.clip_seconds} s clips, {config.fdn_lines} FDN lines), "
        f"degradation: {args.degradation}:\n"
    )
    print("| row | vocal MR-STFT to target | below mean settings |")
    print("|---|---|---|")
    for name, d in rows.items():
        print(f"| {name} | {float(d.mean()):.3f} ± {float(d.std()):.3f} | {100 * (1 - float(d.mean()) / mean):.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
