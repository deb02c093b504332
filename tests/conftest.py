"""Shared fixtures: the real MIT-BIH files beside the checkout and one small real index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# One thread per library in each test process (and the subprocesses they start): pytest-xdist already runs one
# worker per core, and OpenMP (FAISS, OpenBLAS) and TensorFlow pools of two threads each oversubscribed the cores,
# their threads spinning while they wait: the suite took 134-147 s with them, 125-138 s without (same machine,
# same hour). Set before anything here imports NumPy, FAISS or TensorFlow.
for _variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_variable, "1")

import pytest  # noqa: E402 (after the thread settings above)

try:
    # pymilvus configures logging when first imported (logging.config.dictConfig), which closes the handlers
    # already there: TensorFlow's absl handler among them, and with it the stream it holds, pytest's capture of
    # an earlier test (the next test of this process then dies on a closed file). Imported first, it finds none.
    import pymilvus  # noqa: F401
except ImportError:  # the scale extra is not installed: the tests that need it skip
    pass

from simsearch import BeatIndex  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SIMSEARCH_DATA") or REPO.parent / "shared" / "data" / "mitdb")

INDEX_RECORDS = ["100", "119", "208", "209"]
"""Small enough to build in seconds; holds N, S (209), V (119, 208) and F (208)."""


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "100.hea").is_file():
        pytest.fail(f"MIT-BIH records not found in {DATA_DIR}: set SIMSEARCH_DATA")
    return DATA_DIR


@pytest.fixture(scope="session")
def noise_dir(data_dir) -> Path:
    """The MIT-BIH Noise Stress Test records: ``$SIMSEARCH_NSTDB``, else beside the MIT-BIH ones."""
    chosen = os.environ.get("SIMSEARCH_NSTDB")
    path = Path(chosen) if chosen else data_dir.parent / "nstdb"
    if not (path / "118e24.hea").is_file() or not (path / "em.hea").is_file():
        pytest.fail(f"MIT-BIH Noise Stress Test records not found in {path}: set SIMSEARCH_NSTDB")
    return path


@pytest.fixture(scope="session")
def small_index(data_dir, tmp_path_factory) -> BeatIndex:
    """A real index (packaged encoder, FAISS, SQLite) of :data:`INDEX_RECORDS`, one lead of each beat
    (the both-leads default is tested in test_leads.py); do not modify it."""
    return BeatIndex.build(tmp_path_factory.mktemp("idx") / "small", INDEX_RECORDS, data_dir, leads="one")


@pytest.fixture
def record_copy(data_dir, tmp_path):
    """Copy a record's files into tmp_path (``with_annotations=False`` drops its .atr)."""

    def copy(name: str, with_annotations: bool = True) -> Path:
        exts = ("hea", "dat", "atr") if with_annotations else ("hea", "dat")
        for ext in exts:
            shutil.copy(data_dir / f"{name}.{ext}", tmp_path / f"{name}.{ext}")
        return tmp_path / name

    return copy


SLOWEST_FILES = ("test_milvus_ray.py", "test_storage.py", "test_encoder.py", "test_bad_input.py", "test_noise.py",
                 "test_postgres.py", "test_readme.py", "test_holter.py", "test_scale.py", "test_evaluation.py")
"""Test files taking 10-40 s each (sum of a file's tests on 2 cores), longest first. pytest-xdist hands whole files
to its two workers in collection order (``--no-loadscope-reorder``: by default it orders them by their number of
tests), so these go first and the short ones fill in at the end: a long file started last had left one worker
busy 15 s after the other was done (122 s against 106 s)."""


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order
