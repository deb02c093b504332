"""Tune the QRS detector's settings on DS1 only, clean and with calibrated noise; report once.

    python scripts/tune_detector.py [--data-dir ../shared/data/mitdb] [--jobs 2]   # the search (DS1 only)
    python scripts/tune_detector.py --report [--nstdb-dir ../shared/data/nstdb]     # once, after the choice

The search scores each setting on DS1's 22 records three ways: clean, and the 20
records other than 118 and 119 with nstdb's electrode-motion (``em``) and muscle
(``ma``) noise added at 12 dB (:func:`simsearch.signal.noise.add_noise`, nst's SNR
definition, each record its own stretch of the noise), so that nstdb's noisy 118/119
records stay an out-of-sample noise test. Its objective is the number of errors
(missed beats plus false detections, AAMI EC57 matching within 150 ms, detections in
VF episodes left out) on clean DS1 plus their mean over the noisy conditions (see
:func:`score`). Coordinate descent: one setting at a time is tried at each of a few
values around the current one and the best kept, while a move saves at least
``--min-gain`` of the errors (smaller gains over 22 patients are chance) and lowers
neither Se nor +P (outside VF) on clean DS1 by more than :data:`CLEAN_SLACK` from the
original settings' (noise robustness is not bought with clean-signal errors of either
kind); passes repeat until none moves. The figures of the original settings (tuned on all 48
records, before DS1/DS2 were kept apart) and the chosen ones are printed side by side.

``--report`` reads DS2: it scores the original and the current module settings on
DS2, on all 48 records and on nstdb's 118/119 at each SNR, in one run, and is meant
to be run once, after the module's constants are set from the search; nothing is
chosen from its figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, fields, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch.aami import ALL_RECORDS, DS1, DS2
from simsearch.evaluation.detection import (
    detection_counts,
    detection_rates,
    evaluate_detection,
    summarize_detection,
    vf_episodes,
)
from simsearch.evaluation.noise import noisy_lead
from simsearch.signal.beats import reference_beats
from simsearch.signal.detection import DEFAULT_PARAMS, DetectorParams, detect_r_peaks
from simsearch.signal.records import load_record

REPO_ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_PARAMS = DetectorParams(
    qrs_band_hz=(5.0, 20.0), integration_s=0.080, refractory_s=0.200, t_wave_s=0.360, t_wave_slope_ratio=0.5,
    p_wave_s=0.300, p_wave_slope_ratio=1.0, threshold_fraction=0.3, search_back_rr=1.5, search_back_fraction=0.6,
    history=8, learning_s=8.0, locate_band_hz=(3.0, 30.0), locate_s=0.075, min_signal_s=0.5,
)
"""The settings before this search, tuned on all 48 records (DS2 included): the baseline."""

NOISY_LEFT_OUT = ("118", "119")
"""nstdb's noise stress records are built from these two: they get no added noise here."""
TUNING_NOISES = ("em", "ma")
"""nstdb noise records added to DS1: electrode motion (what nstdb's 118/119 records hold,
the hardest for QRS detectors) and muscle artefact. Baseline wander (``bw``) is left out:
the 5 Hz high-pass of the QRS band removes nearly all of it."""
TUNING_SNR_DB = 12.0
"""The issue's noise target is set at 12 dB."""
NSTDB_SNRS = ("24", "18", "12", "06", "00", "_6")
"""nstdb's record suffixes: 24, 18, 12, 6, 0 and -6 dB."""

CLEAN_SLACK = 0.0003
"""A setting may lower clean-DS1 Se, and +P outside VF, by at most this fraction (0.03
points: 15 beats of DS1's 51,000, one patient's chance more or less) from the original
settings'. A hard limit would refuse large noise gains for a beat or two; a limit on
missed and false beats summed let Se fall (94 -> 118 missed) for fewer false detections,
and record 203 with it (tests/test_detection.py)."""

SEARCH_SPACE: dict[str, tuple] = {
    "threshold_fraction": (0.25, 0.3, 0.35, 0.4, 0.45),
    "search_back_rr": (1.3, 1.5, 1.66, 1.8),
    "search_back_fraction": (0.4, 0.6, 0.8),
    "t_wave_slope_ratio": (0.3, 0.5, 0.7, 0.85, 1.0),
    "p_wave_slope_ratio": (0.8, 1.0, 1.2),
    "qrs_band_hz": ((5.0, 15.0), (5.0, 20.0), (8.0, 20.0), (5.0, 25.0), (10.0, 25.0)),
    "integration_s": (0.060, 0.080, 0.100, 0.120),
    "t_wave_s": (0.300, 0.360, 0.400),
    "history": (5, 8, 12),
}
"""Values tried for the settings that decide which envelope peaks are beats. The others
stay: the refractory period is physiology, the learning and minimum lengths only touch a
record's first seconds, and the locating band and window move a beat, never add or drop one."""


@dataclass(frozen=True)
class Case:
    """One signal to detect on: its condition (clean, em 12 dB ...), record, samples, reference
    beats and ventricular flutter/fibrillation episodes (which hold no beat annotations)."""

    condition: str
    record: str
    signal: np.ndarray
    fs: float
    reference: np.ndarray
    vf: np.ndarray


def default_dir(env: str, name: str) -> Path:
    chosen = os.environ.get(env)
    return Path(chosen).expanduser() if chosen else REPO_ROOT.parent / "shared" / "data" / name


def tuning_cases(data_dir: Path, nstdb_dir: Path) -> list[Case]:
    """DS1 clean, and DS1 but 118/119 with each of :data:`TUNING_NOISES` at :data:`TUNING_SNR_DB`."""
    noises = {name: load_record(name, nstdb_dir, annotations=None) for name in TUNING_NOISES}
    cases = []
    for i, name in enumerate(DS1):
        record = load_record(name, data_dir)
        beats, _ = reference_beats(record)
        vf = vf_episodes(record)
        cases.append(Case("clean", name, record.signal, record.fs, beats, vf))
        if name in NOISY_LEFT_OUT:
            continue
        for j, (noise_name, noise) in enumerate(noises.items()):
            noisy = noisy_lead(record, 0, [noise], TUNING_SNR_DB, record, seed=1000 * j + i)
            cases.append(Case(f"{noise_name} {TUNING_SNR_DB:g} dB", name, noisy.signal, record.fs, beats, vf))
    return cases


_CASES: list[Case] = []  # the worker processes' copy, set before the pool forks


def _score_case(job: tuple[DetectorParams, int]) -> tuple[int, int, int, int]:
    """TP, FN, FP and the FP inside VF episodes, as evaluate_detection counts them."""
    params, index = job
    case = _CASES[index]
    return detection_counts(case.reference, detect_r_peaks(case.signal, case.fs, params), case.fs, case.vf)


def score(params: DetectorParams, pool) -> dict[str, dict]:
    """Gross TP/FN/FP, Se and +P per condition, and the search's objective (``errors``).

    The objective counts missed beats and false detections, leaving out those inside
    VF episodes (as EC57 does: there is no beat there to find), on clean DS1 plus
    their mean over the noisy conditions.
    """
    counts = pool.map(_score_case, [(params, i) for i in range(len(_CASES))])
    by_condition: dict[str, dict] = {}
    for case, case_counts in zip(_CASES, counts):
        row = by_condition.setdefault(case.condition, dict.fromkeys(("tp", "fn", "fp", "fp_vf"), 0))
        for key, count in zip(("tp", "fn", "fp", "fp_vf"), case_counts):
            row[key] += count
    for row in by_condition.values():
        row.update(detection_rates(row["tp"], row["fn"], row["fp"], row["fp_vf"]))
        row["errors"] = row["fn"] + row["fp"] - row["fp_vf"]
    noisy = [row["errors"] for condition, row in by_condition.items() if condition != "clean"]
    by_condition["errors"] = by_condition["clean"]["errors"] + sum(noisy) / len(noisy)
    return by_condition


def search(start: DetectorParams, start_scores: dict, pool, min_gain: float,
           max_passes: int) -> tuple[DetectorParams, dict]:
    """Coordinate descent over :data:`SEARCH_SPACE` from ``start``; returns the settings and their scores."""
    best, best_scores = start, start_scores
    clean = best_scores["clean"]
    slack = CLEAN_SLACK * (clean["tp"] + clean["fn"])
    fn_limit, fp_limit = clean["fn"] + slack, clean["fp"] - clean["fp_vf"] + slack
    print(f"start: {best_scores['errors']:.0f} errors (clean: {clean['fn']} missed, "
          f"{clean['fp'] - clean['fp_vf']} false)", flush=True)
    for n in range(1, max_passes + 1):
        moved = False
        for name, values in SEARCH_SPACE.items():
            tried = {getattr(best, name): best_scores}
            for value in values:
                if value not in tried:
                    tried[value] = score(replace(best, **{name: value}), pool)
            allowed = [v for v in tried if tried[v]["clean"]["fn"] <= fn_limit
                       and tried[v]["clean"]["fp"] - tried[v]["clean"]["fp_vf"] <= fp_limit]
            value = min(allowed, key=lambda v: tried[v]["errors"])
            trace = ", ".join(f"{v}: {s['errors']:.0f}/{s['clean']['fn']}+{s['clean']['fp'] - s['clean']['fp_vf']}"
                              for v, s in tried.items())
            if best_scores["errors"] - tried[value]["errors"] >= min_gain * best_scores["errors"]:
                best, best_scores, moved = replace(best, **{name: value}), tried[value], True
                print(f"pass {n} {name} -> {value} ({trace})", flush=True)
            else:
                print(f"pass {n} {name} stays {getattr(best, name)} ({trace})", flush=True)
        if not moved:
            break
    return best, best_scores


def print_scores(title: str, columns: dict[str, dict]) -> None:
    """One line per condition, one Se/+P (FN, FP) cell per column."""
    names = list(columns)
    conditions = [c for c in columns[names[0]] if c != "errors"]
    print(f"\n{title}")
    width = 58
    print(f"{'':12}" + "".join(f"{name:>{width}}" for name in names))
    for condition in conditions:
        cells = []
        for name in names:
            row = columns[name][condition]
            cells.append(f"Se {row['se']:6.2f} +P {row['ppv']:6.2f} (EC57 {row['ppv_ec57']:6.2f}) "
                         f"FN {row['fn']:4d} FP {row['fp']:4d}")
        print(f"{condition:12}" + "".join(f"{cell:>{width}}" for cell in cells))
    print(f"{'objective':12}" + "".join(f"{columns[name]['errors']:>{width}.0f}" for name in names))


def changed(params: DetectorParams) -> str:
    diffs = [f"{f.name}={getattr(params, f.name)!r}" for f in fields(params)
             if getattr(params, f.name) != getattr(ORIGINAL_PARAMS, f.name)]
    return ", ".join(diffs) or "none"


def run_search(args: argparse.Namespace) -> int:
    """The search from the original settings; prints its trace (objective/clean missed+false per
    value tried) and the DS1 figures of the original, chosen and module settings."""
    started = time.perf_counter()
    _CASES[:] = tuning_cases(args.data_dir, args.nstdb_dir)
    print(f"{len(_CASES)} DS1 signals ({len(DS1)} clean, {len(_CASES) - len(DS1)} noisy); DS2 is not read", flush=True)
    with get_context("fork").Pool(args.jobs) as pool:  # fork: the workers share _CASES, never copied
        original = score(ORIGINAL_PARAMS, pool)
        chosen, chosen_scores = search(ORIGINAL_PARAMS, original, pool, args.min_gain, args.max_passes)
        columns = {"original": original, "chosen": chosen_scores}
        if DEFAULT_PARAMS not in (ORIGINAL_PARAMS, chosen):
            columns["module constants"] = score(DEFAULT_PARAMS, pool)
    print_scores("DS1 (gross Se / +P in %; EC57: +P without the detections in VF episodes)", columns)
    print(f"\nchosen, as changes to the original: {changed(chosen)}")
    print(f"module constants now: {changed(DEFAULT_PARAMS)}")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


def summary(records: list[str], data_dir: Path, params: DetectorParams) -> dict:
    """The detector alone (without the second look in the other lead) with ``params``."""
    return summarize_detection(evaluate_detection(records, data_dir, detector=partial(_detect, params=params)))


def _detect(record, params: DetectorParams) -> np.ndarray:
    return detect_r_peaks(record.signal, record.fs, params)


def run_report(args: argparse.Namespace) -> int:
    """DS2, all 48 and nstdb per SNR, original settings beside the module's: the one DS2 scoring."""
    print("Report: scores DS2 (count this run as one DS2 scoring; choose nothing from it)", flush=True)
    settings = {"original": ORIGINAL_PARAMS, "module constants": DEFAULT_PARAMS}
    print(f"module constants, as changes to the original: {changed(DEFAULT_PARAMS)}")
    sets = {"DS2 (22)": (list(DS2), args.data_dir), "all 48": (list(ALL_RECORDS), args.data_dir)}
    for snr in NSTDB_SNRS:
        sets[f"nstdb 118+119 e{snr}"] = ([f"118e{snr}", f"119e{snr}"], args.nstdb_dir)
    print(f"\n{'':22}" + "".join(f"{name:>52}" for name in settings))
    for label, (records, directory) in sets.items():
        cells = []
        for params in settings.values():
            s = summary(records, directory, params)
            cells.append(f"Se {s['se']:6.2f} +P {s['ppv']:6.2f} (EC57 {s['ppv_ec57']:6.2f}) "
                         f"FN {s['fn']:3d} FP {s['fp']:4d}")
        print(f"{label:22}" + "".join(f"{cell:>52}" for cell in cells), flush=True)
    print("\nGross figures over whole records (nstdb: noisy in alternate 2-min stretches after 5 clean minutes).")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_dir("SIMSEARCH_DATA", "mitdb"),
                        help="MIT-BIH Arrhythmia records (default: $SIMSEARCH_DATA or ../shared/data/mitdb)")
    parser.add_argument("--nstdb-dir", type=Path, default=default_dir("SIMSEARCH_NSTDB", "nstdb"),
                        help="MIT-BIH Noise Stress Test records (default: $SIMSEARCH_NSTDB or ../shared/data/nstdb)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the search (default 1)")
    parser.add_argument("--min-gain", type=float, default=0.02,
                        help="smallest fraction of the errors a move must save to be taken (default 0.02: "
                             "history 8 -> 12 saved 1 %% and cost record 203 a beat, chance either way)")
    parser.add_argument("--max-passes", type=int, default=3,
                        help="coordinate-descent passes at most (default 3; a pass takes 3-7 min on 2 busy cores)")
    parser.add_argument("--report", action="store_true",
                        help="score DS2, all 48 and nstdb, original vs module settings (reads DS2: run once)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_report(args) if args.report else run_search(args)


if __name__ == "__main__":
    sys.exit(main())
