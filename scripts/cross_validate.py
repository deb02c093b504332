"""Patient-disjoint cross-validation inside DS1: how training and vote settings are chosen.

    python scripts/cross_validate.py --data-dir ../shared/data/mitdb [--folds 4] [--set context_weight=4 ...]
        [--setups other-lead,128Hz,em12dB] [--fixed-weights 3,1,1,1,1,1,1,1,1.5/3,1,1,0.75,1,1,1,1,1.5]
        [--noise-dir DIR] [--json]

DS1's records are dealt into folds balanced for S, V and F beats; each fold is held
out in turn while an encoder trains on the others (and on their noisy copies, as the packaged
encoder). The held-out beats' neighbors are
kept at every checkpoint, so the figures pooled over all 22 DS1 patients can be
read for every training length and vote setting (k, prior strength, boosted
classes). DS2 is never read.

Synthetic rhythms (simsearch.model.rhythms: frequent premature atrial beats, runs,
bigeminy, the sinus bradycardia with mostly premature beats of DS2's record 232,
atrial fibrillation, ventricular bigeminy and couplets) are built from each DS1
patient's own beats and scored with that patient's fold: DS1 holds no such rhythm,
so without them CV cannot see what a rhythm feature does there. Figures are given
for the real records, the synthetic ones, and their mean (the score settings are
chosen by).
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

from simsearch.aami import DS1
from simsearch.errors import ParameterError
from simsearch.evaluation.selection import (
    cross_validate,
    cv_scores,
    fixed_weight_lists,
    recorded_otherwise,
    training_config,
    training_setting,
)
from simsearch.label.vote import BOOSTED_CLASSES, PRIOR_ALPHA, VOTE_K
from simsearch.model.datasets import BeatSet, load_beats, noisy_beats
from simsearch.model.rhythms import SCENARIOS, SEPARATOR, simulate_rhythms
from simsearch.signal.noise import nstdb_dir

VOTE_GRID = [(k, alpha, boosted) for k in (30, 50, 100) for alpha in (0.0, 0.25, 0.4, 0.5, 0.75, 1.0)
             for boosted in (("S", "V", "F"), ("S", "V"))]


def figures_of(scores: dict, step: int) -> dict:
    f = scores[step]
    return {"score": f["score"], **{f"{c}_{key}": f["classes"][c][key] for c in "NSVF" for key in ("se", "ppv")}}


def summary(cv: dict, k: int, alpha: float, boosted: tuple[str, ...], simulated: bool) -> dict:
    """Real and simulated figures per step; the best step by their mean (real alone without simulation)."""
    real = cv_scores(cv, k, alpha, boosted, "real")
    sim = cv_scores(cv, k, alpha, boosted, "simulated") if simulated else None
    combined = {s: (real[s]["score"] + sim[s]["score"]) / 2 if sim else real[s]["score"] for s in real}
    best = max(combined, key=lambda s: combined[s])
    out = {"k": k, "alpha": alpha, "boosted": "".join(boosted), "best_step": best,
           "score": round(combined[best], 2), "real": figures_of(real, best)}
    if sim:
        out["simulated"] = figures_of(sim, best)
    return out


def line(row: dict) -> str:
    text = f"score {row['score']:6.2f} | real {row['real']['score']:6.2f} " + " ".join(
        f"{c} {row['real'][f'{c}_se']}/{row['real'][f'{c}_ppv']}" for c in "NSV")
    if "simulated" in row:
        text += f" | sim {row['simulated']['score']:6.2f} " + " ".join(
            f"{c} {row['simulated'][f'{c}_se']}/{row['simulated'][f'{c}_ppv']}" for c in "NSV")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], type=training_setting, metavar="FIELD=VALUE",
                        help="override a TrainingConfig field (JSON value)")
    parser.add_argument("--no-simulation", action="store_true",
                        help="score the real held-out records only (no synthetic rhythms)")
    parser.add_argument("--index-simulated", action="store_true",
                        help="index the training folds' synthetic rhythm records beside their real beats")
    parser.add_argument("--fixed-weights", default="", metavar="W,W,.../W,W,...",
                        help="also score each checkpoint with the fixed context part weighed per input by each of "
                             "these lists (slash-separated; as FIXED_INPUT_WEIGHTS gives them)")
    parser.add_argument("--rhythm-seed", type=int, default=0,
                        help="seed of the synthetic rhythms, apart from the training seed (--set seed=N), so "
                             "that training seeds are compared on the same synthetic records")
    parser.add_argument("--setups", default="", metavar="SETUP,SETUP",
                        help="also vote on the held-out patients as recorded otherwise: other-lead (V1 in most "
                             "records), 128Hz (any rate), em12dB (nstdb noise at an SNR): how the index fares on "
                             "databases unlike its own")
    parser.add_argument("--noise-dir", default=None,
                        help="nstdb directory of the training records' noisy copies (default: nstdb beside --data-dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = training_config(args.set)
    try:
        fixed_weights = fixed_weight_lists(args.fixed_weights, config)
    except ParameterError as exc:
        parser.error(str(exc))

    start = time.perf_counter()
    records = load_beats(DS1, args.data_dir)
    beats = BeatSet.stack(records)
    simulated = None if args.no_simulation else BeatSet.stack(simulate_rhythms(records, seed=args.rhythm_seed))
    noisy = noisy_beats(DS1, args.data_dir, nstdb_dir(args.noise_dir, args.data_dir), config.noise_snrs_db,
                        noises=config.noise_records)
    setups = {name: recorded_otherwise(DS1, args.data_dir, name, noise_dir=args.noise_dir)
              for name in (part.strip() for part in args.setups.split(",")) if name}
    cv = cross_validate(beats, config, n_folds=args.folds, progress=not args.json, simulated=simulated,
                        index_simulated=args.index_simulated,
                        fixed_weights=fixed_weights,
                        setups=setups, noisy=BeatSet.stack(noisy) if noisy else None)
    seconds = time.perf_counter() - start
    default_vote = summary(cv, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, simulated is not None)
    by_step = {}
    for step in cv["checkpoints"]:
        row = {"real": figures_of(cv_scores(cv, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, "real"), step)}
        if simulated is not None:
            row["simulated"] = figures_of(cv_scores(cv, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, "simulated"), step)
        row["score"] = round(float(np.mean([r["score"] for r in row.values()])), 2)
        by_step[step] = row
    scenarios = {}
    if simulated is not None:
        step = default_vote["best_step"]
        for scenario in SCENARIOS:
            names = [g for g in dict.fromkeys(simulated.groups) if g.endswith(SEPARATOR + scenario)]
            scenarios[scenario] = figures_of(cv_scores(cv, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, "simulated", names),
                                             step)
    grid = sorted((summary(cv, k, alpha, boosted, simulated is not None) for k, alpha, boosted in VOTE_GRID),
                  key=lambda g: -g["score"])
    report = {"config": config.__dict__, "index_simulated": args.index_simulated, "folds": cv["folds"],
              "seconds": round(seconds),
              "simulated_records": 0 if simulated is None else len(set(simulated.groups)),
              "default_vote": default_vote, "by_step": by_step, "by_scenario": scenarios, "vote_grid": grid}
    report["fixed_weights"] = {}
    for name, checkpoints in cv["variants"].items():
        variant = {"folds": cv["folds"], "checkpoints": checkpoints}
        row = summary(variant, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, simulated is not None)
        if simulated is not None:
            row["by_scenario"] = {
                scenario: figures_of(cv_scores(variant, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, "simulated",
                                               [g for g in dict.fromkeys(simulated.groups)
                                                if g.endswith(SEPARATOR + scenario)]), row["best_step"])
                for scenario in SCENARIOS}
        report["fixed_weights"][name] = row
    step = default_vote["best_step"]
    report["setups"] = {"as recorded": default_vote["real"], **{
        name: figures_of(cv_scores({"checkpoints": checkpoints}, VOTE_K, PRIOR_ALPHA, BOOSTED_CLASSES, "all"), step)
        for name, checkpoints in cv["setups"].items()}}  # "all": a set-up may re-sequence its beats (em12dB~brady_apc)
    if args.json:
        print(json.dumps(report))
        return
    print(f"folds: {cv['folds']}  ({seconds:.0f} s)")
    print(f"default vote (k={VOTE_K}, alpha={PRIOR_ALPHA}, boosted {''.join(BOOSTED_CLASSES)}), pooled over DS1"
          f" (score: mean of real and simulated):")
    for step, row in by_step.items():
        print(f"  step {step:5d}  " + line(row))
    for scenario, row in scenarios.items():
        print(f"  {scenario:22s} score {row['score']:6.2f}  " + " ".join(
            f"{c} {row[f'{c}_se']}/{row[f'{c}_ppv']}" for c in "NSV"))
    for name, row in report["fixed_weights"].items():
        print(f"fixed part weighed {name} (default vote, step {row['best_step']}): " + line(row))
        for scenario, r in row.get("by_scenario", {}).items():
            print(f"  {scenario:22s} score {r['score']:6.2f}  " + " ".join(
                f"{c} {r[f'{c}_se']}/{r[f'{c}_ppv']}" for c in "NSV"))
    if cv["setups"]:
        print(f"real records as recorded and otherwise (default vote, step {step}):")
        for name, row in report["setups"].items():
            print(f"  {name:12s} score {row['score']:6.2f}  " + " ".join(
                f"{c} {row[f'{c}_se']}/{row[f'{c}_ppv']}" for c in "NSV"))
    print("vote settings, each at its best step (top 10):")
    for g in grid[:10]:
        print(f"  k {g['k']:3d} alpha {g['alpha']:.2f} boost {g['boosted']:4s} step {g['best_step']:4d} " + line(g))


if __name__ == "__main__":
    main()
