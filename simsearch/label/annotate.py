"""Label a new record from the index, then adapt to the patient with a few expert labels.

:func:`annotate_record` reads a record, finds its beats (QRS detection, or the
positions of an existing annotation file whose labels are ignored), embeds them and
asks the index for a global kNN vote from other patients, leaned toward the record's own
class mix (:func:`~simsearch.label.vote.record_vote`), then refines it on the
record's own kNN graph by label spreading (:mod:`simsearch.label.spreading`), in
which expert labels, clamped, carry their class to the beats that resemble them.

The costly steps (reading, embedding, searching) run once per record
(:func:`prepare`); everything after is a pure function of the embeddings, the
global vote scores and the expert labels (:func:`assemble`), which is what lets a
simulated expert replay many budgets and rounds cheaply.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..aami import AAMI_CLASSES, AAMI_TO_SYMBOL, SYMBOL_TO_AAMI
from ..errors import AnnotationError, EncoderMismatchError, SignalQualityError
from ..model.leads import graph_vectors
from ..progress import progress_bar
from ..signal.beats import Beats, beats_from_record, reference_beats
from ..signal.edf import is_edf
from ..signal.records import Record, load_record
from ..store.index import BeatIndex
from .ectopy import ectopy_summary
from .expert import expert_rows
from .spreading import EXPERT_WEIGHT, SPREAD_ALPHA, knn_graph, propagate
from .suggest import CLUSTERS_PER_LABEL, SUGGEST_SEED, suggest_rows
from .vote import VOTE_K, record_vote, vote_first, vote_winner

BEAT_SOURCES = ("detect", "reference")
"""Where beat positions come from: the QRS detector, or an existing annotation file's
positions (its labels are never read into the prediction)."""
LOW_CONFIDENCE = 0.6
"""Beats whose final label has less than this share of the scores are flagged for review."""
TOP_NEIGHBORS = 3
"""Global neighbors kept per beat for the written annotation (which beats it resembles)."""
LABEL_SOURCES = ("expert", "propagated", "doubted")
"""Where a beat's label comes from: the expert; the index's vote spread over the record's graph; or doubt (the
check in the other lead doubts the detection, or the beat's window reaches into a gap: :data:`DOUBTED_LABEL`)."""
DOUBTED_LABEL = "Q"
"""The label of a detection the check in the other lead doubts (:attr:`~simsearch.signal.beats.Beats.doubted`),
unless the expert labels it: Q, unclassifiable. Such a detection is often noise, and noise labeled S or V is a
false alarm; labeled Q it counts as no class's (EC57) and is flagged for review (its confidence is the check's
probability). A true beat labeled so is a miss of its class. A beat whose window reaches into a gap of invalid
signal is doubted too (its probability 0: :func:`~simsearch.signal.beats.reaching_a_gap`).

Measured with ``scripts/cross_validate_end_to_end.py`` (DS1 folds of ``scripts/cross_validate_adaptive.py``, each
held-out patient clean and with nstdb's ``em`` in both leads; beats as detected, labeled by the vote; training
seeds 0 / 1), Se / +P % with the vote's own label kept → with Q:

======  ======================================  ======================================  ==============
set-up  SVEB                                    VEB                                     N +P
======  ======================================  ======================================  ==============
clean   80.08/81.12 → 79.98/81.36,              94.03/85.56 → 93.93/86.00,              98.63 → 98.66,
        80.61/79.94 → 80.51/80.17               93.74/86.67 → 93.64/87.13               98.77 → 98.81
12 dB   62.61/68.09 → 62.50/69.82,              86.69/70.49 → 86.43/72.02,              97.77 → 97.86,
        60.81/62.39 → 60.70/64.17               86.77/69.80 → 86.48/71.29               97.86 → 97.95
6 dB    45.66/19.42 → 45.55/29.27,              80.20/37.80 → 79.46/40.22,              94.81 → 95.80,
        43.43/18.65 → 43.33/27.82               80.91/36.24 → 80.20/38.73               95.08 → 96.00
======  ======================================  ======================================  ==============

+P rises on every row (SVEB +1.7 / +1.8 at 12 dB, +9 to +10 at 6 dB) for 0.1 point of SVEB Se and 0.1 (clean) to
0.3 (12 dB) of VEB Se. The threshold is the rhythm's (:data:`~simsearch.signal.beats.DOUBTED_BELOW`): one notion
of a doubted detection."""
STAGES = ("read/detect/filter", "embed", "search+vote", "graph", "spreading", "neighbors", "write")
"""What annotating a record does, in order (``write`` is the command line's: the files)."""


class StageLog:
    """Where annotating a record spends its time and memory, shown as it goes.

    Each :meth:`stage` is timed, and the process's peak RSS noted at its end (in
    :attr:`times` and :attr:`peak_rss_mb`). Shown on stderr when ``enabled``: a progress
    bar on a terminal, else (piped, a log file) one line per stage with its time, so a
    24-hour recording's minutes are never silent.
    """

    def __init__(self, enabled: bool = False, total: int = len(STAGES), stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.times: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self.name = ""
        self._stack = ExitStack()
        self._advance = None
        self._terminal = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        if self._terminal:
            self._advance = self._stack.enter_context(progress_bar("annotating", total))

    @contextmanager
    def stage(self, stage: str) -> Iterator[dict]:
        """Time the block; what it puts in the yielded dict (``detail``) is shown with it."""
        info: dict = {}
        start = time.perf_counter()
        yield info
        seconds = time.perf_counter() - start
        self.times[stage] = self.times.get(stage, 0.0) + seconds
        self.peak_rss_mb[stage] = peak_rss_mb()
        if not self.enabled:
            return
        detail = f" ({info['detail']})" if info.get("detail") else ""
        if self._advance is not None:
            self._advance(f"{stage} {seconds:.1f} s{detail}")
        else:
            who = f"{self.name}: " if self.name else ""
            print(f"annotate {who}{stage} {seconds:.1f} s{detail}, peak RSS {self.peak_rss_mb[stage]:.0f} MB",
                  file=self.stream, flush=True)

    def close(self) -> None:
        self._stack.close()

    def report(self) -> dict:
        """``{"seconds": {stage: s}, "peak_rss_mb": {stage: MB}}``, rounded."""
        return {"seconds": {k: round(v, 3) for k, v in self.times.items()},
                "peak_rss_mb": {k: round(v, 1) for k, v in self.peak_rss_mb.items()}}


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass(frozen=True)
class Prepared:
    """A record's beats with everything label spreading needs, computed once."""

    record: str
    path: str
    fs: float
    lead: str
    n_samples: int
    beats: Beats
    embeddings: np.ndarray
    global_scores: np.ndarray
    neighbor_ids: np.ndarray
    neighbor_distances: np.ndarray
    graph: sp.csr_matrix
    encoder: str
    gaps: np.ndarray | None = None
    """The record's stretches of invalid signal (:attr:`~simsearch.signal.records.Record.gaps`)."""


@dataclass
class Annotation:
    """A record's beats with their labels, and where each label came from.

    ``samples`` and ``n_samples`` are at the record's own rate ``fs`` (what a viewer
    shows); ``beats`` holds the beats without labels. ``scores`` are the final per-class scores (rows sum to 1),
    ``global_scores`` the index's vote before spreading; ``neighbors`` spells the
    :data:`TOP_NEIGHBORS` global neighbors shown (:func:`shown_neighbors`: the vote's class first) as
    ``record:sample:class``.
    """

    record: str
    path: str
    fs: float
    lead: str
    n_samples: int
    labels: np.ndarray
    symbols: np.ndarray
    confidence: np.ndarray
    label_source: np.ndarray
    scores: np.ndarray
    global_scores: np.ndarray
    neighbor_ids: np.ndarray
    neighbor_distances: np.ndarray
    embeddings: np.ndarray = field(repr=False)
    beats: Beats = field(repr=False)
    encoder: str = ""
    neighbors: np.ndarray | None = None
    timings: dict | None = None
    """Seconds and peak RSS (MB) per stage (:meth:`StageLog.report`), when annotated by :func:`annotate_record`."""
    gaps: np.ndarray | None = None
    """[start, stop) samples of the record's stretches of invalid signal (:attr:`Prepared.gaps`)."""

    def __len__(self) -> int:
        return len(self.beats)

    @property
    def samples(self) -> np.ndarray:
        """R-peak positions at the record's rate."""
        return self.beats.samples

    @property
    def times(self) -> np.ndarray:
        return self.samples / self.fs

    @property
    def expert_mask(self) -> np.ndarray:
        return self.label_source == "expert"


def read_beats(record: str | os.PathLike, data_dir: str | os.PathLike | None = None, *, lead: str | None = None,
               beats: str = "detect") -> tuple[Record, Beats, np.ndarray]:
    """(record, its beats without labels, reference AAMI classes or '' per beat)

    The reference classes are returned apart, for scoring only: the Beats carry none,
    so nothing downstream can read them into a prediction.
    """
    check_beat_source(beats)
    loaded = load_record(record, data_dir, lead=lead, annotations="atr" if beats == "reference" else None)
    if beats == "reference":
        if not loaded.has_annotations:
            where = f"annotation in {Path(loaded.path).name} with an MIT-BIH symbol" if is_edf(loaded.path) else \
                f"annotation file ({loaded.name}.atr)"
            raise AnnotationError(f"{loaded.name}: no {where} to take beat positions from; use beats='detect'")
        peaks, symbols = reference_beats(loaded)
        reference = np.array([SYMBOL_TO_AAMI[s] for s in symbols], dtype="<U1")[np.argsort(peaks, kind="stable")]
        unlabeled = beats_from_record(loaded, r_peaks=peaks)
    else:
        unlabeled = beats_from_record(loaded)  # read without annotations: the detector's beats
        reference = np.full(len(unlabeled), "", dtype="<U1")
    if len(unlabeled) == 0:
        raise SignalQualityError(f"{loaded.name}: no beats found")
    return loaded, unlabeled, reference


def check_beat_source(beats: str) -> str:
    if beats not in BEAT_SOURCES:
        raise AnnotationError(f"beats must be one of {', '.join(BEAT_SOURCES)}, not {beats!r}")
    return beats


def prepare(index: BeatIndex, record: Record, beats: Beats, k: int = 10, log: StageLog | None = None) -> Prepared:
    """Embed the beats, take the index's global vote (other patients only), build the graph
    (:func:`vote_and_graph`); ``log`` times the stages."""
    log = log or StageLog()
    with log.stage("embed") as info:
        embeddings = index.embed(record, beats)
        info["detail"] = f"{len(beats)} beats"
        if index.leads == "both":  # a record with one lead is compared by it alone
            info["detail"] += ", both leads" if embeddings.shape[1] > index.encoder.dim else ", its one lead"
    scores, ids, distances, graph = vote_and_graph(index, record.name, embeddings, k, log)
    return Prepared(record.name, record.path, record.fs, record.lead, record.n_samples, beats, embeddings, scores,
                    ids, distances, graph, index.fingerprint, record.gaps)


def vote_and_graph(index: BeatIndex, record: str, embeddings: np.ndarray, k: int = 10, log: StageLog | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
    """(vote scores, shown neighbor ids, their distances, the record's own kNN graph) of the beats of ``record``
    embedded as ``embeddings``: what :func:`prepare` adds to them.

    As in :func:`~simsearch.label.query.query_beat`, at least
    :data:`~simsearch.label.vote.VOTE_K` neighbors vote, whatever smaller ``k`` is asked for.
    The search is one batch for the whole record (exact: see :meth:`BeatIndex.search`), its own beats left out.
    """
    log = log or StageLog()
    with log.stage("search+vote") as info:
        distances, ids = index.search(embeddings, max(k, VOTE_K), exclude_records=[record])
        if not (ids >= 0).any():
            raise AnnotationError(f"the index {index.path} has no labeled beats from other records to vote with")
        scores = record_vote(index, distances, ids)
        info["detail"] = f"k={max(k, VOTE_K)}, {embeddings.shape[0]} beats"
    ids, distances = shown_neighbors(index, distances, ids, scores, min(TOP_NEIGHBORS, k))
    with log.stage("graph"):
        graph = knn_graph(graph_vectors(embeddings, index.encoder))
    return scores, ids, distances, graph


def shown_neighbors(index: BeatIndex, distances: np.ndarray, ids: np.ndarray, scores: np.ndarray, top: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, distances rounded to 4 decimals) of the ``top`` neighbors each beat shows, of its ``index.search``
    results and its vote ``scores``: the vote's class first (:func:`~simsearch.label.vote.vote_first`)."""
    shown = vote_first(index.classes_of(ids), vote_winner(scores)[0])[:, :top]
    return np.take_along_axis(ids, shown, axis=1), np.round(np.take_along_axis(distances, shown, axis=1), 4)


def assemble(prepared: Prepared, rows: np.ndarray, classes: np.ndarray, symbols: np.ndarray, *,
             alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT) -> Annotation:
    """The Annotation of a prepared record given expert labels (rows, class positions, symbols)."""
    scores, winner, confidence = propagate(prepared.graph, prepared.global_scores, rows, classes, alpha=alpha,
                                           expert_weight=expert_weight)
    labels = np.array(AAMI_CLASSES, dtype="<U1")[doubted_unclassifiable(winner, prepared.beats)]
    doubted = prepared.beats.doubted
    source = np.where(doubted, "doubted", "propagated").astype("<U10")
    confidence = np.where(doubted, prepared.beats.detection_probability if doubted.any() else 0.0, confidence)
    out_symbols = np.array([AAMI_TO_SYMBOL[c] for c in labels], dtype="<U1")
    labels[rows], out_symbols[rows], source[rows] = np.array(AAMI_CLASSES)[classes], symbols, "expert"
    confidence[rows] = 1.0
    return Annotation(prepared.record, prepared.path, prepared.fs, prepared.lead, prepared.n_samples,
                      labels, out_symbols, confidence, source,
                      scores, prepared.global_scores, prepared.neighbor_ids, prepared.neighbor_distances,
                      prepared.embeddings, prepared.beats, prepared.encoder, gaps=prepared.gaps)


def doubted_unclassifiable(classes: np.ndarray, beats: Beats) -> np.ndarray:
    """Class positions (:data:`~simsearch.aami.AAMI_CLASSES`) of ``beats``, with the doubted ones
    (:attr:`~simsearch.signal.beats.Beats.doubted`) labeled :data:`DOUBTED_LABEL`: what :func:`assemble` does to
    the spreading's labels, for a vote scored alone."""
    return np.where(beats.doubted, AAMI_CLASSES.index(DOUBTED_LABEL), np.asarray(classes))


def neighbor_refs(index: BeatIndex, ids: np.ndarray) -> np.ndarray:
    """``record:sample:class`` of each beat id (same shape; '' for -1 padding), read from the
    catalog in one or a few queries (:meth:`~simsearch.store.catalog.Catalog.beat_refs`)."""
    ids = np.asarray(ids, dtype=np.int64)
    wanted, where = np.unique(ids[ids >= 0], return_inverse=True)
    refs = index.catalog.beat_refs(wanted)
    spelled = np.array([f"{r}:{s}:{a or '-'}" for r, s, a in zip(refs["record"], refs["sample"].tolist(),
                                                                  refs["aami"])], dtype=object)
    out = np.full(ids.shape, "", dtype=object)
    out[ids >= 0] = spelled[where]
    return out


def annotate_record(index: BeatIndex, record: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                    lead: str | None = None, beats: str = "detect", expert_labels: Mapping[int, str] | None = None,
                    k: int = 10, progress: bool = False, log: StageLog | None = None) -> Annotation:
    """Label every beat of ``record`` from ``index`` and the expert's labels.

    Each beat gets the index's kNN vote from other records, refined by label spreading
    over the record's own kNN graph, in which expert labels are clamped.

    Parameters
    ----------
    index : BeatIndex
        Labeled beats to vote with; beats of a record with the same name never vote.
    record : str or path
        A record path, or a name inside ``data_dir``. It needs no annotation file.
    data_dir : str or path, optional
        Where a bare name is looked up (default: ``$SIMSEARCH_DATA``).
    lead : str, optional
        Lead to read (default: MLII, else II, else the first).
    beats : {"detect", "reference"}
        Beat positions from the QRS detector, or those of the record's ``.atr`` (whose
        labels are ignored).
    expert_labels : mapping of int to str, optional
        Sample (at the record's own rate) → AAMI class or MIT-BIH symbol. A label names
        the beat within 150 ms of its sample; they are checked before anything is embedded.
    k : int
        Neighbors in the global vote (at least :data:`~simsearch.label.vote.VOTE_K` vote).
    progress : bool
        Show progress on stderr, stage by stage (see :class:`StageLog`).
    log : StageLog, optional
        Times the stages (and shows them, if it was made enabled); ``progress`` is then ignored.

    Returns
    -------
    Annotation
        Per beat: sample at the record's rate, label, MIT-BIH symbol, confidence and
        source (``expert`` or ``propagated``).

    Raises
    ------
    AnnotationError
        An expert label is unknown, names no beat, or two disagree on one beat; or the
        index has no labeled beats of other records.
    RecordNotFoundError, RecordFormatError, LeadNotFoundError, SignalQualityError
        The record cannot be read, or no beat is found in it.
    """
    own = log is None
    log = log if log is not None else StageLog(progress, total=len(STAGES) - 1)
    try:
        with log.stage("read/detect/filter") as info:
            loaded, found, _ = read_beats(record, data_dir, lead=lead, beats=beats)
            rows, classes, symbols = expert_rows(found, expert_labels)
            log.name = loaded.name
            info["detail"] = f"{loaded.n_samples / loaded.fs / 3600:.2f} h at {loaded.fs:g} Hz, {len(found)} beats"
        prepared = prepare(index, loaded, found, k, log)
        with log.stage("spreading") as info:
            annotation = assemble(prepared, rows, classes, symbols)
            info["detail"] = f"{len(rows)} expert labels"
        with log.stage("neighbors"):
            annotation.neighbors = neighbor_refs(index, prepared.neighbor_ids)
    finally:
        if own:
            log.close()
    annotation.timings = log.report()
    return annotation


def suggest_beats(annotation: Annotation, n: int) -> np.ndarray:
    """The beats the expert should label next, best first.

    Parameters
    ----------
    annotation : Annotation
    n : int
        How many (fewer when fewer beats are left unlabeled).

    Returns
    -------
    numpy.ndarray of int
        Samples at the record's rate, distinct, never a beat the expert already
        labeled; the same annotation always gives the same answer (see
        :func:`~simsearch.label.suggest.suggest_rows`).
    """
    return annotation.samples[suggested_rows(annotation, n)]


def suggested_rows(annotation: Annotation, n: int, *, expert_mask: np.ndarray | None = None,
                   seed: int = SUGGEST_SEED, clusters_per_label: int = CLUSTERS_PER_LABEL) -> np.ndarray:
    """Rows of the ``n`` beats to ask about next (:func:`~simsearch.label.suggest.suggest_rows` on the
    annotation's embeddings, scores, vote before spreading and the beats' context); ``expert_mask``
    marks the beats already answered (default the annotation's own expert labels)."""
    answered = annotation.expert_mask if expert_mask is None else np.asarray(expert_mask, dtype=bool)
    return suggest_rows(annotation.embeddings, annotation.scores, answered, n, seed=seed,
                        clusters_per_label=clusters_per_label, context=annotation.beats.context,
                        prior_scores=annotation.global_scores)


def summary(annotation: Annotation) -> dict:
    """Beats per class and per label source, the low-confidence beats to review, the stretches of invalid
    signal (``gaps``, [start, stop) samples at the record's rate), and the ectopic patterns, pauses and heart
    rate a Holter report gives (``ectopy``: :func:`~simsearch.label.ectopy.ectopy_summary`, read from the
    believed beats: doubted detections split no interval)."""
    low = annotation.confidence < LOW_CONFIDENCE
    return {
        "record": annotation.record,
        "beats": len(annotation),
        "by_class": {c: int((annotation.labels == c).sum()) for c in AAMI_CLASSES},
        "by_label_source": {s: int((annotation.label_source == s).sum()) for s in LABEL_SOURCES},
        "low_confidence": {"threshold": LOW_CONFIDENCE, "count": int(low.sum()),
                           "samples": [int(s) for s in annotation.samples[low]]},
        "gaps": [] if annotation.gaps is None else annotation.gaps.tolist(),
        "ectopy": ectopy_summary(annotation.labels, annotation.samples, annotation.fs,
                                 believed=annotation.label_source != "doubted", gaps=annotation.gaps),
    }


def add_to_index(index: BeatIndex, annotation: Annotation) -> np.ndarray:
    """Add the annotated record's beats to ``index``, replacing the record if it is there.

    Expert beats are stored with source 'expert', the rest 'propagated' with their
    confidence, so later searches can tell a checked label from a guessed one. Detections the check
    doubts (source 'doubted') are left out unless the expert labeled them: most are noise, and the index
    would show them as beats.

    Parameters
    ----------
    index : BeatIndex
        Opened for writing: ``with BeatIndex.updating(path) as writer: add_to_index(writer, annotation)``.
    annotation : Annotation
        From :func:`annotate_record` with an index of the same encoder.

    Returns
    -------
    numpy.ndarray of int
        The new beat ids.

    Raises
    ------
    EncoderMismatchError
        The annotation was embedded with another encoder than the index's.
    """
    if annotation.encoder and annotation.encoder != index.fingerprint:
        raise EncoderMismatchError(f"{annotation.record} was embedded with encoder {annotation.encoder}, the index "
                                   f"uses {index.fingerprint}: annotate it again with this index")
    b = annotation.beats
    labeled = replace(b, symbols=annotation.symbols.astype("<U1"), aami=annotation.labels.astype("<U1"))
    expert = annotation.expert_mask
    keep = np.flatnonzero(annotation.label_source != "doubted")
    confidence = np.where(expert, 1.0, annotation.confidence)
    return index.add_beats(labeled.take(keep), annotation.embeddings[keep], record_path=annotation.path,
                           n_samples=annotation.n_samples,
                           label_source=np.where(expert, "expert", "propagated")[keep], confidence=confidence[keep])
