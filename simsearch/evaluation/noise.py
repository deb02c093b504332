"""Noise robustness, as AAMI EC57's noise test measures it, plus noise added to the test records.

Two sets of noisy records, each scored end to end at every SNR (beats found by the
detector on the noisy signal, labeled by the index, matched to the reference within
150 ms: :mod:`simsearch.evaluation.end_to_end`), with QRS Se/+P and class Se/+P:

* the MIT-BIH Noise Stress Test Database (nstdb): records 118 and 119 with
  electrode-motion noise added at 24 to -6 dB SNR by PhysioNet's ``nst``, in
  alternating 2-minute segments from minute 5 (their ``.atr`` are 118's and 119's);
* the test records (DS2 by default) with the same ``em`` noise record added at the
  same SNRs by :func:`simsearch.signal.noise.add_noise` (nst's SNR definition), in both
  leads as nst adds it (:func:`noisy_copies`), so that an index of both leads reads both noisy.

118 and 119 are DS1 records, so the index that labels the beats must hold neither
(:data:`NOISE_INDEX_RECORDS`): :func:`evaluate_noise` refuses one that does. Each set
also gets a ``clean`` row, the same records without noise, as the reference point.

The two sets differ in where the noise is: nstdb's records are noisy in about 12 of
their 30 minutes, while ``add_noise`` covers the whole record, so at one SNR the added
noise is the harder test. Every beat of a record is scored, as in the other tasks
(EC57's noise test scores the nstdb records whole too).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..aami import DS1
from ..errors import ParameterError, RecordNotFoundError
from ..progress import progress_bar
from ..signal.beats import reference_beats
from ..signal.noise import NOISE_LEADS, NSTDB_SOURCES, add_noise, sized_beats
from ..signal.records import (
    Record,
    check_record,
    data_dir_from,
    load_record,
    read_other_lead,
    read_rhythms,
    record_name,
    write_record,
)
from .end_to_end import Tally, label_record
from .leakage import check_disjoint

NSTDB_SNRS_DB: tuple[int, ...] = (24, 18, 12, 6, 0, -6)
"""The SNRs of the nstdb records (EC57's noise test), in dB."""
NOISE_INDEX_RECORDS: tuple[str, ...] = tuple(r for r in DS1 if r not in NSTDB_SOURCES)
"""The index of the noise task: DS1 without the records whose noisy copies are scored."""
NOISE_RECORD = "em"
"""The nstdb noise record added to the test records: electrode motion, the noise EC57's
test uses and the hardest of the three for a QRS detector (it mimics beats)."""
CLEAN = "clean"
"""The row key of the records without noise."""


def nstdb_name(source: str, snr_db: int) -> str:
    """The nstdb record of ``source`` at ``snr_db`` (``118``, 6 -> ``118e06``; -6 -> ``118e_6``)."""
    return f"{source}e{snr_db:02d}" if snr_db >= 0 else f"{source}e_{-snr_db}"


def check_snrs(snrs: Sequence[int]) -> list[int]:
    """``snrs`` without repeats, each one of :data:`NSTDB_SNRS_DB`.

    Raises
    ------
    ParameterError
        None given, or one the nstdb holds no record at.
    """
    chosen = list(dict.fromkeys(int(s) for s in snrs))
    unknown = [s for s in chosen if s not in NSTDB_SNRS_DB]
    if not chosen or unknown:
        raise ParameterError(f"SNRs must be some of {', '.join(map(str, NSTDB_SNRS_DB))} dB (the nstdb records'), "
                             f"not {', '.join(map(str, unknown)) or 'none'}")
    return chosen


def check_noise_dir(noise_dir: str | os.PathLike, snrs: Sequence[int],
                    noise_records: Sequence[str] = (NOISE_RECORD,)) -> Path:
    """The nstdb directory, refused unless it holds ``noise_records`` (by default the noise record of this
    task, :data:`NOISE_RECORD`) and the records at ``snrs``.

    Raises
    ------
    RecordNotFoundError
        The directory, or a record in it, is missing (the error names which).
    """
    try:
        path = data_dir_from(noise_dir) if str(noise_dir) else None  # '~' expanded; odd names refused, not raised on
    except RecordNotFoundError:
        path = None
    if path is None:
        raise RecordNotFoundError(f"noise stress test directory not found: {str(noise_dir)!r}")
    for name in [*noise_records, *(nstdb_name(s, snr) for s in NSTDB_SOURCES for snr in snrs)]:
        check_record(name, path)
    return path


def noise_leads(name: str, noise_dir) -> list[Record]:
    """The two signals of the nstdb noise record ``name`` (``em``, ``ma`` or ``bw``) in ``noise_dir``,
    in the order :func:`noisy_lead` adds them (:data:`~simsearch.signal.noise.NOISE_LEADS`)."""
    return [load_record(name, noise_dir, lead=lead, annotations=None) for lead in NOISE_LEADS]


def noisy_lead(lead: Record, nth: int, noise: Sequence[Record], snr_db: float, reference: Record,
               seed: int) -> Record:
    """One lead of a record with noise added at ``snr_db`` as ``nst`` adds it
    (:func:`~simsearch.signal.noise.add_noise`): the record's first lead (``nth`` 0) gets the
    noise record's first signal (``noise``, :func:`noise_leads`), its other lead (1) the second,
    every lead sized on the same beats (``reference``'s annotations, :func:`~simsearch.signal.noise.sized_beats`)
    and noised from the same place in the noise record (``seed``)."""
    source = noise[nth]
    sized = sized_beats(*reference_beats(reference))
    return dataclasses.replace(lead, signal=add_noise(lead.signal, lead.fs, source.signal, source.fs, snr_db,
                                                      sized, seed))


def noisy_copies(clean: Record, noise: Sequence[Record], snrs: Sequence[float], seed: int,
                 folder: Path) -> Iterator[tuple[float, Record]]:
    """(SNR, ``clean`` with ``noise`` added at that SNR) for each of ``snrs``, in each of its leads
    (:func:`noisy_lead`; its other lead is :func:`~simsearch.signal.records.other_lead`, when it has
    one). Each is written as a WFDB record of the same name in ``folder`` (the previous one replaced),
    so that an index of both leads reads both noisy leads; the reference annotations are ``clean``'s."""
    leads = [clean]
    second = read_other_lead(clean)  # the same seconds, where ``clean`` is a part of its record
    if second is not None:
        leads.append(second)
    for snr_db in snrs:
        signal = np.column_stack([noisy_lead(lead, nth, noise, snr_db, clean, seed).signal
                                  for nth, lead in enumerate(leads)])
        write_record(folder / clean.name, signal, clean.fs, [lead.lead for lead in leads])
        noisy = load_record(folder / clean.name, lead=clean.lead, annotations=None)
        yield snr_db, dataclasses.replace(noisy, ann_samples=clean.ann_samples, ann_symbols=clean.ann_symbols)


def evaluate_noise(index, data_dir, noise_dir, *, records: Sequence[str] = (),
                   snrs: Sequence[int] = NSTDB_SNRS_DB, seed: int = 0, progress: bool = False) -> dict:
    """End-to-end figures per SNR on the nstdb records and on ``records`` with ``em`` noise added.

    Parameters
    ----------
    index : BeatIndex
        Labels the detected beats; it may hold none of 118, 119 and ``records``
        (build it of :data:`NOISE_INDEX_RECORDS`).
    data_dir : str or path, optional
        The MIT-BIH records: the clean 118 and 119, and ``records`` given by name.
    noise_dir : str or path
        The nstdb records (``118e24`` ... ``119e_6``, and ``em``).
    records : sequence of str
        Records (names or paths, with reference annotations) to add noise to; none: the
        nstdb records only.
    snrs : sequence of int
        Some of :data:`NSTDB_SNRS_DB`, in dB.
    seed : int
        Where in the noise record each record's noise starts: record ``i`` gets
        ``seed + i`` at every SNR, so the SNR is all that changes between rows.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        ``snrs``, ``noise_record``, and for ``nstdb`` and ``added`` (the latter only
        when ``records`` are given): ``records`` (``nstdb`` also its ``sources``) and
        ``rows``: per row (``clean``, then each SNR as a string)
        :func:`~simsearch.evaluation.end_to_end.end_to_end_figures` pooled over the
        records, i.e. EC57 class figures and ``qrs`` Se/+P, with each record's figures (``per_record``, by the
        clean record's name: 118 for 118e12) and each reference rhythm's (``per_rhythm``,
        :meth:`~simsearch.evaluation.end_to_end.Tally.figures`).

    Raises
    ------
    ParameterError
        The index holds a scored record, or an SNR is not an nstdb one.
    RecordNotFoundError
        A record, the noise record or an nstdb record is missing.
    """
    snrs = check_snrs(snrs)
    noise_dir = check_noise_dir(noise_dir, snrs)
    sources = [*NSTDB_SOURCES, *map(record_name, records)]
    check_disjoint(set(index.label_table()[2]), sources, "the index")
    rows = [CLEAN, *map(str, snrs)]
    report: dict = {"snrs": snrs, "noise_record": NOISE_RECORD}
    steps = len(NSTDB_SOURCES) * len(rows) + len(records) * len(rows)
    with progress_bar("noise", steps, enabled=progress) as advance:
        tallies = {row: Tally() for row in rows}
        for source in NSTDB_SOURCES:
            rhythms = read_rhythms(source, data_dir)
            tallies[CLEAN].add(source, label_record(index, load_record(source, data_dir)), rhythms)
            advance(source)
            for snr in snrs:
                name = nstdb_name(source, snr)
                # the noisy copy is its source's patient: neither may vote for it
                tallies[str(snr)].add(source, label_record(index, load_record(name, noise_dir), exclude=[source]),
                                      rhythms)
                advance(name)
        report["nstdb"] = {"sources": list(NSTDB_SOURCES),
                           "records": [nstdb_name(s, snr) for s in NSTDB_SOURCES for snr in snrs],
                           "rows": {row: tally.figures() for row, tally in tallies.items()}}
        if not records:
            return report
        noise = noise_leads(NOISE_RECORD, noise_dir)
        tallies = {row: Tally() for row in rows}
        with tempfile.TemporaryDirectory(prefix="simsearch-noise-") as scratch:
            for i, name in enumerate(records):
                clean = load_record(name, data_dir)
                rhythms = read_rhythms(name, data_dir)
                tallies[CLEAN].add(clean.name, label_record(index, clean), rhythms)
                advance(clean.name)
                for snr, noisy in noisy_copies(clean, noise, snrs, seed + i, Path(scratch)):
                    tallies[str(snr)].add(clean.name, label_record(index, noisy), rhythms)
                    advance(f"{clean.name} {snr} dB")
        report["added"] = {"records": [record_name(r) for r in records],
                           "rows": {row: tally.figures() for row, tally in tallies.items()}}
    return report
