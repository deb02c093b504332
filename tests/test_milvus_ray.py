"""An archive past one machine: records embedded on Ray, vectors in Milvus (Lite here), metadata in SQL.

One local Ray instance (2 CPUs, no dashboard) embeds three MIT-BIH records in both leads; Milvus Lite
(an embedded Milvus in a ``.db`` file, the same client code as a server at
``http://host:19530``) holds the vectors with record, class and label source as scalar
fields, so own-record exclusion and class filters run inside Milvus. The answers must be
those of exact FAISS search over the same beats (recall@10 >= 0.99), filters exact.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pip install -e '.[test]' installs pymilvus, milvus-lite and ray")
pytest.importorskip("ray")

from simsearch import BeatIndex
from simsearch.errors import ParameterError
from simsearch.label.query import query_beat
from simsearch.model.parallel import RayEngine
from simsearch.store import milvus

RECORDS = ["100", "119", "208"]


@pytest.fixture(scope="module")
def archive(small_index, data_dir, tmp_path_factory):
    """(the Milvus + Ray index, an exact FAISS index of the same beats), both leads of each beat."""
    where = tmp_path_factory.mktemp("archive")
    index = BeatIndex.build(where / "idx", RECORDS, data_dir, encoder=small_index.encoder,
                            catalog_url=f"sqlite:///{where / 'catalog.db'}", milvus_uri=str(where / "vectors.db"),
                            engine=RayEngine(num_cpus=2), leads="both")
    exact = BeatIndex.build(where / "flat", RECORDS, data_dir, encoder=small_index.encoder, index_type="flat",
                            leads="both")
    yield index, exact
    index.close()
    exact.close()
    milvus.release()  # no Milvus Lite server left running in this process (a later fork, by Ray, could hang on it)


def _pairs(index: BeatIndex) -> dict:
    """(record, sample) of every beat id."""
    rows = index.catalog.beats()
    return {int(i): (r, int(s)) for i, r, s in zip(rows["id"], rows["record"], rows["sample"])}


def test_ray_and_milvus_give_the_neighbors_of_exact_search(archive):
    index, exact = archive
    assert index.manifest["vectors"]["type"] == "milvus" and (index.directory / milvus.FILE).is_file()
    assert not (index.directory / "vectors.faiss").exists()
    assert index.leads == "both" and index.vectors.d == exact.vectors.d == 2 * exact.manifest["encoder"]["dim"]
    assert len(index) == len(exact) == index.catalog.counts()["beats"] > 6000
    ours, theirs = _pairs(index), _pairs(exact)
    assert sorted(ours.values()) == sorted(theirs.values())  # the same beats, stored under the same ids
    assert ours == theirs  # ids in record order, whichever Ray worker finished first
    rng = np.random.default_rng(0)
    picks = rng.choice(sorted(ours), size=40, replace=False)
    recalls = []
    for options in ({}, {"exclude_records": ["208"]}, {"classes": ["V"]}, {"classes": ["S", "F"]}):
        for beat_id in picks:
            vector = exact.vectors.reconstruct(int(beat_id))
            np.testing.assert_allclose(index.vectors.reconstruct(int(beat_id)), vector, atol=1e-5)
            d1, found = index.search(vector, 10, exclude_ids=[int(beat_id)], **options)
            d2, truth = exact.search(vector, 10, exclude_ids=[int(beat_id)], **options)
            found, truth = found[0][found[0] >= 0], truth[0][truth[0] >= 0]
            assert len(found) == len(truth)
            recalls.append(len(set(found) & set(truth)) / max(len(truth), 1))
            rows = index.catalog.beats(ids=found)
            assert int(beat_id) not in found
            if "exclude_records" in options:
                assert "208" not in set(rows["record"])  # excluded inside Milvus, exactly
            if "classes" in options:
                assert set(rows["aami"]) <= set(options["classes"])
            np.testing.assert_allclose(d1[0][:len(found)], d2[0][:len(truth)], atol=1e-4)
    assert np.mean(recalls) >= 0.99, np.mean(recalls)
    # a one-lead query, inside Milvus
    first_lead = exact.vectors.reconstruct(int(picks[0]))[:exact.manifest["encoder"]["dim"]]
    first_lead /= np.linalg.norm(first_lead)
    np.testing.assert_array_equal(index.search(first_lead, 10)[1], exact.search(first_lead, 10)[1])


def test_queries_votes_and_an_added_record_through_milvus(archive, data_dir):
    index, exact = archive
    sample = int(index.catalog.beats(record="208")["sample"][np.flatnonzero(
        index.catalog.beats(record="208")["aami"] == "V")[0]])
    ours = query_beat(index, "208", sample, k=10, exclude_record=True)
    theirs = query_beat(exact, "208", sample, k=10, exclude_record=True)
    assert [(n.record, n.sample) for n in ours.neighbors] == [(n.record, n.sample) for n in theirs.neighbors]
    assert ours.vote.label == theirs.vote.label == "V"
    # a write: a record added (embedded locally), another replaced; the published pair moves together
    with BeatIndex.updating(index.path) as writer:
        writer.add_records(["209"], data_dir)
        writer.add_records(["100"], data_dir)  # replaced: new ids, the old entities hidden, then collected
    again = BeatIndex.open(index.path)
    try:
        assert again.generation == 2 and [r["name"] for r in again.catalog.records()] == ["100", "119", "208", "209"]
        assert len(again) == again.catalog.counts()["beats"]
        hits = query_beat(again, "100", 5000, k=10, exclude_record=True)
        assert {n.record for n in hits.neighbors} <= {"119", "208", "209"}
        # the old reader still reads its own generation
        assert len(index) == len(exact)
        assert query_beat(index, "208", sample, k=10, exclude_record=True).neighbors[0].id == ours.neighbors[0].id
    finally:
        again.close()


def test_milvus_needs_an_outside_catalog_and_a_db_file(small_index, tmp_path):
    with pytest.raises(ParameterError, match="catalog"):
        BeatIndex.build(tmp_path / "idx", [], encoder=small_index.encoder, milvus_uri=str(tmp_path / "v.db"))
    with pytest.raises(ParameterError, match=r"\.db"):
        BeatIndex.build(tmp_path / "idx", [], encoder=small_index.encoder, milvus_uri=str(tmp_path / "v.sqlite"),
                        catalog_url=f"sqlite:///{tmp_path / 'c.db'}")
    assert not (tmp_path / "idx").exists()
    assert json.loads(json.dumps(milvus.INDEX_TYPES))["flat"] == "FLAT"


def test_vectors_a_dead_writer_left_are_never_seen_and_dropped_by_the_next(archive):
    index, _ = archive
    current = BeatIndex.open(index.path)
    g = current.generation
    # a writer that died after inserting its vectors, before publishing: entities of generation g + 1
    ghost = milvus.MilvusVectors(current.vectors.params, g + 1, current.catalog.removed_versions, writable=True)
    x = np.tile(current.vectors.reconstruct(int(current.catalog.ids()[0])), (5, 1))
    ghost_ids = np.arange(10**9, 10**9 + 5)
    ghost.add(x, ghost_ids, record="ghost", aami=np.array(["V"] * 5), label_source="reference")
    try:
        again = BeatIndex.open(index.path)  # the pairing check counts generation g only
        assert len(again) == len(current)
        _, found = again.search(x[0], 10)
        assert not np.isin(found, ghost_ids).any()
        with BeatIndex.updating(index.path):  # the next writer drops them before it writes
            pass
        after = BeatIndex.open(index.path)
        assert after.generation == g + 1 and len(after) == len(current)
        assert not after.vectors.client.query(after.vectors.collection, filter=f"id >= {10**9}", output_fields=["id"])
    finally:
        current.close()
