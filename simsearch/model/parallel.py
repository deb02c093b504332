"""Embedding many records in parallel on Ray: the build engine of an archive.

``simsearch build --engine ray`` reads, filters, segments and embeds each record in a
Ray actor (one per CPU of the cluster, each holding the encoder, loaded once), and the
index stores the results in the order of the record list, so beat ids do not depend on
which worker finished first. Without ``--ray-address`` a local Ray instance is started
on this machine's cores and stopped afterwards; with one (``ray://head:10001`` or
``auto``) the work goes to that cluster, whose workers must see the records at the same
paths (shared storage) and have simsearch installed.

Ray is imported here only: ``pip install simsearch[scale]``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ParameterError, SimsearchError
from ..signal.beats import Beats, beats_from_record
from ..signal.records import load_record
from .encoder import Encoder
from .leads import beat_vectors

WORKER_ENV = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
"""Each actor has one CPU: one thread each for TensorFlow and OpenMP."""


@dataclass
class EmbeddedRecord:
    """One record embedded by a worker: its beats (without their windows), vectors and timings."""

    name: str
    path: str
    n_samples: int
    beats: Beats
    vectors: np.ndarray
    read_s: float
    filter_s: float
    embed_s: float


def embed_one(encoder, name: str, data_dir: str | None, lead: str | None,
              second_lead_weight: float = 0.0) -> EmbeddedRecord:
    """Read, filter, segment and embed one record to be stored (what a worker does, and a
    build here, record after record); with ``second_lead_weight``, in both leads
    (:func:`~simsearch.model.leads.beat_vectors`). Doubted beats (:attr:`~simsearch.signal.beats.Beats.doubted`:
    a detection the check doubts, a window reaching into a gap of invalid signal) are not stored."""
    t0 = time.perf_counter()
    record = load_record(name, data_dir, lead=lead)
    t1 = time.perf_counter()
    beats = beats_from_record(record)
    beats = beats.take(np.flatnonzero(~beats.doubted))
    t2 = time.perf_counter()
    vectors = beat_vectors(encoder, record, beats, second_lead_weight, store=True)
    t3 = time.perf_counter()
    light = replace(beats, windows=np.empty((len(beats), 0), dtype=np.float32))  # not stored: not shipped back
    return EmbeddedRecord(name, record.path, int(record.n_samples), light, np.asarray(vectors, dtype=np.float32),
                          t1 - t0, t2 - t1, t3 - t2)


class _Worker:
    """A Ray actor: the encoder, loaded once from the bytes of its .keras file."""

    def __init__(self, encoder_bytes: bytes):
        folder = tempfile.mkdtemp(prefix="simsearch-worker-")
        path = Path(folder) / "encoder.keras"
        path.write_bytes(encoder_bytes)
        self.encoder = Encoder.load(path)

    def embed(self, name: str, data_dir: str | None, lead: str | None, second_lead_weight: float):
        try:
            return embed_one(self.encoder, name, data_dir, lead, second_lead_weight)
        except SimsearchError as exc:  # raised again in the driver, with its own class and message
            return exc


class RayEngine:
    """Embed records on Ray.

    Parameters
    ----------
    address : str, optional
        A running cluster (``ray://host:10001``, ``auto``); default: a local instance
        started for the build and stopped after it.
    num_cpus : int, optional
        CPUs of the local instance (default: all of this machine's).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self._started = False

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise ParameterError("--engine ray needs Ray: pip install 'simsearch[scale]'") from None
        return ray

    def start(self):
        """Connect to the cluster, or start the local instance (a no-op when Ray already runs here)."""
        ray = self._ray()
        if not ray.is_initialized():
            options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                           runtime_env={"env_vars": WORKER_ENV})
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.num_cpus or os.cpu_count(), **options)
            self._started = True
        return ray

    def close(self) -> None:
        """Stop what :meth:`start` started (the local instance, or the connection to a cluster)."""
        if getattr(self, "_started", False):
            self._ray().shutdown()
            self._started = False

    def embed(self, records: Sequence[str], data_dir: str | os.PathLike | None, lead: str | None,
              encoder_path: str | os.PathLike, second_lead_weight: float = 0.0) -> Iterator[EmbeddedRecord]:
        """Each record embedded, in the order given (work runs ahead on every worker).

        Starts Ray if :meth:`start` has not (and then stops it at the end).

        Raises
        ------
        SimsearchError
            A record's own error (missing, malformed...), as the local build raises it.
        """
        owned = not getattr(self, "_started", False) and not self._ray().is_initialized()
        ray = self.start()
        try:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            n_workers = max(1, min(cpus, len(records)))
            encoder_ref = ray.put(Path(encoder_path).read_bytes())
            worker = ray.remote(num_cpus=1)(_Worker)
            workers = [worker.remote(encoder_ref) for _ in range(n_workers)]
            folder = None if data_dir is None else str(Path(data_dir).absolute())
            futures = [workers[i % n_workers].embed.remote(name, folder, lead, second_lead_weight)
                       for i, name in enumerate(records)]
            for future in futures:
                result = ray.get(future)
                if isinstance(result, BaseException):
                    raise result
                yield result
            for w in workers:
                ray.kill(w)
        finally:
            if owned:
                self.close()
