"""Detected beats in noise, cross-validated inside DS1: what the detector's errors cost the labels.

    python scripts/cross_validate_end_to_end.py --data-dir ../shared/data/mitdb --work-dir cv-adaptive [--seed 0]
        [--snrs 12] [--pauses 2] [--set FIELD=VALUE ...] [--noise-dir DIR] [--json]

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

``--pauses P`` first inserts sinus pauses into P % of each held-out patient's sinus intervals, in both leads
(``simsearch.signal.pauses``, as the other scripts' ``pauses<P>%`` set-up inserts them; the pauses are written
into the record's signal, so the detector meets them), before the noise: DS1 has no patient with sinus pauses,
and in noise a pause fills with detections (DS2's record 232).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import DS1
from simsearch.errors import ParameterError
from simsearch.evaluation.end_to_end import BEAT_POSITIONS, add_counts, end_to_end_figures, no_counts, record_counts
from simsearch.evaluation.metrics import se_ppv_text
from simsearch.evaluation.noise import NOISE_RECORD, check_snrs, noise_leads, noisy_copies
from simsearch.evaluation.selection import add_fold_arguments, fold_indexes, training_config
from simsearch.signal.noise import nstdb_dir
from simsearch.signal.pauses import paused_like
from simsearch.signal.records import Record, load_record, read_other_lead, write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fold_arguments(parser)
    parser.add_argument("--snrs", default="12", help="SNRs of the added noise, dB (some of nstdb's)")
    parser.add_argument("--pauses", type=float, default=0.0, metavar="PERCENT",
                        help="sinus pauses inserted into this share of each record's sinus intervals first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        snrs = check_snrs([int(s) for s in args.snrs.split(",") if s])
    except (ValueError, ParameterError) as exc:
        parser.error(f"--snrs: {exc}")
    if not 0 <= args.pauses <= 100:  # before the folds, which may train for minutes
        parser.error(f"--pauses: a share of the sinus intervals in percent, not {args.pauses:g}")

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
                if args.pauses:
                    clean = paused(clean, args.pauses / 100.0, Path(scratch) / "paused")
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
        print(json.dumps({"seed": args.seed, "pauses_percent": args.pauses,
                          "seconds": round(time.perf_counter() - start), "rows": rows}, default=int))
        return
    paused_by = f", sinus pauses in {args.pauses:g} % of the sinus intervals first" if args.pauses else ""
    print(f"DS1 folds pooled, seed {args.seed}{paused_by} ({time.perf_counter() - start:.0f} s): set-up, beats -> "
          "QRS Se / +P, N, S, V Se / +P")
    for row in rows:
        print(f"  {row['setup']:>10} {row['positions']:>15}: QRS {se_ppv_text(row['qrs'])}  "
              + "  ".join(f"{c} {se_ppv_text(row['classes'][c])}" for c in "NSV"))


def paused(record: Record, share: float, folder: Path) -> Record:
    """``record`` with sinus pauses in ``share`` of its sinus intervals, in both its leads at the same spots,
    written as a record of the same name in ``folder``: what the detector and its check read."""
    other = read_other_lead(record)
    leads = [paused_like(lead, record, share) for lead in (record, *([other] if other is not None else []))]
    folder.mkdir(exist_ok=True)
    path = write_record(folder / record.name, np.column_stack([lead.signal for lead in leads]), record.fs,
                        [lead.lead for lead in leads])
    return replace(load_record(path, lead=record.lead, annotations=None), ann_samples=leads[0].ann_samples,
                   ann_symbols=record.ann_symbols)


if __name__ == "__main__":
    main()
