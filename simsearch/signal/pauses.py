"""Sinus pauses inserted into a record: a stress test for the rhythm a recording's beats are judged by.

MIT-BIH's DS1 holds no patient with sinus pauses (sinus arrest, sinoatrial or AV block without
an escape beat), common on a Holter. Beats before such a pause are followed by a long interval,
as premature atrial beats are by the sinus node's reset (DS2's record 232): what the vote makes
of them, and what the rhythm references (:func:`~simsearch.signal.beats.rr_features`) do when
pauses lengthen a patient's running mean, is measured by inserting pauses into real records.

A pause is the signal held at its value at the spot, in every lead at the same instant, placed
after one beat's T wave and before the next beat's P wave (:data:`SPOT_FRACTION`); annotations after
it move with it.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np

from ..aami import to_aami
from .beats import reference_beats
from .records import Record

PAUSE_S = (1.0, 4.0)
"""Range of the pauses' lengths (uniform), added to the interval they interrupt: with it a pause
lasts 1.6-5 s at a resting rate, the range a Holter report lists pauses in."""
SPOT_FRACTION = 0.6
"""A pause starts this far into the interval it interrupts: after the first beat's T wave, before the next
beat's P wave (at 100 bpm the QT is about 0.33 s of the 0.6 s, the PR 0.15 s)."""
MIN_INTERVAL_S = 0.5
"""Shorter intervals (over 120 bpm) get no pause: their T and P waves leave no room between them."""


def pause_spots(beats: np.ndarray, symbols: np.ndarray, fs: float, share: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Where pauses go and how long they are (samples), in ``share`` of a record's sinus intervals.

    Parameters
    ----------
    beats, symbols : ndarray, shape (n,)
        The record's beats (sorted sample numbers) and their MIT-BIH symbols.
    fs : float
    share : float
        Of the intervals between two beats of AAMI class N, the share that gets a pause, chosen at
        random among those long enough for one (:data:`MIN_INTERVAL_S`; all of those where fewer are): a
        sinus pause interrupts the sinus rhythm, not an ectopic beat's own pause.
    seed : int

    Returns
    -------
    spots, lengths : ndarray of int64
        Sorted samples where the pauses start, and their lengths (:data:`PAUSE_S`).
    """
    beats = np.asarray(beats, dtype=np.int64)
    if beats.shape[0] < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    normal = to_aami(np.asarray(symbols)) == "N"
    sinus = normal[:-1] & normal[1:]
    starts, ends = beats[:-1], beats[1:]
    spots = (starts + np.round(SPOT_FRACTION * (ends - starts)).astype(np.int64))[
        sinus & (ends - starts >= MIN_INTERVAL_S * fs)]
    rng = np.random.default_rng(seed)
    count = min(int(round(share * np.count_nonzero(sinus))), spots.shape[0])
    spots = np.sort(rng.choice(spots, size=count, replace=False))
    lengths = np.round(rng.uniform(*PAUSE_S, size=spots.shape[0]) * fs).astype(np.int64)
    return spots, lengths


def with_pauses(record: Record, spots: np.ndarray, lengths: np.ndarray) -> Record:
    """``record`` with its signal held flat for ``lengths`` samples at each of ``spots`` (sorted,
    :func:`pause_spots`), its annotations after a spot moved by the pauses before them."""
    spots, lengths = np.asarray(spots, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    copies = np.ones(record.n_samples, dtype=np.int64)
    copies[spots] += lengths  # the sample at a spot, held: repeated for the pause's length
    moved = record.ann_samples
    if moved is not None:
        shift = np.concatenate([[0], np.cumsum(lengths)])
        moved = moved + shift[np.searchsorted(spots, moved, side="right")]
    return replace(record, signal=np.repeat(record.signal, copies), ann_samples=moved)


def paused_like(record: Record, reference: Record, share: float) -> Record:
    """``record``, a lead of ``reference``'s recording (or ``reference`` itself), with sinus pauses in ``share``
    of ``reference``'s sinus intervals (:func:`pause_spots`, seeded by the recording's name): every lead of
    one recording gets the same pauses at the same instants."""
    return with_pauses(record, *pause_spots(*reference_beats(reference), reference.fs, share,
                                            zlib.crc32(reference.name.encode())))
