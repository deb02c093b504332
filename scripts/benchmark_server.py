"""HTTP query latency of ``simsearch serve`` against the same queries in process.

Starts the app under uvicorn on a free 127.0.0.1 port (in this process, over an index
opened once), then measures, warm:

* a stored beat (``GET /api/query``: 208's VEB at sample 61785, k=10, other patients only);
* a raw signal (``POST /api/query/signal``: 10 s of 119 at 360 Hz around its VEB at 2488);
* the same two queries in process, the baseline: the library's ``query_beat`` and
  ``query_signal`` on the same index (its encoder's graph traced once, as the server
  does), and the server's own code path without HTTP (``ServerState.query``, which finds
  a stored beat in memory);
* 8 concurrent clients (threads, one keep-alive connection each) sending both kinds of
  query, bounded in count (``--per-client``) and time (``--time-limit``): errors counted.

Targets: stored beat p50 <= 10 ms, raw signal p50 <= 60 ms. Every request goes to
127.0.0.1 only and the loops stop by themselves.

    python scripts/benchmark_server.py --data-dir ../shared/data/mitdb [--index indexes/small]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

STORED = {"record": "208", "sample": 61785, "k": 10, "exclude_record": True}
RAW_RECORD, RAW_PEAK, RAW_SECONDS = "119", 2488, 10.0


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def timed(call, repeats: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="MIT-BIH records")
    parser.add_argument("--index", type=Path, help="Index to serve [default: build 100,119,208,209 in a temp dir]")
    parser.add_argument("--repeats", type=int, default=200, help="Timed requests per kind (sequential)")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients")
    parser.add_argument("--per-client", type=int, default=40, help="Requests per concurrent client")
    parser.add_argument("--time-limit", type=float, default=60.0, help="Seconds the concurrent phase may last")
    parser.add_argument("--json", action="store_true", help="One JSON object instead of the table")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import httpx
    import uvicorn

    from simsearch import BeatIndex, query_beat, query_signal
    from simsearch.server.app import create_app
    from simsearch.server.state import ServerState
    from simsearch.signal.records import load_record

    tmp = tempfile.TemporaryDirectory(prefix="simsearch-bench-")
    index_dir = args.index
    if index_dir is None:
        index_dir = Path(tmp.name) / "index"
        BeatIndex.build(index_dir, ["100", "119", "208", "209"], args.data_dir).close()
    state = ServerState(index_dir, args.data_dir, Path(tmp.name) / "workspaces")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"

    rec = load_record(RAW_RECORD, args.data_dir)
    half = int(RAW_SECONDS * rec.fs / 2)
    signal = rec.signal[RAW_PEAK - half:RAW_PEAK + half]
    raw_body = {"signal": signal.tolist(), "fs": rec.fs, "sample": half, "k": 10}
    index = state.index

    rows = []
    with httpx.Client(base_url=base, timeout=30) as client:
        def http_stored():
            r = client.get("/api/query", params=STORED)
            r.raise_for_status()

        def http_raw():
            r = client.post("/api/query/signal", json=raw_body)
            r.raise_for_status()

        rows.append(("stored beat", "query_beat", timed(lambda: query_beat(index, "208", 61785, 10,
                                                                           exclude_record=True), args.repeats)))
        rows.append(("stored beat", "no HTTP", timed(lambda: state.query("208", 61785, 10, exclude_record=True),
                                                      args.repeats)))
        rows.append(("stored beat", "HTTP", timed(http_stored, args.repeats)))
        rows.append(("10 s raw signal", "query_signal", timed(lambda: query_signal(index, signal, rec.fs, half, 10),
                                                              args.repeats)))
        rows.append(("10 s raw signal", "no HTTP", timed(lambda: state.query_signal(signal, rec.fs, half, 10, None,
                                                                                    []), args.repeats)))
        rows.append(("10 s raw signal", "HTTP", timed(http_raw, args.repeats)))

    # concurrent clients: bounded in count and in time
    deadline = time.monotonic() + args.time_limit
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(args.per_client):
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                try:
                    if (i + n) % 2:
                        r = client.get("/api/query", params=STORED)
                    else:
                        r = client.post("/api/query/signal", json=raw_body)
                    ok = r.status_code == 200
                    why = f"HTTP {r.status_code}: {r.text[:80]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                with lock:
                    latencies.append(time.perf_counter() - start)
                    if not ok:
                        errors.append(why)

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(args.clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    server.should_exit = True
    thread.join(timeout=10)
    state.close()
    tmp.cleanup()

    report = {"index_beats": len(index), "cpu_cores": os.cpu_count(), "repeats": args.repeats,
              "queries": [{"query": q, "path": p, "p50_ms": round(percentiles(t)[0], 2),
                           "p95_ms": round(percentiles(t)[1], 2)} for q, p, t in rows],
              "concurrent": {"clients": args.clients, "requests": len(latencies), "errors": len(errors),
                             "wall_s": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
                             "p50_ms": round(percentiles(latencies)[0], 1) if latencies else None,
                             "p95_ms": round(percentiles(latencies)[1], 1) if latencies else None,
                             "first_errors": errors[:3]}}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"index: {report['index_beats']} beats; {report['cpu_cores']} CPU cores; {args.repeats} timed requests "
              "each, warm")
        print(f"{'query':<18}{'path':<14}{'p50 ms':>9}{'p95 ms':>9}")
        for q in report["queries"]:
            print(f"{q['query']:<18}{q['path']:<14}{q['p50_ms']:>9.2f}{q['p95_ms']:>9.2f}")
        c = report["concurrent"]
        print(f"{c['clients']} concurrent clients: {c['requests']} requests in {c['wall_s']} s "
              f"({c['requests_per_s']}/s), p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms, errors {c['errors']}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
