"""Speed figures on this machine, each against a baseline measured in the same run.

* Embedding: the packaged encoder (Conv front-end -> LSTM over 32 steps, with its
  input preparation, run as one traced graph as ``Encoder.embed`` runs it) against a
  plain 2 x LSTM(64) over 100 steps of the beat (the figure the project's brief quotes)
  run the same way, on the same real beats; and the encoder called as eager Keras, as
  ``Encoder.embed`` did before.
* Query latency: query_beat (stored beat: catalog + FAISS + vote) and query_signal
  (10 s raw signal: filter, detect, embed, search), p50/p95 over many queries, against
  a bare FAISS search on the same index.

    python scripts/benchmark.py --data-dir ../shared/data/mitdb [--index indexes/mitdb] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simsearch import BeatIndex, Encoder, query_beat, query_signal
from simsearch.model.datasets import BeatSet, load_beats
from simsearch.model.encoder import encoder_inputs, import_keras


def beats_per_second(fn, repeats: int = 3) -> float:
    fn()  # warm-up: graph tracing and allocation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def baseline_lstm():
    keras = import_keras()
    inputs = keras.Input((100, 1))
    x = keras.layers.LSTM(64, return_sequences=True)(inputs)
    x = keras.layers.LSTM(64)(x)
    return keras.Model(inputs, keras.layers.UnitNormalization()(keras.layers.Dense(32)(x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--index", help="an existing index to time queries on (default: build one of 4 records)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    beats = BeatSet.stack(load_beats(["208", "119", "209", "100"], args.data_dir))
    encoder = Encoder.load()
    n = len(beats)
    ours = beats_per_second(lambda: len(encoder.embed(beats.windows, beats.context)))
    inputs = encoder_inputs(beats.windows, beats.context)

    def embed_eager() -> int:  # the model called batch by batch as eager Keras
        return sum(len(np.asarray(encoder.model([inputs[0][i:i + 2048], inputs[1][i:i + 2048]], training=False)))
                   for i in range(0, n, 2048))

    eager = beats_per_second(embed_eager)
    base_model = baseline_lstm()
    short = beats.windows[:, ::2][:, :100, None].astype(np.float32)  # 180 Hz: 100 steps
    import tensorflow as tf

    base_graph = tf.function(lambda x: base_model(x, training=False), reduce_retracing=True)

    def embed_baseline() -> int:  # batched graph calls, exactly as Encoder.embed makes them
        return sum(len(np.asarray(base_graph(tf.convert_to_tensor(short[i:i + 2048])))) for i in range(0, n, 2048))

    base = beats_per_second(embed_baseline)

    with tempfile.TemporaryDirectory() as tmp:
        index = BeatIndex.open(args.index) if args.index else BeatIndex.build(
            Path(tmp) / "idx", ["100", "119", "208", "209"], args.data_dir)
        rng = np.random.default_rng(0)
        stored = index.catalog.beats()
        picks = rng.choice(len(stored["id"]), size=args.queries, replace=False)
        query_beat(index, stored["record"][picks[0]], int(stored["sample"][picks[0]]))  # warm-up
        latency = []
        for row in picks:
            start = time.perf_counter()
            query_beat(index, stored["record"][row], int(stored["sample"][row]), k=10, exclude_record=True)
            latency.append(time.perf_counter() - start)
        from simsearch.signal.records import load_record

        signal = load_record("119", args.data_dir).signal
        starts = rng.integers(0, 1700, size=min(args.queries, 50))

        def signal_latency_of(target) -> list[float]:
            query_signal(target, signal[:3600], fs=360, k=10)  # warm-up (and the graph's trace)
            times = []
            for start_s in starts:
                window = signal[start_s * 360:(start_s + 10) * 360]
                start = time.perf_counter()
                query_signal(target, window, fs=360, k=10)
                times.append(time.perf_counter() - start)
            return times

        signal_latency = signal_latency_of(index)
        vectors = index.vectors.reconstruct(int(stored["id"][0]))[None, :]
        faiss_latency = []
        for _ in range(args.queries):
            start = time.perf_counter()
            index.search(vectors, 10)
            faiss_latency.append(time.perf_counter() - start)
        n_index = len(index)

    def ms(values):
        return {"p50_ms": round(1000 * float(np.percentile(values, 50)), 2),
                "p95_ms": round(1000 * float(np.percentile(values, 95)), 2)}

    report = {
        "cpu_count": os.cpu_count(), "beats": n, "index_beats": n_index,
        "embed_beats_per_s": {"simsearch encoder": round(ours), "baseline 2xLSTM(64) x 100 steps": round(base),
                              "speedup": round(ours / base, 2), "simsearch encoder, eager Keras": round(eager)},
        "latency": {"query (stored beat, exclude record)": ms(latency), "query_signal (10 s raw)": ms(signal_latency),
                    "index.search alone": ms(faiss_latency)},
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{os.cpu_count()} CPU cores; {n} real beats; index of {n_index} beats")
    print("embedding, beats/s:")
    for name, value in report["embed_beats_per_s"].items():
        print(f"  {name:38s} {value}")
    print("single-query latency:")
    for name, value in report["latency"].items():
        print(f"  {name:38s} p50 {value['p50_ms']:8.2f} ms   p95 {value['p95_ms']:8.2f} ms")


if __name__ == "__main__":
    main()
