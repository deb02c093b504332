"""Label a new record from the index, then adapt to the patient with a few expert labels.

:func:`annotate_record` reads a record, finds its beats (QRS detection, or the
positions of an existing annotation file whose labels are ignored), embeds them and
asks the index for a global kNN vote from other patients. Beats of one patient look
more like each other than like anyone else's, so the vote is then refined on the
record's own kNN graph by label spreading (Zhou et al., 2004), in which a handful of
expert labels, clamped, carry their class to the beats that resemble them.

The costly steps (reading, embedding, searching) run once per record
(:func:`prepare`); everything after is a pure function of the embeddings, the
global vote scores and the expert labels (:func:`propagate`, :func:`suggest_rows`),
which is what lets :func:`evaluate_adaptive` replay a simulated expert over many
budgets and rounds cheaply.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from .aami import AAMI_CLASSES, AAMI_TO_SYMBOL, SYMBOL_TO_AAMI, class_index
from .beats import MODEL_FS, Beats, beats_from_record, reference_beats, rescale_samples
from .errors import AnnotationError, EncoderMismatchError, SignalQualityError, reason
from .metrics import class_metrics, confusion_matrix
from .progress import progress_bar
from .records import Record, load_record
from .vote import ip_to_distance, vote_winner

BEAT_SOURCES = ("detect", "reference")
"""Where beat positions come from: the QRS detector, or an existing annotation file's
positions (its labels are never read into the prediction)."""
EXPERT_TOLERANCE_S = 0.15
"""An expert label names the beat within this of its sample (EC57's match window)."""
GRAPH_K = 10
"""Neighbors per beat in the record's own kNN graph."""
SPREAD_ALPHA = 0.99
"""Label spreading's α: the share of a beat's label taken from its graph neighbors
rather than from its own global vote (Zhou et al.'s F ← αSF + (1−α)Y). High, because
a patient's beats of one kind form tight clusters whose consensus beats any single
beat's vote. Chosen with EXPERT_WEIGHT by the simulated expert on DS1 records (each
voted on by the other DS1 records only) from α in {0.5, 0.9, 0.99, 0.999}."""
EXPERT_WEIGHT = 20.0
"""Strength of a clamped expert label relative to one beat's global vote (whose
scores sum to 1): one expert answer should outweigh the votes of the beats around it
(tried: 1, 5, 20, 100)."""
LOW_CONFIDENCE = 0.6
"""Beats whose final label has less than this share of the scores are flagged for review."""
TOP_NEIGHBORS = 3
"""Global neighbors kept per beat for the written annotation (which beats it resembles)."""
SUGGEST_SEED = 1234
"""k-means seed of :func:`suggest_rows`: the same annotation always gets the same suggestions."""
MIN_CLUSTERS = 16
"""Fewest k-means clusters suggestions are drawn from; more as labels accumulate
(twice the labels there will be), so later rounds look at finer structure."""
ROUNDS = 3
"""Rounds in which :func:`evaluate_adaptive`'s simulated expert spends each budget."""
RESERVED_EXTENSIONS = frozenset({"atr", "hea", "dat"})
"""Annotation extensions never written: the reference annotations and the record itself."""


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


@dataclass
class Annotation:
    """A record's beats with their labels, and where each label came from.

    ``samples`` and ``n_samples`` are at the record's own rate ``fs`` (what a viewer
    shows); ``beats`` holds the beats as cut at :data:`~simsearch.beats.MODEL_FS`,
    without labels. ``scores`` are the final per-class scores (rows sum to 1),
    ``global_scores`` the index's vote before spreading; ``neighbors`` spells the
    first :data:`TOP_NEIGHBORS` global neighbors as ``record:sample:class``.
    """

    record: str
    path: str
    fs: float
    lead: str
    n_samples: int
    samples: np.ndarray
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

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def times(self) -> np.ndarray:
        return self.samples / self.fs

    @property
    def expert_mask(self) -> np.ndarray:
        return self.label_source == "expert"


# ------------------------------------------------------------------ expert labels
def parse_label(label: str) -> tuple[str, str]:
    """(AAMI class, MIT-BIH symbol) of an expert label given as either.

    The AAMI letters N, S, V, F, Q are MIT-BIH beat symbols too, so one lookup reads
    both vocabularies; case matters ('a' is an aberrated APC, 'f' a fusion of paced
    and normal beats).
    """
    text = str(label).strip()
    if text not in SYMBOL_TO_AAMI:
        raise AnnotationError(f"unknown label {text!r}: expected an AAMI class ({', '.join(AAMI_CLASSES)}) "
                              f"or a MIT-BIH beat symbol ({''.join(SYMBOL_TO_AAMI)})")
    return SYMBOL_TO_AAMI[text], text


def match_samples(beat_samples: np.ndarray, wanted: np.ndarray, tolerance: float) -> np.ndarray:
    """Row of the nearest beat to each wanted sample; -1 where none lies within ``tolerance``."""
    beat_samples = np.asarray(beat_samples, dtype=np.int64)
    wanted = np.asarray(wanted, dtype=np.int64)
    if beat_samples.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    right = np.clip(np.searchsorted(beat_samples, wanted), 0, beat_samples.size - 1)
    left = np.clip(right - 1, 0, beat_samples.size - 1)
    rows = np.where(np.abs(beat_samples[left] - wanted) <= np.abs(beat_samples[right] - wanted), left, right)
    return np.where(np.abs(beat_samples[rows] - wanted) <= tolerance, rows, -1)


def expert_rows(beats: Beats, expert_labels: Mapping[int, str] | None, source_fs: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beat rows, class positions, symbols) of expert labels keyed by sample at ``source_fs``.

    Refuses labels far from every beat (the expert and the detector disagree on
    where a beat is) and two different labels for one beat.
    """
    if not expert_labels:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, "<U1")
    parsed = {int(s): parse_label(label) for s, label in expert_labels.items()}
    samples = np.array(sorted(parsed), dtype=np.int64)
    at_model = rescale_samples(samples, source_fs, MODEL_FS)
    rows = match_samples(beats.samples, at_model, EXPERT_TOLERANCE_S * MODEL_FS)
    if (rows < 0).any():
        missing = samples[rows < 0]
        shown = ", ".join(map(str, missing[:5])) + (", ..." if missing.size > 5 else "")
        raise AnnotationError(f"{beats.record}: no beat within {EXPERT_TOLERANCE_S * 1000:.0f} ms of labeled "
                              f"sample(s) {shown} ({missing.size} of {samples.size} labels)")
    chosen: dict[int, tuple[str, str, int]] = {}
    for sample, row in zip(samples, rows):
        aami, symbol = parsed[int(sample)]
        if int(row) in chosen and chosen[int(row)][0] != aami:
            raise AnnotationError(f"{beats.record}: samples {chosen[int(row)][2]} and {sample} label the same beat "
                                  f"as {chosen[int(row)][0]} and {aami}")
        chosen.setdefault(int(row), (aami, symbol, int(sample)))
    order = sorted(chosen)
    return (np.array(order, dtype=np.int64), class_index([chosen[r][0] for r in order]),
            np.array([chosen[r][1] for r in order], dtype="<U1"))


def read_labels(path: str | os.PathLike) -> dict[int, str]:
    """Expert labels from a CSV file: rows ``sample,label`` (header optional, more columns ignored).

    Rows with an empty label are skipped, so a filled-in suggestion file
    (:func:`write_suggestions`) can be read back as it is, even half done.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"labels file {path} cannot be read ({getattr(exc, 'strerror', None) or reason(exc)})") from None
    labels: dict[int, str] = {}
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise AnnotationError(f"{path}:{line_no}: expected 'sample,label', got {','.join(row)!r}")
        sample, label = row[0].strip(), row[1].strip()
        if not sample.lstrip("-").isdigit():
            if line_no == 1:
                continue  # header
            raise AnnotationError(f"{path}:{line_no}: sample {sample!r} is not a whole number")
        if not label:
            continue
        try:
            parse_label(label)
        except AnnotationError as exc:
            raise AnnotationError(f"{path}:{line_no}: {exc}") from None
        if int(sample) < 0:
            raise AnnotationError(f"{path}:{line_no}: negative sample {sample}")
        if int(sample) in labels and labels[int(sample)] != label:
            raise AnnotationError(f"{path}:{line_no}: sample {sample} labeled twice "
                                  f"({labels[int(sample)]!r} and {label!r})")
        labels[int(sample)] = label
    return labels


# ------------------------------------------------------------------ pure propagation
@contextmanager
def single_thread() -> Iterator[None]:
    """Run FAISS on one thread for small per-record problems (a few thousand beats).

    OpenMP threads cost more than they save at this size, and on a shared machine
    they spin against other jobs: k-means on 3,000 beats took 0.5 s on two busy
    threads and 0.02 s on one. One thread also makes k-means bit-reproducible.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def knn_graph(embeddings: np.ndarray, k: int = GRAPH_K) -> sp.csr_matrix:
    """Symmetrically normalised affinity ``S = D^-1/2 W D^-1/2`` of the record's kNN graph.

    W is a heat kernel on embedding distance over each beat's ``k`` nearest beats,
    symmetrised (an edge either way counts), with the kernel width the median kNN
    distance so the graph adapts to how tight this patient's clusters are.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return sp.csr_matrix((n, n))
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    with single_thread():
        similarity, ids = flat.search(x, k + 1)
    rows = np.repeat(np.arange(n), k + 1)
    cols = ids.ravel()
    keep = (cols >= 0) & (cols != rows)
    d2 = ip_to_distance(similarity.ravel()[keep]) ** 2
    sigma2 = max(float(np.median(d2)), 1e-6)
    w = sp.csr_matrix((np.exp(-d2 / sigma2), (rows[keep], cols[keep])), shape=(n, n))
    w = w.maximum(w.T)
    degree = np.asarray(w.sum(axis=1)).ravel()
    scale = sp.diags(np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0))
    return (scale @ w @ scale).tocsr()


def spread(graph: sp.csr_matrix, prior: np.ndarray, clamped: np.ndarray, alpha: float = SPREAD_ALPHA
           ) -> np.ndarray:
    """The fixed point of ``F ← αSF + (1−α)Y`` with the ``clamped`` rows held at Y.

    Solved directly rather than iterated (the iteration needs about 1/(1−α) steps,
    thousands for α near 1): the free rows u satisfy
    ``(I − αS_uu) F_u = (1−α) Y_u + α S_uc Y_c``, a sparse system that is
    non-singular for α < 1 because S's eigenvalues lie in [−1, 1].
    """
    prior = np.asarray(prior, dtype=np.float64)
    n = prior.shape[0]
    clamped = np.unique(np.asarray(clamped, dtype=np.int64))
    free = np.setdiff1d(np.arange(n), clamped)
    f = prior.copy()
    if free.size == 0:
        return f
    graph = sp.csr_matrix(graph)
    system = (sp.identity(free.size, format="csc") - alpha * graph[free][:, free]).tocsc()
    rhs = (1.0 - alpha) * prior[free] + alpha * (graph[free][:, clamped] @ prior[clamped])
    f[free] = splu(system).solve(np.ascontiguousarray(rhs))
    return f


def propagate(graph: sp.csr_matrix, global_scores: np.ndarray, rows: np.ndarray, classes: np.ndarray, *,
              alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-adapted (scores, class positions, confidence) of every beat.

    Y is the global vote for every beat, replaced by ``expert_weight`` times a
    one-hot row for expert beats, which are clamped; scores are F's rows normalised.
    Expert beats keep their label at confidence 1.
    """
    prior = np.array(global_scores, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    prior[rows] = 0.0
    prior[rows, np.asarray(classes, dtype=np.int64)] = expert_weight
    f = spread(graph, prior, rows, alpha)
    total = f.sum(axis=1, keepdims=True)
    scores = np.divide(f, total, out=np.zeros_like(f), where=total > 0)
    winner, confidence = vote_winner(scores)
    return scores, winner, confidence


def margins(scores: np.ndarray) -> np.ndarray:
    """Top score minus runner-up per beat: small where the label is a close call."""
    if scores.shape[0] == 0:
        return np.empty(0)
    top2 = -np.sort(-scores, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def suggest_rows(embeddings: np.ndarray, scores: np.ndarray, expert_mask: np.ndarray, n: int,
                 seed: int = SUGGEST_SEED) -> np.ndarray:
    """Rows of the ``n`` beats whose expert label should help most, best first.

    The record's beats are clustered (k-means on the embeddings, seeded, so the same
    input gives the same answer); each cluster is worth its expected number of wrong
    labels (the sum of ``1 − margin`` over its beats), discounted by the expert labels
    it already holds. The unlabeled beat nearest each of the best clusters' centroids
    stands for it: spreading carries its answer to the rest of the cluster. If clusters
    run out, the closest calls among the remaining beats fill the list.
    """
    expert_mask = np.asarray(expert_mask, dtype=bool)
    candidates = np.flatnonzero(~expert_mask)
    n = min(int(n), candidates.size)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    uncertainty = 1.0 - margins(scores)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n_clusters = int(min(x.shape[0], max(MIN_CLUSTERS, 2 * (n + int(expert_mask.sum())))))
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=20, seed=seed, min_points_per_centroid=1,
                          max_points_per_centroid=1_000_000, verbose=False)
    with single_thread():
        kmeans.train(x)
        _, assign = kmeans.index.search(x, 1)
    assign = assign.ravel()
    centroid_sim = np.einsum("ij,ij->i", x, kmeans.centroids[assign])
    worth = np.bincount(assign, weights=uncertainty, minlength=n_clusters)
    worth /= 1.0 + np.bincount(assign, weights=expert_mask.astype(float), minlength=n_clusters)
    chosen: list[int] = []
    for cluster in np.argsort(-worth, kind="stable"):
        members = candidates[assign[candidates] == cluster]
        if members.size and worth[cluster] > 0:
            chosen.append(int(members[np.argmax(centroid_sim[members])]))
        if len(chosen) == n:
            break
    if len(chosen) < n:
        rest = np.setdiff1d(candidates, chosen)
        rest = rest[np.argsort(-uncertainty[rest], kind="stable")]
        chosen += [int(r) for r in rest[: n - len(chosen)]]
    return np.array(chosen, dtype=np.int64)


def round_sizes(budget: int, rounds: int = ROUNDS) -> list[int]:
    """Split a labeling budget into at most ``rounds`` near-equal rounds, larger first."""
    rounds = max(1, min(int(rounds), int(budget)))
    return [int(len(part)) for part in np.array_split(np.arange(int(budget)), rounds)] if budget > 0 else []


# ------------------------------------------------------------------ reading and preparing
def read_beats(record: str | os.PathLike, data_dir: str | os.PathLike | None = None, *, lead: str | None = None,
               beats: str = "detect") -> tuple[Record, Beats, np.ndarray]:
    """(record at MODEL_FS, its beats without labels, reference AAMI classes or '' per beat).

    The reference classes are returned apart, for scoring only: the Beats carry none,
    so nothing downstream can read them into a prediction.
    """
    check_beat_source(beats)
    loaded = load_record(record, data_dir, lead=lead, fs=MODEL_FS, annotations="atr" if beats == "reference" else None)
    if beats == "reference":
        if not loaded.has_annotations:
            raise AnnotationError(f"{loaded.name}: no annotation file ({loaded.name}.atr) to take beat positions "
                                  "from; use beats='detect'")
        peaks, symbols = reference_beats(loaded)
        reference = np.array([SYMBOL_TO_AAMI[s] for s in symbols], dtype="<U1")
    else:
        from .detection import detect_r_peaks

        peaks = detect_r_peaks(loaded.signal, loaded.fs)
        reference = np.full(peaks.shape[0], "", dtype="<U1")
    if peaks.size == 0:
        raise SignalQualityError(f"{loaded.name}: no beats found")
    unlabeled = beats_from_record(loaded, r_peaks=peaks)
    order = np.argsort(peaks, kind="stable")
    return loaded, unlabeled, reference[order]


def check_beat_source(beats: str) -> str:
    if beats not in BEAT_SOURCES:
        raise AnnotationError(f"beats must be one of {', '.join(BEAT_SOURCES)}, not {beats!r}")
    return beats


def prepare(index, record: Record, beats: Beats, k: int = 10) -> Prepared:
    """Embed the beats, take the index's global vote (other patients only), build the graph.

    As in :meth:`~simsearch.index.BeatIndex.query`, at least the index's own vote k
    neighbors vote, whatever smaller ``k`` is asked for.
    """
    embeddings = index.encoder.embed(beats.windows, beats.context)
    distances, ids = index.search(embeddings, max(k, index.vote_settings["k"]), exclude_records=[record.name])
    if not (ids >= 0).any():
        raise AnnotationError(f"the index {index.path} has no labeled beats from other records to vote with")
    scores = index.vote(distances, ids)
    top = min(TOP_NEIGHBORS, k)
    fs = float(record.source_fs or record.fs)
    n_samples = int(rescale_samples(record.n_samples, MODEL_FS, fs))
    return Prepared(record.name, record.path, fs, record.lead, n_samples, beats, embeddings, scores, ids[:, :top],
                    np.round(distances[:, :top], 4), knn_graph(embeddings), index.encoder.fingerprint)


def assemble(prepared: Prepared, rows: np.ndarray, classes: np.ndarray, symbols: np.ndarray, *,
             alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT) -> Annotation:
    """The Annotation of a prepared record given expert labels (rows, class positions, symbols)."""
    scores, winner, confidence = propagate(prepared.graph, prepared.global_scores, rows, classes, alpha=alpha,
                                           expert_weight=expert_weight)
    labels = np.array(AAMI_CLASSES, dtype="<U1")[winner]
    out_symbols = np.array([AAMI_TO_SYMBOL[c] for c in labels], dtype="<U1")
    source = np.full(labels.shape[0], "propagated", dtype="<U10")
    labels[rows], out_symbols[rows], source[rows] = np.array(AAMI_CLASSES)[classes], symbols, "expert"
    confidence = confidence.copy()
    confidence[rows] = 1.0
    samples = rescale_samples(prepared.beats.samples, MODEL_FS, prepared.fs)
    return Annotation(prepared.record, prepared.path, prepared.fs, prepared.lead, prepared.n_samples,
                      samples, labels, out_symbols, confidence, source,
                      scores, prepared.global_scores, prepared.neighbor_ids, prepared.neighbor_distances,
                      prepared.embeddings, prepared.beats, prepared.encoder)


def neighbor_refs(index, ids: np.ndarray) -> np.ndarray:
    """``record:sample:class`` of each beat id (same shape; '' for -1 padding)."""
    wanted = np.unique(ids[ids >= 0])
    rows = index.catalog.beats(ids=wanted)
    spelled = {int(i): f"{r}:{s}:{a or '-'}" for i, r, s, a in zip(rows["id"], rows["record"], rows["sample"],
                                                                      rows["aami"])}
    return np.array([spelled.get(int(i), "") for i in ids.ravel()], dtype=object).reshape(ids.shape)


def annotate_record(index, record: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                    lead: str | None = None, beats: str = "detect", expert_labels: Mapping[int, str] | None = None,
                    k: int = 10, progress: bool = False) -> Annotation:
    """Label every beat of ``record`` from ``index`` and the expert's labels (sample → label).

    Expert labels (AAMI classes or MIT-BIH symbols, samples at the record's own rate)
    name the beat within 150 ms; they are checked before any embedding is done.
    """
    with progress_bar("annotating", 3, enabled=progress) as advance:
        loaded, found, _ = read_beats(record, data_dir, lead=lead, beats=beats)
        rows, classes, symbols = expert_rows(found, expert_labels, float(loaded.source_fs or loaded.fs))
        advance(f"{loaded.name}: {len(found)} beats")
        prepared = prepare(index, loaded, found, k)
        advance("embedded and searched")
        annotation = assemble(prepared, rows, classes, symbols)
        annotation.neighbors = neighbor_refs(index, prepared.neighbor_ids)
        advance("propagated")
    return annotation


# ------------------------------------------------------------------ suggestions and summaries
def suggest_beats(annotation: Annotation, n: int) -> np.ndarray:
    """Samples (record's rate) of the ``n`` beats the expert should label next, best first.

    Never a beat the expert already labeled; deterministic (see :func:`suggest_rows`).
    """
    rows = suggest_rows(annotation.embeddings, annotation.scores, annotation.expert_mask, n)
    return annotation.samples[rows]


def summary(annotation: Annotation) -> dict:
    """Beats per class and per label source, and the low-confidence beats to review."""
    low = annotation.confidence < LOW_CONFIDENCE
    return {
        "record": annotation.record,
        "beats": len(annotation),
        "by_class": {c: int((annotation.labels == c).sum()) for c in AAMI_CLASSES},
        "by_label_source": {s: int((annotation.label_source == s).sum()) for s in ("expert", "propagated")},
        "low_confidence": {"threshold": LOW_CONFIDENCE, "count": int(low.sum()),
                           "samples": [int(s) for s in annotation.samples[low]]},
    }


# ------------------------------------------------------------------ writing
def write_annotation(annotation: Annotation, out_dir: str | os.PathLike, ext: str = "pred") -> dict[str, Path]:
    """Write ``<record>.<ext>`` (WFDB, for any WFDB viewer), ``.csv`` and ``.json`` per beat.

    Each file is written under a temporary name and moved into place, so a reader
    never sees half a file. Extension ``atr`` is refused: a reference annotation file
    is never overwritten.
    """
    ext = check_extension(ext)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{annotation.record}.{ext}"
    paths = {"wfdb": base, "csv": base.with_name(base.name + ".csv"), "json": base.with_name(base.name + ".json")}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{annotation.record}.{ext}.tmp-") as tmp:
        import wfdb

        wfdb.wrann(annotation.record, ext, np.asarray(annotation.samples, dtype=np.int64),
                   symbol=[str(s) for s in annotation.symbols], fs=annotation.fs, write_dir=tmp)
        os.replace(Path(tmp) / base.name, paths["wfdb"])
    rows = beat_rows(annotation)
    _atomic_write(paths["csv"], _csv_text(rows))
    document = {"record": annotation.record, "path": annotation.path, "fs": annotation.fs, "lead": annotation.lead,
                "encoder": annotation.encoder, "summary": summary(annotation), "beats": rows}
    _atomic_write(paths["json"], json.dumps(document) + "\n")
    return paths


def beat_rows(annotation: Annotation) -> list[dict]:
    """One plain dict per beat, the content of the CSV and JSON files."""
    neighbors = annotation.neighbors
    out = []
    for i in range(len(annotation)):
        refs = [] if neighbors is None else [r for r in neighbors[i] if r]
        out.append({"sample": int(annotation.samples[i]), "time": round(float(annotation.times[i]), 3),
                    "label": str(annotation.labels[i]), "symbol": str(annotation.symbols[i]),
                    "confidence": round(float(annotation.confidence[i]), 4),
                    "label_source": str(annotation.label_source[i]), "neighbors": " ".join(refs)})
    return out


def write_suggestions(annotation: Annotation, samples: np.ndarray, out_dir: str | os.PathLike) -> Path:
    """``<record>.suggest.csv``: the suggested samples with an empty label column for the expert.

    It is in the format :func:`read_labels` reads (sample, label, then context
    columns it ignores), so the filled-in file goes straight back to ``--labels``.
    """
    rows = np.searchsorted(annotation.samples, samples)
    lines = [{"sample": int(annotation.samples[r]), "label": "", "time": round(float(annotation.times[r]), 3),
              "current_label": str(annotation.labels[r]), "confidence": round(float(annotation.confidence[r]), 4)}
             for r in rows]
    path = Path(out_dir) / f"{annotation.record}.suggest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, _csv_text(lines, ("sample", "label", "time", "current_label", "confidence")))
    return path


def check_extension(ext: str) -> str:
    """The extension without a leading dot; refuses names that could clobber the record or its reference."""
    ext = str(ext).strip().lstrip(".")
    if not ext.isalnum():
        raise AnnotationError(f"annotation extension must be letters and digits, not {ext!r}")
    if ext.lower() in RESERVED_EXTENSIONS:
        raise AnnotationError(f"refusing extension {ext!r}: it would overwrite the record or its reference "
                              "annotations; choose another (e.g. pred)")
    return ext


def _csv_text(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else ()))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ adding to the index
def add_to_index(index, annotation: Annotation) -> np.ndarray:
    """Add the annotated record's beats to ``index`` (open it with ``BeatIndex.updating``).

    Expert beats are stored with source 'expert', the rest 'propagated' with their
    confidence, so later searches can tell a checked label from a guessed one.
    Returns the new beat ids.
    """
    if annotation.encoder and annotation.encoder != index.encoder.fingerprint:
        raise EncoderMismatchError(f"{annotation.record} was embedded with encoder {annotation.encoder}, the index "
                                   f"uses {index.encoder.fingerprint}: annotate it again with this index")
    b = annotation.beats
    labeled = Beats(b.record, b.lead, b.fs, b.samples, b.windows, b.context, annotation.symbols.astype("<U1"),
                    annotation.labels.astype("<U1"))
    expert = annotation.expert_mask
    confidence = np.where(expert, 1.0, annotation.confidence)
    n_model = int(rescale_samples(annotation.n_samples, annotation.fs, MODEL_FS))
    return index.add_beats(labeled, annotation.embeddings, record_path=annotation.path, n_samples=n_model,
                           source_fs=annotation.fs, label_source=np.where(expert, "expert", "propagated"),
                           confidence=confidence)


# ------------------------------------------------------------------ simulated expert
def evaluate_adaptive(index, records: Sequence[str], budgets: Sequence[int] = (0, 5, 10, 20, 50),
                      data_dir: str | os.PathLike | None = None, k: int = 10, progress: bool = False, *,
                      rounds: int = ROUNDS, alpha: float = SPREAD_ALPHA,
                      expert_weight: float = EXPERT_WEIGHT) -> dict:
    """Se/+P per class as a simulated expert labels ``budget`` beats of each record.

    For every record (reference beat positions) and budget the expert starts from
    nothing, and in up to ``rounds`` rounds labels the beats :func:`suggest_beats`
    asks for, revealing their reference class only; the record is re-propagated after
    each round. Beats the expert labeled are left out of the score, which is pooled
    over records (gross statistics). Each record is embedded and searched once.
    ``global`` is the index's vote alone, without spreading, for comparison.
    """
    budgets = [int(b) for b in budgets]
    keys = ["global"] + [str(b) for b in budgets]
    pooled = {key: np.zeros((len(AAMI_CLASSES), len(AAMI_CLASSES)), dtype=np.int64) for key in keys}
    per_record: dict[str, dict] = {key: {} for key in keys}
    labeled = {key: 0 for key in keys}
    start = time.perf_counter()
    with progress_bar("adaptive evaluation", len(records), enabled=progress) as advance:
        for name in records:
            loaded, found, reference = read_beats(name, data_dir, beats="reference")
            prepared = prepare(index, loaded, found, k)
            truth = class_index(reference)
            none = np.empty(0, np.int64)
            runs = {"global": (prepared.global_scores.argmax(axis=1), none)}
            unlabeled = assemble(prepared, none, none, np.empty(0, dtype="<U1"), alpha=alpha,
                                 expert_weight=expert_weight)
            for budget in budgets:
                runs[str(budget)] = simulate_expert(prepared, truth, budget, rounds=rounds, alpha=alpha,
                                                    expert_weight=expert_weight, unlabeled=unlabeled)
            for key, (predicted, rows) in runs.items():
                scored = np.ones(truth.shape[0], dtype=bool)
                scored[rows] = False
                matrix = confusion_matrix(truth[scored], predicted[scored])
                pooled[key] += matrix
                labeled[key] += int(rows.size)
                per_record[key][loaded.name] = class_metrics(matrix)
            advance(f"{loaded.name}: {len(found)} beats")
    return {
        "records": [Path(str(r)).name for r in records],
        "k": k, "rounds": rounds, "alpha": alpha, "expert_weight": expert_weight, "graph_k": GRAPH_K,
        "wall_s": round(time.perf_counter() - start, 1),
        "budgets": {key: {"expert_labels": labeled[key], **class_metrics(pooled[key]),
                          "per_record": per_record[key]} for key in keys},
    }


def simulate_expert(prepared: Prepared, truth: np.ndarray, budget: int, *, rounds: int = ROUNDS,
                    alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT,
                    unlabeled: Annotation | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(final class positions, rows the expert labeled) after spending ``budget`` labels in rounds.

    ``unlabeled`` is the record's annotation before any expert label, when the caller
    already has it (it is the same for every budget).
    """
    rows = np.empty(0, dtype=np.int64)
    annotation = unlabeled or assemble(prepared, rows, truth[rows], np.empty(0, dtype="<U1"), alpha=alpha,
                                       expert_weight=expert_weight)
    for size in round_sizes(budget, rounds):
        new = suggest_rows(annotation.embeddings, annotation.scores, annotation.expert_mask, size)
        if new.size == 0:
            break
        rows = np.concatenate([rows, new])
        symbols = np.array([AAMI_TO_SYMBOL[AAMI_CLASSES[c]] for c in truth[rows]], dtype="<U1")
        annotation = assemble(prepared, rows, truth[rows], symbols, alpha=alpha, expert_weight=expert_weight)
    return class_index(annotation.labels), rows
