"""Index types (flat, HNSW, IVF, IVF-PQ, auto) through BeatIndex, on the real embeddings of the small index.

The vectors are those the session's small index holds (real records, the packaged
model), re-stored without running TensorFlow. Every type must: publish and open again
(the open-time check of FAISS ids against the catalog included), record its parameters
in the manifest, answer stored-beat queries, keep own-record exclusion and class
filters exact (no excluded beat, k answers while k are allowed, recall against exact
search), take a replaced record, and refuse a file that is not the type its manifest says.
"""

from __future__ import annotations

import json
from dataclasses import replace

import faiss
import numpy as np
import pytest
from conftest import INDEX_RECORDS

from simsearch import BeatIndex
from simsearch.errors import IndexFormatError, ParameterError
from simsearch.label.query import query_beat
from simsearch.signal.beats import beats_from_record
from simsearch.signal.records import load_record
from simsearch.store import vectors as vector_types
from simsearch.store.index import MANIFEST, VECTORS


@pytest.fixture(scope="module")
def stored(small_index, data_dir) -> list:
    """(beats, vectors) of every record of the small index, as it stores them."""
    jobs = []
    for record in INDEX_RECORDS:
        beats = beats_from_record(load_record(record, data_dir))
        ids = small_index.catalog.beats(record=record)["id"].astype(np.int64)
        jobs.append((beats, np.stack([small_index.vectors.reconstruct(int(i)) for i in ids])))
    return jobs


def make(path, small_index, jobs, index_type: str) -> BeatIndex:
    BeatIndex.build(path, [], encoder=small_index.encoder, index_type=index_type).close()
    with BeatIndex.updating(path) as writer:
        for beats, vectors in jobs:
            writer.add_beats(beats, vectors, record_path=beats.record, n_samples=650000, label_source="reference")
    return BeatIndex.open(path)


@pytest.fixture(scope="module")
def typed(small_index, stored, tmp_path_factory) -> dict:
    where = tmp_path_factory.mktemp("typed")
    return {kind: make(where / kind, small_index, stored, kind) for kind in ("flat", "hnsw", "ivf", "ivfpq")}


def test_each_type_is_what_its_manifest_says_and_opens_checked(typed, small_index, monkeypatch):
    for kind, index in typed.items():
        manifest = json.loads((index.directory / MANIFEST).read_text())
        assert manifest["vectors"]["type"] == kind and manifest["vectors"]["requested"] == kind
        assert len(index) == len(small_index) == index.catalog.counts()["beats"]
        assert np.array_equal(index.vectors.ids(), index.catalog.ids())
    ivf = typed["ivf"].manifest["vectors"]
    assert ivf["nlist"] == vector_types.ivf_lists(len(small_index)) and ivf["seed"] == vector_types.SEED
    assert ivf["tuned_recall_at_10"] >= vector_types.TARGET_RECALL and 1 <= ivf["nprobe"] <= ivf["nlist"]
    assert ivf["tuned_recall_at_100"] >= vector_types.WIDE_RECALL and ivf["nprobe_at_100"] >= ivf["nprobe"]
    assert typed["hnsw"].manifest["vectors"]["efSearch"] >= 16
    assert typed["hnsw"].manifest["vectors"]["efSearch_at_100"] >= 100
    # readers read a small IVF index's lists, and map a large one's from the file instead
    lists = faiss.downcast_InvertedLists(typed["ivf"].vectors.index.invlists)
    assert isinstance(lists, faiss.ArrayInvertedLists)
    monkeypatch.setattr(vector_types, "MAP_ABOVE", 0)
    mapped = BeatIndex.open(typed["ivf"].path)
    assert isinstance(faiss.downcast_InvertedLists(mapped.vectors.index.invlists), faiss.OnDiskInvertedLists)
    mapped.close()


def test_effort_grows_with_k_between_the_two_tuned_levels():
    vectors = vector_types.Vectors(faiss.IndexIVFFlat(faiss.IndexFlatIP(4), 4, 64, faiss.METRIC_INNER_PRODUCT),
                                   {"type": "ivf", "nprobe": 8, "nprobe_at_100": 32})
    assert [vectors._effort(k)[0] for k in (1, 10, 100, 400)] == [8, 8, 32, 64]
    assert 8 < vectors._effort(30)[0] < 32 and vectors._effort(30)[1] == 64
    del vectors.params["nprobe_at_100"]  # an index tuned before the second level: sqrt(k / 10)
    assert vectors._effort(100)[0] == 26


def test_stored_vectors_come_back_by_id(typed, small_index):
    ids = small_index.catalog.ids()[::997]
    for kind in ("flat", "hnsw", "ivf"):
        for i in ids:
            np.testing.assert_allclose(typed[kind].vectors.reconstruct(int(i)), small_index.vectors.reconstruct(int(i)),
                                       atol=1e-6)
    pq = np.stack([typed["ivfpq"].vectors.reconstruct(int(i)) for i in ids])  # decoded approximations
    exact = np.stack([small_index.vectors.reconstruct(int(i)) for i in ids])
    assert np.mean(np.sum(pq * exact, axis=1)) > 0.8


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_filters_stay_exact_and_recall_holds(kind, typed, small_index):
    index, exact = typed[kind], small_index
    rng = np.random.default_rng(1)
    ids = exact.catalog.ids()
    records = dict(zip(*exact.catalog.labels()[::2]))
    picks = rng.choice(ids, size=60, replace=False)
    recalls = {}
    for name, options in {"none": lambda r: {}, "own record": lambda r: {"exclude_records": [r]},
                          "S only": lambda r: {"classes": ["S"]}, "F only": lambda r: {"classes": ["F"]},
                          "V or F, own record": lambda r: {"classes": ["V", "F"], "exclude_records": [r]}}.items():
        hits = []
        for beat_id in picks:
            record = records[int(beat_id)]
            vector = exact.vectors.reconstruct(int(beat_id))
            _, truth = exact.search(vector, 10, exclude_ids=[int(beat_id)], **options(record))
            _, found = index.search(vector, 10, exclude_ids=[int(beat_id)], **options(record))
            found, truth = found[0][found[0] >= 0], truth[0][truth[0] >= 0]
            assert len(found) == len(truth) == 10  # every filter here allows more than k beats
            rows = index.catalog.beats(ids=found)
            assert int(beat_id) not in found
            if "exclude_records" in options(record):
                assert record not in set(rows["record"])
            if "classes" in options(record):
                assert set(rows["aami"]) <= set(options(record)["classes"])
            hits.append(len(set(found) & set(truth)) / 10)
        recalls[name] = float(np.mean(hits))
    assert min(recalls.values()) >= 0.95, recalls


def test_queries_of_stored_beats_on_every_type(typed, small_index):
    expected = query_beat(small_index, "208", 1500, k=10, exclude_record=True)
    for kind, index in typed.items():
        result = query_beat(index, "208", 1500, k=10, exclude_record=True)
        assert len(result.neighbors) == 10 and {n.record for n in result.neighbors} <= {"100", "119", "209"}
        if kind != "ivfpq":
            same = {n.id for n in result.neighbors} & {n.id for n in expected.neighbors}
            assert len(same) >= 8, kind
            assert result.vote.label == expected.vote.label


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_a_replaced_record_and_a_new_one_on_an_approximate_index(kind, typed, stored, small_index, tmp_path):
    path = tmp_path / kind
    make(path, small_index, stored, kind).close()
    before = BeatIndex.open(path)
    old_100 = set(before.catalog.beats(record="100")["id"])
    params = before.manifest["vectors"]
    beats, vectors = stored[0]
    with BeatIndex.updating(path) as writer:
        writer.add_beats(beats, vectors, record_path="100", n_samples=650000, label_source="reference")
        writer.add_beats(replace(beats, record="copy"), vectors, record_path="copy", n_samples=650000,
                         label_source="reference")
    after = BeatIndex.open(path)
    assert len(after) == len(before) + len(beats) == after.catalog.counts()["beats"]
    assert not old_100 & set(after.vectors.ids())
    assert after.manifest["vectors"]["type"] == kind
    if kind == "ivf":  # trained once; new vectors go into its lists
        assert after.manifest["vectors"]["trained_on"] == params["trained_on"]
    result = query_beat(after, "copy", int(beats.samples[10]), k=5, exclude_record=True)
    assert result.neighbors[0].record == "100" and result.neighbors[0].sample == int(beats.samples[10])
    before.close()
    after.close()


def test_auto_is_flat_when_small_and_ivf_when_large(small_index, stored, tmp_path, monkeypatch):
    assert vector_types.auto_type(10**7) == "ivf" and vector_types.auto_type(10**5) == "flat"
    small = make(tmp_path / "small", small_index, stored, "auto")
    assert small.manifest["vectors"]["type"] == "flat" and small.manifest["vectors"]["requested"] == "auto"
    monkeypatch.setattr(vector_types, "AUTO_FLAT_MAX", len(small_index) // 2)
    large = make(tmp_path / "large", small_index, stored, "auto")
    assert large.manifest["vectors"]["type"] == "ivf" and large.manifest["vectors"]["requested"] == "auto"
    # an IVF asked for with too few vectors to train stays exact until it grows
    few = make(tmp_path / "few", small_index, [(stored[0][0].take(np.arange(200)), stored[0][1][:200])], "ivf")
    assert few.manifest["vectors"]["type"] == "flat" and few.manifest["vectors"]["requested"] == "ivf"


def test_a_file_of_another_type_than_the_manifest_says_is_refused(typed, tmp_path):
    import shutil

    source = typed["ivf"]
    copy = tmp_path / "copy"
    shutil.copytree(source.path, copy)
    generation = copy / source.directory.name
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    (generation / VECTORS).unlink()
    faiss.write_index(flat, str(generation / VECTORS))
    with pytest.raises(IndexFormatError, match="not the inner-product IndexIVFFlat"):
        BeatIndex.open(copy)
    manifest = json.loads((generation / MANIFEST).read_text())
    manifest["vectors"]["type"] = "annoy"
    (generation / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="type 'annoy'"):
        BeatIndex.open(copy)
    with pytest.raises(ParameterError, match="choose one of"):
        vector_types.normalized_type("lsh")
