"""Shared fixtures: the real MIT-BIH files beside the checkout and one small real index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

try:
    # pymilvus configures logging when first imported (logging.config.dictConfig), which closes the handlers
    # already there: TensorFlow's absl handler among them, and with it the stream it holds, pytest's capture of
    # an earlier test (the next test of this process then dies on a closed file). Imported first, it finds none.
    import pymilvus  # noqa: F401
except ImportError:  # the scale extra is not installed: the tests that need it skip
    pass

from simsearch import BeatIndex

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
def small_index(data_dir, tmp_path_factory) -> BeatIndex:
    """A real index (packaged encoder, FAISS, SQLite) of :data:`INDEX_RECORDS`; do not modify it."""
    return BeatIndex.build(tmp_path_factory.mktemp("idx") / "small", INDEX_RECORDS, data_dir)


@pytest.fixture
def record_copy(data_dir, tmp_path):
    """Copy a record's files into tmp_path (``with_annotations=False`` drops its .atr)."""

    def copy(name: str, with_annotations: bool = True) -> Path:
        exts = ("hea", "dat", "atr") if with_annotations else ("hea", "dat")
        for ext in exts:
            shutil.copy(data_dir / f"{name}.{ext}", tmp_path / f"{name}.{ext}")
        return tmp_path / name

    return copy
