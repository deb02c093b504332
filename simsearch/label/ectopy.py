"""A labeled recording's ectopy and rhythm summary, as a Holter report gives it.

A technician reading a 24-hour recording asks first how many supraventricular and ventricular
beats there were and how they came: alone, in pairs (couplets), in runs of three or more
(supraventricular or ventricular tachycardia when fast), every other beat (bigeminy) or every
third (trigeminy); then for the pauses and the heart rate's range. :func:`ectopy_summary` counts
these from the beats' labels and positions, whatever labeled them (the index's vote, the expert,
or a reference annotation: the evaluation compares the two with :func:`class_runs`).

Written here rather than taken from a library: the Holter packages that count couplets and runs
(vendors' analysis software) are closed, and the open HRV libraries (NeuroKit2, hrv-analysis)
measure normal-to-normal variability, not ectopic patterns; the counting itself is a few
vectorised passes over the label sequence.
"""

from __future__ import annotations

import numpy as np

ECTOPIC_CLASSES = ("S", "V")
"""The classes whose patterns are counted: supraventricular and ventricular ectopic beats."""
RUN_MIN = 3
"""Consecutive ectopic beats of one class that make a run (EC57 and Holter reports: one is isolated, two a
couplet, three or more a run, ventricular or supraventricular tachycardia when fast)."""
LONG_RUN_MIN = 6
"""A run of at least this many beats is a long run, shorter ones (three to five) short runs: EC57's
categories for run detection, which the evaluation scores (:data:`RUN_CATEGORIES`)."""
RUN_CATEGORIES = {"couplet": (2, 2), "short run": (RUN_MIN, LONG_RUN_MIN - 1), "long run": (LONG_RUN_MIN, None)}
"""Run lengths (fewest, most; None: no limit) of EC57's run categories."""
ALLORHYTHMIA_CYCLES = 3
"""Consecutive cycles (an ectopic beat and the normal beats before the next) that make an episode of
bigeminy or trigeminy: three, the usual Holter definition (two cycles are a coincidence)."""
PAUSE_S = 2.0
"""An RR interval longer than this is a pause: the threshold Holter software flags by default (three
seconds and more are the clinically significant ones; the longest pause is reported with its time)."""
HEART_RATE_WINDOW_S = 60.0
"""The heart rate's minimum and maximum are those of its means over this long: a minute, as Holter reports
give them, so one early beat or a missed one does not set either."""
MIN_COVERED = 0.5
"""A window of :data:`HEART_RATE_WINDOW_S` counts for the minimum and maximum only where its believed RR
intervals cover at least this share of it (gaps and doubted detections leave the rest out)."""


def class_runs(labels: np.ndarray, cls: str) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of consecutive beats labeled ``cls``: (first beat's position, length), both (n_runs,).

    Any other label ends a run, unclassifiable (Q) ones included: a doubted detection between two
    ventricular beats is not known to be one.
    """
    mine = np.concatenate([[False], np.asarray(labels) == cls, [False]])
    edges = np.flatnonzero(mine[1:] != mine[:-1])
    starts, stops = edges[0::2], edges[1::2]
    return starts, stops - starts


def allorhythmia_episodes(labels: np.ndarray, cls: str, cycle: int) -> tuple[int, int]:
    """(episodes, ectopic beats in them) of bigeminy (``cycle`` 2) or trigeminy (3) of class ``cls``.

    An episode is at least :data:`ALLORHYTHMIA_CYCLES` isolated ``cls`` beats in a row, each ``cycle`` beats
    after the one before with only normal (N) beats between.
    """
    labels = np.asarray(labels)
    starts, lengths = class_runs(labels, cls)
    isolated = starts[lengths == 1]
    if isolated.size < ALLORHYTHMIA_CYCLES:
        return 0, 0
    normal = np.concatenate([[0], np.cumsum(labels == "N")])
    between = normal[isolated[1:]] - normal[isolated[:-1] + 1]  # normal beats between consecutive ectopic ones
    linked = (np.diff(isolated) == cycle) & (between == cycle - 1)
    _, chain_links = class_runs(np.where(linked, "y", "n"), "y")
    long_enough = chain_links + 1 >= ALLORHYTHMIA_CYCLES
    return int(long_enough.sum()), int((chain_links[long_enough] + 1).sum())


def _believed_intervals(samples: np.ndarray, fs: float, believed: np.ndarray,
                        gaps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """RR intervals (s) between consecutive believed beats that no gap interrupts, and each one's ending sample."""
    kept = samples[believed]
    if kept.size < 2:
        return np.empty(0), np.empty(0, dtype=np.int64)
    rr = np.diff(kept) / fs
    ok = np.ones(rr.size, dtype=bool)
    if gaps is not None and len(gaps):
        gaps = np.asarray(gaps, dtype=np.int64).reshape(-1, 2)
        # an interval crosses a gap where the gap starts before the interval's end and stops after its start
        first_after = np.searchsorted(gaps[:, 1], kept[:-1], side="right")
        crossing = first_after < len(gaps)
        ok[crossing] = gaps[first_after[crossing], 0] >= kept[1:][crossing]
    return rr[ok], kept[1:][ok]


def ectopy_summary(labels: np.ndarray, samples: np.ndarray, fs: float, *, believed: np.ndarray | None = None,
                   gaps: np.ndarray | None = None, pause_s: float = PAUSE_S) -> dict:
    """Counts of a labeled recording's ectopic patterns, pauses and heart rate.

    Parameters
    ----------
    labels : array of str (n,)
        AAMI class of each beat (N, S, V, F, Q), in time order.
    samples : array of int (n,)
        Each beat's sample at the record's rate ``fs``, increasing.
    fs : float
        The record's sampling rate (Hz).
    believed : array of bool (n,), optional
        Beats that are beats: the intervals, pauses and rates are read from these only (a doubted detection,
        often noise, would split an interval in two). All, by default.
    gaps : array of int (n_gaps, 2), optional
        Stretches of invalid signal ([start, stop) samples): no interval across one counts.
    pause_s : float
        RR intervals longer than this are pauses (:data:`PAUSE_S`).

    Returns
    -------
    dict
        Per ectopic class (``S``, ``V``): ``beats``, ``isolated``, ``couplets``, ``runs`` (three or more),
        ``longest_run`` (beats), ``fastest_run_bpm`` (the highest mean rate over a run's intervals; None without
        a run), ``bigeminy`` and ``trigeminy`` (episodes). ``pauses``: ``threshold_s``, ``count``,
        ``longest_s`` and ``longest_at`` (the sample of the beat that ends it; None without a pause).
        ``heart_rate``: ``mean_bpm`` over all believed intervals, ``min_bpm`` / ``max_bpm`` the extremes of
        the per-minute means (:data:`HEART_RATE_WINDOW_S`) and ``min_at`` / ``max_at`` (the sample each
        minute starts at); None where there are too few intervals.
    """
    labels = np.asarray(labels)
    samples = np.asarray(samples, dtype=np.int64)
    if labels.shape != samples.shape:
        raise ValueError(f"ectopy_summary: {labels.size} labels for {samples.size} beats")
    believed = np.ones(samples.size, dtype=bool) if believed is None else np.asarray(believed, dtype=bool)
    out = {}
    for cls in ECTOPIC_CLASSES:
        starts, lengths = class_runs(labels, cls)
        runs = lengths >= RUN_MIN
        fastest = None
        if runs.any():
            span_s = (samples[starts[runs] + lengths[runs] - 1] - samples[starts[runs]]) / fs
            fastest = round(float(np.max(60.0 * (lengths[runs] - 1) / np.maximum(span_s, 1e-9))), 1)
        out[cls] = {"beats": int(lengths.sum()), "isolated": int((lengths == 1).sum()),
                    "couplets": int((lengths == 2).sum()), "runs": int(runs.sum()),
                    "longest_run": int(lengths.max(initial=0)), "fastest_run_bpm": fastest,
                    "bigeminy": allorhythmia_episodes(labels, cls, 2)[0],
                    "trigeminy": allorhythmia_episodes(labels, cls, 3)[0]}
    rr, ends = _believed_intervals(samples, fs, believed, gaps)
    long = rr > pause_s
    longest = int(np.argmax(np.where(long, rr, -1.0))) if long.any() else None
    out["pauses"] = {"threshold_s": pause_s, "count": int(long.sum()),
                     "longest_s": None if longest is None else round(float(rr[longest]), 2),
                     "longest_at": None if longest is None else int(ends[longest])}
    out["heart_rate"] = _heart_rate(rr, ends, fs)
    return out


def _heart_rate(rr: np.ndarray, ends: np.ndarray, fs: float) -> dict:
    """Mean rate and the extremes of the per-window means (see :func:`ectopy_summary`)."""
    none = {"mean_bpm": None, "min_bpm": None, "min_at": None, "max_bpm": None, "max_at": None}
    if rr.size == 0:
        return none
    out = {**none, "mean_bpm": round(float(60.0 / rr.mean()), 1)}
    window = int(round(HEART_RATE_WINDOW_S * fs))
    which = ends // window
    covered = np.bincount(which, weights=rr)
    counts = np.bincount(which)
    full = np.flatnonzero(covered >= MIN_COVERED * HEART_RATE_WINDOW_S)
    if full.size == 0:
        return out
    rates = 60.0 * counts[full] / covered[full]
    low, high = int(np.argmin(rates)), int(np.argmax(rates))
    return {**out, "min_bpm": round(float(rates[low]), 1), "min_at": int(full[low] * window),
            "max_bpm": round(float(rates[high]), 1), "max_at": int(full[high] * window)}
