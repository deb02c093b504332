"""BeatIndex on real records: build, query, filters, replacement, pairing, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import INDEX_RECORDS

from simsearch import BeatIndex, Encoder
from simsearch.errors import EncoderMismatchError, IndexFormatError, RecordNotFoundError, SampleOutOfRangeError
from simsearch.label.query import query_beat, query_signal
from simsearch.model.encoder import build_encoder
from simsearch.signal.filtering import resample
from simsearch.signal.records import load_record
from simsearch.store.index import CATALOG, ENCODER_FILE, MANIFEST, VECTORS
from simsearch.store.layout import POINTER


def _v_samples(data_dir, record, n):
    rec = load_record(record, data_dir)
    return rec.ann_samples[rec.ann_symbols == "V"][:n]


def test_build_lays_out_the_index_directory(small_index):
    assert (small_index.path / POINTER).read_text().strip() == small_index.directory.name == "gen-000001"
    for name in (MANIFEST, VECTORS, CATALOG, ENCODER_FILE):
        assert (small_index.directory / name).is_file()
    manifest = json.loads((small_index.directory / MANIFEST).read_text())
    assert manifest["generation"] == 1 and manifest["next_beat_id"] == len(small_index) + 1
    assert manifest["encoder"]["fingerprint"] == Encoder.load().fingerprint
    counts = small_index.catalog.counts()
    assert counts["records"] == len(INDEX_RECORDS)
    assert counts["beats"] == len(small_index) == manifest["n_vectors"]
    assert counts["by_label_source"] == {"reference": counts["beats"]}
    assert not [p for p in small_index.path.rglob("*") if ".tmp-" in p.name]  # nothing left of the staging directory


def test_catalog_rows_match_the_annotations(small_index, data_dir):
    beats = small_index.catalog.beats(record="208")
    assert (beats["aami"] == "V").sum() == 992
    v_sample = int(_v_samples(data_dir, "208", 1)[0])
    row = int(np.flatnonzero(beats["sample"] == v_sample)[0])
    assert beats["symbol"][row] == "V" and beats["time"][row] == pytest.approx(v_sample / 360)
    assert beats["rr_prev"][row] > 0 and beats["lead"][row] == "MLII"


def test_record_codes_name_each_beats_record(small_index):
    refs = small_index.catalog.beats()
    ids, records = refs["id"].astype(np.int64), refs["record"].astype(str)
    pick = np.concatenate([ids[::97], [-1]])
    codes = small_index.record_codes_of(pick)
    assert codes[-1] == -1 and (codes[:-1] >= 0).all()
    names = records[::97]
    same_code = codes[:-1, None] == codes[None, :-1]
    np.testing.assert_array_equal(same_code, names[:, None] == names[None, :])
    np.testing.assert_array_equal(small_index.record_codes_of(pick.reshape(1, -1)), codes.reshape(1, -1))


def test_veb_of_208_finds_v_neighbors_in_other_patients(small_index, data_dir):
    votes = []
    for sample in _v_samples(data_dir, "208", 20)[::4]:
        result = query_beat(small_index, "208", int(sample), k=10, exclude_record=True)
        assert all(n.record != "208" for n in result.neighbors)
        assert len(result.neighbors) == 10
        of_vote = [n.aami == result.vote.label for n in result.neighbors]  # the vote's class first, ...
        assert of_vote == sorted(of_vote, reverse=True)
        for group in (True, False):  # ... each group nearest first
            distances = [n.distance for n, v in zip(result.neighbors, of_vote) if v == group]
            assert distances == sorted(distances)
        votes.append(np.mean([n.aami == "V" for n in result.neighbors]))
        assert sum(result.vote.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert np.mean(votes) > 0.5


def test_query_never_returns_the_beat_itself(small_index, data_dir):
    sample = int(_v_samples(data_dir, "119", 1)[0])
    result = query_beat(small_index, "119", sample, k=5)
    assert result.query["sample"] == sample
    assert all(not (n.record == "119" and n.sample == sample) for n in result.neighbors)


def test_query_by_path_outside_the_index_matches_the_stored_beat(small_index, data_dir):
    sample = int(_v_samples(data_dir, "119", 3)[2])
    stored = query_beat(small_index, "119", sample, k=5, exclude_record=True)
    external = query_beat(small_index, str(data_dir / "119"), sample, k=5, exclude_record=True)
    assert [n.id for n in stored.neighbors] == [n.id for n in external.neighbors]
    np.testing.assert_allclose(stored.embedding, external.embedding, atol=1e-5)


def test_class_filter(small_index, data_dir):
    result = query_beat(small_index, "100", 5000, k=8, classes=["S", "F"])
    assert result.neighbors and {n.aami for n in result.neighbors} <= {"S", "F"}


def test_query_signal_on_a_raw_array(small_index, data_dir):
    record = load_record("119", data_dir)
    sample = int(_v_samples(data_dir, "119", 5)[4])
    start = sample - 5 * 360
    window = record.signal[start:start + 10 * 360]
    result = query_signal(small_index, window, fs=360, sample=sample - start, k=10, exclude_records=["119"])
    assert abs(result.query["sample"] - (sample - start)) <= 10
    assert np.mean([n.aami == "V" for n in result.neighbors]) >= 0.5
    # the same beat resampled to 250 Hz lands on the same neighbors, mostly
    slow = query_signal(small_index, resample(window, 360, 250), fs=250, sample=int((sample - start) * 250 / 360),
                                    k=10, exclude_records=["119"])
    assert len({n.id for n in slow.neighbors} & {n.id for n in result.neighbors}) >= 5


def test_sample_outside_the_record(small_index):
    with pytest.raises(SampleOutOfRangeError, match="outside the record"):
        query_beat(small_index, "100", 10_000_000)
    with pytest.raises(SampleOutOfRangeError):
        query_beat(small_index, "100", -1)


def test_readding_a_record_replaces_it(small_index, data_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_index.path, copy)
    before = BeatIndex.open(copy)
    n_before, ids_before = len(before), set(before.catalog.beats(record="100")["id"])
    before.close()
    with BeatIndex.updating(copy) as index:
        index.add_records(["100"], data_dir)
    after = BeatIndex.open(copy)
    assert len(after) == n_before == after.catalog.counts()["beats"]
    assert not ids_before & set(after.catalog.beats(record="100")["id"])
    assert after.vectors.ntotal == n_before


def test_encoder_pairing_is_enforced(small_index, tmp_path):
    other = Encoder(build_encoder(seed=7))
    other.save(tmp_path / "other.keras")
    with pytest.raises(EncoderMismatchError, match="was built with encoder"):
        BeatIndex.open(small_index.path, tmp_path / "other.keras")
    assert BeatIndex.open(small_index.path, Encoder.load()).encoder.fingerprint == small_index.encoder.fingerprint


def test_failed_build_leaves_nothing_and_keeps_the_old_index(data_dir, tmp_path):
    target = tmp_path / "idx"
    BeatIndex.build(target, ["100"], data_dir).close()
    with pytest.raises(RecordNotFoundError):
        BeatIndex.build(target, ["101", "no_such_record"], data_dir)
    kept = BeatIndex.open(target)
    assert [r["name"] for r in kept.catalog.records()] == ["100"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_refuses_to_overwrite_a_foreign_directory(data_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexFormatError, match="not a simsearch index"):
        BeatIndex.build(tmp_path, ["100"], data_dir)
    with pytest.raises(IndexFormatError):
        BeatIndex.open(tmp_path)


def test_catalog_in_any_sqlalchemy_database(data_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    index = BeatIndex.build(tmp_path / "idx", ["101"], data_dir, catalog_url=url)
    assert not (index.directory / CATALOG).exists() and (tmp_path / "elsewhere.db").is_file()
    reopened = BeatIndex.open(tmp_path / "idx")
    assert reopened.manifest["catalog_url"] == url
    assert reopened.catalog.counts()["beats"] == len(reopened) == len(index) > 1000


def test_incomplete_index_directory_is_refused(small_index, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_index.path, copy)
    (copy / small_index.directory.name / CATALOG).unlink()
    with pytest.raises(IndexFormatError, match="catalog.sqlite is missing"):
        BeatIndex.open(copy)
    assert not (copy / small_index.directory.name / CATALOG).exists()  # opening did not create an empty catalog
