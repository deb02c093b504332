"""Records at other sampling rates: converted to the model's 360 Hz at one edge only.

Three minutes of record 233 (DS2: not in conftest's ``small_index``) are rewritten at
128, 250, 500 and 1000 Hz with their annotations moved to the new rate
(:func:`helpers.write_at_rate`). Every sample number a user gives or gets back is at
the record's own rate: loading keeps the rate and length, beats sit on the reference
positions at that rate, queries validate samples against the record's own length,
annotations report the record's own samples, and an index stores the record at its rate.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import write_at_rate

from simsearch import BeatIndex, annotate_record, query_beat
from simsearch.errors import SampleOutOfRangeError
from simsearch.evaluation.matching import MATCH_TOLERANCE_S, pair_peaks
from simsearch.signal.beats import beats_from_record, detect_beats, normalize_windows, reference_beats
from simsearch.signal.records import load_record

SOURCE = "233"
SECONDS = 180
RATES = (128, 250, 500, 1000)


@pytest.fixture(scope="module")
def written(data_dir, tmp_path_factory):
    """fs -> path of the first three minutes of 233 written at that rate (with its .atr)."""
    where = tmp_path_factory.mktemp("rates")
    return {fs: write_at_rate(SOURCE, data_dir, fs, where, seconds=SECONDS) for fs in RATES}


@pytest.fixture(scope="module")
def original(data_dir):
    """The same three minutes at 360 Hz, as MIT-BIH has them: (record, beats)."""
    record = load_record(SOURCE, data_dir)
    beats = beats_from_record(record)
    keep = np.flatnonzero(beats.samples < SECONDS * record.fs)
    return record, beats.take(keep)


def reference_at(fs: float, original) -> np.ndarray:
    """The reference beat positions of the three minutes, converted to ``fs``."""
    record, beats = original
    return np.round(beats.samples * fs / record.fs).astype(np.int64)


@pytest.mark.parametrize("fs", RATES)
def test_load_record_keeps_the_rate_and_length(written, fs):
    record = load_record(written[fs])
    assert record.fs == fs
    assert record.n_samples == SECONDS * fs
    assert record.ann_samples.max() < record.n_samples


@pytest.mark.parametrize("fs", RATES)
def test_beats_land_on_the_reference_positions_at_the_record_rate(written, original, fs):
    record = load_record(written[fs])
    expected = reference_at(fs, original)
    # positions from the annotations stay the annotations' own, at fs
    beats = beats_from_record(record)
    np.testing.assert_array_equal(beats.samples, reference_beats(record)[0])
    assert np.abs(beats.samples - expected[: len(beats)]).max() <= 1
    assert beats.fs == fs and np.allclose(beats.times, beats.samples / fs)
    # the detector (run at 360 Hz) reports positions at fs, on the reference beats
    detected = detect_beats(record)
    ref_rows, det_rows = pair_peaks(expected, detected, fs, MATCH_TOLERANCE_S)
    assert len(ref_rows) >= 0.98 * len(expected) and len(det_rows) >= 0.98 * len(detected)
    assert np.median(np.abs(expected[ref_rows] - detected[det_rows])) <= 0.01 * fs
    # windows are cut at 360 Hz around the same instants as from the 360 Hz original
    theirs = normalize_windows(original[1].windows[: len(beats)])
    mine = normalize_windows(beats.windows)
    correlation = (theirs * mine).mean(axis=1)
    assert np.median(correlation) > 0.97
    shift = np.argmax(np.abs(mine), axis=1) - np.argmax(np.abs(theirs), axis=1)
    assert np.median(np.abs(shift)) <= 1  # the largest deflection at the same place in the window


@pytest.mark.parametrize("fs", RATES)
def test_query_validates_the_sample_at_the_record_rate(small_index, written, fs):
    """Not in the index: the record is read, and its own length bounds the sample."""
    path = written[fs]
    n = load_record(path).n_samples
    last = query_beat(small_index, path, n - 1, k=3)
    assert last.query["record"] == path.name
    assert n - 1 - 1.5 * fs <= last.query["sample"] < n  # the last beat, at fs
    assert last.query["time"] == pytest.approx(last.query["sample"] / fs)
    for outside in (n, n + 1, n + 10 * fs, -1):
        with pytest.raises(SampleOutOfRangeError, match="outside the record"):
            query_beat(small_index, path, int(outside), k=3)


@pytest.mark.parametrize("fs", (128, 1000))
def test_annotate_reports_samples_at_the_record_rate(small_index, written, original, fs):
    annotation = annotate_record(small_index, written[fs])  # detected beats: its .atr is not read
    assert annotation.fs == fs and annotation.n_samples == SECONDS * fs
    assert annotation.samples.max() < annotation.n_samples
    expected = reference_at(fs, original)
    ref_rows, test_rows = pair_peaks(expected, annotation.samples, fs, MATCH_TOLERANCE_S)
    assert len(ref_rows) > 0.98 * len(expected)
    assert np.median(np.abs(expected[ref_rows] - annotation.samples[test_rows])) <= 0.01 * fs


def test_a_record_at_1000_hz_is_stored_at_its_own_rate(small_index, written, tmp_path):
    fs, path = 1000, written[1000]
    copy = tmp_path / "idx"
    shutil.copytree(small_index.path, copy)  # the shared index stays as it is
    with BeatIndex.updating(copy) as writer:
        writer.add_records([str(path)])
    index = BeatIndex.open(copy)
    try:
        stored = index.catalog.record(path.name)
        assert stored["fs"] == fs and stored["n_samples"] == SECONDS * fs
        rows = index.catalog.beats(record=path.name)
        record = load_record(path)
        np.testing.assert_array_equal(rows["sample"].astype(np.int64), reference_beats(record)[0])
        np.testing.assert_allclose(rows["time"].astype(float), rows["sample"].astype(float) / fs)

        # a stored query names the beat by its sample at 1000 Hz and answers from the stored vector
        sample = int(rows["sample"][len(rows["sample"]) // 2])
        answer = query_beat(index, path.name, sample, k=5)
        assert answer.query["sample"] == sample and answer.query["time"] == pytest.approx(sample / fs)
        assert all(not (n.record == path.name and n.sample == sample) for n in answer.neighbors)
        # ... the same vector the record gives when it is read again (small_index does not hold it)
        fresh = query_beat(small_index, path, sample, k=5)
        assert fresh.query["sample"] == sample
        np.testing.assert_allclose(answer.embedding, fresh.embedding, atol=1e-5)
        # the stored length bounds the sample, at 1000 Hz
        assert query_beat(index, path.name, SECONDS * fs - 1, k=1).query["sample"] < SECONDS * fs
        with pytest.raises(SampleOutOfRangeError, match="outside the record"):
            query_beat(index, path.name, SECONDS * fs, k=1)
    finally:
        index.close()


def test_a_record_as_another_database_holds_it_is_labeled_as_its_original(small_index, data_dir, tmp_path):
    """233's three minutes at 257 Hz, in microvolts, its lead named II, its annotations marking a point
    30 ms after the R peaks: read in mV, windows centred on the QRS, the beats labeled as the original's."""
    import wfdb

    here = write_at_rate(SOURCE, data_dir, 360, tmp_path, seconds=SECONDS, new_name="as_mitbih")
    other = write_at_rate(SOURCE, data_dir, 257, tmp_path, seconds=SECONDS, new_name="foreign")
    record = load_record(other)
    late = np.minimum(record.ann_samples + round(0.030 * 257), record.n_samples - 1)
    wfdb.wrsamp("foreign", fs=257, units=["uV"], sig_name=["II"], p_signal=record.signal[:, None] * 1000,
                fmt=["32"], adc_gain=[1000.0], baseline=[0], write_dir=str(tmp_path))
    wfdb.wrann("foreign", "atr", late, symbol=list(record.ann_symbols), fs=257, write_dir=str(tmp_path))

    foreign = load_record(other)
    assert foreign.lead == "II" and np.ptp(foreign.signal) < 10  # mV, not uV
    expected = annotate_record(small_index, here, beats="reference")
    labeled = annotate_record(small_index, other, beats="reference")
    assert len(labeled.labels) == len(expected.labels)
    assert np.mean(labeled.labels == expected.labels) > 0.99  # windows cut at the marks: 0.98
    assert set(labeled.labels) == set(expected.labels)

