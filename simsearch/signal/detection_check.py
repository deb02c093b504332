"""A second look at the QRS detector's beats, in both leads: drops the ones noise made.

The detector (:mod:`simsearch.signal.detection`) walks one lead. Electrode-motion noise
puts QRS-like deflections into it that no threshold on that lead tells from beats (its
settings were tuned for that, ``scripts/tune_detector.py``); a true beat, though, shows in
the record's other lead at the same instant, with the shape of that lead's neighboring
beats, and falls where the rhythm expects one. Per detection, :func:`detection_features`
measures that (:data:`FEATURES`); a gradient-boosted tree ensemble trained on DS1 only
(``scripts/train_detection_check.py``: DS1 without 118 and 119, clean and with nstdb's
``em`` and ``ma`` noise at 18 to 0 dB in both leads) turns the features into the
probability that the detection is a beat, and :func:`check_detections` drops those below
the model's threshold, chosen by cross-validation inside DS1 (the figures are in the
model file, ``simsearch/models/detection_check.json``, and docs/measurements.md, "QRS detection").

The trees are evaluated here with numpy (:func:`tree_scores`), not by scikit-learn which
trained them: the detector then needs neither scikit-learn nor a pickle (tied to the
version that wrote it) at run time, and the model is a small JSON file anyone can read.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .detection import LOCATE_BAND_HZ, QRS_BAND_HZ, qrs_envelope
from .filtering import bandpass, maximum_filter1d, minimum_filter1d

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "detection_check.json"

FEATURES = ("height", "rr_before", "rr_after", "rr_sum", "match", "rhythm_match", "envelope", "match_before",
            "height_before", "other_height", "other_match", "other_rhythm_match")
"""Per detection, in the model's column order. ``height``: its QRS's peak-to-peak amplitude over
the median of the :data:`NEIGHBORS` detections on each side; ``rr_before``/``rr_after``: the RR
intervals around it over their median there, ``rr_sum`` their sum (a noise spike between two
beats splits one interval in two); ``match``: its correlation with the median shape of its
:data:`TEMPLATE_NEIGHBORS` neighbors on each side, ``rhythm_match`` the neighbors' own median
correlation with it (how clean the stretch is); ``envelope``: the detector's QRS envelope at it
over its neighbors'; ``match_before``/``height_before``: the previous detection's; ``other_*``:
height and shape match in the other lead at the same instant."""

NEIGHBORS = 10
"""Detections on each side whose median is a detection's reference height and RR interval."""
TEMPLATE_NEIGHBORS = 8
"""Detections on each side whose median window is a detection's reference shape."""
WINDOW_S = 0.100
"""Each side of a detection compared with its neighbors' shape: the QRS and its edges."""
HEIGHT_S = 0.050
"""Each side of a detection in which its QRS's peak-to-peak height is measured."""
MIN_DETECTIONS = 2 * NEIGHBORS + 1
"""Fewer detections give no rhythm and no shape to compare with: they are kept unchecked."""
ACTIVITY_S = 1.5
"""Each side of a detection in which a lead's largest deflection shows whether it records at all: longer
than the slowest RR interval of a resting heart, so a working lead always shows a QRS in it."""
LEAD_OFF_FRACTION = 0.1
"""Where the other lead's largest peak-to-peak within :data:`ACTIVITY_S` of a detection is under this
fraction of its usual one (the median over the record's detections), the lead is off there (a loose
electrode, a flat or saturated stretch) and the detection is kept unchecked: a flat stretch looks to the
trees like a lead that saw no beat (ten flat minutes of V1 in records 203 and 208 cost 98 and 230 beats
without this rule). Where the median itself is under this fraction of the 95th percentile, the lead is
off more than half the time, and off throughout for the check (in MIT-BIH the median is 0.39 to 0.94 of
the 95th percentile). The median, not a higher percentile: muscle noise's bursts raise those."""
SILENT_FRACTION = 0.01
"""A lead whose usual peak-to-peak is under this fraction of the first lead's records nothing: off
throughout (MIT-BIH's smallest, record 101's V1, is 0.07 of its MLII)."""
CHUNK = 4096
"""Detections whose neighbors' windows are stacked at once (4096 x 16 x 73 floats, 38 MB)."""


def check_detections(first: np.ndarray, second: np.ndarray | None, fs: float, detections: np.ndarray,
                     model_path: Path = MODEL_PATH, *, with_probabilities: bool = False
                     ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The detections (sorted sample numbers at ``fs``) the model takes for beats; ``with_probabilities``,
    also the probability of each (:func:`beat_probabilities`).

    Parameters
    ----------
    first : numpy.ndarray
        The lead the detector ran on, at ``fs``.
    second : numpy.ndarray or None
        The record's other lead at the same rate and instants (as long as ``first``). Without
        it (a one-lead record) every detection is kept: one lead alone does not tell noise
        from beats well enough (docs/measurements.md, "QRS detection": tried, not adopted).
    fs : float
    detections : numpy.ndarray
        The detector's R peaks.
    """
    detections = np.asarray(detections, dtype=np.int64)
    model = load_model(model_path)
    probability = beat_probabilities(first, second, fs, detections, model=model)
    kept = probability >= model["threshold"]
    return (detections[kept], probability[kept]) if with_probabilities else detections[kept]


def beat_probabilities(first: np.ndarray, second: np.ndarray | None, fs: float, detections: np.ndarray,
                       model_path: Path = MODEL_PATH, *, model: dict | None = None) -> np.ndarray:
    """Per detection, the model's probability that it is a beat (what :func:`check_detections` keeps
    above its threshold); 1 where it goes unchecked (one lead, the other lead off, too few detections).
    Parameters as :func:`check_detections`'; ``model``, already loaded, is read instead of ``model_path``."""
    detections = np.asarray(detections, dtype=np.int64)
    unchecked = np.ones(detections.shape[0])
    if second is None or detections.shape[0] < MIN_DETECTIONS:
        return unchecked
    located = located_leads(first, second, fs)
    present = other_lead_present(*located, fs, detections)
    if not present.any():
        return unchecked
    beat = beat_probability(model or load_model(model_path), detection_features(first, second, fs, detections,
                                                                                 located))
    return np.where(present, beat, 1.0)


def located_leads(first: np.ndarray, second: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Both leads band-passed to the detector's locating band, where QRS shapes and heights are measured."""
    return tuple(bandpass(np.asarray(lead, dtype=np.float64), fs, *LOCATE_BAND_HZ) for lead in (first, second))


def other_lead_present(first: np.ndarray, second: np.ndarray, fs: float, detections: np.ndarray) -> np.ndarray:
    """Per detection, whether the other lead records around it (:data:`LEAD_OFF_FRACTION`); ``first`` and
    ``second`` are the leads as :func:`located_leads` gives them."""
    first_activity, second_activity = (lead_activity(lead, fs, detections) for lead in (first, second))
    usual = np.median(second_activity)
    if usual <= LEAD_OFF_FRACTION * np.percentile(second_activity, 95) or \
            usual <= SILENT_FRACTION * np.median(first_activity):
        return np.zeros(detections.shape[0], dtype=bool)
    return second_activity > LEAD_OFF_FRACTION * usual


def lead_activity(located: np.ndarray, fs: float, detections: np.ndarray) -> np.ndarray:
    """Per detection, the largest peak-to-peak of a located lead within :data:`ACTIVITY_S` of it."""
    size = 2 * int(round(ACTIVITY_S * fs)) + 1
    return (maximum_filter1d(located, size=size) - minimum_filter1d(located, size=size))[detections]


def detection_features(first: np.ndarray, second: np.ndarray, fs: float, detections: np.ndarray,
                       located: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per detection (n, len(:data:`FEATURES`)), float64; see :data:`FEATURES`. ``located``: the two
    leads as :func:`located_leads` gives them, when the caller has them."""
    located_first, located_second = located if located is not None else located_leads(first, second, fs)
    height, match, rhythm_match = lead_features(located_first, fs, detections)
    other_height, other_match, other_rhythm_match = lead_features(located_second, fs, detections)
    rr = np.diff(detections).astype(np.float64)
    typical_rr = median_of_neighbors(np.append(rr, rr[-1:]), NEIGHBORS)
    rr_before = np.append(1.0, rr / typical_rr[1:])
    rr_after = np.append(rr / typical_rr[:-1], 1.0)
    envelope = qrs_envelope(bandpass(first, fs, *QRS_BAND_HZ), fs)[detections]
    envelope = envelope / np.maximum(median_of_neighbors(envelope, NEIGHBORS), 1e-12)
    return np.column_stack([height, rr_before, rr_after, rr_before + rr_after, match, rhythm_match, envelope,
                            np.append(1.0, match[:-1]), np.append(1.0, height[:-1]), other_height, other_match,
                            other_rhythm_match])


def lead_features(located: np.ndarray, fs: float, detections: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(height, match, rhythm_match) of each detection in one located lead (see :data:`FEATURES`)."""
    half, core = int(round(WINDOW_S * fs)), int(round(HEIGHT_S * fs))
    at = np.clip(detections[:, None] + np.arange(-half, half + 1)[None, :], 0, located.shape[0] - 1)
    windows = located[at]
    middle = windows[:, half - core: half + core + 1]
    peak_to_peak = middle.max(axis=1) - middle.min(axis=1)
    height = peak_to_peak / np.maximum(median_of_neighbors(peak_to_peak, NEIGHBORS), 1e-12)
    unit = windows - windows.mean(axis=1, keepdims=True)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    n, side = detections.shape[0], TEMPLATE_NEIGHBORS
    padded = np.full((n + 2 * side, windows.shape[1]), np.nan)
    padded[side: side + n] = windows
    padded_unit = np.full_like(padded, np.nan)
    padded_unit[side: side + n] = unit
    others = np.r_[0:side, side + 1: 2 * side + 1]  # the neighbors, not the detection itself
    match, rhythm_match = np.empty(n), np.empty(n)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        around = sliding_window_view(padded[lo: hi + 2 * side], 2 * side + 1, axis=0)[:, :, others]
        template = median_ignoring_padding(around, axis=2)  # (rows, window)
        template -= template.mean(axis=1, keepdims=True)
        template /= np.maximum(np.linalg.norm(template, axis=1, keepdims=True), 1e-12)
        match[lo:hi] = np.einsum("ij,ij->i", unit[lo:hi], template)
        neighbor_units = sliding_window_view(padded_unit[lo: hi + 2 * side], 2 * side + 1, axis=0)[:, :, others]
        rhythm_match[lo:hi] = median_ignoring_padding(np.einsum("iwk,iw->ik", neighbor_units, template), axis=1)
    return height, match, rhythm_match


def median_of_neighbors(values: np.ndarray, side: int) -> np.ndarray:
    """Per element, the median of the ``side`` elements on each side of it (fewer at the ends;
    the element itself where it has none)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    padded = np.full(n + 2 * side, np.nan)
    padded[side: side + n] = values
    around = sliding_window_view(padded, 2 * side + 1)[:, np.r_[0:side, side + 1: 2 * side + 1]]
    has = np.isfinite(around).any(axis=1)
    out = values.copy()
    out[has] = median_ignoring_padding(around[has], axis=1)
    return out


def median_ignoring_padding(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` along ``axis`` of a (rows, ...) array, at ``np.median``'s speed (twice
    nanmedian's) for the rows without NaN: only the first and last rows hold padding."""
    out = np.median(values, axis=axis)
    if out.shape[0] == 0:
        return out
    padded = np.isnan(out.reshape(out.shape[0], -1)).any(axis=1)
    if padded.any():
        out[padded] = np.nanmedian(values[padded], axis=axis)
    return out


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> dict:
    """The model file: trees as arrays, the baseline score and the threshold."""
    return model_from(json.loads(Path(path).read_text()), str(path))


def model_from(data: dict, source: str = "the model") -> dict:
    """A model as written to its file (lists) with its trees as arrays, its features checked."""
    if list(data["features"]) != list(FEATURES):
        raise ValueError(f"{source}: the model's features {data['features']} are not {list(FEATURES)}")
    return {**data, "trees": [{key: np.asarray(value) for key, value in tree.items()} for tree in data["trees"]]}


def beat_probability(model: dict, features: np.ndarray) -> np.ndarray:
    """The model's probability that each row of ``features`` is a beat."""
    return 1.0 / (1.0 + np.exp(-(model["baseline"] + tree_scores(model["trees"], features))))


def tree_scores(trees: list[dict], features: np.ndarray) -> np.ndarray:
    """Sum over ``trees`` of each row's leaf value: a row goes left at a node when its feature is at
    most the node's threshold (scikit-learn's histogram gradient boosting; no value is missing)."""
    features = np.asarray(features, dtype=np.float64)
    rows = np.arange(features.shape[0])
    total = np.zeros(features.shape[0])
    for tree in trees:
        node = np.zeros(features.shape[0], dtype=np.int64)
        while True:
            inner = ~tree["leaf"][node]
            if not inner.any():
                break
            goes_left = features[rows, tree["feature"][node]] <= tree["threshold"][node]
            node = np.where(inner, np.where(goes_left, tree["left"][node], tree["right"][node]), node)
        total += tree["value"][node]
    return total
