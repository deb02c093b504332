"""Beats: fixed windows around R-peaks, their rhythm and shape context, and their labels.

This is where a record's own sampling rate meets the model's: the signal is resampled
to :data:`MODEL_FS` once, to cut windows, and beat positions stay at the record's rate
(:func:`rescale_samples` is the one conversion between the two).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..aami import SYMBOL_TO_AAMI, to_aami
from ..errors import SampleOutOfRangeError, SimsearchError
from .detection import LOCATE_BAND_HZ, detect_r_peaks, largest_deflections
from .detection_check import check_detections
from .filtering import (  # SciPy, lazily
    bandpass,
    clean_ecg,
    median_filter,
    percentile_filter,
    resample,
    uniform_filter1d,
)
from .records import Record, check_signal, gaps_at, read_other_lead

MODEL_FS = 360.0
"""Every record is resampled to this rate before beats are cut (MIT-BIH's own rate)."""
WINDOW_BEFORE = 90
"""Samples kept before the R-peak (250 ms at 360 Hz: the P wave)."""
WINDOW_AFTER = 166
"""Samples kept after it (460 ms: QRS and T wave); the window is 256 samples long."""
WINDOW = WINDOW_BEFORE + WINDOW_AFTER

BEAT_FORMAT = 2
"""Version of how :func:`beats_from_record` cuts and describes beats (windows, their centres, the
context columns), recorded in every index's manifest. An index's vectors are comparable with a
query's only when both beats were cut alike, and an index keeps its own encoder, so nothing else
would tell: an index of another beat format is refused (rebuild it). 2: windows centred on the QRS's
largest deflection, moved to where the record's median beat matches (:func:`aligned_centres`);
indexes made before the field existed hold beats cut by earlier code (at the annotation's position,
then unaligned) and are refused too. Raise it with any change to the beats an encoder is given."""

LOCAL_RR_BEATS = 33
"""Beats in the centred running mean that gives the local rhythm each RR is compared with
(de Chazal's "local average RR"). A mean, not a median: where premature beats are most of
the rhythm (DS2's record 232: premature atrial beats at 0.73 s, sinus beats after 1.87 s
pauses) the median is a premature interval and the premature beats look on time, while
the mean sits between the two and keeps both apart. Cross-validation inside DS1 with
synthetic rhythms (``scripts/cross_validate.py``, 4 folds, vote k=100, alpha 0.25, mean
of the real and synthetic scores), with the two-cluster irregularity below: 79.7 against
78.0 for the median (record-232 pattern SVEB Se 52 % against 7 %)."""
LONG_TERM_RR_BEATS = 301
"""Beats (about five minutes) in the running median of the long-term rhythm: a run of
premature beats drags the local mean with it, not this one."""
RHYTHM_PERCENTILE = 50
"""Percentile of the long-term intervals taken as the patient's rhythm. The 75th,
meant to track the sinus rate when premature beats are frequent, scored lower in
cross-validation inside DS1 (76.1 against 77.6), so the median stays."""
IRREGULARITY_BEATS = 51
"""Beats over which RR irregularity (atrial fibrillation's signature) is measured by
:func:`two_cluster_spread`.

The spread left once the intervals are split in two groups (short and long) tells
fibrillation, whose intervals scatter, from frequent premature beats, whose intervals
fall in two tight groups (coupling intervals and sinus cycles). The plain median of
successive differences used before made frequent premature beats look as irregular
as fibrillation (median 1.9 in encoder units for synthetic frequent premature atrial
beats against 0.8 for DS1's fibrillation), so the vote called them normal.
Cross-validation inside DS1 with synthetic rhythms (4 folds, vote k=100, alpha 0.25,
context weight 2, mean of real and synthetic scores): 81.1 with 51 beats, 80.9 with 33,
80.1 with 17, against 75.2 for the old measure; synthetic SVEB Se 57 % against 18 %
(frequent premature atrial beats 52 % against 6 %, atrial bigeminy 55 % against 3 %, the
record-232 pattern 51 % against 4 %). Its cost on the real DS1 records: 81.4 against
81.9 (SVEB +P 64 against 68, VEB Se 88 against 90, VEB +P 77 against 72; training seed 1,
both run outside the script: 80.1 against 82.4, VEB Se 84 against 91): ventricular bigeminy
is now as regular as sinus rhythm, and only the beat's shape tells its ventricular beats from
premature atrial ones. Keeping the old measure beside the new one (a tenth input) kept the real records (82.4) but lost
the synthetic ones (69.5): premature atrial beats then sit among DS1's ventricular
bigeminy. Taking the dominant beat from the on-time beats only (previous interval at
least 0.9 of the local mean), so that bigeminy's ventricular beats differ more from it,
scored 78.6 against 79.6 (mean of seeds 0 and 1): not adopted.

Sick sinus syndrome defeats it: where pauses of one to six seconds follow the premature
beats (record 232's pattern as :func:`simsearch.model.rhythms._sick_sinus` simulates it)
the pauses scatter, the spread is as large as in fibrillation, and the vote finds 23 % of
the premature beats. Measures that look past the scattered pauses, tried with the same
protocol (seed 0, real / synthetic / record-232 pattern SVEB Se; baseline 81.1, real
81.7, 23 %): the spread of the tighter group, each group at least a quarter of the
window (81.6, real 80.4, 47 %; seed 1 80.2 against 79.8, real 78.4 against 80.0); the
mean of that and this one (81.5, real 81.0, 34 %); the long group's deviation halved
(80.7, real 80.8, 22 %); the spread of the larger group (81.0, real 80.8, 52 %, atrial bigeminy
55 % against 68 %); deviations capped at 0.1 (78.2). Each gains on the synthetic
records what it loses on the real ones, where premature beats then sit closer to
fibrillation's: not adopted. With the P-wave gate (twenty-third session), the mean of this spread and
the tighter group's as the irregularity input (branch ``experiment/tight-group``; encoders trained with it,
``scripts/cross_validate_second_lead.py --weights 1.5``): the record-232 pattern with ``em`` at 12 dB 64.9 /
65.8 % against 56.9 / 56.8 %, as recorded 89.65 against 89.85 (mean of seeds 0-3, shortfall 3.62 against
4.15), but the simulated expert fell short by more with no label (25.3 against 23.6, seeds 0-3) and with 20
(4.3 against 3.7): not adopted (docs/measurements.md, "The tighter group's scatter in the irregularity")."""
IRREGULARITY_SCALE = 10.0
"""Encoder units per unit of :func:`two_cluster_spread` (log-interval units): DS1's
fibrillation (about 0.1) lands near 1, as the other context inputs do."""

SINUS_PERCENTILE = 90
"""Percentile of the long-term intervals taken as the patient's sinus cycle where premature
beats are so frequent that they set the median: in a sinus bradycardia whose beats are
mostly premature atrial ones (DS2's record 232: premature beats at 0.73 s, sinus beats
after 1.87 s pauses) only the longest intervals are sinus ones. The packaged encoder
does not read it yet (it is the tenth encoder input, see
:data:`simsearch.model.encoder.CONTEXT_INPUTS`): in cross-validation inside DS1 with
synthetic rhythms (scripts/cross_validate.py, score = mean of the real and the
simulated pooled scores) it scored 74.8 (real 81.3) against 75.2 (real 81.9) without
it, and 75.2 (real 82.1) when the encoder also trained on synthetic rhythms: the kNN
index holds real DS1 beats only, none of them premature against such a reference.
Replacing the median of :data:`RHYTHM_PERCENTILE` by this percentile instead scored
73.3 (real 79.5). Checked again beside the prematurity weights of
:data:`simsearch.model.encoder.FIXED_INPUT_WEIGHTS`, in the fixed part of the embedding only
(the same training runs scored afterwards, mean of seeds 0 and 1): weights 0.5, 1, 1.5 gave
81.1, 80.5, 79.5 against 81.3 without it (the record-232 pattern's SVEB Se falls: 71, 63,
45 % against 73 % at seed 0)."""

RR_COLUMNS = ("rr_prev", "rr_next", "rr_local", "rr_long_term", "rr_irregularity", "rr_long_term_mean",
              "rr_sinus")
"""RR features per beat: previous and next interval, the local running mean and the
long-term running median (seconds), the irregularity (:func:`two_cluster_spread`, log
units), the long-term running mean (de Chazal's "average RR"), which pauses pull up and
premature beats pull down where the median ignores both, and the long-term sinus cycle
(:data:`SINUS_PERCENTILE`), which frequent premature beats do not pull down (seconds)."""
DOMINANT_BEATS = 301
"""Beats (about five minutes) whose median shape is the patient's dominant beat."""
DOMINANT_BLOCK = 50
"""Beats that share one dominant-beat estimate (a running median per beat would cost 50x more)."""
QRS = slice(WINDOW_BEFORE - 36, WINDOW_BEFORE + 54)
"""The QRS complex inside a window: 100 ms before the R-peak to 150 ms after."""
SHAPE_COLUMNS = ("qrs_difference", "beat_difference", "qrs_amplitude")
"""How a beat differs from its patient's dominant beat: 1 - correlation over the QRS and
over the whole window, and the log ratio of its QRS amplitude to the dominant one's."""
P_WAVE = slice(WINDOW_BEFORE - 80, WINDOW_BEFORE - 20)
"""Where a window holds the P wave: 222 to 56 ms before the R-peak. Cross-validation inside DS1
(``scripts/cross_validate.py`` protocol, seed 0: the fold encoders trained with the gate, every
context recomputed): 83.6 for this window, 83.5 for 250-56 ms, 83.2 for 250-83 ms, 83.5 for
167-56 ms."""
ATRIAL_BEATS = 51
"""Beats over which :func:`p_wave_consistency` is averaged (as :data:`IRREGULARITY_BEATS`).
Same check as :data:`P_WAVE`: 31 beats 83.4, 101 beats 83.7 against 83.6, within a seed's noise."""
ATRIAL_BLOCK = 10
"""Beats that share one local P-wave template."""
ATRIAL_COLUMNS = ("p_wave_consistency",)
"""Whether the beats around this one show the same atrial activity before their QRS
(:func:`p_wave_consistency`): a P wave does, fibrillation does not."""
NOISE_COLUMNS = ("qrs_noise", "beat_noise")
"""How far two beats of one morphology differ in this stretch, over the QRS and over the whole
window (:func:`shape_noise`): the part of the first two :data:`SHAPE_COLUMNS` that noise adds."""
NOISE_NEIGHBORS = 25
"""Beats on either side among which :func:`shape_noise` looks for each beat's closest twin."""
PAUSE_FACTOR = 1.6
"""An interval longer than this many times the median of its running window is a pause there: sinus
pauses of 1-4 s on top of a 0.6-1.2 s cycle land above it; a sinus rhythm's slowing and the full
compensatory pause after a premature beat (twice the cycle less the premature interval: 1.5 times it after a
beat half a cycle early) below it. Set so, not tuned: :data:`PAUSE_RARITY` carries the cross-validation."""
PAUSE_RARITY = 0.1
"""The share of a window (rounded up: 4 of the local mean's 33 intervals, 31 of the long-term mean's 301)
that pauses may take and still be left out of its mean (:func:`pause_resistant_mean`). A few sinus pauses
lengthen a plain mean by a tenth and make every beat around them look premature; where long intervals
are frequent they are the patient's rhythm and stay in the mean: record 232's sinus beats, after 1.9 s
pauses, are a third of its intervals, and its premature beats are premature against a mean that holds
them. In DS1 cross-validation (scripts/cross_validate_second_lead.py, seeds 0-3, pauses in 2 % of the
sinus intervals) the vote scored 87.7 / 88.2 / 88.3 / 86.8 (79.9 / 80.0 with the plain means, seeds 0 / 1),
90.0 / 90.6 / 90.3 / 88.6 against 90.1 / 90.5 / 90.2 / 88.4 as recorded; the simulated expert
(scripts/cross_validate_adaptive.py, seeds 0-2; seed 3 after the choice) fell short by 23.4 / 21.2 / 21.6 /
28.4 with no label against 24.6 / 21.9 / 23.2 / 32.9, by 6.7 / 6.0 / 6.9 / 5.8 with 5 against 7.0 / 6.1 /
11.7 / 8.0, by 4.6 / 4.2 / 4.0 / 5.1 with 20 against 4.5 / 3.9 / 5.0 / 4.7; the synthetic record-232
pattern of scripts/cross_validate.py kept its SVEB Se (73.1 against 74.1 %, seed 0). Leaving out the longest
6 % whatever their share instead (as robust for pauses, 87.5) cost that pattern 11 points (62.7 %), the
longest 3 % half as much for half the pause gain."""
PAUSE_RESISTANT_COLUMNS = ("rr_local_without_pauses", "rr_long_term_mean_without_pauses")
"""The local and long-term running means of :data:`RR_COLUMNS` without their rare pauses
(:func:`pause_resistant_mean`), in seconds."""
CONTEXT_COLUMNS = RR_COLUMNS + SHAPE_COLUMNS + ATRIAL_COLUMNS + NOISE_COLUMNS + PAUSE_RESISTANT_COLUMNS
"""What a beat's neighbors in its own record say about it: its rhythm, its shape against
the patient's dominant beat, whether a consistent P wave precedes the beats around it, how
noisy the stretch is, and its rhythm without the pauses in it."""


@dataclass(frozen=True)
class Beats:
    """The beats of one record, row-aligned arrays.

    ``samples`` are R-peak positions at the record's own rate ``fs``; ``windows`` is
    (n, WINDOW), cut at :data:`MODEL_FS` from the filtered signal, centred (at ``WINDOW_BEFORE``)
    on ``centres``, the QRS's largest deflection near each R-peak or where the beat matches its
    record's median beat, at :data:`MODEL_FS` (:func:`aligned_centres`; ``None`` for beats
    re-sequenced from other records);
    ``context`` is (n, len(CONTEXT_COLUMNS)), see :func:`beat_context`;
    ``symbols`` holds MIT-BIH symbols (``""`` where unlabeled) and ``aami`` their
    AAMI classes (``""`` where unlabeled); ``detection_probability``, for beats the QRS detector found,
    the other lead's check's probability that each is a beat (1 where unchecked), and 0 for a beat whose window
    reaches into a gap of invalid signal (:func:`reaching_a_gap`); ``None`` where nothing is doubted (beats at
    given positions in a recording without gaps); :attr:`doubted`.
    """

    record: str
    lead: str
    fs: float
    samples: np.ndarray
    windows: np.ndarray
    context: np.ndarray
    symbols: np.ndarray
    aami: np.ndarray
    centres: np.ndarray | None = None
    detection_probability: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def times(self) -> np.ndarray:
        return self.samples / self.fs

    @property
    def doubted(self) -> np.ndarray:
        """Per beat, whether it is doubted (:attr:`detection_probability` under :data:`DOUBTED_BELOW`): a detection
        the check doubts, or a beat whose window reaches into a gap of invalid signal."""
        if self.detection_probability is None:
            return np.zeros(len(self), dtype=bool)
        return self.detection_probability < DOUBTED_BELOW

    def take(self, rows: np.ndarray) -> Beats:
        def part(column):
            return None if column is None else column[rows]

        return Beats(self.record, self.lead, self.fs, self.samples[rows], self.windows[rows], self.context[rows],
                     self.symbols[rows], self.aami[rows], part(self.centres), part(self.detection_probability))


def reference_beats(record: Record) -> tuple[np.ndarray, np.ndarray]:
    """Beat positions and symbols from the record's annotations, non-beats skipped."""
    if not record.has_annotations:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype="<U1")
    keep = np.array([s in SYMBOL_TO_AAMI for s in record.ann_symbols], dtype=bool)
    samples = record.ann_samples[keep]
    inside = (samples >= 0) & (samples < record.n_samples)
    return samples[inside], np.asarray(record.ann_symbols[keep][inside], dtype="<U1")


def segment(signal: np.ndarray, r_peaks: np.ndarray, before: int = WINDOW_BEFORE,
            after: int = WINDOW_AFTER) -> np.ndarray:
    """Cut a fixed window around every R-peak; the ends of the record are edge-padded."""
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    padded = np.pad(np.asarray(signal, dtype=np.float32), (before, after), mode="edge")
    offsets = np.arange(before + after)
    # r + before is the peak in padded coordinates; the window starts `before` earlier
    return padded[r_peaks[:, None] + offsets[None, :]]


def rr_features(r_peaks: np.ndarray, fs: float) -> np.ndarray:
    """Per beat (n, 7): the :data:`RR_COLUMNS`.

    Running means and medians over many beats make the rhythm references robust: one
    premature beat barely moves them, and ratios to them compare across patients whose
    heart rates differ.
    """
    r_peaks = np.asarray(r_peaks, dtype=np.float64)
    n = r_peaks.shape[0]
    if n < 2:
        nominal = np.full(n, 0.8)  # a single beat has no rhythm: assume a resting 75 bpm
        return np.column_stack([nominal, nominal, nominal, nominal, np.zeros(n), nominal, nominal]).astype(np.float32)
    intervals = np.diff(r_peaks) / fs
    prev_rr = np.concatenate([[intervals[0]], intervals])
    next_rr = np.concatenate([intervals, [intervals[-1]]])
    local = uniform_filter1d(prev_rr, size=min(LOCAL_RR_BEATS, n), mode="nearest")
    long_term = percentile_filter(prev_rr, RHYTHM_PERCENTILE, size=min(LONG_TERM_RR_BEATS, n), mode="nearest")
    irregularity = two_cluster_spread(prev_rr, IRREGULARITY_BEATS)
    long_term_mean = uniform_filter1d(prev_rr, size=min(LONG_TERM_RR_BEATS, n), mode="nearest")
    sinus = percentile_filter(prev_rr, SINUS_PERCENTILE, size=min(LONG_TERM_RR_BEATS, n), mode="nearest")
    return np.column_stack([prev_rr, next_rr, local, long_term, irregularity, long_term_mean,
                            sinus]).astype(np.float32)


PAUSE_CHUNK = 1 << 20
"""Values :func:`pause_resistant_mean` holds at once (8 MB per array)."""


def pause_resistant_rhythm(r_peaks: np.ndarray, fs: float) -> np.ndarray:
    """Per beat (n, 2): the :data:`PAUSE_RESISTANT_COLUMNS`, the running means of :func:`rr_features`
    without the rare pauses in their windows (:func:`pause_resistant_mean`)."""
    r_peaks = np.asarray(r_peaks, dtype=np.float64)
    n = r_peaks.shape[0]
    if n < 2:
        return np.full((n, 2), 0.8, dtype=np.float32)  # as rr_features: a resting 75 bpm
    intervals = np.diff(r_peaks) / fs
    prev_rr = np.concatenate([[intervals[0]], intervals])
    return np.column_stack([pause_resistant_mean(prev_rr, min(beats, n))
                            for beats in (LOCAL_RR_BEATS, LONG_TERM_RR_BEATS)]).astype(np.float32)


def pause_resistant_mean(intervals: np.ndarray, size: int, factor: float = PAUSE_FACTOR,
                         rarity: float = PAUSE_RARITY) -> np.ndarray:
    """Centred running mean over ``size`` intervals (odd; an even size is rounded up) that leaves out
    the pauses of a window, intervals over ``factor`` times its median, where they are at most a
    ``rarity`` share of it (rounded up); a window with more keeps them all (they are the rhythm). The ends
    repeat the edge value, as ``mode="nearest"`` does. By hand: SciPy's running filters give a mean or one
    rank, not a mean conditioned on the window's median."""
    intervals = np.asarray(intervals, dtype=np.float64)
    if intervals.shape[0] == 0:
        return intervals.copy()
    half = max(int(size) // 2, 0)
    width = 2 * half + 1
    allowed = int(np.ceil(rarity * width))
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(intervals, half, mode="edge"), width)
    rows = max(1, PAUSE_CHUNK // width)  # a 24-hour recording's windows at once would take 280 MB

    def means(chunk: np.ndarray) -> np.ndarray:
        pauses = chunk > factor * np.median(chunk, axis=1, keepdims=True)  # at most half: factor > 1
        counted = pauses.sum(axis=1)
        without = np.where(pauses, 0.0, chunk).sum(axis=1) / (width - counted)
        return np.where(counted <= allowed, without, chunk.mean(axis=1))

    return np.concatenate([means(windows[i:i + rows]) for i in range(0, windows.shape[0], rows)])


def two_cluster_spread(intervals: np.ndarray, beats: int = IRREGULARITY_BEATS) -> np.ndarray:
    """Per interval: how scattered the log intervals of the centred window of ``beats``
    beats stay once split into two groups, each around its median.

    For every window the sorted log intervals are cut at the point that leaves the least
    total absolute deviation from the two groups' medians; the result is that deviation
    per interval (log units: 0.01 is a 1 % scatter). Frequent premature beats, bigeminy
    and runs give two tight groups and a small value; atrial fibrillation scatters
    every interval and gives a large one. Windows at the ends repeat the edge interval.
    Written by hand (a one-dimensional two-median split is not in SciPy or NumPy):
    prefix sums over the sorted windows make every cut cost O(1), so all cuts of all
    windows cost O(n * beats) after the sort.

    Parameters
    ----------
    intervals : array of float, shape (n,)
        RR intervals in seconds, in beat order.
    beats : int
        Window length (odd; an even one is rounded up).

    Returns
    -------
    ndarray of float32, shape (n,)
    """
    intervals = np.asarray(intervals, dtype=np.float64)
    n = intervals.shape[0]
    half = max(int(beats) // 2, 1)
    width = 2 * half + 1
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    logs = np.log(np.maximum(intervals, 1e-3))
    windows = np.sort(np.lib.stride_tricks.sliding_window_view(np.pad(logs, half, mode="edge"), width), axis=1)
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(windows, axis=1)], axis=1)

    def deviation(lo: int, hi: int) -> np.ndarray:
        """Sum of |x - median| over the sorted columns lo..hi-1 of every window."""
        mid = (lo + hi - 1) // 2
        median = windows[:, mid]
        above = prefix[:, hi] - prefix[:, mid + 1] - (hi - mid - 1) * median
        below = (mid - lo) * median - (prefix[:, mid] - prefix[:, lo])
        return above + below

    best = np.full(n, np.inf)
    for cut in range(1, width):
        best = np.minimum(best, deviation(0, cut) + deviation(cut, width))
    return (best / width).astype(np.float32)


MEDIAN_THREADS = min(4, os.cpu_count() or 1)
"""Threads that take the running medians of a long recording (:func:`block_medians`)."""
MEDIAN_THREADS_MIN = 200
"""Medians below which one thread is quicker than starting a pool."""


def block_medians(arrays: tuple[np.ndarray, ...], beats: int, block: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Running medians over ``beats`` rows, one per ``block`` rows: for each array (rows are beats,
    all of the same length) the median rows of the ``beats`` rows centred on each block, and each
    row's block. A median per row would cost ``block`` times more and barely differ."""
    n = arrays[0].shape[0]
    half = beats // 2
    arounds = [slice(max(0, centre - half), min(n, centre + half + 1))
               for centre in range(block // 2, n + block // 2, block)]

    def medians(values: np.ndarray, part: list[slice]) -> list[np.ndarray]:
        return [np.median(values[a], axis=0) for a in part]

    block_of = np.arange(n) // block
    if len(arounds) < MEDIAN_THREADS_MIN or MEDIAN_THREADS == 1:
        return [np.stack(medians(values, arounds)) for values in arrays], block_of
    # NumPy's partition releases the GIL: on 2 cores a 24-hour recording's medians take 0.6x the time
    threads = MEDIAN_THREADS
    out = []
    with ThreadPoolExecutor(threads) as pool:
        for values in arrays:
            rows = [None] * len(arounds)
            dealt = [arounds[i::threads] for i in range(threads)]  # round-robin, put back in order below
            for i, part in enumerate(pool.map(medians, [values] * threads, dealt)):
                rows[i::threads] = part
            out.append(np.stack(rows))
    return out, block_of


def dominant_beat_features(windows: np.ndarray) -> np.ndarray:
    """Per beat (n, 3): the :data:`SHAPE_COLUMNS`, against the running median beat of the record.

    What tells a ventricular beat from a normal one across patients is less its shape
    than its difference from the patient's usual beat: a bundle branch block patient's
    normal beats are wide too, but they are that patient's dominant beat.
    """
    windows = np.asarray(windows, dtype=np.float32)
    n = windows.shape[0]
    if n == 0:
        return np.zeros((0, len(SHAPE_COLUMNS)), dtype=np.float32)
    beat, qrs = normalize_windows(windows), normalize_windows(windows[:, QRS])
    amplitude = np.ptp(windows[:, QRS], axis=1)
    medians, block = block_medians((beat, qrs, amplitude), DOMINANT_BEATS, DOMINANT_BLOCK)
    dominant, dominant_qrs = normalize_windows(medians[0])[block], normalize_windows(medians[1])[block]
    dominant_amplitude = medians[2][block]
    correlation = (beat * dominant).mean(axis=1)
    qrs_correlation = (qrs * dominant_qrs).mean(axis=1)
    ratio = np.log(np.maximum(amplitude, 1e-6) / np.maximum(dominant_amplitude, 1e-6))
    return np.column_stack([1.0 - qrs_correlation, 1.0 - correlation, np.clip(ratio, -3.0, 3.0)]).astype(np.float32)


def p_wave_consistency(windows: np.ndarray) -> np.ndarray:
    """Per beat (n,): how alike the atrial activity before the QRS is over the beats around it.

    Each beat's :data:`P_WAVE` segment is correlated with the median segment of the
    :data:`ATRIAL_BEATS` around it (one template per :data:`ATRIAL_BLOCK` beats), and the
    correlations are averaged over those beats. Sinus rhythm and premature atrial beats
    repeat their P waves (DS1 outside fibrillation: median 0.87); atrial fibrillation and
    flutter have none, only waves unrelated to the QRS (DS1: median 0.24; the two are told
    apart with an area under the ROC curve of 0.985, RR irregularity alone 0.973).
    Ventricular beats have no P wave of their own either, so records full of them score
    lower (DS1's 208: 0.48); leaving beats of unusual QRS out of the template and the average
    (QRS difference from the dominant beat over 0.3 or 0.5) scored 83.2 and 83.6 against 83.6
    (the check of :data:`P_WAVE`), so every beat counts.
    """
    atrial = np.asarray(windows)[:, P_WAVE].astype(np.float64)
    n = atrial.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    centred = atrial - atrial.mean(axis=1, keepdims=True)
    # in units of the record's own atrial activity, so that the guard below is small against any
    # signal's scale (a recording in volts has sums of squares near 1e-12, as the guard)
    centred /= max(float(np.sqrt(np.mean(centred ** 2))), np.finfo(np.float64).tiny)
    (medians,), block = block_medians((centred,), ATRIAL_BEATS, ATRIAL_BLOCK)
    template = medians[block]
    correlation = (centred * template).sum(axis=1) / np.sqrt(
        (centred ** 2).sum(axis=1) * (template ** 2).sum(axis=1) + 1e-12)
    return uniform_filter1d(correlation, size=min(ATRIAL_BEATS, n), mode="nearest").astype(np.float32)


def shape_noise(windows: np.ndarray) -> np.ndarray:
    """Per beat (n, 2): the :data:`NOISE_COLUMNS`, one minus the best correlation of a beat with
    any of the :data:`NOISE_NEIGHBORS` beats on either side, over its QRS and over its whole
    window, as the running median over :data:`ATRIAL_BEATS` beats.

    Two beats of one morphology differ by their noise only, so a beat's closest twin nearby
    gauges the noise whatever the rhythm: a ventricular beat finds the other beats of its focus
    (record 208, full of them, gauges 0.0014 over the QRS, against a median of 0.0009 over
    DS1's clean records and 0.0084 with nstdb's ``em`` at 12 dB), while the difference from the
    patient's dominant beat rises with ventricular ectopy as with noise. Its use:
    :data:`simsearch.model.encoder.NOISE_FLOOR`.
    """
    windows = np.asarray(windows, dtype=np.float32)
    n = windows.shape[0]
    if n < 2:
        return np.zeros((n, len(NOISE_COLUMNS)), dtype=np.float32)
    out = []
    for part in (normalize_windows(windows[:, QRS]), normalize_windows(windows)):
        part = part / np.float32(np.sqrt(part.shape[1]))  # unit vectors: inner products are correlations
        best = np.full(n, -1.0, dtype=np.float32)
        for lag in range(1, min(NOISE_NEIGHBORS, n - 1) + 1):
            correlation = np.einsum("ij,ij->i", part[lag:], part[:-lag])
            np.maximum(best[lag:], correlation, out=best[lag:])
            np.maximum(best[:-lag], correlation, out=best[:-lag])
        out.append(median_filter(1.0 - best, size=min(ATRIAL_BEATS, n), mode="nearest"))
    return np.column_stack(out).astype(np.float32)


def beat_context(r_peaks: np.ndarray, windows: np.ndarray, fs: float, rhythm: np.ndarray | None = None,
                 gaps: np.ndarray | None = None) -> np.ndarray:
    """Per beat (n, len(CONTEXT_COLUMNS)): RR features, difference from the dominant beat, P-wave
    consistency, the stretch's noise and the rhythm without its pauses, for the sorted beats ``r_peaks`` of
    one record and their ``windows``; ``rhythm``, where given, marks the beats the rhythm is read from, and
    ``gaps`` are the record's stretches of invalid signal (:func:`rhythm_of`)."""
    rr, pause_resistant = rhythm_of(r_peaks, fs, rhythm, gaps)
    return np.column_stack([rr, dominant_beat_features(windows), p_wave_consistency(windows), shape_noise(windows),
                            pause_resistant]).astype(np.float32)


def rhythm_of(r_peaks: np.ndarray, fs: float, rhythm: np.ndarray | None = None,
              gaps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(:data:`RR_COLUMNS`, :data:`PAUSE_RESISTANT_COLUMNS`) of the sorted beats ``r_peaks``, read from the
    beats ``rhythm`` marks (all where ``None``): a detection the check doubts (:data:`DOUBTED_BELOW`)
    splits no interval of the beats around it. Such a beat's own intervals run to the marked beats before and
    after it, and it takes the running references of the next marked beat. Where every beat is marked, or
    fewer than two, :func:`rr_features` and :func:`pause_resistant_rhythm` of all of them. An interval between
    marked beats that spans one of ``gaps`` (stretches of invalid signal, [start, stop) at ``fs``) is unknown:
    it is read as the marked intervals' median (:func:`across_gaps_closed`), so the beat after a gap does not
    look late nor its neighbors' running references long."""
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    marked = np.ones(r_peaks.shape[0], dtype=bool) if rhythm is None else np.asarray(rhythm, dtype=bool)
    r_peaks = across_gaps_closed(r_peaks, marked, gaps)
    if marked.all() or marked.sum() < 2:
        return rr_features(r_peaks, fs), pause_resistant_rhythm(r_peaks, fs)
    times = r_peaks[marked]
    rr, pause_resistant = rr_features(times, fs), pause_resistant_rhythm(times, fs)
    before = np.searchsorted(times, r_peaks, side="left") - 1  # the marked beat before each beat
    after = np.searchsorted(times, r_peaks, side="right")  # and after it
    first, last = before < 0, after >= times.shape[0]
    prev_rr = (r_peaks - times[np.clip(before, 0, None)]) / fs
    next_rr = (times[np.clip(after, None, times.shape[0] - 1)] - r_peaks) / fs
    prev_rr, next_rr = np.where(first, next_rr, prev_rr), np.where(last, prev_rr, next_rr)
    reference = np.clip(np.searchsorted(times, r_peaks, side="left"), 0, times.shape[0] - 1)
    out = rr[reference].copy()
    out[:, RR_COLUMNS.index("rr_prev")], out[:, RR_COLUMNS.index("rr_next")] = prev_rr, next_rr
    return out.astype(np.float32), pause_resistant[reference]


def across_gaps_closed(r_peaks: np.ndarray, marked: np.ndarray, gaps: np.ndarray | None) -> np.ndarray:
    """``r_peaks`` (sorted) moved so that each interval between consecutive ``marked`` beats that spans one of
    ``gaps`` becomes the median of the others: the positions a rhythm is read from where the signal between
    two beats is missing (beats may have been there). Beats after such an interval move back by what it lost;
    intervals elsewhere are unchanged."""
    if gaps is None or len(gaps) == 0 or marked.sum() < 3:
        return r_peaks
    times = r_peaks[marked]
    latest = np.searchsorted(gaps[:, 0], times[1:], side="left") - 1  # the last gap starting before each beat
    spans = (latest >= 0) & (gaps[np.clip(latest, 0, None), 1] > times[:-1])
    if not spans.any() or spans.all():
        return r_peaks
    intervals = np.diff(times)
    lost = np.where(spans, intervals - np.median(intervals[~spans]), 0).clip(min=0)
    shift = np.concatenate([[0], np.cumsum(lost)])  # per marked beat
    after = np.searchsorted(times, r_peaks, side="right") - 1  # the marked beat at or before each beat
    moved = r_peaks - np.where(after >= 0, shift[np.clip(after, 0, None)], 0).astype(np.int64)
    return np.minimum.accumulate(moved[::-1])[::-1]  # a beat inside a closed interval stays before its end


DOUBTED_BELOW = 0.2
"""The detection check's probability (:func:`~simsearch.signal.detection_check.beat_probabilities`) under which a
detected beat is doubted (:attr:`Beats.doubted`): kept, but read no rhythm from (:func:`rhythm_of`), and labeled
unclassifiable unless an expert labels it (:data:`simsearch.label.annotate.DOUBTED_LABEL`, measured there with
this value). A false detection splits the interval of the true beats around it, and a sinus beat after it looks
premature, the beat before it followed by a pause. The check's own threshold (0.07, chosen on QRS errors alone)
keeps doubtful detections so as to miss no beat; at it every kept beat sets the rhythm, as before 2026-11-24.

Chosen by ``scripts/cross_validate_end_to_end.py`` (DS1 folds of ``scripts/cross_validate_adaptive.py``, each
held-out patient clean and with nstdb's ``em`` added to both leads, beats as detected; the check itself unchanged,
so QRS Se / +P are 99.78 / 99.41 clean, 99.69 / 99.01 at 12 dB, 98.98 / 93.32 at 6 dB whatever the value),
training seeds 0 / 1, Se / +P %:

==========  ===================================  ===================================  ============================
value       clean: S; V                          ``em`` 12 dB: S; V                   ``em`` 6 dB: S Se; V Se
==========  ===================================  ===================================  ============================
0.07        80.08/81.12, 80.61/79.85;            61.55/67.64, 60.06/62.31;            43.4, 40.7; 77.1, 78.2
            93.98/85.66, 93.74/86.61             86.77/70.18, 86.64/69.37
**0.2**     80.08/81.12, 80.61/79.94;            62.61/68.09, 60.81/62.39;            45.7, 43.4; 80.2, 80.9
            94.03/85.56, 93.74/86.67             86.69/70.49, 86.77/69.80
0.3         79.77/80.71, 80.40/79.64;            62.71/68.44, 61.23/62.89;            46.4, 43.5; 80.7, 81.1
            93.88/85.81, 93.77/87.04             87.14/70.72, 87.04/70.09
0.5         79.66/80.34, 80.30/79.45;            63.03/68.95, 61.44/64.02;            47.7, 44.3; 80.3, 80.8
            93.35/86.37, 93.22/87.64             86.43/70.96, 86.30/70.39
0.8         79.87/79.70, 80.40/78.17;            63.35/67.72, 61.65/63.12;            48.1, 45.9; 74.2, 74.3
            90.71/87.12, 90.58/88.16             80.28/70.52, 80.46/69.92
==========  ===================================  ===================================  ============================

0.2 leaves the clean records as they were (every figure within 0.1) and finds more SVEBs and VEBs in noise on
both seeds; 0.3 (measured after the choice) a little more in noise, for 0.2-0.3 points of the clean records'
SVEB Se; 0.5 finds more SVEBs still but costs the clean records 0.5-0.6 points of VEB Se and 0.4-0.8 of SVEB
+P; 0.8 three points of VEB Se. The same run's ceiling, the detections without the false ones (``"true
detections"``, which also leaves the false beats themselves unscored), seed 0: at 12 dB SVEB 65.5 / 70.3, VEB
89.2 / 76.1. With sinus pauses written into 5 % of each patient's sinus intervals first (``--pauses 5``, seed 0,
measured after the choice; DS1 has no patient with pauses, which fill with detections in noise: QRS +P 96.8 at
12 dB), SVEB at 12 dB 59.1 / 43.2, 60.8 / 45.7 and 62.1 / 50.5 at 0.07, 0.2 and 0.5, VEB 88.1 / 71.3, 87.75 /
71.1, 87.4 / 71.3; paused but clean, 0.2 no worse than 0.07 (within 0.1, SVEB +P +0.3)."""


def reaching_a_gap(centres: np.ndarray, gaps: np.ndarray | None, fs: float) -> np.ndarray:
    """Per beat, whether its window (centred at ``centres``, at :data:`MODEL_FS`) reaches into one of the
    ``gaps`` of invalid signal (:attr:`~simsearch.signal.records.Record.gaps`, [start, stop) at ``fs``)."""
    centres = np.asarray(centres, dtype=np.int64)
    if gaps is None or len(gaps) == 0:
        return np.zeros(centres.shape[0], dtype=bool)
    first, last = gaps_at(gaps, fs, MODEL_FS).T  # sorted and apart
    starts, stops = centres - WINDOW_BEFORE, centres + WINDOW_AFTER
    latest = np.searchsorted(first, stops, side="left") - 1  # the last gap starting before the window ends
    return (latest >= 0) & (last[np.clip(latest, 0, None)] > starts)


def beats_from_record(record: Record, r_peaks: np.ndarray | None = None,
                      symbols: np.ndarray | None = None, *, centres: np.ndarray | None = None) -> Beats:
    """Filter the record and cut its beats.

    Parameters
    ----------
    record : Record
        At any sampling rate.
    r_peaks : array of int, optional
        Beat positions at the record's rate. Default: the reference annotations when
        the record has them, else the QRS detector's.
    symbols : array of str, optional
        MIT-BIH symbols of ``r_peaks`` (default: unlabeled, or the annotations' own).
    centres : array of int, optional
        Where to centre each beat's window, at :data:`MODEL_FS`, in the order of ``r_peaks``
        (:func:`beats_in_lead` passes another lead's). Default: :func:`aligned_centres` of the
        QRS's largest deflections (where the detector places its beats).

    Returns
    -------
    Beats
        Sorted by position, positions at the record's rate.
    """
    at_model = to_model_rate(record.signal, record.fs)
    located = None  # the beats' largest deflections, at MODEL_FS
    probability = None  # the check's, of detected beats
    if r_peaks is None:
        if record.has_annotations:
            r_peaks, symbols = reference_beats(record)
        else:  # the detector runs at MODEL_FS, where its settings were tuned, and places its beats there itself
            located, probability = detected_at_model_rate(record, at_model)
            r_peaks = rescale_samples(located, MODEL_FS, record.fs)
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    order = np.argsort(r_peaks, kind="stable")
    r_peaks = r_peaks[order]
    if r_peaks.size and (r_peaks[0] < 0 or r_peaks[-1] >= record.n_samples):
        raise SampleOutOfRangeError(f"{record.name}: beat positions outside the record (0..{record.n_samples - 1})")
    if symbols is None:
        symbols = np.full(r_peaks.shape[0], "", dtype="<U1")
        aami = symbols.copy()
    else:
        symbols = np.asarray(symbols, dtype="<U1")[order]
        aami = to_aami(symbols)
    filtered = clean_ecg(at_model, MODEL_FS)
    if centres is not None:
        centres = np.clip(np.asarray(centres, dtype=np.int64)[order], 0, max(filtered.size - 1, 0))
    else:
        if located is None:
            located = largest_deflections(bandpass(at_model, MODEL_FS, *LOCATE_BAND_HZ), np.clip(
                rescale_samples(r_peaks, record.fs, MODEL_FS), 0, max(filtered.size - 1, 0)), MODEL_FS)
        centres = aligned_centres(filtered, located)
    windows = segment(filtered, centres)
    if probability is not None:
        probability = np.asarray(probability, dtype=np.float64)[order]
    in_gap = reaching_a_gap(centres, record.gaps, record.fs)
    if in_gap.any():  # a window partly made of the line that bridges a gap is no beat's shape to read
        probability = np.where(in_gap, 0.0, 1.0 if probability is None else probability)
    rhythm = None if probability is None else probability >= DOUBTED_BELOW  # the doubted read no rhythm
    return Beats(record.name, record.lead, record.fs, r_peaks, windows,
                 beat_context(r_peaks, windows, record.fs, rhythm, record.gaps), symbols, aami, centres, probability)


ALIGN_S = 0.06
"""How far either way :func:`aligned_centres` may move a beat's centre: the distance between
two waves of one QRS (R and S, Q and R), between which its largest deflection can jump."""
ALIGN_HALF_S = 0.1
"""Half the stretch of filtered signal compared with the record's median beat: the QRS and its edges."""
ALIGN_MATCH = 0.85
"""Correlation with the record's median beat a beat must reach at its new centre to be moved there."""
ALIGN_GAIN = 0.1
"""By how much that correlation must exceed the one at its largest deflection."""
TEMPLATE_BEATS = 5000
"""Beats (evenly spread over a recording) whose median is the record's median beat."""
MIN_TEMPLATE_BEATS = 20
"""Fewer beats make no median beat worth matching: they keep their largest deflections."""
ALIGN_CHUNK = 20_000
"""Beats :func:`aligned_centres` compares at once (their stretches, sums and matches: about 60 MB)."""


def aligned_centres(filtered: np.ndarray, located: np.ndarray) -> np.ndarray:
    """Where each beat's window is centred: its QRS's largest deflection (``located``, at
    :data:`MODEL_FS`), unless the beat matches its record's median beat (correlation of the
    filtered signal over ±:data:`ALIGN_HALF_S`) clearly better centred elsewhere within ±:data:`ALIGN_S`.

    The largest deflection is where the detector places its beats and, within 3 ms (a record's median),
    where MIT-BIH's annotators placed theirs on 43 of its 44 records without paced beats; another database
    may mark another point of the QRS, so windows are cut there whatever the annotations mark. In DS1
    cross-validation (fold encoders and indexes of ``scripts/cross_validate_adaptive.py``, both leads) the
    held-out patients' annotations moved 20 or 40 ms later scored 84.3 and 81.6 against 87.0, and 87.6
    and 87.5 once centred so.

    But where a QRS has two waves of nearly one size (an R and an S), its largest deflection jumps
    between them from beat to beat: DS1's record 108 had a third of its normal beats cut 30-50 ms off
    the others (matched to its median beat), and 290 of the 341 normal beats its held-out vote called V
    were among them. A beat is therefore moved to where it matches the record's median beat (a normal
    beat in nearly every record) when it matches it well there (:data:`ALIGN_MATCH`) and clearly better
    than where it is (:data:`ALIGN_GAIN`); a beat of another shape (a ventricular one) matches nowhere
    and keeps its largest deflection. Chosen on DS1's held-out votes (the fold encoders and indexes
    above, seeds 0 / 1, the encoders as they were): shortfall from the targets 6.72 / 4.87 against 10.46 /
    8.70 unmoved (VEB +P 85.3 / 87.1 against 81.5 / 83.3; 108's normal beats called V 160 / 153 against
    341 / 329); matches of 0.8, 0.9, 0.95 with gain 0.1: 6.82 / 4.94, 7.20 / 5.26, 7.99 (seed 0); gains
    0.05, 0.2 at 0.9: 7.20 / 5.20, 7.56. A median per 500 beats instead of the record's (a record's shape
    drifts over hours) did less (8.45, seed 0): where a third of a stretch jumps, its median jumps too.
    Encoders retrained on aligned windows (``scripts/cross_validate_second_lead.py --weights 1.5 --setups
    128Hz,257Hz``): 87.49 / 87.92 against 87.24 / 87.67, shortfall 11.23 / 8.41 against 12.34 / 10.13
    (VEB +P 81.6 / 84.6 against 80.3 / 82.0, SVEB Se 79.1 / 79.0 against 79.3 / 79.9); at 128 Hz 87.27 /
    87.85 against 87.04 / 87.64, at 257 Hz 87.39 / 87.89 against 87.19 / 87.75.

    The beat keeps its sample number and RR intervals: only where its window is cut moves.

    Written here: a correlation of every beat with one template at a few dozen shifts is a few lines
    of numpy; :func:`scipy.signal.correlate` takes one pair at a time.
    """
    located = np.asarray(located, dtype=np.int64)
    n = located.shape[0]
    if n < MIN_TEMPLATE_BEATS:
        return located
    reach, half = int(round(ALIGN_S * MODEL_FS)), int(round(ALIGN_HALF_S * MODEL_FS))
    width = 2 * half + 1
    offsets = np.arange(-(reach + half), reach + half + 1)  # ±(reach + half) around a beat

    def stretches_at(beats: np.ndarray) -> np.ndarray:  # the ends of the record repeat its edge samples
        return np.asarray(filtered[np.clip(beats[:, None] + offsets[None, :], 0, filtered.shape[0] - 1)],
                          dtype=np.float64)

    spread = located[np.linspace(0, n - 1, min(n, TEMPLATE_BEATS)).astype(np.int64)]
    template = np.median(stretches_at(spread)[:, reach:reach + width], axis=0)
    template = template - template.mean()
    template /= np.linalg.norm(template) + 1e-12
    out = located.copy()
    for start in range(0, n, ALIGN_CHUNK):  # bounded memory on a 24-hour recording's 10^5 beats
        part = located[start:start + ALIGN_CHUNK]
        stretches = stretches_at(part)
        sums = np.cumsum(np.pad(stretches, ((0, 0), (1, 0))), axis=1)
        squares = np.cumsum(np.pad(stretches ** 2, ((0, 0), (1, 0))), axis=1)
        match = np.empty((part.shape[0], 2 * reach + 1))
        for shift in range(2 * reach + 1):  # correlation with the template, the centre moved by shift - reach
            total = sums[:, shift + width] - sums[:, shift]
            energy = squares[:, shift + width] - squares[:, shift] - total ** 2 / width
            match[:, shift] = (stretches[:, shift:shift + width] @ template) / np.sqrt(np.maximum(energy, 1e-24))
        best = match.argmax(axis=1)
        best_match = match[np.arange(part.shape[0]), best]
        move = (best_match >= ALIGN_MATCH) & (best_match - match[:, reach] >= ALIGN_GAIN)
        out[start:start + ALIGN_CHUNK] = np.where(move, part + best - reach, part)
    return out.clip(0, max(filtered.shape[0] - 1, 0))


def beats_in_lead(other: Record, beats: Beats) -> Beats:
    """``beats`` (of one lead of a recording) cut from ``other``, another lead of it: the same
    instants, windows centred where the first lead's are (a lead's own largest deflection
    may be another wave: V1's S wave), their symbols kept. ``other`` may have its own rate."""
    peaks = np.clip(rescale_samples(beats.samples, beats.fs, other.fs), 0, max(other.n_samples - 1, 0))
    cut = beats_from_record(other, r_peaks=peaks, centres=beats.centres)
    context = cut.context.copy()
    rhythm_columns = [CONTEXT_COLUMNS.index(c) for c in RR_COLUMNS + PAUSE_RESISTANT_COLUMNS]
    context[:, rhythm_columns] = beats.context[:, rhythm_columns]  # one heart, one rhythm: as the first lead read it
    return replace(cut, context=context, symbols=beats.symbols, aami=beats.aami,
                   detection_probability=beats.detection_probability)


def detect_beats(record: Record) -> np.ndarray:
    """R-peak positions (at the record's rate) found by the QRS detector, ignoring any annotations
    (the beats :func:`beats_from_record` cuts from a record without annotations)."""
    return rescale_samples(detected_at_model_rate(record, to_model_rate(record.signal, record.fs))[0], MODEL_FS,
                           record.fs)


def detected_at_model_rate(record: Record, at_model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The detector's beats in ``at_model`` (``record``'s lead at :data:`MODEL_FS`), those that noise
    made dropped where the record has another lead to look at
    (:func:`~simsearch.signal.detection_check.check_detections`), and the check's probability that each
    kept one is a beat (1 where unchecked)."""
    found = detect_r_peaks(at_model, MODEL_FS)
    return check_detections(at_model, other_lead_at_model_rate(record, at_model.shape[0]), MODEL_FS, found,
                            with_probabilities=True)


def other_lead_at_model_rate(record: Record, n_samples: int) -> np.ndarray | None:
    """The same seconds of ``record``'s other lead at :data:`MODEL_FS`, ``n_samples`` long; ``None``
    when it has none, is no file (a raw signal), or the other lead cannot be read or is flat or NaN:
    the detector's beats then stand unchecked, and an index that needs that lead says why."""
    try:
        other = read_other_lead(record)
        if other is None:
            return None
        check_signal(other.signal, f"{record.name} lead {other.lead}")
    except SimsearchError:
        return None
    signal = to_model_rate(other.signal, other.fs)[:n_samples]
    return np.pad(signal, (0, n_samples - signal.shape[0]), mode="edge") if signal.shape[0] < n_samples else signal


def to_model_rate(signal: np.ndarray, fs: float) -> np.ndarray:
    """The signal resampled to :data:`MODEL_FS` (:func:`simsearch.signal.filtering.resample`)."""
    return resample(signal, fs, MODEL_FS)


def normalize_windows(windows: np.ndarray) -> np.ndarray:
    """Per-beat z-normalisation: shape is compared, not gain or offset."""
    windows = np.asarray(windows, dtype=np.float32)
    centred = windows - windows.mean(axis=1, keepdims=True)
    scale = centred.std(axis=1, keepdims=True)
    return centred / np.maximum(scale, 1e-6)


def rescale_samples(samples, from_fs: float, to_fs: float) -> np.ndarray:
    """Sample numbers at ``from_fs`` as the nearest sample numbers at ``to_fs`` (int64).

    The one conversion between a record's own rate and :data:`MODEL_FS`, so positions
    round the same way wherever they cross.
    """
    return np.round(np.asarray(samples, dtype=np.float64) * (to_fs / from_fs)).astype(np.int64)


def check_sample(sample, n_samples: int, record: str) -> int:
    """``sample`` as an int, if it is a whole number inside a record of ``n_samples`` samples."""
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
        raise SampleOutOfRangeError(f"{record}: sample must be a whole number, not {sample!r}")
    if not 0 <= sample < n_samples:
        raise SampleOutOfRangeError(f"{record}: sample {sample} is outside the record (0..{n_samples - 1})")
    return int(sample)


def nearest_beat(samples: np.ndarray, sample: int, record: str) -> int:
    """Row of the beat whose R-peak is nearest to ``sample``."""
    if samples.size == 0:
        raise SampleOutOfRangeError(f"{record}: the record has no beats")
    return int(np.argmin(np.abs(samples - sample)))
