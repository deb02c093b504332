"""Filtering, segmentation, RR features and AAMI labels on real records."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simsearch.aami import DS1, DS2, PACED, parse_record_list, to_aami
from simsearch.errors import AnnotationError
from simsearch.signal.beats import (
    CONTEXT_COLUMNS,
    PAUSE_RESISTANT_COLUMNS,
    RR_COLUMNS,
    SHAPE_COLUMNS,
    WINDOW,
    WINDOW_BEFORE,
    beats_from_record,
    dominant_beat_features,
    normalize_windows,
    p_wave_consistency,
    pause_resistant_mean,
    pause_resistant_rhythm,
    reference_beats,
    rhythm_of,
    rr_features,
    segment,
    shape_noise,
    two_cluster_spread,
)
from simsearch.signal.filtering import clean_ecg
from simsearch.signal.records import load_record


@pytest.fixture(scope="module")
def record_208(data_dir):
    return load_record("208", data_dir)


def test_filter_removes_baseline_wander_without_moving_peaks(record_208):
    signal = record_208.signal[: 60 * 360]
    t = np.arange(signal.size) / 360
    wander = 2.0 * np.sin(2 * np.pi * 0.15 * t)
    clean = clean_ecg(signal, 360)
    drifting = clean_ecg(signal + wander, 360)
    # the added 0.15 Hz wander (2 mV, larger than the QRS) is almost entirely gone
    assert np.std(drifting - clean) < 0.05 * np.std(wander)
    peaks, _ = reference_beats(record_208)
    peaks = peaks[(peaks > 100) & (peaks < signal.size - 100)]
    raw_local = np.array([np.argmax(np.abs(signal[p - 20:p + 20] - np.median(signal[p - 100:p + 100])))
                          for p in peaks])
    filtered_local = np.array([np.argmax(np.abs(clean[p - 20:p + 20])) for p in peaks])
    assert np.median(np.abs(raw_local - filtered_local)) <= 1  # zero phase: the R-peak stays put


def test_reference_beats_skip_non_beats(record_208):
    samples, symbols = reference_beats(record_208)
    assert samples.size == symbols.size
    assert samples.size < record_208.ann_samples.size  # 208 has rhythm and noise annotations
    assert set(symbols) <= set("NLRejAaJSVEF/fQ")
    assert np.all(np.diff(samples) > 0)


def test_beats_carry_windows_context_and_labels(record_208):
    beats = beats_from_record(record_208)
    assert beats.windows.shape == (len(beats), WINDOW)
    assert beats.context.shape == (len(beats), len(CONTEXT_COLUMNS))
    counts = {c: int((beats.aami == c).sum()) for c in "NSVFQ"}
    assert counts["V"] == 992 and counts["F"] == 373  # the record's own annotation counts
    # the window is centred on the R-peak: the largest deflection of most beats sits there
    peak_at = np.argmax(np.abs(beats.windows), axis=1)
    assert np.mean(np.abs(peak_at - WINDOW_BEFORE) <= 10) > 0.9


def test_windows_are_centred_on_the_qrs_whatever_point_the_annotations_mark(record_208, data_dir):
    """A database that marks another point of the QRS (here 40 ms after MIT-BIH's R peaks) gets the
    same windows; the beats keep their own sample numbers. The other lead is cut where the first
    lead's windows are, and the detector's beats are already centred."""
    from dataclasses import replace

    from simsearch.signal.beats import MODEL_FS, beats_in_lead, rescale_samples

    record = replace(record_208, signal=record_208.signal[: 120 * 360])
    peaks, symbols = reference_beats(record)
    peaks, symbols = peaks[2:-2], symbols[2:-2]
    beats = beats_from_record(record, r_peaks=peaks, symbols=symbols)
    late = beats_from_record(record, r_peaks=peaks + round(0.040 * 360), symbols=symbols)
    assert np.array_equal(late.samples, peaks + 14) and np.array_equal(late.centres, beats.centres)
    assert np.array_equal(late.windows, beats.windows)
    assert np.median(np.abs(beats.centres - peaks)) <= 1  # MIT-BIH marks the largest deflection

    other = beats_in_lead(load_record("208", data_dir, lead="V1", annotations=None), beats)
    assert np.array_equal(other.centres, beats.centres) and np.array_equal(other.symbols, beats.symbols)
    assert not np.allclose(other.windows, beats.windows)

    detected = beats_from_record(replace(record, ann_samples=None, ann_symbols=None))
    assert np.array_equal(rescale_samples(detected.centres, MODEL_FS, record.fs), detected.samples)


def test_a_qrs_whose_largest_deflection_jumps_is_cut_where_its_median_beat_is(record_208, data_dir):
    """108's R and S waves are nearly one size, so its largest deflection jumps between them: those
    normal beats are centred where they match the record's median beat (30-50 ms away); ventricular
    beats, which match it nowhere, keep their largest deflection, and records without such jumps
    (208, 101) are cut where they were."""
    from simsearch.signal.beats import LOCATE_BAND_HZ, MODEL_FS, largest_deflections, rescale_samples, to_model_rate
    from simsearch.signal.filtering import bandpass

    def moved(record):
        beats = beats_from_record(record)
        located = largest_deflections(bandpass(to_model_rate(record.signal, record.fs), MODEL_FS, *LOCATE_BAND_HZ),
                                      rescale_samples(beats.samples, record.fs, MODEL_FS), MODEL_FS)
        return beats, (beats.centres - located) * 1000 / MODEL_FS

    beats, offset = moved(load_record("108", data_dir))
    normal, ventricular = beats.aami == "N", beats.aami == "V"
    assert np.count_nonzero(offset[normal]) > 150 and 25 <= np.median(np.abs(offset[offset != 0])) <= 50
    assert np.count_nonzero(offset[ventricular]) <= 3 < ventricular.sum()
    for record in (record_208, load_record("101", data_dir)):
        assert not np.any(moved(record)[1])


def test_ventricular_beats_stand_out_from_the_dominant_beat(record_208):
    beats = beats_from_record(record_208)
    shape = beats.context[:, len(RR_COLUMNS):len(RR_COLUMNS) + len(SHAPE_COLUMNS)]
    normal, ventricular = shape[beats.aami == "N"], shape[beats.aami == "V"]
    qrs_difference = SHAPE_COLUMNS.index("qrs_difference")
    # 208's VEBs are its second most common beat, yet the running median still follows the normal beats
    assert np.median(ventricular[:, qrs_difference]) > np.percentile(normal[:, qrs_difference], 90)
    assert np.median(normal[:, qrs_difference]) < 0.05
    assert np.all(np.isfinite(shape))


def test_a_lone_beat_is_its_own_dominant_beat():
    windows = np.random.default_rng(0).normal(size=(1, WINDOW)).astype(np.float32)
    shape = dominant_beat_features(windows)
    assert shape.shape == (1, len(SHAPE_COLUMNS))
    np.testing.assert_allclose(shape[0], 0.0, atol=1e-5)
    assert dominant_beat_features(windows[:0]).shape == (0, len(SHAPE_COLUMNS))


def test_segment_pads_beats_at_the_edges():
    signal = np.arange(1000, dtype=float)
    windows = segment(signal, np.array([0, 500, 999]))
    assert windows.shape == (3, WINDOW)
    assert windows[1, WINDOW_BEFORE] == 500
    assert windows[0, 0] == 0 and windows[2, -1] == 999


def test_rr_features_on_a_known_rhythm():
    fs = 360.0
    rr = np.full(60, 0.8)
    rr[30] = 0.5   # a premature beat...
    rr[31] = 1.1   # ...and its compensatory pause
    peaks = np.concatenate([[100], 100 + np.cumsum(rr * fs)]).astype(int)
    features = rr_features(peaks, fs)
    premature = 31  # the beat that ends the short interval
    assert features[premature, 0] == pytest.approx(0.5, abs=0.01)
    assert features[premature, 1] == pytest.approx(1.1, abs=0.01)
    assert features[premature, 2] == pytest.approx(0.8, abs=0.01)  # a beat and its pause leave the local mean be
    assert features[-1, 4] == pytest.approx(0.0, abs=1e-3)  # regular rhythm (the premature beat out of the window)
    single = rr_features(np.array([500]), fs)
    assert single.shape == (1, len(RR_COLUMNS)) and np.all(np.isfinite(single))


def test_pause_resistant_means_leave_out_rare_pauses_not_a_slow_rhythm(monkeypatch):
    """A lone 3 s pause leaves the pause-resistant mean at the sinus cycle; where every third interval
    is long (record 232's sinus beats after their pauses) they are the rhythm and the mean keeps them."""
    from scipy.ndimage import uniform_filter1d

    from simsearch.signal import beats

    rare = np.full(200, 0.8)
    rare[100] = 3.0
    assert np.allclose(pause_resistant_mean(rare, 33), 0.8)
    assert uniform_filter1d(rare, 33, mode="nearest")[100] == pytest.approx(0.8 + 2.2 / 33)
    frequent = np.tile([0.7, 0.7, 1.9], 100)
    assert np.allclose(pause_resistant_mean(frequent, 33)[20:-20],
                       uniform_filter1d(frequent, 33, mode="nearest")[20:-20])
    assert np.array_equal(pause_resistant_mean(rare, 1), rare)  # a window of one keeps its value
    mixed = np.random.default_rng(0).lognormal(np.log(0.8), 0.4, 1000)
    whole = pause_resistant_mean(mixed, 301)
    monkeypatch.setattr(beats, "PAUSE_CHUNK", 1000)  # a 24-hour recording's windows go a few at a time
    assert np.array_equal(pause_resistant_mean(mixed, 301), whole)


def test_irregularity_tells_fibrillation_from_frequent_premature_beats():
    """Bigeminy and random premature beats fall in two tight interval groups (low spread);
    fibrillation's scattered intervals do not (high spread), though all three jump as much."""
    rng = np.random.default_rng(0)
    sinus = 0.8 * (1 + 0.01 * rng.normal(size=400))
    bigeminy = np.where(np.arange(400) % 2, 0.6 * sinus, 1.1 * sinus)
    frequent = np.where(rng.random(400) < 0.4, 0.6 * sinus, sinus)
    fibrillation = 0.7 * np.exp(rng.normal(0.0, 0.2, 400))
    spread = {name: float(np.median(two_cluster_spread(rr)))
              for name, rr in (("sinus", sinus), ("bigeminy", bigeminy), ("frequent", frequent),
                               ("fibrillation", fibrillation))}
    assert max(spread["sinus"], spread["bigeminy"], spread["frequent"]) < 0.02 < 0.05 < spread["fibrillation"]
    # the prefix-sum split equals the brute-force one
    window = np.log(np.sort(fibrillation[:33]))
    brute = min(np.abs(window[:c] - np.median(window[:c])).sum() + np.abs(window[c:] - np.median(window[c:])).sum()
                for c in range(1, 33)) / 33
    assert two_cluster_spread(fibrillation[:33], beats=33)[16] == pytest.approx(brute, rel=1e-5)
    assert two_cluster_spread(np.array([])).shape == (0,) and two_cluster_spread(np.array([0.8])).shape == (1,)


def test_normalized_windows_are_z_scores(record_208):
    windows = normalize_windows(beats_from_record(record_208).windows[:50] * 3.0 + 7.0)
    np.testing.assert_allclose(windows.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(windows.std(axis=1), 1, atol=1e-3)


def test_aami_mapping_and_record_sets():
    assert list(to_aami("NLRejAaJSVEFf/Q")) == list("NNNNNSSSSVVFQQQ")
    with pytest.raises(AnnotationError):
        to_aami(["+"])
    assert not set(DS1) & set(DS2) and not set(PACED) & (set(DS1) | set(DS2))
    assert len(parse_record_list("all")) == 48 and parse_record_list("ds2") == list(DS2)
    assert parse_record_list("100, 208") == ["100", "208"]


def test_p_wave_consistency_tells_fibrillation_from_premature_atrial_beats(data_dir):
    """201 (DS1): atrial fibrillation in about half the record, sinus rhythm with premature atrial
    beats in the rest. A consistent P wave precedes the sinus and premature beats, none the
    fibrillation's."""
    import wfdb

    record = load_record("201", data_dir)
    beats = beats_from_record(record)
    annotation = wfdb.rdann(str(data_dir / "201"), "atr")
    starts = [(s, a.strip("\x00")) for s, a in zip(annotation.sample, annotation.aux_note) if a.startswith("(")]
    rhythm = np.array([next((a for s, a in reversed(starts) if s <= sample), "") for sample in beats.samples])
    consistency = beats.context[:, CONTEXT_COLUMNS.index("p_wave_consistency")]
    fibrillation, sinus = np.isin(rhythm, ["(AFIB", "(AFL"]), rhythm == "(N"
    assert fibrillation.sum() > 500 and sinus.sum() > 500
    assert np.median(consistency[fibrillation]) < 0.3 and np.median(consistency[sinus]) > 0.6
    assert np.median(consistency[sinus & (beats.aami == "S")]) > 0.5  # premature atrial beats keep theirs
    assert p_wave_consistency(beats.windows[:0]).shape == (0,)
    assert p_wave_consistency(beats.windows[:1]).shape == (1,)


def test_shape_noise_gauges_noise_not_ventricular_ectopy(record_208, noise_dir):
    """A beat's closest twin nearby differs from it by noise only: record 208, a third of its
    beats ventricular, gauges as quiet as clean sinus rhythm, while its beats' difference from
    the dominant one rises with its ectopy; nstdb's em at 12 dB raises the gauge several-fold."""
    from simsearch.evaluation.noise import noise_leads, noisy_lead

    clean = beats_from_record(record_208)
    noisy = beats_from_record(noisy_lead(record_208, 0, noise_leads("em", noise_dir), 12.0, record_208, 0))
    qrs_noise, beat_noise, qrs_difference = (CONTEXT_COLUMNS.index(column) for column in (
        "qrs_noise", "beat_noise", "qrs_difference"))
    assert np.median(clean.context[:, qrs_noise]) < 0.003 < np.median(noisy.context[:, qrs_noise])
    assert np.median(clean.context[:, beat_noise]) < np.median(noisy.context[:, beat_noise])
    ectopic = clean.aami == "V"
    assert np.median(clean.context[ectopic, qrs_difference]) > 10 * np.median(clean.context[:, qrs_noise])
    assert shape_noise(clean.windows[:0]).shape == (0, 2) and shape_noise(clean.windows[:1]).tolist() == [[0, 0]]
    twins = np.repeat(clean.windows[:5], 3, axis=0)  # each beat beside two copies of itself: no noise at all
    assert np.abs(shape_noise(twins)).max() < 1e-5


def test_running_medians_on_threads_are_the_ones_of_one_thread(monkeypatch):
    """A long recording's medians are taken on threads (beats.MEDIAN_THREADS): the same values, bit for bit."""
    from simsearch.signal import beats

    rows = np.random.default_rng(0).normal(size=(3001, 40)).astype(np.float32)
    monkeypatch.setattr(beats, "MEDIAN_THREADS", 2)
    monkeypatch.setattr(beats, "MEDIAN_THREADS_MIN", 1)
    (threaded,), block = beats.block_medians((rows,), 51, 10)
    monkeypatch.setattr(beats, "MEDIAN_THREADS", 1)
    (alone,), block_alone = beats.block_medians((rows,), 51, 10)
    assert threaded.shape == (301, 40) and np.array_equal(threaded, alone) and np.array_equal(block, block_alone)


def test_pauses_hold_the_signal_between_beats_and_move_the_annotations(record_208):
    """Sinus pauses (the stress test DS1 lacks) go after a T wave and before a P wave, in every lead
    at the same spots, and every beat keeps its samples and its symbol."""
    from simsearch.signal.pauses import PAUSE_S, pause_spots, with_pauses

    beats, symbols = reference_beats(record_208)
    spots, lengths = pause_spots(beats, symbols, record_208.fs, 0.02, seed=3)
    assert np.array_equal(spots, pause_spots(beats, symbols, record_208.fs, 0.02, seed=3)[0])  # seeded
    normal = to_aami(symbols) == "N"
    sinus = normal[:-1] & normal[1:]
    assert len(spots) == round(0.02 * sinus.sum()) and np.all(np.diff(spots) > 0)
    interrupted = np.searchsorted(beats, spots) - 1
    assert sinus[interrupted].all()  # between two normal beats: not an ectopic beat's own pause
    assert PAUSE_S[0] * record_208.fs <= lengths.min() and lengths.max() <= PAUSE_S[1] * record_208.fs
    paused = with_pauses(record_208, spots, lengths)
    assert paused.n_samples == record_208.n_samples + lengths.sum()
    moved, moved_symbols = reference_beats(paused)
    assert np.array_equal(moved_symbols, symbols)
    assert np.array_equal(paused.signal[moved], record_208.signal[beats])  # the same beats, later
    assert np.array_equal(np.diff(moved)[interrupted], np.diff(beats)[interrupted] + lengths)
    assert np.array_equal(np.delete(np.diff(moved), interrupted), np.delete(np.diff(beats), interrupted))
    unannotated = with_pauses(replace(record_208, ann_samples=None, ann_symbols=None), spots, lengths)
    assert np.array_equal(unannotated.signal, paused.signal)  # another lead gets the same pauses
    assert pause_spots(beats[:1], symbols[:1], record_208.fs, 0.5, seed=0)[0].size == 0


def test_a_doubted_detection_splits_no_interval_of_the_beats_around_it():
    """The rhythm read from the marked beats only: the others keep the context they have without the doubted
    detection, which spans the intervals to its marked neighbours and takes the next one's references."""
    rng = np.random.default_rng(0)
    beats = np.cumsum(rng.integers(250, 350, size=200))
    alone = rr_features(beats, 360.0), pause_resistant_rhythm(beats, 360.0)
    for got, want in zip(rhythm_of(beats, 360.0), alone):
        np.testing.assert_array_equal(got, want)
    noise = (beats[50] + beats[51]) // 2
    with_noise = np.sort(np.append(beats, noise))
    marked = with_noise != noise
    rr, pause_resistant = rhythm_of(with_noise, 360.0, marked)
    np.testing.assert_allclose(rr[marked], alone[0], atol=1e-6)
    np.testing.assert_allclose(pause_resistant[marked], alone[1], atol=1e-6)
    prev, following = (RR_COLUMNS.index(c) for c in ("rr_prev", "rr_next"))
    assert rr[51, prev] * 360 == pytest.approx(noise - beats[50]) and rr[51, following] * 360 == pytest.approx(
        beats[51] - noise)
    np.testing.assert_array_equal(rr[51, 2:], alone[0][51, 2:])
    unmarked = rhythm_of(with_noise, 360.0, np.zeros_like(marked))  # nothing to read a rhythm from: all of them
    np.testing.assert_array_equal(unmarked[0], rr_features(with_noise, 360.0))


def test_a_recording_reads_its_rhythm_from_the_detections_the_check_believes(data_dir, noise_dir, tmp_path,
                                                                               monkeypatch):
    """Detected beats of a noisy recording: every kept detection is labeled, and the rhythm of each is read
    from those whose probability reaches DOUBTED_BELOW; both leads of an index carry the first lead's."""
    import simsearch.signal.beats as beats_module
    from simsearch.evaluation.noise import noise_leads, noisy_copies
    from simsearch.model.leads import second_lead_beats
    from simsearch.signal.beats import detected_at_model_rate, to_model_rate

    monkeypatch.setattr(beats_module, "DOUBTED_BELOW", 0.5)
    clean = load_record("232", data_dir, span_s=(0, 300))
    (_, noisy), = noisy_copies(clean, noise_leads("em", noise_dir), [0], 0, tmp_path)
    bare = replace(noisy, ann_samples=None, ann_symbols=None)
    found = beats_from_record(bare)
    located, probability = detected_at_model_rate(bare, to_model_rate(bare.signal, bare.fs))
    believed = probability >= 0.5
    assert found.samples.shape == probability.shape and 0 < (~believed).sum() < believed.sum()
    np.testing.assert_array_equal(found.detection_probability, probability)
    np.testing.assert_array_equal(found.doubted, ~believed)
    rhythm = [CONTEXT_COLUMNS.index(c) for c in RR_COLUMNS + PAUSE_RESISTANT_COLUMNS]
    np.testing.assert_allclose(found.context[:, rhythm], np.column_stack(rhythm_of(found.samples, bare.fs, believed)),
                               rtol=1e-6)
    other = second_lead_beats(bare, found)
    np.testing.assert_array_equal(other.context[:, rhythm], found.context[:, rhythm])
    np.testing.assert_array_equal(other.detection_probability, probability)
