"""Detected beats in noise, cross-validated inside DS1: what the detector's errors cost the labels.

    python scripts/cross_validate_end_to_end.py --data-dir ../shared/data/mitdb --work-dir cv-adaptive [--seed 0]
        [--snrs 12] [--set FIELD=VALUE ...] [--noise-dir DIR] [--json]

`simsearch evaluate --task noise` scores DS2 with nstdb's ``em`` noise added, end to end: beats detected on the
noisy signal (and checked in its other lead), labeled by the DS1 index, matched to the reference. The
cross-validation scripts vote on noisy DS1 beats cut at the reference annotations, so they cannot see what the
detector's false detections and misses do to the rhythm context of the beats around them. This script does it
inside DS1: per fold of ``scripts/cross_validate_adaptive.py`` (the same encoders and indexes, kept in --work-dir
and trained there if missing), each held-out record clean and with ``em`` added at each SNR (both leads, as the
noise task adds it), its beats cut three ways (``simsearch.evaluation.end_to_end.BEAT_POSITIONS``): as detected,
at the reference positions, and as detected without the false detections. Figures are pooled over the 22 DS1
patients, EC57's way (a missed beat counts against its class's Se, an extra one against the +P of the class it
was given). DS2 is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import DS1
from simsearch.evaluation.end_to_end import BEAT_POSITIONS, add_counts, end_to_end_figures, no_counts, record_counts
from simsearch.evaluation.noise import NOISE_RECORD, check_snrs, noise_leads, noisy_copies
from simsearch.evaluation.selection import fold_indexes, training_config, training_setting
from simsearch.signal.noise import nstdb_dir
from simsearch.signal.records import load_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--work-dir", required=True, help="where the folds' encoders and indexes are kept")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="training seed of the folds' encoders")
    parser.add_argument("--snrs", default="12", help="SNRs of the added noise, dB (some of nstdb's)")
    parser.add_argument("--set", action="append", default=[], type=training_setting, metavar="FIELD=VALUE",
                        help="override another TrainingConfig field of the folds' encoders (JSON value)")
    parser.add_argument("--noise-dir", default=None, help="nstdb directory (default: nstdb beside --data-dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    snrs = check_snrs([int(s) for s in args.snrs.split(",") if s])

    start = time.perf_counter()
    noise_dir = nstdb_dir(args.noise_dir, args.data_dir)
    config = training_config(args.set, seed=args.seed)
    folds = fold_indexes(DS1, args.data_dir, args.work_dir, config, n_folds=args.folds, progress=not args.json,
                         noise_dir=noise_dir)
    noise = noise_leads(NOISE_RECORD, noise_dir)
    setups = ["clean", *(f"{NOISE_RECORD} {snr} dB" for snr in snrs)]
    totals = {(setup, positions): no_counts() for setup in setups for positions in BEAT_POSITIONS}
    with tempfile.TemporaryDirectory(prefix="simsearch-cv-noise-") as scratch:
        for number, (fold, index) in enumerate(folds):
            for i, name in enumerate(fold):
                clean = load_record(name, args.data_dir)
                copies = [("clean", clean)] + [(f"{NOISE_RECORD} {snr} dB", noisy) for snr, noisy in
                                               noisy_copies(clean, noise, snrs, 100 * number + i, Path(scratch))]
                for setup, record in copies:  # noisy_copies writes each copy over the last: score it at once
                    for positions in BEAT_POSITIONS:
                        totals[setup, positions] = add_counts(totals[setup, positions],
                                                              record_counts(index, record, positions=positions))
                if not args.json:
                    print(f"fold {number + 1}/{len(folds)}: {name} done, {time.perf_counter() - start:.0f} s",
                          file=sys.stderr, flush=True)
    rows = [{"setup": setup, "positions": positions, **end_to_end_figures(totals[setup, positions])}
            for setup in setups for positions in BEAT_POSITIONS]
    if args.json:
        print(json.dumps({"seed": args.seed, "seconds": round(time.perf_counter() - start), "rows": rows},
                         default=int))
        return
    print(f"DS1 folds pooled, seed {args.seed} ({time.perf_counter() - start:.0f} s): set-up, beats -> QRS Se / +P, "
          "N, S, V Se / +P")
    for row in rows:
        print(f"  {row['setup']:>10} {row['positions']:>15}: QRS {row['qrs']['se']} / {row['qrs']['ppv']}  "
              + "  ".join(f"{c} {row['classes'][c]['se']} / {row['classes'][c]['ppv']}" for c in "NSV"))


if __name__ == "__main__":
    main()
