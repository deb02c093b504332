"""Both leads as two views of each beat, cross-validated inside DS1: the weight of ``build --leads both``.

    python scripts/cross_validate_second_lead.py --data-dir ../shared/data/mitdb [--seed 0] [--weights 0,0.5,1,1.5]
        [--alphas 0.25,0.5] [--balances 1,0.5] [--patient-strengths 0,0.5] [--set FIELD=VALUE ...]
        [--fixed-weights 2,1,1,1,1,1,1,1,1.5/3,1,1,1,1,1,1,1,1.5]
        [--setups 128Hz,marks+40ms,em12dB,pauses2%,swapped-leads,brady_apc,em12dB~brady_apc] [--paced-in-index]
        [--noise-dir DIR] [--by-rhythm] [--json]

Per fold (4 patient-disjoint folds, dealt as ``scripts/cross_validate.py`` deals them) an
encoder trains on the other folds' beats in their default lead (MLII) and on their noisy
copies (``--noise-dir``, nstdb beside the data directory by default), exactly as the packaged
encoder is trained (with ``--set simulated_rhythms=true``, also on their synthetic rhythms; before
2026-11-23 the script always trained on those, the packaged encoder never). That one encoder then
embeds every beat twice: in its record's default lead and in the record's other lead
(V1 in most DS1 records; V2, V4 or V5 in a few), and the kNN vote of the product (k=100,
S and V boosted, each prior strength of ``--alphas``, record balance of ``--balances`` and each held-out record's
adaptation to its own class mix of ``--patient-strengths``) runs
on the two vectors side by side, the other lead's scaled by ``w`` (then normalised). ``w = 0`` is an index of one lead.
Real DS1 records only (the synthetic rhythms have one lead); DS2 is never read. ``--setups``
also votes on the held-out patients resampled to other rates, with their annotations moved, with
an nstdb noise record added at an SNR or with sinus pauses in a share of their sinus intervals (``128Hz``,
``marks+40ms``, ``em12dB``: the noise test's noise, from ``--noise-dir``; ``pauses2%``; both leads), by the
same index at MIT-BIH's rate: what a deployed index of both leads meets in another database's recordings
(``other-lead`` gives the other lead in both views; ``swapped-leads`` the two views swapped, V1 first, as a
database whose first lead is not MLII gives them);
a synthetic rhythm's name (``brady_apc``: record 232's pattern, ``simsearch.model.rhythms.RHYTHMS``, the
confounders ``sinus_arrhythmia`` and ``atrial_flutter`` among them: normal beats that come early), alone or
after a set-up (``em12dB~brady_apc``), votes on each held-out patient's beats re-sequenced so, in both leads.
``--paced-in-index`` also votes with each fold's index holding the four paced records (102, 104, 107, 217;
never scored) beside its DS1 records, as an index of all 48 records does: what its paced beats (AAMI
class Q) do to the votes on patients without a pacemaker.
``--by-rhythm`` also prints, for the records as recorded, each reference rhythm's figures (the records' rhythm
annotations: sinus, fibrillation, flutter, bigeminy...) and how many of its beats that are not S were called S.
``--fixed-weights`` also scores the fold encoders with their fixed context part weighed per input otherwise
(each list as ``FIXED_INPUT_WEIGHTS`` gives them, times the context weight): the learned shape part and the
inputs are the same, so the vectors are recombined (``simsearch.evaluation.selection.fixed_weighted``), exactly
what encoders built with those weights would give, without training again.

Why a script of its own: one encoder per fold embeds each held-out beat in both leads
once, and every weight and prior strength is scored from those embeddings: the weight by
the mean score (``SECOND_LEAD_WEIGHT``), the prior strength by the shortfall from the
targets (``simsearch.label.vote.PRIOR_ALPHA``). An index of both leads is what ``build``
makes of two-lead records (``simsearch.model.leads.DEFAULT_LEADS``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import AAMI_CLASSES, DS1, PACED
from simsearch.errors import ParameterError
from simsearch.evaluation.classification import (
    beat_rhythms,
    grouped_confusion,
    knn_search,
    largest_first,
    nsv_score,
    record_codes,
    record_figures,
    shown_classes,
    target_shortfall,
    vote_predict,
)
from simsearch.evaluation.metrics import class_metrics, confusion_matrix, precision_at_k, se_ppv_text
from simsearch.evaluation.selection import (
    concatenate,
    fixed_weight_lists,
    fixed_weighted,
    recorded_otherwise,
    shape_and_inputs,
    training_config,
    training_setting,
)
from simsearch.label.query import DEFAULT_K
from simsearch.label.vote import PATIENT_PRIOR_STRENGTH, PRIOR_ALPHA, RECORD_BALANCE, VOTE_K
from simsearch.model.datasets import BeatSet, in_other_lead, load_beats, noisy_beats, patient_folds
from simsearch.model.encoder import Encoder
from simsearch.model.leads import side_by_side
from simsearch.model.rhythms import simulate_rhythms, source_record
from simsearch.model.training import train_encoder
from simsearch.signal.noise import nstdb_dir

REPO = Path(__file__).resolve().parents[1]
# precision@10 counts the nearest DEFAULT_K neighbors (the embedding alone), and the first DEFAULT_K a query shows,
# the vote's class first (vote_first: "shown"). The synthetic rhythms show what DS1's own patients cannot (for S,
# nearest first, seed 0, the packaged settings of 2026-11-24: 0.72 as recorded, 0.46 in the record-232 pattern,
# 0.33 there with `em` at 12 dB; DS2 0.38).


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "mitdb")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--set", action="append", default=[], type=training_setting, metavar="FIELD=VALUE",
                        help="override another TrainingConfig field (JSON value)")
    parser.add_argument("--weights", default="0,0.5,1,1.5", help="weights of the other lead's vector")
    parser.add_argument("--alphas", default=str(PRIOR_ALPHA), help="strengths of the vote's class-prior correction")
    parser.add_argument("--patient-strengths", default=str(PATIENT_PRIOR_STRENGTH),
                        help="how far each held-out record's vote moves toward its own class mix (0: not at all)")
    parser.add_argument("--balances", default=str(RECORD_BALANCE),
                        help="how much of its weight a source record keeps in a vote (1: a plain vote)")
    parser.add_argument("--setups", default="",
                        help="also the held-out beats resampled, their annotations moved, noise added or sinus "
                             "pauses inserted, e.g. 128Hz,marks+40ms,em12dB,pauses2%%; or re-sequenced into a "
                             "synthetic rhythm, alone or so recorded, e.g. brady_apc,em12dB~brady_apc")
    parser.add_argument("--paced-in-index", action="store_true",
                        help="each fold's index also holds the paced records, as an index of all 48 does")
    parser.add_argument("--noise-dir", type=Path, default=None,
                        help="nstdb directory of the training noise (default: nstdb beside --data-dir)")
    parser.add_argument("--fixed-weights", default="", metavar="W,W,.../W,W,...",
                        help="also the fixed context part weighed per input by each of these lists (slash-"
                             "separated; as FIXED_INPUT_WEIGHTS gives them), recombined without training again")
    parser.add_argument("--by-rhythm", action="store_true",
                        help="also each reference rhythm's figures, the records as recorded")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    alphas = [float(a) for a in args.alphas.split(",")]
    balances = [float(b) for b in args.balances.split(",")]
    strengths = [float(s) for s in args.patient_strengths.split(",")]
    setups = [name for name in args.setups.split(",") if name]
    indexes = ["DS1", *(["DS1 + paced"] if args.paced_in_index else [])]
    config = training_config(args.set, seed=args.seed)
    try:
        fixed = {"as trained": None, **fixed_weight_lists(args.fixed_weights, config)}
    except ParameterError as exc:
        parser.error(str(exc))
    settings = [(setup, w, a, b, s, index, f) for setup in ["as recorded", *setups] for w in weights
                for a in alphas for b in balances for s in strengths for index in indexes for f in fixed]
    start = time.time()

    records = load_beats(DS1, args.data_dir)
    first = BeatSet.stack(records)
    second = BeatSet.stack(in_other_lead(DS1, records, args.data_dir))  # each record's default lead read once
    if len(second) != len(first) or not np.array_equal(second.labels, first.labels):
        raise SystemExit("error: the two leads gave different beats")  # both are cut at the reference annotations
    views = {"as recorded": (first, second)}
    rhythms = beat_rhythms(first, DS1, args.data_dir) if args.by_rhythm else None
    by_rhythm = {}  # setting -> rhythm -> confusion matrix, the records as recorded
    for setup in setups:
        views[setup] = (recorded_otherwise(DS1, args.data_dir, setup, noise_dir=args.noise_dir),
                        recorded_otherwise(DS1, args.data_dir, setup, second_lead=True, noise_dir=args.noise_dir))
        if not np.array_equal(views[setup][0].labels, views[setup][1].labels):
            raise SystemExit(f"error: the two leads gave different beats at {setup}")
    paced = load_beats(PACED, args.data_dir) if args.paced_in_index else []
    paced_views = (BeatSet.stack(paced), BeatSet.stack(in_other_lead(PACED, paced, args.data_dir))) if paced else ()
    noise_dir = nstdb_dir(args.noise_dir, args.data_dir)
    extra_beats = noisy_beats(DS1, args.data_dir, noise_dir, config.noise_snrs_db,
                              noises=config.noise_records) + (
        simulate_rhythms(records, seed=0) if config.simulated_rhythms else [])
    extra = BeatSet.stack(extra_beats) if extra_beats else None  # trained on beside the fold's real beats
    sources = np.array([source_record(g) for g in extra.groups]) if extra is not None else np.empty(0)
    matrices = {setting: np.zeros((len(AAMI_CLASSES),) * 2, dtype=np.int64) for setting in settings}
    shown = {}  # (setup, weight, index, fixed) -> per fold: held-out beats' classes, their first DEFAULT_K neighbors'
    print(f"loaded {len(first)} beats in two leads, {time.time() - start:.0f} s", file=sys.stderr, flush=True)

    for number, fold in enumerate(patient_folds(first, args.folds), 1):
        held = np.isin(first.groups, fold)
        train = first.subset(~held)
        train_all = concatenate(train, extra.subset(~np.isin(sources, fold))) if extra is not None else train
        final = {"checkpoints": 0}
        held_views = {setup: tuple(view.subset(np.isin([source_record(g) for g in view.groups], fold)) for view in pair)
                      for setup, pair in views.items()}  # a synthetic rhythm's beats are its patient's
        parts = (train, second.subset(~held), *paced_views, *[part for pair in held_views.values() for part in pair])

        def at_checkpoint(model, final=final, parts=parts):  # embed at the last checkpoint only: it trains all steps
            final["checkpoints"] += 1
            if final["checkpoints"] == config.steps // config.eval_every:
                encoder = Encoder(model)
                final["parts"] = [shape_and_inputs(encoder, part.windows, part.context) for part in parts]
                final["scale"] = encoder.fixed_scale
            return {"score": 0.0}

        train_encoder(train_all, replace(config, patience=config.steps), checkpoint=at_checkpoint)
        for name, scale in fixed.items():
            train_1, train_2, *held_vectors = [fixed_weighted(*part, final["scale"] if scale is None else scale)
                                               for part in final["parts"]]
            stored = {"DS1": (train_1, train_2, train.labels, train.groups)}
            if paced_views:  # the paced records' beats join the fold's index, in both leads
                paced_1, paced_2, *held_vectors = held_vectors
                stored["DS1 + paced"] = (np.concatenate([train_1, paced_1]), np.concatenate([train_2, paced_2]),
                                         np.concatenate([train.labels, paced_views[0].labels]),
                                         np.concatenate([train.groups, paced_views[0].groups]))
            held_pairs = list(zip(held_vectors[0::2], held_vectors[1::2]))
            for index, (index_1, index_2, index_labels, index_records) in stored.items():
                counts = np.bincount(index_labels, minlength=len(AAMI_CLASSES))
                for (setup, (held_first, _)), (held_1, held_2) in zip(held_views.items(), held_pairs):
                    for w in weights:
                        distances, rows = knn_search(side_by_side(index_1, index_2, w),
                                                     side_by_side(held_1, held_2, w), VOTE_K)
                        neighbor_records = record_codes(index_records)[rows]
                        shown.setdefault((setup, w, index, name), []).append(
                            (held_first.labels, index_labels[rows[:, :DEFAULT_K]],
                             shown_classes(index_labels[rows], distances, counts, neighbor_records)[:, :DEFAULT_K]))
                        for alpha in alphas:
                            for balance, strength in ((b, s) for b in balances for s in strengths):
                                predicted = vote_predict(index_labels[rows], distances, counts, VOTE_K, alpha,
                                                         neighbor_records=neighbor_records, record_balance=balance,
                                                         query_records=held_first.groups, patient_strength=strength)
                                setting = (setup, w, alpha, balance, strength, index, name)
                                matrices[setting] += confusion_matrix(held_first.labels, predicted)
                                if rhythms is not None and setup == "as recorded":
                                    for rhythm, matrix in grouped_confusion(held_first.labels, predicted,
                                                                            rhythms[held]).items():
                                        rows = by_rhythm.setdefault(setting, {})
                                        rows[rhythm] = rows.get(rhythm, 0) + np.asarray(matrix)
        print(f"fold {number}/{args.folds} ({', '.join(fold)}) done, {time.time() - start:.0f} s", file=sys.stderr,
              flush=True)

    report = {"seed": args.seed, "folds": args.folds, "beats": len(first), "settings": []}
    for setting, matrix in matrices.items():
        setup, w, alpha, balance, strength, index, name = setting
        metrics = class_metrics(matrix)
        truth, nearest, in_vote_order = (np.concatenate(part) for part in zip(*shown[setup, w, index, name]))
        precision, as_shown = (precision_at_k(truth, neighbors, DEFAULT_K) for neighbors in (nearest, in_vote_order))
        report["settings"].append({"setup": setup, "weight": w, "alpha": alpha, "balance": balance,
                                   "patient_strength": strength, "index": index, "fixed_weights": name,
                                   "score": nsv_score(metrics), "precision_at_10": {
                                       c: None if precision[c] is None else round(precision[c], 3) for c in "NSV"},
                                   "precision_at_10_shown": {
                                       c: None if as_shown[c] is None else round(as_shown[c], 3) for c in "NSV"},
                                   "shortfall": target_shortfall(metrics), "called_q": metrics["called_q"], **{
            c: {"se": metrics["classes"][c]["se"], "ppv": metrics["classes"][c]["ppv"]} for c in "NSV"}})
        if setting in by_rhythm:
            report["settings"][-1]["per_rhythm"] = {rhythm: record_figures(by_rhythm[setting][rhythm])
                                                    for rhythm in largest_first(rhythms)}
    if args.json:
        print(json.dumps(report))
        return
    print(f"real DS1 records, {args.folds} folds, seed {args.seed}: set-up, other lead's weight, alpha, record "
          "balance, patient strength[, index] -> score (mean Se/+P of N, S, V), shortfall from the targets "
          "(points), beats called Q, precision@10 per class, nearest first (shown: the vote's class first)"
          + (", fixed part's weights" if len(fixed) > 1 else ""))
    width = max(len(row["setup"]) for row in report["settings"])
    for row in report["settings"]:
        index = f", {row['index']}" if len(indexes) > 1 else ""
        index += f", {row['fixed_weights']}" if len(fixed) > 1 else ""
        print(f"  {row['setup']:>{width}} {row['weight']:>4g} {row['alpha']:>5g} {row['balance']:>5g} "
              f"{row['patient_strength']:>4g}{index}: "
              f"{row['score']:6.2f} "
              f"{row['shortfall']:6.2f}  " + "  ".join(f"{c} {se_ppv_text(row[c], '/')}" for c in "NSV")
              + f"  Q {row['called_q']}  P@10 "
              + " ".join(f"{c} {p:.3f}" for c, p in row["precision_at_10"].items() if p is not None)
              + " (shown " + " ".join(f"{c} {p:.3f}" for c, p in row["precision_at_10_shown"].items() if p is not None)
              + ")")
        for rhythm, figures in row.get("per_rhythm", {}).items():
            print(f"      {rhythm:>8} {figures['beats']:>6} beats: " + "  ".join(
                f"{c} {se_ppv_text(figures['classes'][c], '/')}" for c in "NSV")
                  + f"  false S {figures['false_s']}")


if __name__ == "__main__":
    main()
