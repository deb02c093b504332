"""Archive scale: every index type side by side at 10^5, 10^6 and 10^7 vectors, in one bounded run.

The vectors are real: every beat of the 48 MIT-BIH records embedded by the packaged
encoder (about 110,000), then replicated with a small jitter (Gaussian, expected norm
:data:`JITTER`, about 0.7 of the median distance between a beat and its nearest
neighbor) and normalised again until the size is reached. Replica r of record R is
the synthetic patient ``R#r``, so own-record exclusion removes one patient among
thousands, as in an archive. Ids are sequential by patient, as a catalog hands them out.

For each size and type (``flat``, ``hnsw``, ``ivf``; ``ivfpq`` on request), in its
own subprocess so that its memory is its own:

* build: wall time of :func:`simsearch.store.vectors.build` (training, adding, tuning
  of nprobe/efSearch for recall@10 >= 0.97) and the build's peak RSS;
* serve: a fresh process opens the written file as :class:`~simsearch.store.index.BeatIndex`
  would (IVF memory-mapped), then answers single queries one at a time: p50/p95 latency,
  the process's peak RSS above a bare ``import faiss`` process, and recall@10 against
  exact flat search on the same vectors, unfiltered and with the two filters a query
  uses (own patient excluded; only class S beats), each through the same FAISS id
  selectors as :meth:`BeatIndex.search`. A filtered answer holding a beat the filter
  excludes counts as a violation (there must be none).

Exact flat search at 10^7 takes ~80 ms a query: it answers ``--flat-queries`` queries
there. HNSW is built only up to ``--hnsw-max`` vectors: its graph inserts take minutes
per million vectors on 2 cores and ~400 B per vector (4 GB at 10^7).

The catalog half: ``nearest_beat`` (the query of a stored beat by record and sample)
timed on an SQLite catalog of ``--catalog-rows`` beats, with and without the index on
(record_id, sample) and with the old query that sorted the record's beats, and the bulk
insert rate (record by record, one transaction each); then the same on a private
PostgreSQL server (``--postgres-rows``, records of 30 minutes and of 24 hours).

    python scripts/benchmark_scale.py --data-dir ../shared/data/mitdb [--sizes 1e5,1e6,1e7] [--types flat,hnsw,ivf]
        [--queries 200] [--time-limit 1500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

JITTER = 0.06
"""Expected norm of the jitter added to a replicated embedding (unit vectors; the median
distance from a real beat to its nearest neighbor is 0.08)."""
SEED = 7


# ---------------------------------------------------------------------------- data
def embeddings(data_dir: str, cache: Path) -> dict:
    """Every beat of the 48 records, embedded by the packaged encoder (cached in ``cache``)."""
    if cache.is_file():
        data = dict(np.load(cache, allow_pickle=False))
        from simsearch import Encoder

        if str(data.get("fingerprint")) == Encoder.load().fingerprint:
            return data
    from simsearch import Encoder
    from simsearch.aami import ALL_RECORDS
    from simsearch.signal.beats import beats_from_record
    from simsearch.signal.records import load_record

    encoder = Encoder.load()
    parts = {"vectors": [], "record": [], "aami": [], "sample": []}
    for name in ALL_RECORDS:
        beats = beats_from_record(load_record(name, data_dir))
        parts["vectors"].append(encoder.embed(beats.windows, beats.context))
        parts["record"].append(np.full(len(beats), name))
        parts["aami"].append(beats.aami.astype("<U1"))
        parts["sample"].append(beats.samples)
    data = {key: np.concatenate(value) for key, value in parts.items()}
    data["vectors"] = data["vectors"].astype(np.float32)
    data["fingerprint"] = np.array(encoder.fingerprint)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


def synthetic(real: dict, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, ids, patient numbers, AAMI letters) of ``n`` beats: the real ones, then jittered replicas."""
    base = real["vectors"]
    m, d = base.shape
    reps = -(-n // m)
    rng = np.random.default_rng(SEED)
    x = np.empty((reps * m, d), dtype=np.float32)
    for r in range(reps):
        block = x[r * m:(r + 1) * m]
        block[:] = base
        if r:
            block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(JITTER / np.sqrt(d))
            block /= np.linalg.norm(block, axis=1, keepdims=True)
    _, record_pos = np.unique(real["record"], return_inverse=True)
    n_records = record_pos.max() + 1
    patient = (np.arange(reps)[:, None] * n_records + record_pos[None, :]).reshape(-1)
    aami = np.tile(real["aami"], reps)
    order = np.argsort(patient, kind="stable")[:n]  # ids sequential by patient, as a catalog gives them
    x, patient, aami = x[order], patient[order], aami[order]
    return np.ascontiguousarray(x), np.arange(1, n + 1, dtype=np.int64), patient, aami


def query_rows(n: int, count: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SEED + 1).choice(n, size=min(count, n), replace=False))


def selector(allowed: np.ndarray, ids: np.ndarray, keep: list):
    """The selector BeatIndex.search builds for a boolean mask over ``ids`` (the smaller set is named)."""
    import faiss

    if allowed.sum() <= allowed.size // 2:
        keep.append(faiss.IDSelectorBatch(np.ascontiguousarray(ids[allowed])))
    else:
        keep.append(faiss.IDSelectorBatch(np.ascontiguousarray(ids[~allowed])))
        keep.append(faiss.IDSelectorNot(keep[-1]))
    return keep[-1]


def filters(rows: np.ndarray, ids: np.ndarray, patient: np.ndarray, aami: np.ndarray):
    """(name, query row, allowed mask) of the filtered queries: own patient excluded, class S only."""
    labeled = aami != ""
    s_only = aami == "S"
    for row in rows:
        allowed = labeled & (patient != patient[row])
        allowed[row] = False
        yield "exclude own patient", row, allowed
    for row in rows:
        allowed = s_only.copy()
        allowed[row] = False
        yield "class S only", row, allowed


def rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    """Resident memory of this process now (file-backed mapped pages included)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------------------- child processes
def child_truth(args) -> dict:
    """Exact answers (flat) for the size: unfiltered top-10 and filtered top-10 per query."""
    import faiss

    from simsearch.store.vectors import build

    real = dict(np.load(args.cache))
    x, ids, patient, aami = synthetic(real, args.size)
    rows = query_rows(len(x), args.queries)
    flat = build("flat", x, ids)
    _, found = flat.search(x[rows], 11)
    truth = {"rows": rows.tolist(), "plain": [[int(i) for i in f if i != ids[r]][:10] for f, r in zip(found, rows)]}
    frows = rows[:args.filtered_queries]
    for name, row, allowed in filters(frows, ids, patient, aami):
        keep = []
        _, f = flat.search(x[row:row + 1], 10, params=faiss.SearchParameters(sel=selector(allowed, ids, keep)))
        truth.setdefault(name, []).append([int(i) for i in f[0] if i >= 0])
    return truth


def child_build(args) -> dict:
    from simsearch.store.vectors import build

    real = dict(np.load(args.cache))
    x, ids, _, _ = synthetic(real, args.size)
    del real
    data = current_mb()
    peak = [data]
    done = threading.Event()

    def watch():  # ru_maxrss would count the input's temporaries: sample the build's own peak
        while not done.wait(0.05):
            peak[0] = max(peak[0], current_mb())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    vectors = build(args.type, x, ids)
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    Path(args.out).write_bytes(vectors.serialize().tobytes())
    return {"build_s": round(seconds, 1), "build_peak_mb": round(max(peak[0], current_mb()) - data, 0),
            "input_mb": round(data, 0), "params": vectors.params,
            "file_mb": round(os.path.getsize(args.out) / 2**20, 1)}


def child_serve(args) -> dict:
    import faiss

    from simsearch.store.vectors import read

    faiss.omp_set_num_threads(1)  # single queries: one thread (a second only waits at the barrier under load)
    bare = current_mb()  # python, numpy, faiss
    params = json.loads(args.params)
    start = time.perf_counter()
    vectors = read(Path(args.out), params, mmap=True)
    vectors.search(np.zeros((1, vectors.d), np.float32), 10)  # warm-up
    open_s = time.perf_counter() - start
    opened = current_mb()
    real = dict(np.load(args.cache))
    x, ids, patient, aami = synthetic(real, args.size)  # the queries' vectors and the filters' masks
    del real
    with_data = current_mb()
    truth = json.loads(Path(args.truth).read_text())
    rows = np.array(truth["rows"])
    limit = args.max_queries or len(rows)
    latency, recalls = [], []
    for i, row in enumerate(rows[:limit]):
        q = np.ascontiguousarray(x[row:row + 1])
        start = time.perf_counter()
        _, found = vectors.search(q, 11)
        latency.append(time.perf_counter() - start)
        got = [int(v) for v in found[0] if v != ids[row]][:10]
        recalls.append(len(set(got) & set(truth["plain"][i])) / max(len(truth["plain"][i]), 1))
    served = {"queries": len(latency), "p50_ms": round(1000 * float(np.percentile(latency, 50)), 3),
              "p95_ms": round(1000 * float(np.percentile(latency, 95)), 3),
              "recall_at_10": round(float(np.mean(recalls)), 4)}
    frows = rows[:min(args.filtered_queries, limit)]
    for name, row, allowed in filters(frows, ids, patient, aami):
        keep = []
        sel = selector(allowed, ids, keep)
        start = time.perf_counter()
        _, found = vectors.search(x[row:row + 1], 10, params=faiss.SearchParameters(sel=sel))
        took = time.perf_counter() - start
        got = [int(v) for v in found[0] if v >= 0]
        wanted = truth[name][list(frows).index(row)]
        entry = served.setdefault(name, {"latency": [], "recall": [], "violations": 0, "short": 0})
        entry["latency"].append(took)
        entry["recall"].append(len(set(got) & set(wanted)) / max(len(wanted), 1))
        entry["violations"] += int((~allowed[np.searchsorted(ids, got)]).sum()) if got else 0
        entry["short"] += int(len(got) < min(10, len(wanted)))
    for name in ("exclude own patient", "class S only"):
        entry = served.pop(name, None)
        if entry:
            served[name] = {"queries": len(entry["latency"]),
                            "p50_ms": round(1000 * float(np.percentile(entry["latency"], 50)), 3),
                            "recall_at_10": round(float(np.mean(entry["recall"])), 4),
                            "excluded_beats_returned": entry["violations"], "fewer_than_k": entry["short"]}
    served["open_s"] = round(open_s, 2)
    served["serve_rss_at_open_mb"] = round(opened - bare, 0)
    served["serve_rss_mb"] = round(opened - bare + current_mb() - with_data, 0)  # pages the queries touched added
    return served


def synthetic_beats(name: str, n: int, rng):
    """A record of ``n`` beats, one every second at 360 Hz, with N and V labels (windows are not stored)."""
    from simsearch.signal.beats import CONTEXT_COLUMNS, WINDOW, Beats

    samples = np.arange(n, dtype=np.int64) * 360 + 180
    aami = np.where(rng.random(n) < 0.1, "V", "N").astype("<U1")
    context = np.abs(rng.normal(1.0, 0.1, size=(n, len(CONTEXT_COLUMNS)))).astype(np.float32)
    return Beats(name, "MLII", 360.0, samples, np.zeros((n, WINDOW), np.float32), context, aami.copy(), aami)


def time_catalog(url: str, rows: int, *, per_record: int = 2000, lookups: int = 50, drop_index=None) -> dict:
    """Bulk insert ``rows`` beats through Catalog.replace_record (record by record), then time nearest_beat."""
    from simsearch.store.catalog import Catalog

    catalog = Catalog.create(url, 1, index_uid="bench", owner="bench")
    n_records = -(-rows // per_record)
    rng = np.random.default_rng(SEED)
    records = [synthetic_beats(f"r{i:06d}", min(per_record, rows - i * per_record), rng) for i in range(n_records)]
    start = time.perf_counter()
    for beats in records:
        catalog.replace_record(beats, path=beats.record, n_samples=per_record * 360 + 360, label_source="reference")
    insert_s = time.perf_counter() - start
    catalog.mark_written()
    names = [f"r{int(i):06d}" for i in rng.integers(0, n_records, size=lookups)]
    samples = rng.integers(0, per_record * 360, size=lookups)

    def timed(cat) -> dict:
        out = []
        for name, sample in zip(names, samples):
            t0 = time.perf_counter()
            assert cat.nearest_beat(name, int(sample)) is not None
            out.append(time.perf_counter() - t0)
        return {"p50": round(1000 * float(np.median(out)), 3), "p95": round(1000 * float(np.percentile(out, 95)), 3)}

    report = {"rows": rows, "insert_s": round(insert_s, 2), "insert_beats_per_s": round(rows / insert_s),
              "nearest_beat_ms": timed(catalog)}
    from sqlalchemy import func, select

    from simsearch.store.catalog import BEATS, RECORDS

    def scan_query(name: str, sample: int):  # the query before the two index seeks: every beat of the record sorted
        query = (select(BEATS.c.id).join(RECORDS).where(catalog._alive() & (RECORDS.c.name == name))
                 .order_by(func.abs(BEATS.c.sample - sample)).limit(1))
        with catalog.engine.connect() as conn:
            return conn.execute(query).scalar()

    before = []
    for name, sample in zip(names, samples):
        t0 = time.perf_counter()
        scan_query(name, int(sample))
        before.append(time.perf_counter() - t0)
    report["nearest_beat_ms_sorting_the_record"] = {"p50": round(1000 * float(np.median(before)), 3),
                                                    "p95": round(1000 * float(np.percentile(before, 95)), 3)}
    catalog.close()
    if drop_index is not None:
        drop_index()
        catalog = Catalog(url, 1)
        report["nearest_beat_ms_without_record_sample_index"] = timed(catalog)
        catalog.close()
    return report


def child_catalog(args) -> dict:
    """An SQLite catalog of ``--size`` beats: insert rate, nearest_beat with and without the (record_id, sample)
    index."""
    import sqlite3

    path = Path(args.out)

    def drop_index():
        with sqlite3.connect(path) as conn:
            conn.execute("DROP INDEX IF EXISTS ix_beats_record_sample")
            conn.execute("CREATE INDEX IF NOT EXISTS ix_beats_record_id ON beats (record_id)")  # the index before it

    return time_catalog(f"sqlite:///{path}", args.size, per_record=args.record_beats, drop_index=drop_index)


def child_postgres(args) -> dict:
    """The same on a private PostgreSQL server (tests/postgres_server.py): 30-min records, then 24-h ones."""
    sys.path.insert(0, str(REPO / "tests"))
    from postgres_server import PostgresServer, missing

    why = missing()
    if why:
        return {"skipped": why}
    server = PostgresServer().start()
    try:
        return {"records of 2,000 beats": time_catalog(server.create_database("short"), args.size, per_record=2000),
                "records of 100,000 beats": time_catalog(server.create_database("holter"), args.size,
                                                         per_record=100_000)}
    finally:
        server.stop()


CHILDREN = {"truth": child_truth, "build": child_build, "serve": child_serve, "catalog": child_catalog,
            "postgres": child_postgres}


def run_child(role: str, timeout: float, **options) -> dict:
    if timeout <= 5:
        return {"skipped": "time limit reached"}
    argv = [sys.executable, __file__, "--child", role]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- driver
def parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--sizes", default="1e5,1e6,1e7", help="vector counts, e.g. 1e5,1e6")
    parser.add_argument("--types", default="flat,hnsw,ivf", help="index types (ivfpq too on request)")
    parser.add_argument("--queries", type=int, default=200, help="single queries per index")
    parser.add_argument("--filtered-queries", type=int, default=50, help="queries per filter")
    parser.add_argument("--flat-queries", type=int, default=20, help="queries of flat at 10^7 (80 ms each)")
    parser.add_argument("--hnsw-max", type=float, default=1e6, help="largest size HNSW is built at")
    parser.add_argument("--catalog-rows", type=float, default=1e7, help="beats in the timed SQLite catalog (0: skip)")
    parser.add_argument("--catalog-record-beats", type=int, default=2000,
                        help="beats per record in the SQLite catalog (2000: 30 min; 100000: 24 h)")
    parser.add_argument("--postgres-rows", type=float, default=1e6,
                        help="beats inserted into a private PostgreSQL server, if its binaries are here (0: skip)")
    parser.add_argument("--time-limit", type=float, default=1500, help="seconds for the whole run")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "simsearch_scale" / "embeddings.npz"))
    parser.add_argument("--keep", help="keep the built indexes in this directory, and reuse those found there")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--type", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--max-queries", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--record-beats", type=int, default=2000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return

    deadline = time.monotonic() + args.time_limit
    left = lambda: deadline - time.monotonic()  # noqa: E731
    real = embeddings(args.data_dir, Path(args.cache))
    report = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "real_beats": int(len(real["vectors"])),
              "jitter_norm": JITTER, "sizes": {}}
    common = {"cache": args.cache, "queries": args.queries, "filtered_queries": args.filtered_queries}
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="simsearch-scale-") as tmp:
        for size in parse_sizes(args.sizes):
            truth_file = Path(tmp) / f"truth-{size}.json"
            truth = run_child("truth", left(), size=size, **common)
            row = report["sizes"].setdefault(str(size), {})
            if "rows" not in truth:
                row["truth"] = truth
                continue
            truth_file.write_text(json.dumps(truth))
            for kind in args.types.split(","):
                if kind == "hnsw" and size > args.hnsw_max:
                    row[kind] = {"skipped": f"HNSW not built above {args.hnsw_max:.0e} vectors (graph build time, "
                                            "~400 B/vector)"}
                    continue
                out = Path(args.keep or tmp) / f"{kind}-{size}.faiss"
                recorded = out.with_suffix(".json")
                if args.keep and out.is_file() and recorded.is_file():  # built by an earlier run with --keep
                    built = {**json.loads(recorded.read_text()), "reused": True}
                else:
                    built = run_child("build", left(), size=size, type=kind, out=out, **common)
                if "params" not in built:
                    row[kind] = built
                    continue
                if args.keep:
                    recorded.write_text(json.dumps(built))
                limit = args.flat_queries if (kind == "flat" and size >= 5_000_000) else 0
                served = run_child("serve", left(), size=size, type=kind, out=out, params=json.dumps(built["params"]),
                                   truth=truth_file, max_queries=limit, **common)
                row[kind] = {**built, **served}
                if not args.keep:
                    out.unlink(missing_ok=True)
                print(f"{size:>10} {kind:6s} {json.dumps(row[kind])}", file=sys.stderr, flush=True)
        if args.catalog_rows:
            report["catalog"] = run_child("catalog", left(), size=int(args.catalog_rows),
                                          out=Path(tmp) / "catalog.sqlite", record_beats=args.catalog_record_beats)
        if args.postgres_rows:
            report["postgres"] = run_child("postgres", left(), size=int(args.postgres_rows))
    report["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['cpu_count']} CPU cores; load {report['load_before']} -> {report['load_after']}; "
          f"{report['real_beats']} real beats, jitter {JITTER}")
    print(f"{'size':>10} {'type':6s} {'build s':>8} {'build MB':>9} {'serve MB':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'recall':>7} {'excl p50/recall':>16} {'S-only p50/recall':>18}  params")
    for size, row in report["sizes"].items():
        for kind, r in row.items():
            if "p50_ms" not in r:
                print(f"{size:>10} {kind:6s} {r}")
                continue
            own, cls = r.get("exclude own patient", {}), r.get("class S only", {})
            print(f"{size:>10} {kind:6s} {r['build_s']:8.1f} {r['build_peak_mb']:9.0f} {r['serve_rss_mb']:9.0f} "
                  f"{r['p50_ms']:8.3f} {r['p95_ms']:8.3f} {r['recall_at_10']:7.3f} "
                  f"{own.get('p50_ms', 0):7.2f}/{own.get('recall_at_10', 0):.3f} "
                  f"{cls.get('p50_ms', 0):8.2f}/{cls.get('recall_at_10', 0):.3f}  "
                  f"{ {k: v for k, v in r['params'].items() if k in ('nlist', 'nprobe', 'efSearch')} }")
    if "catalog" in report:
        print("SQLite catalog:", json.dumps(report["catalog"]))
    if "postgres" in report:
        print("PostgreSQL catalog:", json.dumps(report["postgres"]))


if __name__ == "__main__":
    main()
