"""Pictures for a person checking the machine: a beat over its neighbors, a labeled strip.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no
display, no global backend switch), so plotting works on headless machines and does
not disturb a caller that uses pyplot itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .aami import AAMI_CLASSES
from .errors import RecordNotFoundError, SampleOutOfRangeError, SignalQualityError
from .files import staged
from .label.annotate import LOW_CONFIDENCE, Annotation
from .label.query import QueryResult
from .signal.beats import MODEL_FS, WINDOW, WINDOW_BEFORE, normalize_windows, rescale_samples, segment, to_model_rate
from .signal.filtering import clean_ecg
from .signal.records import lead_extent, load_record
from .store.index import BeatIndex

CLASS_COLORS = {"N": "#4c72b0", "S": "#dd8452", "V": "#c44e52", "F": "#8172b3", "Q": "#55a868", "": "#999999"}
"""One colour per AAMI class, the same in every figure."""
QUERY_COLOR = "black"


def plot_neighbors(index: BeatIndex, result: QueryResult, path: str | os.PathLike,
                   data_dir: str | os.PathLike | None = None,
                   query_window: np.ndarray | None = None, query_record: str | os.PathLike | None = None) -> Path:
    """The query beat (thick, black) over its neighbors' beats, coloured by their class.

    Neighbors are read back from the record paths in the index's catalog, filtered
    and cut as the index cut them, and z-normalised as the encoder sees them (shape
    is compared, not gain). The query comes from ``query_window`` (a raw
    ``WINDOW``-sample beat, e.g. for a :func:`~simsearch.label.query.query_signal`
    result), else from its record: the catalog's path for an indexed record, else
    ``query_record`` as the query named it (a path, or a name in ``data_dir``; default the
    result's record name). A neighbor whose record is no longer on disk is left out
    and counted in the title, as is one whose few seconds around the beat are flat or hold
    no number (a lead off in a Holter); a query that cannot be re-read is noted there too.
    """
    from matplotlib.figure import Figure

    query = result.query
    if query_window is None and query.get("record"):
        try:
            query_window = _beat_window(index, query["record"], query.get("lead"), query["sample"], data_dir,
                                        query_record)
        except (RecordNotFoundError, SignalQualityError):  # e.g. a path outside data_dir: the neighbors alone
            query_window = None
    t_ms = (np.arange(WINDOW) - WINDOW_BEFORE) / MODEL_FS * 1000.0

    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    shown: set[str] = set()
    missing = 0
    for neighbor in reversed(result.neighbors):  # nearest drawn last, on top
        try:
            window = _beat_window(index, neighbor.record, neighbor.lead, neighbor.sample, data_dir)
        except (RecordNotFoundError, SignalQualityError):  # gone from disk, or its seconds flat (a lead off)
            missing += 1
            continue
        cls = neighbor.aami or ""
        ax.plot(t_ms, normalize_windows(window[None, :])[0], color=CLASS_COLORS.get(cls, CLASS_COLORS[""]),
                lw=1.0, alpha=0.7, label=None if cls in shown else f"{cls or 'unlabeled'} neighbor")
        shown.add(cls)
    if query_window is not None:
        ax.plot(t_ms, normalize_windows(np.asarray(query_window)[None, :])[0], color=QUERY_COLOR, lw=2.8,
                label="query")
    vote = result.vote
    where = f"{query.get('record') or 'signal'} sample {query.get('sample')}"
    title = f"{where}: vote {vote.label or '-'} ({vote.confidence:.2f}), {len(result.neighbors)} neighbors"
    if missing:
        title += f" ({missing} not drawn: not on disk or flat)"
    if query_window is None:
        title += " (query waveform not available)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("time from R peak (ms)")
    ax.set_ylabel("normalised amplitude")
    ax.axvline(0.0, color="#cccccc", lw=0.8, zorder=0)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_strip(annotation: Annotation, path: str | os.PathLike, start_s: float = 0.0, seconds: float = 20.0) -> Path:
    """A strip of the filtered record with each beat's label above it, coloured by class.

    Expert labels are drawn bold in a box; labels below the low-confidence threshold
    get a '?' and a dashed line down to their beat, so the eye finds what to review.
    """
    from matplotlib.figure import Figure

    record = load_record(annotation.path, lead=annotation.lead, annotations=None)
    fs = record.fs
    first = int(round(start_s * fs))
    if not 0 <= first < record.n_samples or seconds <= 0:
        raise SampleOutOfRangeError(f"{annotation.record}: strip start {start_s} s is outside the record "
                                    f"(0..{record.n_samples / fs:.1f} s)")
    last = min(record.n_samples, first + int(round(seconds * fs)))
    filtered = clean_ecg(record.signal, fs)[first:last]
    t = np.arange(first, last) / fs

    fig = Figure(figsize=(max(8.0, 0.6 * seconds), 3.2))
    ax = fig.add_subplot()
    ax.plot(t, filtered, color="#333333", lw=0.8)
    top = float(filtered.max()) if filtered.size else 1.0
    span = float(np.ptp(filtered)) if filtered.size else 1.0
    beats = annotation.samples
    for row in np.flatnonzero((beats >= first) & (beats < last)):
        label = str(annotation.labels[row])
        color = CLASS_COLORS.get(label, CLASS_COLORS[""])
        expert = annotation.label_source[row] == "expert"
        low = annotation.confidence[row] < LOW_CONFIDENCE
        x = beats[row] / fs
        ax.text(x, top + 0.08 * span, label + ("?" if low else ""), color=color, ha="center", va="bottom",
                fontsize=9, fontweight="bold" if expert else "normal",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color} if expert else None)
        if low:
            ax.plot([x, x], [filtered[beats[row] - first], top + 0.06 * span], color=color, lw=0.8, ls="--")
    ax.set_ylim(float(filtered.min()) - 0.05 * span if filtered.size else -1.0, top + 0.3 * span)
    ax.set_xlim(t[0], t[-1] if t.size > 1 else t[0] + 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{annotation.lead} (filtered)")
    counts = ", ".join(f"{c} {int((annotation.labels == c).sum())}" for c in AAMI_CLASSES
                       if (annotation.labels == c).any())
    ax.set_title(f"{annotation.record}: {counts}  (bold boxed: expert; ?: confidence < {LOW_CONFIDENCE})",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


PLOT_SPAN_S = 5.0
"""Seconds read on each side of a drawn beat: its window and the filters' reach, not the whole
record (a neighbor's 30 minutes, a query's 24 hours)."""


def _beat_window(index: BeatIndex, record: str, lead: str | None, sample: int, data_dir=None,
                 named: str | os.PathLike | None = None) -> np.ndarray:
    """The raw (unnormalised) beat window around ``sample`` (at the record's own rate) of
    ``record``: read where the index keeps it, else as ``named`` (default: ``record``) in
    ``data_dir``; its few seconds filtered at MODEL_FS as the index filtered its records."""
    stored = index.catalog.record(record)
    source = stored["path"] if stored is not None else (named or record)
    data_dir = None if stored is not None else data_dir
    # a stored record's rate is in the catalog (its stored lead's, which its neighbors are in): one header read less
    fs = float(stored["fs"]) if stored is not None and lead in (None, stored["lead"]) else \
        lead_extent(source, data_dir, lead=lead)[0]
    loaded = load_record(source, data_dir, lead=lead, annotations=None,
                         span_s=(sample / fs - PLOT_SPAN_S, sample / fs + PLOT_SPAN_S))
    signal = clean_ecg(to_model_rate(loaded.signal, loaded.fs), MODEL_FS)
    at_model = int(rescale_samples(sample - loaded.start, loaded.fs, MODEL_FS))
    return segment(signal, np.array([min(max(at_model, 0), signal.size - 1)]))[0]


def _save(fig, path: str | os.PathLike) -> Path:
    """Write the PNG under a temporary name and move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def plot_confusion(matrix, path: str | os.PathLike, title: str = "") -> Path:
    """Confusion matrix (rows: reference, columns: predicted), cells coloured by row share."""
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(5.6, 4.8))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(AAMI_CLASSES)), AAMI_CLASSES)
    ax.set_yticks(range(len(AAMI_CLASSES)), AAMI_CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                color="white" if shares[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the reference class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
