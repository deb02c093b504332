"""Labeled beats of many records, stacked for training and model selection."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..aami import AAMI_CLASSES, class_index
from ..errors import AnnotationError, LeadNotFoundError
from ..signal.beats import Beats, beats_from_record, beats_in_lead, reference_beats
from ..signal.noise import NOISE_LEADS, NSTDB_SOURCES, add_noise, sized_beats
from ..signal.records import load_record, other_lead, record_name

DS1_VALIDATION = ("106", "112", "209", "220")
"""DS1 records held out for early stopping: they hold half of DS1's SVEB and a
quarter of its VEB, from patients the training batches never see."""


@dataclass
class BeatSet:
    """Beats of many records stacked: windows, context, class positions, record names, and where stacked from
    :class:`~simsearch.signal.beats.Beats`, each beat's sample in its record (``None`` otherwise)."""

    windows: np.ndarray
    context: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    samples: np.ndarray | None = None

    @classmethod
    def stack(cls, beats: Sequence[Beats]) -> BeatSet:
        labeled = [b.take(np.flatnonzero((b.aami != "") & ~b.doubted)) for b in beats]  # doubted: no shape to learn
        if not sum(len(b) for b in labeled):
            raise AnnotationError("no labeled beats to learn from: the records need reference annotations")
        return cls(
            np.concatenate([b.windows for b in labeled]),
            np.concatenate([b.context for b in labeled]),
            np.concatenate([class_index(b.aami) for b in labeled]),
            np.concatenate([np.full(len(b), b.record) for b in labeled]),
            np.concatenate([b.samples for b in labeled]),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: np.ndarray) -> BeatSet:
        return BeatSet(self.windows[rows], self.context[rows], self.labels[rows], self.groups[rows],
                       None if self.samples is None else self.samples[rows])


def load_beats(records: Sequence[str], data_dir, progress: Callable[[str], None] | None = None, *,
               second_lead: bool = False) -> list[Beats]:
    """Reference-annotated beats of each record, at the model's rate, in its default lead, or
    with ``second_lead`` in its other one (:func:`in_other_lead`).

    Raises
    ------
    LeadNotFoundError
        ``second_lead`` and a record has one lead.
    """
    out = []
    for name in records:
        out.append(beats_from_record(load_record(name, data_dir)))
        if progress:
            progress(name)
    return in_other_lead(records, out, data_dir) if second_lead else out


def in_other_lead(records: Sequence[str], beats: Sequence[Beats], data_dir) -> list[Beats]:
    """``beats`` (of ``records``, names or paths, one each) in each record's other lead
    (:func:`~simsearch.signal.records.other_lead`),
    cut where the default lead's are (:func:`~simsearch.signal.beats.beats_in_lead`), as an index
    of both leads cuts them.

    Raises
    ------
    LeadNotFoundError
        A record has one lead.
    """
    out = []
    for name, first in zip(records, beats, strict=True):
        lead = other_lead(name, data_dir)
        if lead is None:
            raise LeadNotFoundError(f"{record_name(name)} has one lead: no second lead to read")
        out.append(beats_in_lead(load_record(name, data_dir, lead=lead, annotations=None), first))
    return out


TRAINING_NOISES = ("em", "ma")
"""The nstdb noise records added to training records (:func:`noisy_beats`): electrode motion and muscle
noise, recorded from people. ``bw`` (baseline wander) was not tried.

``em`` is also the noise of ``simsearch evaluate --task noise`` (nstdb's 118e/119e, and the test records
with ``em`` added), so that task's patients are unseen but its noise recording is not. Muscle noise
alone keeps ``em`` out of sample and was measured (2026-11-23, ``scripts/cross_validate_second_lead.py
--weights 1.5 --setups 257Hz --seed N [--set 'noise_records=["ma"]']``, training seeds 0 / 1 / 2 / 3):
mean score 87.99 / 88.35 / 87.87 / 85.41 against 88.07 / 88.62 / 88.72 / 85.84 with both, shortfall from
the targets 6.18 / 4.07 / 4.62 / 11.51 against 5.13 / 3.61 / 3.33 / 9.73; lower on every seed (SVEB Se
81.3 / 81.3 / 79.8 / 75.6 against 81.3 / 81.6 / 81.9 / 77.0), so both stay and the noise task's figures
are read as robustness to a noise recording the encoder has met, at stretches and SNRs chosen apart."""


def noisy_beats(records: Sequence[str], data_dir, noise_dir, snrs_db: Sequence[float],
                progress: Callable[[str], None] | None = None, noises: Sequence[str] = TRAINING_NOISES) -> list[Beats]:
    """Reference-annotated beats of noisy copies of ``records``: one copy per SNR of ``snrs_db``, the
    first lead with a stretch of one of nstdb's noise records ``noises`` (:data:`TRAINING_NOISES`) added at that
    SNR as ``nst`` adds it (:func:`~simsearch.signal.noise.add_noise`). The beats and their context are
    cut from the noisy signal, as a noisy recording's would be. The records the nstdb's own noisy
    records copy (:data:`~simsearch.signal.noise.NSTDB_SOURCES`) get no copy.

    Which noise record and where in it the stretch starts follow from the record's name (its CRC-32)
    and the copy's number alone, so a record gets the same noise in every set of records it trains in
    (a cross-validation fold's, the packaged encoder's); DS1's 20 records get ``em`` and ``ma`` ten each.

    Raises
    ------
    RecordNotFoundError
        ``noise_dir`` does not hold one of ``noises``.
    """
    if not snrs_db:
        return []
    noises = [load_record(name, noise_dir, lead=NOISE_LEADS[0], annotations=None) for name in noises]
    out = []
    for name in records:
        known_as = record_name(name)
        if known_as not in NSTDB_SOURCES:
            record = load_record(name, data_dir)
            sized = sized_beats(*reference_beats(record))
            code = zlib.crc32(known_as.encode())
            for copy, snr in enumerate(snrs_db):
                noise = noises[(code + copy) % len(noises)]
                signal = add_noise(record.signal, record.fs, noise.signal, noise.fs, snr, sized, 10 * code + copy)
                out.append(beats_from_record(replace(record, signal=signal)))
        if progress:
            progress(name)
    return out


def split_validation(records: Sequence[str]) -> tuple[list[str], list[str]]:
    """Patient-disjoint train/validation split of the training records.

    DS1 uses :data:`DS1_VALIDATION`; other lists hold out every fifth record (none
    when fewer than five records are given).
    """
    records = list(records)
    if set(DS1_VALIDATION) <= set(records):
        val = [r for r in records if r in DS1_VALIDATION]
    else:
        val = records[4::5] if len(records) >= 5 else []
    return [r for r in records if r not in val], val


def patient_folds(beats: BeatSet, n_folds: int) -> list[list[str]]:
    """Deal records into ``n_folds`` folds, stratified by their share of the rare classes.

    Records are ranked by their summed share of all S, V and F beats and dealt in a
    snake order (0, 1, ..., n-1, n-1, ..., 0, ...), so every fold gets some of the
    records rich in rare beats and as many records as the others. Deterministic.
    """
    records = list(dict.fromkeys(str(g) for g in beats.groups))
    rare = [AAMI_CLASSES.index(c) for c in ("S", "V", "F")]
    counts = np.array([[np.sum((beats.groups == r) & (beats.labels == c)) for c in rare] for r in records], float)
    richness = (counts / np.maximum(counts.sum(axis=0), 1.0)).sum(axis=1)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for rank, row in enumerate(np.argsort(-richness, kind="stable")):
        turn, position = divmod(rank, n_folds)
        folds[position if turn % 2 == 0 else n_folds - 1 - position].append(records[row])
    return folds
