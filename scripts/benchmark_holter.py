"""Holter-scale figures, each against a baseline measured in the same run.

1. ``simsearch annotate`` of a 24-hour recording (EDF+, made by ``scripts/make_holter.py``
   unless ``--holter`` names one) against the 48-record MIT-BIH index, run as a
   subprocess: wall time, peak RSS (``getrusage(RUSAGE_CHILDREN)``), and per stage
   (read/detect/filter, embed, search+vote, graph, spreading, neighbors, write) its
   time and the peak RSS reached by its end.
2. The stages' baselines, on the first ``--subsample`` beats of the same recording: the
   code before this change (a FAISS flat search with its default settings and the
   ``np.add.at`` vote; the graph by a single-thread flat search; sparse LU; the
   per-beat rows that recomputed every time stamp) against the current code.
3. Batched vote over the MIT-BIH index (exact, k=100): every stored beat voted on by
   the other records (one call per record, its own record excluded), against the
   selector-based search per record and one query at a time, on a few records; then
   the same batched vote on an IVF index of the same beats (``--ivf-index``, default
   built into ``--work``): beats/s, recall@100 against the exact answers, and the share
   of beats whose vote is the same.

Every figure is printed with the 1-minute load average at its end (the machine is shared).

    python scripts/benchmark_holter.py --data-dir ../shared/data/mitdb --work /tmp/holter-bench
        [--index DIR] [--ivf-index DIR] [--holter FILE.edf] [--subsample 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simsearch.aami import ALL_RECORDS  # noqa: E402
from simsearch.label import spreading  # noqa: E402
from simsearch.label.annotate import Annotation  # noqa: E402
from simsearch.label.export import beat_rows  # noqa: E402
from simsearch.label.vote import (  # noqa: E402
    DISTANCE_SOFTENING,
    RECORD_BALANCE,
    index_vote,
    prior_weights,
    record_scale,
    vote_winner,
)
from simsearch.signal.beats import beats_from_record, detect_beats  # noqa: E402
from simsearch.signal.records import Record, load_record  # noqa: E402
from simsearch.store.index import BeatIndex  # noqa: E402


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(fn, repeats: int = 1):
    """(median seconds, last result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


# ---------------------------------------------------------------- the code before this change, as baselines
def old_vote(index, distances, ids):
    """vote_scores as it was: np.add.at over every neighbor (the records' shares balanced as now)."""
    classes, records = index.neighbor_labels(ids)
    distances = np.where(np.isfinite(distances), distances, 0.0)
    weights = np.where(classes >= 0, 1.0 / (distances + DISTANCE_SOFTENING), 0.0)
    weights = weights * record_scale(records, weights, RECORD_BALANCE)
    scores = np.zeros((classes.shape[0], 5))
    rows = np.repeat(np.arange(classes.shape[0]), classes.shape[1])
    valid = classes.ravel() >= 0
    np.add.at(scores, (rows[valid], classes.ravel()[valid]), weights.ravel()[valid])
    scores = scores * prior_weights(index.class_counts())[None, :]
    total = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)


def old_search(index, vectors, k, exclude_records=()):
    """BeatIndex.search as it was: one FAISS search, an id selector for any filter, FAISS's defaults."""
    table_ids, classes, records = index.label_table()
    allowed = (classes >= 0) & ~np.isin(records, list(exclude_records))
    return index._search_selected(np.ascontiguousarray(vectors, dtype=np.float32), k, allowed) if not \
        allowed.all() else index.vectors.search(np.ascontiguousarray(vectors, dtype=np.float32), k)


def old_graph(x, k=spreading.GRAPH_K):
    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    with spreading.single_thread():
        return flat.search(x, k + 1)


def old_beat_rows(annotation):
    out = []
    for i in range(len(annotation)):
        refs = [r for r in annotation.neighbors[i] if r]
        out.append({"sample": int(annotation.samples[i]), "time": round(float(annotation.times[i]), 3),
                    "label": str(annotation.labels[i]), "symbol": str(annotation.symbols[i]),
                    "confidence": round(float(annotation.confidence[i]), 4),
                    "label_source": str(annotation.label_source[i]), "neighbors": " ".join(refs)})
    return out


# ---------------------------------------------------------------- parts
def annotate_24h(index_dir: Path, holter: Path, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "simsearch", "annotate", str(index_dir), str(holter), "--out",
                           str(out), "--json"], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"annotate failed: {proc.stderr.strip()[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(proc.stdout)
    return {"command": f"simsearch annotate {index_dir} {holter} --out {out} --json", "beats": report["beats"],
            "wall_s": round(wall, 1), "peak_rss_mb": round(max(peak, before) / 1024, 0), "load": load(),
            "stages": report["timings"], "by_class": report["by_class"]}


def subsample_beats(holter: Path, n_beats: int):
    """(Record, Beats) of the recording's first ``n_beats`` detected beats."""
    record = load_record(holter)
    end = int(min(record.n_samples, n_beats * 1.2 * record.fs))  # < 72 bpm on average: enough signal
    part = Record(record.name, record.path, record.signal[:end], record.fs, record.lead)
    peaks = detect_beats(part)[:n_beats]
    part = Record(record.name, record.path, record.signal[:int(peaks[-1]) + int(record.fs)], record.fs, record.lead)
    return part, beats_from_record(part, r_peaks=peaks)


def stage_baselines(index: BeatIndex, holter: Path, n_beats: int) -> dict:
    record, beats = subsample_beats(holter, n_beats)
    x = index.encoder.embed(beats.windows, beats.context)
    n = len(x)
    out = {"beats": n}
    k = 100
    t_old, (s_old, i_old) = timed(lambda: old_search(index, x, k, [record.name]))
    v_old_t, scores_old = timed(lambda: old_vote(index, np.where(i_old >= 0, np.sqrt(np.clip(
        2 - 2 * s_old.astype(np.float64), 0, 4)), np.inf), i_old))
    index.search(x[:600], k)  # clusters the index once (a 24-h annotate pays it once too)
    t_new, (d_new, i_new) = timed(lambda: index.search(x, k, exclude_records=[record.name]))
    v_new_t, scores_new = timed(lambda: index_vote(index, d_new, i_new))
    same = float(np.mean(scores_new.argmax(1) == scores_old.argmax(1)))
    out["search+vote"] = {"old_beats_per_s": round(n / (t_old + v_old_t)),
                          "new_beats_per_s": round(n / (t_new + v_new_t)),
                          "old_s": round(t_old + v_old_t, 2), "new_s": round(t_new + v_new_t, 2),
                          "same_vote_label": same, "load": load()}
    t_old, _ = timed(lambda: old_graph(x))
    t_new, graph = timed(lambda: spreading.knn_graph(x))
    out["graph"] = {"old_s": round(t_old, 2), "new_s": round(t_new, 2), "load": load()}
    t_old, f_old = timed(lambda: spreading.spread(graph, scores_new, [], solver="splu"))
    t_new, f_new = timed(lambda: spreading.spread(graph, scores_new, [], solver="cg"))
    out["spreading"] = {"splu_s": round(t_old, 2), "cg_s": round(t_new, 2),
                        "max_abs_difference": float(np.abs(f_old - f_new).max()),
                        "same_labels": bool((f_old.argmax(1) == f_new.argmax(1)).all()), "load": load()}
    labels = np.array(["N"] * n, dtype="<U1")
    annotation = Annotation(record.name, record.path, record.fs, record.lead, record.n_samples, labels, labels,
                            np.ones(n), np.full(n, "propagated", dtype="<U10"), scores_new, scores_new,
                            i_new[:, :3], d_new[:, :3], x, beats, index.fingerprint,
                            np.full((n, 3), "100:1234:N", dtype=object))
    t_old, rows_old = timed(lambda: old_beat_rows(annotation))
    t_new, rows_new = timed(lambda: beat_rows(annotation))
    out["write rows"] = {"old_s": round(t_old, 2), "new_s": round(t_new, 2), "same": rows_old == rows_new,
                         "load": load()}
    return out


def vote_each_record(index: BeatIndex, x: np.ndarray, stored_records: np.ndarray) -> dict:
    """Every stored beat voted on by the other records, one batched call per record: {record: (ids, winners)}."""
    out = {}
    for name in sorted(set(stored_records)):
        d, i = index.search(x[stored_records == name], 100, exclude_records=[name])
        out[name] = (i, vote_winner(index_vote(index, d, i))[0])
    return out


def batched_vote(index: BeatIndex, baseline_records: int, ivf_dir: Path) -> dict:
    x, ids = index.vectors.arrays()
    table_ids, _, records = index.label_table()
    stored_records = records[np.searchsorted(table_ids, ids)]
    names = sorted(set(stored_records))
    index.search(x[:600], 100)  # cluster once (kept by the index)

    def new():
        return vote_each_record(index, x, stored_records)

    seconds, exact = timed(new, repeats=3)
    n = len(x)
    out = {"index_beats": n, "records": len(names),
           "new_beats_per_s": round(n / seconds), "new_s": round(seconds, 1), "load_new": load()}
    some = names[:baseline_records]
    rows = np.isin(stored_records, some)

    def old():
        for name in some:
            q = x[stored_records == name]
            s, i = old_search(index, q, 100, [name])
            old_vote(index, np.where(i >= 0, np.sqrt(np.clip(2 - 2 * s.astype(np.float64), 0, 4)), np.inf), i)
        return int(rows.sum())

    seconds, n = timed(old)
    out.update({"old_per_record_beats_per_s": round(n / seconds), "old_per_record_beats": n, "load_old": load()})
    picks = np.flatnonzero(rows)[:: max(1, int(rows.sum()) // 200)][:200]

    def one_by_one():
        for row in picks:
            s, i = old_search(index, x[row:row + 1], 100, [stored_records[row]])
            old_vote(index, np.where(i >= 0, np.sqrt(np.clip(2 - 2 * s.astype(np.float64), 0, 4)), np.inf), i)
        return len(picks)

    seconds, n = timed(one_by_one)
    out.update({"old_one_by_one_beats_per_s": round(n / seconds, 1), "load_one_by_one": load()})
    ivf = BeatIndex.open(ivf_dir)
    try:
        ivf.search(x[:600], 100)  # warm: the first search pays one-time costs
        seconds, approx = timed(lambda: vote_each_record(ivf, x, stored_records), repeats=3)
        hits = sum(len(np.intersect1d(a[a >= 0], b[b >= 0])) for name in names
                   for a, b in zip(approx[name][0], exact[name][0]))
        out["ivf"] = {"vectors": ivf.manifest["vectors"], "beats_per_s": round(len(x) / seconds),
                      "recall_at_100": round(hits / int((np.concatenate([exact[m][0] for m in names]) >= 0).sum()), 4),
                      "same_vote": round(float(np.mean(np.concatenate([approx[m][1] == exact[m][1]
                                                                       for m in names]))), 4),
                      "load": load()}
    finally:
        ivf.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", str(REPO.parent / "shared" / "data" /
                                                                                  "mitdb")))
    parser.add_argument("--work", required=True, help="scratch directory (index, recording, labels; not the repo)")
    parser.add_argument("--index", help="an index of the 48 MIT-BIH records (default: built into --work)")
    parser.add_argument("--ivf-index", help="an IVF index of the same beats (default: built into --work)")
    parser.add_argument("--holter", help="a 24-hour recording (default: made into --work by make_holter.py)")
    parser.add_argument("--subsample", type=int, default=20000, help="beats on which baselines are timed")
    parser.add_argument("--baseline-records", type=int, default=4)
    parser.add_argument("--skip-annotate", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    index_dir = Path(args.index) if args.index else work / "mitdb"
    if not args.index and not (index_dir / "CURRENT").exists():
        BeatIndex.build(index_dir, ALL_RECORDS, args.data_dir).close()
    ivf_dir = Path(args.ivf_index) if args.ivf_index else work / "mitdb-ivf"
    if not args.ivf_index and not (ivf_dir / "CURRENT").exists():
        BeatIndex.build(ivf_dir, ALL_RECORDS, args.data_dir, index_type="ivf").close()
    holter = Path(args.holter) if args.holter else work / "holter24.edf"
    if not holter.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_holter.py"), "--out", str(work), "--data-dir",
                        args.data_dir, "--formats", "edf"], check=True)
    report = {"cpu_count": os.cpu_count(), "load_at_start": load()}
    if not args.skip_annotate:
        report["annotate_24h"] = annotate_24h(index_dir, holter, work / "labels")
        print(json.dumps({"annotate_24h": report["annotate_24h"]}), file=sys.stderr, flush=True)
    index = BeatIndex.open(index_dir)
    report["stage_baselines"] = stage_baselines(index, holter, args.subsample)
    print(json.dumps({"stage_baselines": report["stage_baselines"]}), file=sys.stderr, flush=True)
    report["batched_vote"] = batched_vote(index, args.baseline_records, ivf_dir)
    index.close()
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['cpu_count']} CPU cores; load average at start {report['load_at_start']}")
    if "annotate_24h" in report:
        a = report["annotate_24h"]
        print(f"24-h annotate ({a['beats']} beats): wall {a['wall_s']} s, peak RSS {a['peak_rss_mb']:.0f} MB, "
              f"load {a['load']}\n  {a['command']}")
        for stage, seconds in a["stages"]["seconds"].items():
            print(f"  {stage:20s} {seconds:8.1f} s   peak RSS so far {a['stages']['peak_rss_mb'][stage]:6.0f} MB")
    s = report["stage_baselines"]
    print(f"baselines on the first {s['beats']} beats of the recording:")
    sv = s["search+vote"]
    print(f"  search+vote k=100: {sv['new_beats_per_s']} beats/s (old path {sv['old_beats_per_s']}), same label "
          f"{sv['same_vote_label']:.4f}, load {sv['load']}")
    print(f"  graph: {s['graph']['new_s']} s (old {s['graph']['old_s']} s), load {s['graph']['load']}")
    sp = s["spreading"]
    print(f"  spreading: CG {sp['cg_s']} s (splu {sp['splu_s']} s), max |F diff| {sp['max_abs_difference']:.2e}, "
          f"same labels {sp['same_labels']}, load {sp['load']}")
    w = s["write rows"]
    print(f"  per-beat rows: {w['new_s']} s (old {w['old_s']} s), identical {w['same']}, load {w['load']}")
    b = report["batched_vote"]
    print(f"batched vote, exact, k=100, {b['index_beats']} stored beats each voted on by the other records: "
          f"{b['new_beats_per_s']} beats/s (load {b['load_new']}); old selector search per record "
          f"{b['old_per_record_beats_per_s']} beats/s on {b['old_per_record_beats']} beats (load {b['load_old']}); "
          f"one by one {b['old_one_by_one_beats_per_s']} beats/s (load {b['load_one_by_one']})")
    v = b["ivf"]
    print(f"batched vote, IVF ({v['vectors']['nlist']} lists, nprobe {v['vectors']['nprobe']} at k=10, "
          f"{v['vectors'].get('nprobe_at_100', '-')} at k=100 before the filter's boost): {v['beats_per_s']} beats/s, "
          f"recall@100 {v['recall_at_100']} against exact, same vote {v['same_vote']} (load {v['load']})")


if __name__ == "__main__":
    main()
