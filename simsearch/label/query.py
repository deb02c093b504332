"""Queries: the nearest labeled beats of one beat, and their kNN vote.

A beat is named by a record and a sample (:func:`query_beat`) or cut from a raw
signal (:func:`query_signal`). Records are always compared by name: a record the
index holds is answered from its stored embedding, however it was named (bare name
or path), and its own beat never answers for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..aami import AAMI_CLASSES
from ..errors import ParameterError, SampleOutOfRangeError
from ..signal.beats import Beats, beats_from_record, check_sample, nearest_beat
from ..signal.records import Record, check_sampling_rate, check_signal, lead_extent, load_record, record_name
from ..store.index import BeatIndex
from .vote import VOTE_K, index_vote, vote_first, vote_winner

DEFAULT_K = 10
"""Neighbors shown by default (the vote always uses at least :data:`~simsearch.label.vote.VOTE_K`)."""
SNAP_TOLERANCE_S = 0.150
"""A sample in a raw signal names the beat within this (EC57's match window); farther
from every detected beat, it names no beat and the query is refused."""
WHOLE_RECORD_S = 3600.0
"""A record outside the index no longer than this (MIT-BIH's 30 minutes) is read whole to answer
a query about one of its beats; of a longer one only :data:`QUERY_SPAN_S` on each side of the beat."""
QUERY_SPAN_S = 600.0
"""Seconds read on each side of a query beat of a long recording outside the index. A beat's
context reaches 150 beats to each side (the long-term rhythm and the dominant beat,
:data:`~simsearch.signal.beats.LONG_TERM_RR_BEATS`): ten minutes hold them down to 15 beats a
minute. Its vector may differ a little from the one the whole recording gives the beat (the
dominant beat is taken per block of 50 beats, counted from where the reading starts): on a beat of
201 read as if it were long, the same ten neighbors answer (``tests/test_leads.py``). A query on a
beat of a 24-hour recording (CLI, index of 48 records, both leads): 21-23 s reading it whole, 8 s
so, most of it TensorFlow and the encoder loading."""


@dataclass
class Neighbor:
    """One stored beat near the query; ``distance`` is Euclidean between unit embeddings (0..2)."""

    id: int
    record: str
    sample: int
    time: float
    lead: str
    symbol: str | None
    aami: str | None
    distance: float
    label_source: str


@dataclass
class Vote:
    """The kNN vote: winning AAMI class, its share of the vote, every class's share."""

    label: str
    confidence: float
    scores: dict[str, float]


@dataclass
class QueryResult:
    """What a query returns; :meth:`to_dict` is the CLI's ``--json`` shape."""

    query: dict
    neighbors: list[Neighbor]
    vote: Vote
    embedding: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"query": self.query, "neighbors": [asdict(n) for n in self.neighbors], "vote": asdict(self.vote)}


def query_beat(index: BeatIndex, record: str | os.PathLike, sample: int, k: int = DEFAULT_K, *,
               exclude_record: bool = False, classes: Sequence[str] | None = None,
               data_dir: str | os.PathLike | None = None, lead: str | None = None) -> QueryResult:
    """Neighbors and vote of the beat nearest ``sample`` in ``record``.

    Parameters
    ----------
    index : BeatIndex
    record : str or path
        A record name or path. A record the index holds (by name, in the same lead)
        is answered from its stored embedding; any other is read, by path or by name
        in ``data_dir``, and its beats cut and embedded.
    sample : int
        Sample number at the record's own rate; the nearest beat is the query.
    k : int
        Neighbors returned (at least 1).
    exclude_record : bool
        Answer only from other records (other patients).
    classes : sequence of str, optional
        Keep only neighbors of these AAMI classes.
    data_dir, lead
        Where to find a record by name; which lead (default: the stored one, else MLII).

    Returns
    -------
    QueryResult
        The query beat (``query``: record, sample at the record's rate, time, lead,
        symbol, class, whether it is doubted), its ``neighbors`` (those of the vote's class first, then the
        others, each nearest first: :func:`~simsearch.label.vote.vote_first`), the ``vote`` and the query's
        ``embedding``. The query beat itself (the same heartbeat, in any lead) is never
        among the neighbors.

    Raises
    ------
    SampleOutOfRangeError
        ``sample`` lies outside the record, or the record has no beats.
    RecordNotFoundError, RecordFormatError, LeadNotFoundError, SignalQualityError
        A record outside the index cannot be read.
    ParameterError
        ``k`` is not a whole number from 1 to :data:`MAX_K`.
    """
    k = _check_k(k)
    name = record_name(record)
    stored = index.catalog.record(name)
    if stored is not None and lead in (None, stored["lead"]):
        sample = check_sample(sample, stored["n_samples"], name)
        beat_id = index.catalog.nearest_beat(name, sample)
        if beat_id is None:
            raise SampleOutOfRangeError(f"{name}: the record has no beats")
        beat = index.catalog.beats(ids=np.array([beat_id]))
        vector = index.vectors.reconstruct(int(beat_id))[None, :]
        info = {**{key: _plain(beat[key][0]) for key in ("record", "sample", "time", "lead", "symbol", "aami")},
                "doubted": False}  # an index holds no doubted beat
        return _answer(index, vector, info, k, [name] if exclude_record else [], [beat_id], classes)
    fs, length = lead_extent(record, data_dir, lead=lead)
    span_s = None
    if length is not None and length > WHOLE_RECORD_S * fs:
        sample = check_sample(sample, length, name)
        span_s = (sample / fs - QUERY_SPAN_S, sample / fs + QUERY_SPAN_S)
    loaded = load_record(record, data_dir, lead=lead, span_s=span_s)  # a short record's own faults come first
    at = check_sample(sample, loaded.n_samples if span_s is None else length, loaded.name) - loaded.start
    beats = beats_from_record(loaded)
    row = nearest_beat(beats.samples, at, loaded.name)
    # a stored beat of this record in another lead is the same heartbeat: never its own neighbor
    exclude_ids = [] if stored is None else [index.catalog.nearest_beat(name, loaded.start + int(beats.samples[row]))]
    return _answer(index, index.embed(loaded, beats, rows=[row]), _beat_info(loaded, beats, row), k,
                   [loaded.name] if exclude_record else [], [i for i in exclude_ids if i is not None], classes)


def query_signal(index: BeatIndex, signal: np.ndarray, fs: float, sample: int | None = None, k: int = DEFAULT_K, *,
                 classes: Sequence[str] | None = None, exclude_records: Sequence[str] = ()) -> QueryResult:
    """Neighbors and vote of a beat in a raw single-lead signal (physical units) sampled at ``fs``.

    Parameters
    ----------
    signal : array (n,)
        A few seconds or more: the beat's context (RR intervals, the patient's
        dominant beat) comes from the beats detected in it.
    fs : float
        Its sampling rate, any.
    sample : int, optional
        The query is the detected beat nearest ``sample`` (within 150 ms, else the
        query is refused); default: the beat with the largest QRS.
    k : int
        Neighbors returned (at least 1).
    classes : sequence of str, optional
        Keep only neighbors of these AAMI classes.
    exclude_records : sequence of str
        Record names whose beats may not answer (e.g. the signal's own patient).

    Returns
    -------
    QueryResult
        ``query["sample"]`` is the detected beat's position in ``signal`` (at ``fs``);
        its ``record`` and ``lead`` are None.

    Raises
    ------
    SignalQualityError
        The signal is too short, flat, or holds NaN.
    SampleOutOfRangeError
        ``sample`` lies outside the signal or no detected beat is within 150 ms of it,
        or no beat is found at all.
    ParameterError
        ``k`` is not a valid number.
    RecordFormatError
        ``fs`` is not an ECG's sampling rate (:func:`~simsearch.signal.records.check_sampling_rate`).
    """
    k = _check_k(k)
    signal = np.asarray(signal, dtype=np.float64)
    check_signal(signal, "query signal")
    fs = check_sampling_rate(fs, "query signal")  # as a record's: a rate far off would resample for minutes
    record = Record("signal", "", signal, float(fs), "")
    beats = beats_from_record(record)
    if len(beats) == 0:
        raise SampleOutOfRangeError("no beat found in the query signal")
    if sample is None:
        row = int(np.argmax(np.ptp(beats.windows, axis=1)))
    else:
        sample = check_sample(sample, signal.size, "query signal")
        row = nearest_beat(beats.samples, sample, "query signal")
        if abs(int(beats.samples[row]) - sample) > SNAP_TOLERANCE_S * fs:
            raise SampleOutOfRangeError(f"no beat within {SNAP_TOLERANCE_S * 1000:.0f} ms of sample {sample} "
                                        f"(nearest: {int(beats.samples[row])})")
    info = {**_beat_info(record, beats, row), "record": None, "lead": None}
    return _answer(index, index.embed(record, beats, rows=[row]), info, k, list(exclude_records), [], classes)


def query_embedding(index: BeatIndex, vector: np.ndarray, info: dict, k: int = DEFAULT_K, *,
                    classes: Sequence[str] | None = None, exclude_records: Sequence[str] = (),
                    exclude_ids: Sequence[int] = ()) -> QueryResult:
    """Neighbors and vote of a beat already embedded with the index's encoder (e.g. a beat
    of an annotated record, whose embeddings are kept): no record is read, nothing embedded.

    ``info`` becomes the result's ``query`` (record, sample, time, lead, symbol, aami, doubted).
    """
    k = _check_k(k)
    vector = np.ascontiguousarray(np.atleast_2d(vector), dtype=np.float32)
    return _answer(index, vector, dict(info), k, list(exclude_records), [int(i) for i in exclude_ids], classes)


def _beat_info(record: Record, beats: Beats, row: int) -> dict:
    """The query beat as a result names it: its sample and time in the whole recording, and whether it is doubted
    (:attr:`~simsearch.signal.beats.Beats.doubted`: ``annotate`` labels such a beat Q)."""
    sample = record.start + int(beats.samples[row])
    return {"record": record.name, "sample": sample, "time": sample / record.fs,
            "lead": record.lead, "symbol": beats.symbols[row] or None, "aami": beats.aami[row] or None,
            "doubted": bool(beats.doubted[row])}


def _answer(index: BeatIndex, vector: np.ndarray, info: dict, k: int, exclude_records: list[str],
            exclude_ids: list[int], classes: Sequence[str] | None) -> QueryResult:
    distances, ids = index.search(vector, max(k, VOTE_K), exclude_records=exclude_records, exclude_ids=exclude_ids,
                                  classes=classes)
    scores = index_vote(index, distances, ids)[0]
    winner, confidence = vote_winner(scores[None, :])
    shown = vote_first(index.classes_of(ids), winner)[0, :k]  # the vote's evidence first
    distances, ids = distances[0, shown], ids[0, shown]
    found = ids >= 0
    rows = index.catalog.beats(ids=ids[found])
    neighbors = [Neighbor(id=int(rows["id"][i]), record=rows["record"][i], sample=int(rows["sample"][i]),
                          time=float(rows["time"][i]), lead=rows["lead"][i], symbol=rows["symbol"][i],
                          aami=rows["aami"][i], distance=round(float(d), 4), label_source=rows["label_source"][i])
                 for i, d in enumerate(distances[found])]
    vote = Vote(label=AAMI_CLASSES[int(winner[0])] if scores.sum() > 0 else "",
                confidence=round(float(confidence[0]), 4),
                scores={c: round(float(s), 4) for c, s in zip(AAMI_CLASSES, scores)})
    return QueryResult(info, neighbors, vote, vector[0])


MAX_K = 10_000
"""More neighbors than anyone reads; a bound keeps an absurd -k from exhausting memory."""


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise ParameterError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    return int(k)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
