"""The simulated expert cross-validated inside DS1: how the adaptive settings are chosen.

    python scripts/cross_validate_adaptive.py --data-dir ../shared/data/mitdb --work-dir cv-adaptive
        [--budgets 0,5,10,20] [--alpha 0.99] [--expert-weight 20] [--rounds 3] [--leads auto|one|both] [--json]

DS1's records are dealt into the folds of scripts/cross_validate.py; for each fold an
encoder is trained on the other folds and an index of their beats is built (kept in
--work-dir and reused by later runs with the same training settings), and the simulated
expert of `simsearch evaluate --task adaptive` labels the held-out fold's records from
that index. Figures are pooled over all 22 DS1 patients. DS2 is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import DS1  # noqa: E402
from simsearch.evaluation.adaptive import ROUNDS, evaluate_adaptive  # noqa: E402
from simsearch.evaluation.metrics import class_metrics  # noqa: E402
from simsearch.evaluation.selection import fold_indexes  # noqa: E402
from simsearch.label.spreading import EXPERT_WEIGHT, SPREAD_ALPHA  # noqa: E402
from simsearch.model.leads import DEFAULT_LEADS, LEAD_CHOICES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--work-dir", required=True, help="where the folds' encoders and indexes are kept")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--budgets", default="0,5,10,20")
    parser.add_argument("--alpha", type=float, default=SPREAD_ALPHA)
    parser.add_argument("--expert-weight", type=float, default=EXPERT_WEIGHT)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--leads", choices=LEAD_CHOICES, default=DEFAULT_LEADS, help="what the folds' indexes hold")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",") if b]

    start = time.perf_counter()
    pooled: dict[str, np.ndarray] = {}
    for fold, index in fold_indexes(DS1, args.data_dir, args.work_dir, n_folds=args.folds, progress=not args.json,
                                    leads=args.leads):
        report = evaluate_adaptive(index, fold, budgets, args.data_dir, progress=not args.json, rounds=args.rounds,
                                   alpha=args.alpha, expert_weight=args.expert_weight)
        for key, figures in report["budgets"].items():
            pooled[key] = pooled.get(key, 0) + np.array(figures["confusion"])
    result = {"leads": index.leads, "alpha": args.alpha, "expert_weight": args.expert_weight, "rounds": args.rounds,
              "seconds": round(time.perf_counter() - start),
              "budgets": {key: class_metrics(matrix) for key, matrix in pooled.items()}}
    if args.json:
        print(json.dumps(result))
        return
    print(f"simulated expert, DS1 folds pooled (alpha {args.alpha}, expert weight {args.expert_weight}, "
          f"{args.rounds} rounds; {result['seconds']} s)")
    print("labels/record | " + " | ".join(f"{c} Se / +P" for c in "NSVF"))
    for key, figures in result["budgets"].items():
        print(f"{key:>13s} | " + " | ".join(
            f"{figures['classes'][c]['se']} / {figures['classes'][c]['ppv']}" for c in "NSVF"))


if __name__ == "__main__":
    main()
