"""End to end: beats found by the detector, labeled by the index, matched to the reference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..aami import AAMI_CLASSES, class_index, to_aami
from ..progress import progress_bar
from ..label.vote import VOTE_K, index_vote, vote_winner
from ..signal.beats import beats_from_record, detect_beats, reference_beats
from ..signal.records import load_record
from .matching import MATCH_TOLERANCE_S, match_labels, matched_metrics


def evaluate_end_to_end(index, records: Sequence[str], data_dir, *, tolerance_s: float = MATCH_TOLERANCE_S,
                        progress: bool = False) -> dict:
    """Detected beats (no reference positions) labeled by the index, scored against the reference.

    Parameters
    ----------
    index : BeatIndex
        The labeled beats that vote; a test record's own beats never do (excluded by name,
        however the record is spelled).
    records : sequence of str
        Test records (names or paths) with reference annotations.
    data_dir : str or path, optional
        Where bare names are looked up.
    tolerance_s : float
        A detection within this of a reference beat is that beat (EC57: 150 ms).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        EC57 figures (:func:`~simsearch.evaluation.matching.matched_metrics`), pooled over
        records: the confusion matrix of matched beats, ``missed_reference_beats``
        (counted against their class's Se) and ``extra_beats`` (against the +P of the
        class they were given).
    """
    n = len(AAMI_CLASSES)
    totals = [np.zeros((n, n), dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    with progress_bar("end-to-end", len(records), enabled=progress) as advance:
        for name in records:
            record = load_record(name, data_dir)
            reference, symbols = reference_beats(record)
            detected = beats_from_record(record, r_peaks=detect_beats(record))
            distances, ids = index.search(index.encoder.embed(detected.windows, detected.context), VOTE_K,
                                          exclude_records=[record.name])
            pred, _ = vote_winner(index_vote(index, distances, ids))
            found = match_labels(reference, class_index(to_aami(symbols)), detected.samples, pred, record.fs,
                                 tolerance_s)
            totals = [t + f for t, f in zip(totals, found)]
            advance(name)
    return matched_metrics(*totals)
