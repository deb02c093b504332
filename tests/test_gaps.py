"""Recordings with stretches of invalid signal (WFDB's invalid samples: lead off, not recorded).

Record 100's first two minutes, both leads, with ten seconds of MLII marked invalid: the gap is bridged by a
straight line, no beat is detected in it, the beats whose windows reach into it are doubted (labeled Q, kept out of
an index), and the rest of the recording reads as without the gap.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import wfdb

from simsearch import BeatIndex
from simsearch.evaluation.matching import pair_peaks
from simsearch.label.annotate import annotate_record, summary
from simsearch.signal.beats import beats_from_record, reaching_a_gap
from simsearch.signal.records import load_record, resampled

FS = 360
GAP = (60 * FS, 70 * FS)


@pytest.fixture(scope="module")
def gapped(data_dir, tmp_path_factory):
    """(record 100's first 2 minutes with MLII invalid from 60 to 70 s, the same without the gap)."""
    where = tmp_path_factory.mktemp("gapped")
    source = wfdb.rdrecord(str(data_dir / "100"), sampto=120 * FS)
    ann = wfdb.rdann(str(data_dir / "100"), "atr", sampto=120 * FS)
    paths = []
    for name, invalid in (("gap100", True), ("whole100", False)):
        signal = source.p_signal.copy()
        if invalid:
            signal[GAP[0]:GAP[1], 0] = np.nan
        wfdb.wrsamp(name, fs=FS, units=source.units, sig_name=source.sig_name, p_signal=signal,
                    fmt=["212", "212"], write_dir=str(where))
        wfdb.wrann(name, "atr", ann.sample, ann.symbol, write_dir=str(where))
        paths.append(where / name)
    return tuple(paths)


def test_a_gap_is_bridged_by_a_straight_line_and_recorded(gapped):
    record = load_record(gapped[0])
    np.testing.assert_array_equal(record.gaps, [GAP])
    assert np.isfinite(record.signal).all()
    before, after = record.signal[GAP[0] - 1], record.signal[GAP[1]]
    np.testing.assert_allclose(record.signal[GAP[0] - 1:GAP[1] + 1], np.linspace(before, after, GAP[1] - GAP[0] + 2))
    assert load_record(gapped[1]).gaps is None
    part = load_record(gapped[0], span_s=(50, 80))  # a part counts its gaps from its own start
    np.testing.assert_array_equal(part.gaps, [[GAP[0] - 50 * FS, GAP[1] - 50 * FS]])
    np.testing.assert_array_equal(resampled(record, 180).gaps, [[GAP[0] // 2, GAP[1] // 2]])


def test_no_beat_is_detected_in_a_gap_and_the_beats_reaching_into_it_are_doubted(gapped):
    detected = beats_from_record(load_record(gapped[0], annotations=None))
    whole = beats_from_record(load_record(gapped[1], annotations=None))
    times = detected.samples
    assert not ((times > GAP[0] + 0.3 * FS) & (times < GAP[1] - 0.3 * FS)).any()
    touching = reaching_a_gap(detected.centres, np.array([GAP]), FS)
    assert touching.any()
    assert (detected.detection_probability[touching] == 0).all() and detected.doubted[touching].all()
    # a second away from the gap, the same beats as without it
    far = (np.abs(whole.samples - GAP[0]) > FS) & (np.abs(whole.samples - GAP[1]) > FS) & \
        ((whole.samples < GAP[0]) | (whole.samples > GAP[1]))
    paired = pair_peaks(whole.samples[far], detected.samples, FS, 0.15)[0]
    assert paired.size >= far.sum() - 1


def test_reference_beats_reaching_into_a_gap_are_doubted_and_kept_out_of_an_index(gapped, tmp_path):
    beats = beats_from_record(load_record(gapped[0]))  # at the reference positions
    touching = reaching_a_gap(beats.centres, np.array([GAP]), FS)
    assert touching.sum() >= 8  # ten seconds of a 75-bpm rhythm
    np.testing.assert_array_equal(beats.doubted, touching)
    assert beats_from_record(load_record(gapped[1])).detection_probability is None  # nothing doubted
    index = BeatIndex.build(tmp_path / "idx", [str(gapped[0])], leads="one")
    stored = index.catalog.beats(record="gap100")
    np.testing.assert_array_equal(stored["sample"], beats.samples[~touching])


def test_annotate_labels_the_beats_around_a_gap_q_and_reports_the_gap(small_index, gapped, tmp_path, capsys):
    from simsearch import cli

    annotation = annotate_record(small_index, gapped[0], beats="detect")
    report = summary(annotation)
    assert report["gaps"] == [list(GAP)]
    doubted = annotation.beats.doubted
    assert (annotation.labels[doubted] == "Q").all() and (annotation.label_source[doubted] == "doubted").all()
    cli.main(["annotate", small_index.path, str(gapped[0]), "--out", str(tmp_path / "out"), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["gaps"] == [list(GAP)] and printed["by_label_source"]["doubted"] == report["by_label_source"][
        "doubted"]


def test_an_interval_across_a_gap_is_read_as_the_usual_one(gapped):
    """The beats after a gap are not read as late, nor their neighbors' running references as long: the
    interval across the gap counts as the median interval."""
    from simsearch.signal.beats import CONTEXT_COLUMNS, across_gaps_closed

    beats = beats_from_record(load_record(gapped[0]))
    whole = beats_from_record(load_record(gapped[1]))
    after = np.flatnonzero((beats.samples > GAP[1]) & ~beats.doubted)[0]
    prev, local = CONTEXT_COLUMNS.index("rr_prev"), CONTEXT_COLUMNS.index("rr_local")
    usual = np.median(np.diff(whole.samples)) / FS
    assert abs(beats.context[after, prev] - usual) < 0.05  # not the 6 s across the gap
    assert abs(beats.context[after + 5, local] - whole.context[after + 5, local]) < 0.1
    peaks = np.array([0, 100, 200, 300, 900, 1000, 1100])  # 500 samples of the interval 300-900 were a gap
    np.testing.assert_array_equal(across_gaps_closed(peaks, np.ones(7, bool), np.array([[350, 850]])),
                                  [0, 100, 200, 300, 400, 500, 600])
    np.testing.assert_array_equal(across_gaps_closed(peaks, np.ones(7, bool), None), peaks)
