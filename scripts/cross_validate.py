"""Patient-disjoint cross-validation inside DS1: how training and vote settings are chosen.

    python scripts/cross_validate.py --data-dir ../shared/data/mitdb [--folds 4] [--set context_weight=4 ...] [--json]

DS1's records are dealt into folds balanced for S, V and F beats; each fold is held
out in turn while an encoder trains on the others. The held-out beats' neighbors are
kept at every checkpoint, so the figures pooled over all 22 DS1 patients can be
read for every training length and vote setting (k, prior strength, boosted
classes). DS2 is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import DS1  # noqa: E402
from simsearch.evaluation.selection import cross_validate, cv_scores  # noqa: E402
from simsearch.model.datasets import BeatSet, load_beats  # noqa: E402
from simsearch.model.training import TrainingConfig  # noqa: E402
from simsearch.label.vote import BOOSTED_CLASSES, PRIOR_ALPHA, VOTE_K  # noqa: E402

VOTE_GRID = [(k, alpha, boosted) for k in (30, 50, 100) for alpha in (0.0, 0.25, 0.5, 0.75, 1.0)
             for boosted in (("S", "V", "F"), ("S", "V"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainingConfig field (JSON value)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = replace(TrainingConfig(), **{k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)})

    start = time.perf_counter()
    beats = BeatSet.stack(load_beats(DS1, args.data_dir))
    cv = cross_validate(beats, config, n_folds=args.folds, progress=not args.json)
    seconds = time.perf_counter() - start
    default_vote = cv_scores(cv, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES)
    best_step = max(default_vote, key=lambda s: default_vote[s]["score"])
    grid = []
    for k, alpha, boosted in VOTE_GRID:
        figures = cv_scores(cv, k, alpha, boosted)
        step = max(figures, key=lambda s: figures[s]["score"])
        grid.append({"k": k, "alpha": alpha, "boosted": "".join(boosted), "best_step": step,
                     "score": figures[step]["score"],
                     **{f"{c}_{key}": figures[step]["classes"][c][key] for c in "NSVF" for key in ("se", "ppv")}})
    report = {"config": config.__dict__, "folds": cv["folds"], "seconds": round(seconds),
              "default_vote": {"k": VOTE_K, "alpha": PRIOR_ALPHA, "boosted": "".join(BOOSTED_CLASSES),
                               "by_step": {s: {"score": f["score"], **{f"{c}_{key}": f["classes"][c][key]
                                                                       for c in "NSVF" for key in ("se", "ppv")}}
                                           for s, f in default_vote.items()}, "best_step": best_step},
              "vote_grid": sorted(grid, key=lambda g: -g["score"])}
    if args.json:
        print(json.dumps(report))
        return
    print(f"folds: {cv['folds']}  ({seconds:.0f} s)")
    print(f"default vote (k={VOTE_K}, alpha={PRIOR_ALPHA}, boosted {''.join(BOOSTED_CLASSES)}), pooled over DS1:")
    for step, row in report["default_vote"]["by_step"].items():
        print(f"  step {step:5d}  score {row['score']:6.2f}  " + "  ".join(
            f"{c} {row[f'{c}_se']}/{row[f'{c}_ppv']}" for c in "NSVF"))
    print("vote settings, each at its best step (top 10):")
    for g in report["vote_grid"][:10]:
        print(f"  k {g['k']:3d} alpha {g['alpha']:.2f} boost {g['boosted']:4s} step {g['best_step']:4d} "
              f"score {g['score']:6.2f}  " + "  ".join(f"{c} {g[f'{c}_se']}/{g[f'{c}_ppv']}" for c in "NSVF"))


if __name__ == "__main__":
    main()
