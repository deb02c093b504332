"""The Keras encoder: unit embeddings, fingerprints, and a real (short) training run."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from simsearch.aami import AAMI_CLASSES
from simsearch.errors import EncoderMismatchError, RecordNotFoundError, SimsearchError
from simsearch.evaluation.selection import fixed_scale, train_and_save, training_config, training_setting
from simsearch.model.datasets import BeatSet, load_beats, noisy_beats
from simsearch.model.encoder import (
    FIBRILLATION_GATE,
    FLOORED_MODEL_NAME,
    GATED_MODEL_NAME,
    NOISE_FLOOR,
    Encoder,
    build_encoder,
    encoder_inputs,
    fibrillation_gate,
)
from simsearch.model.training import TrainingConfig, semihard_triplet_loss
from simsearch.signal.beats import CONTEXT_COLUMNS


@pytest.fixture(scope="module")
def beat_set(data_dir):
    return BeatSet.stack(load_beats(["119", "209"], data_dir))


def test_default_encoder_gives_deterministic_unit_vectors(beat_set):
    encoder = Encoder.load()
    vectors = encoder.embed(beat_set.windows[:300], beat_set.context[:300])
    assert vectors.shape == (300, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, encoder.embed(beat_set.windows[:300], beat_set.context[:300]))


def test_default_encoder_finds_the_class_in_patients_it_never_saw(data_dir):
    """The packaged encoder was trained on DS1; 233 and 200 are DS2. Each record's beats
    look for their nearest beat in the other patient: the encoder finds a beat of the same
    class for nearly every normal and ventricular beat, far more often than the raw
    z-normalised beats do (0.63 balanced, against 0.99, when this test was written)."""
    from simsearch.evaluation.classification import raw_vectors

    encoder = Encoder.load()
    first, second = (BeatSet.stack(load_beats([r], data_dir)) for r in ("233", "200"))
    n, v = 0, 2  # class positions of N and V
    hits = {}
    for name, vectors in (("encoder", encoder.embed), ("raw", raw_vectors)):
        recalls = []
        for query, base in ((first, second), (second, first)):
            q, b = vectors(query.windows, query.context), vectors(base.windows, base.context)
            nearest = base.labels[np.argmin((b ** 2).sum(axis=1)[None, :] - 2 * q @ b.T, axis=1)]
            recalls += [np.mean(nearest[query.labels == c] == c) for c in (n, v)]
        hits[name] = recalls
    assert min(hits["encoder"]) > 0.9, hits
    assert np.mean(hits["encoder"]) > np.mean(hits["raw"]) + 0.2, hits


def test_fingerprint_survives_save_and_load_and_tracks_weights(tmp_path):
    encoder = Encoder(build_encoder(seed=1))
    encoder.save(tmp_path / "a.keras")
    assert Encoder.load(tmp_path / "a.keras").fingerprint == encoder.fingerprint
    assert Encoder(build_encoder(seed=2)).fingerprint != encoder.fingerprint
    # the same trained weights with another fixed context scale embed differently: another encoder
    assert Encoder(build_encoder(seed=1, input_weights=None)).fingerprint != encoder.fingerprint


def test_missing_or_foreign_model_file(tmp_path):
    with pytest.raises(RecordNotFoundError):
        Encoder.load(tmp_path / "none.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(EncoderMismatchError):
        Encoder.load(tmp_path / "junk.keras")


def test_semihard_loss_is_zero_for_separated_classes_and_positive_otherwise():
    import tensorflow as tf

    labels = tf.constant([0, 0, 1, 1])
    apart = tf.constant([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    mixed = tf.constant([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert float(semihard_triplet_loss(labels, apart, 0.4)) == pytest.approx(0.0)
    # every positive is as far as the farthest negative: each pair pays at least the margin
    assert float(semihard_triplet_loss(labels, mixed, 0.4)) >= 0.4 - 1e-6


def test_training_writes_a_model_and_report_and_is_seeded(data_dir, noise_dir, tmp_path):
    config = TrainingConfig(steps=10, eval_every=5, beats_per_class=8, seed=3)
    # 124, the validation record: DS1's shortest (1,619 beats), embedded at each checkpoint
    records = ["119", "209", "124"]
    first = train_and_save(tmp_path / "a.keras", records, data_dir, val_records=["124"], config=config,
                           noise_dir=noise_dir)
    second = train_and_save(tmp_path / "b.keras", records, data_dir, val_records=["124"], config=config,
                            noise_dir=noise_dir)
    assert (tmp_path / "a.keras").is_file() and (tmp_path / "a.json").is_file()
    assert first["fingerprint"] == second["fingerprint"]  # fixed seeds, the same noise: the same weights
    # one noisy copy per SNR of 209 alone: 119's noisy copies are the nstdb's noise test
    n_209 = len(BeatSet.stack(load_beats(["209"], data_dir)))
    assert first["noisy_beats"] == n_209 * len(config.noise_snrs_db) > 0
    assert first["config"]["noise_snrs_db"] == config.noise_snrs_db
    without = train_and_save(tmp_path / "c.keras", records, data_dir, val_records=["124"], config=config)
    assert without["noisy_beats"] == 0 and without["config"]["noise_snrs_db"] == ()
    assert without["train_beats"] == first["train_beats"] - first["noisy_beats"]
    assert first["val_records"] == ["124"] and "124" not in first["train_records"]
    assert len(first["history"]) == 2 and first["history"][0]["loss"] > 0
    assert Encoder.load(tmp_path / "a.keras").fingerprint == first["fingerprint"]
    # trained with the context at its loss weight, shipped with it at its index weight
    assert config.loss_context_weight != config.context_weight
    scales = [layer.scale for layer in Encoder.load(tmp_path / "a.keras").model.layers if hasattr(layer, "scale")]
    assert scales == [pytest.approx([config.context_weight * w for w in config.fixed_input_weights[:9]])]


def test_the_scripts_settings_override_the_packaged_training_and_refuse_what_it_lacks(capsys):
    config = training_config(["steps=300", 'noise_records=["ma"]'], seed=2)
    assert (config.steps, config.noise_records, config.seed) == (300, ["ma"], 2)
    assert config.decay_steps == TrainingConfig().decay_steps  # the rest as packaged
    assert training_config(["seed=5"], seed=2).seed == 5  # --set is the last word
    for bad, says in (("steps", "FIELD=VALUE"), ("stepz=3", "TrainingConfig field"), ("noise_records=[ma]", "JSON")):
        with pytest.raises(SimsearchError, match=says):
            training_config([bad])
    parser = argparse.ArgumentParser(prog="cross_validate")  # as the scripts take --set
    parser.add_argument("--set", action="append", default=[], type=training_setting)
    assert parser.parse_args(["--set", "steps=300"]).set == ["steps=300"]
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--set", "stepz=3"])
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cross_validate: error")]
    assert len(error_lines) == 1 and "'stepz=3'" in error_lines[0] and "TrainingConfig field" in error_lines[0]


def test_noisy_copies_keep_the_beats_and_their_labels_and_are_the_same_every_time(data_dir, noise_dir):
    clean = load_beats(["101"], data_dir)[0]
    noisy = noisy_beats(["101", "118"], data_dir, noise_dir, (12.0, 6.0))
    again = noisy_beats(["101"], data_dir, noise_dir, (12.0, 6.0))
    assert len(noisy) == 2 and all(b.record == "101" for b in noisy)  # 118's noisy copies are the noise test's
    for copy, repeat in zip(noisy, again):
        np.testing.assert_array_equal(copy.samples, clean.samples)  # cut at the reference beats
        np.testing.assert_array_equal(copy.aami, clean.aami)
        np.testing.assert_array_equal(copy.windows, repeat.windows)  # the same noise every time
    changed = [np.sqrt(np.mean((copy.windows - clean.windows) ** 2)) for copy in noisy]
    assert 0 < changed[0] < changed[1]  # more noise at 6 dB than at 12
    assert noisy_beats(["101"], data_dir, noise_dir, ()) == []


def test_patient_folds_are_disjoint_cover_every_record_and_are_balanced():
    """Cross-validation folds on a synthetic training set shaped like DS1: 22 patients, the
    rare beats held by a few of them."""
    from simsearch.model.datasets import patient_folds

    rng = np.random.default_rng(0)
    records = [f"r{i:02d}" for i in range(22)]
    rare = {"r03": (1, 400), "r07": (2, 300), "r11": (1, 250), "r15": (3, 200), "r19": (2, 120)}
    labels, groups = [], []
    for name in records:
        cls, count = rare.get(name, (0, 0))
        stray = int(rng.integers(0, 5))  # every patient has a few rare beats
        mine = [0] * int(rng.integers(500, 1500)) + [cls] * count + [int(rng.integers(1, 4))] * stray
        labels += mine
        groups += [name] * len(mine)
    labels, groups = np.array(labels), np.array(groups)
    beats = BeatSet(np.zeros((labels.size, 1), np.float32), np.zeros((labels.size, 1), np.float32), labels, groups)
    for n_folds in (2, 4, 5):
        folds = patient_folds(beats, n_folds)
        assert len(folds) == n_folds and folds == patient_folds(beats, n_folds)  # deterministic
        names = [r for fold in folds for r in fold]
        assert sorted(names) == records and len(set(names)) == len(names)  # disjoint, and every record once
        sizes = [len(fold) for fold in folds]
        assert max(sizes) - min(sizes) <= 1, sizes  # as many patients in each fold as can be
        # the patients rich in rare beats are spread: no fold takes two before every fold has one
        rich = [sum(r in rare for r in fold) for fold in folds]
        assert max(rich) - min(rich) <= 1, (n_folds, folds)


def test_cross_validation_also_votes_on_other_recording_setups(data_dir, noise_dir):
    """Held-out patients recorded otherwise (their other lead, another rate) are voted on by the
    same training-fold index, at every checkpoint, and scored like the real records."""
    from simsearch.evaluation.selection import cross_validate, cv_scores, recorded_otherwise
    from simsearch.signal.records import record_leads

    records = ["119", "209"]  # one fold of V beats, one of S beats: small enough to train and embed twice in seconds
    assert record_leads("114", data_dir) == ["V5", "MLII"]
    beats = BeatSet.stack(load_beats(records, data_dir))
    setups = {name: recorded_otherwise(records, data_dir, name) for name in ("other-lead", "128Hz")}
    for other in setups.values():  # the same beats, labeled the same (a beat or two may fall off an end)
        assert abs(len(other) - len(beats)) <= 2 * len(records)
        assert set(other.groups) == set(records)
    swapped = [recorded_otherwise(records, data_dir, "swapped-leads", second_lead=lead) for lead in (False, True)]
    # V1 first, then MLII: what a database whose first lead is another meets in an index of both leads
    assert np.array_equal(swapped[0].windows, setups["other-lead"].windows)
    assert np.array_equal(swapped[1].windows, beats.windows)
    assert np.array_equal(recorded_otherwise(records, data_dir, "other-lead", second_lead=True).windows,
                          setups["other-lead"].windows)  # one lead in both views
    other_at_128 = recorded_otherwise(records, data_dir, "128Hz", second_lead=True)  # both leads at a Holter's rate
    assert np.array_equal(other_at_128.labels, setups["128Hz"].labels)
    assert not np.allclose(other_at_128.windows, setups["128Hz"].windows)
    marked = recorded_otherwise(records, data_dir, "marks+40ms")  # a database marking a later point of the QRS
    assert np.array_equal(marked.labels, beats.labels)
    assert np.mean(np.all(marked.windows == beats.windows, axis=1)) > 0.95  # centred on the QRS all the same
    noisy = recorded_otherwise(records, data_dir, "em12dB", noise_dir=noise_dir)  # the noise test's noise, both leads
    noisy_other = recorded_otherwise(records, data_dir, "em12dB", second_lead=True, noise_dir=noise_dir)
    assert np.array_equal(noisy.labels, beats.labels) and np.array_equal(noisy_other.labels, beats.labels)
    assert not np.allclose(noisy.windows, beats.windows)
    assert np.array_equal(recorded_otherwise(records, data_dir, "em12dB", noise_dir=noise_dir).windows, noisy.windows)
    louder = recorded_otherwise(records, data_dir, "em0dB", noise_dir=noise_dir)
    assert np.abs(louder.windows - beats.windows).mean() > 2 * np.abs(noisy.windows - beats.windows).mean()
    paused = recorded_otherwise(records, data_dir, "pauses2%")  # sinus pauses, in both leads at the same spots
    paused_other = recorded_otherwise(records, data_dir, "pauses2%", second_lead=True)
    assert np.array_equal(paused.labels, beats.labels) and np.array_equal(paused_other.labels, beats.labels)
    long_next = [np.sum(b.context[:, 1] > 2 * b.context[:, 2]) for b in (paused, beats)]  # next RR over local mean
    assert long_next[0] > long_next[1]
    for unknown in ("upside down", "xx12dB", "pauses%", "em12dB~upside down", "other-lead~brady_apc",
                    "swapped-leads~brady_apc"):
        with pytest.raises(Exception, match="unknown recording set-up|unknown rhythm|takes no rhythm"):
            recorded_otherwise(records, data_dir, unknown)
    rhythm = recorded_otherwise(records, data_dir, "brady_apc")  # record 232's pattern from each patient's beats
    flutter = recorded_otherwise(records, data_dir, "atrial_flutter")  # a confounder: normal beats, scored on request
    assert set(flutter.groups) == {f"{r}~atrial_flutter" for r in records} and not flutter.labels.any()
    noisy_rhythm, noisy_rhythm_other = (recorded_otherwise(records, data_dir, "em12dB~brady_apc", second_lead=lead,
                                                           noise_dir=noise_dir) for lead in (False, True))
    assert set(rhythm.groups) == {f"{r}~brady_apc" for r in records}
    assert all(np.array_equal(rhythm.labels, other.labels) for other in (noisy_rhythm, noisy_rhythm_other))
    assert np.mean(rhythm.labels == AAMI_CLASSES.index("S")) > 0.5
    assert not np.allclose(rhythm.windows, noisy_rhythm.windows)
    setups["em12dB~brady_apc"] = noisy_rhythm  # voted on by the fold that holds its patient
    config = TrainingConfig(steps=10, decay_steps=10, eval_every=5, beats_per_class=8, simulated_rhythms=False)
    cv = cross_validate(beats, config, n_folds=2, k_max=10, setups=setups,
                        fixed_weights={"as trained": fixed_scale(config)})
    assert set(cv["setups"]) == set(setups)
    for recombined, embedded in zip(cv["variants"]["as trained"][10]["distances"], cv["checkpoints"][10]["distances"]):
        np.testing.assert_allclose(recombined, embedded, atol=1e-4)  # the encoder's own fixed part, recombined
    for name, checkpoints in cv["setups"].items():
        assert sorted(checkpoints) == sorted(cv["checkpoints"]) == [5, 10]
        scores = cv_scores({"checkpoints": checkpoints}, 10, 0.25, ("S", "V"), "all")
        assert sum(figures["n"] for figures in scores[10]["classes"].values()) == len(setups[name])


def test_irregularity_counts_where_no_p_wave_precedes_the_beats(beat_set):
    """RR irregularity reaches the encoder in full under fibrillation (no consistent P wave),
    at the floor among premature atrial beats and pauses (a P wave before every beat)."""
    high, low, floor = FIBRILLATION_GATE
    assert fibrillation_gate(np.array([0.0, low, (high + low) / 2, high, 1.0])).tolist() == pytest.approx(
        [1.0, 1.0, 0.5, floor, floor])
    windows, context = beat_set.windows[:50], beat_set.context[:50].copy()
    consistency = CONTEXT_COLUMNS.index("p_wave_consistency")
    context[:, consistency] = 0.0
    fibrillating = encoder_inputs(windows, context)[1][:, 3]
    context[:, consistency] = 1.0
    assert encoder_inputs(windows, context)[1][:, 3] == pytest.approx(floor * fibrillating, rel=1e-5)


def test_shape_differences_lose_their_noise_floor(beat_set):
    """The QRS and whole-window differences from the dominant beat reach the encoder less
    NOISE_FLOOR times their stretch's noise, floored at 0; the amplitude ratio as it is."""
    windows, context = beat_set.windows[:50], beat_set.context[:50].copy()
    qrs, beat, amplitude, qrs_noise, beat_noise = (CONTEXT_COLUMNS.index(column) for column in (
        "qrs_difference", "beat_difference", "qrs_amplitude", "qrs_noise", "beat_noise"))
    first = CONTEXT_COLUMNS.index("qrs_difference")  # the shape columns follow the RR inputs, in order
    context[:, [qrs_noise, beat_noise]] = 0.0
    quiet = encoder_inputs(windows, context)[1]
    assert np.array_equal(quiet[:, 5:8], context[:, first:first + 3])
    context[:, qrs_noise], context[:, beat_noise] = 0.01, 0.02
    noisy = encoder_inputs(windows, context)[1]
    assert noisy[:, 5] == pytest.approx(np.maximum(context[:, qrs] - NOISE_FLOOR * 0.01, 0.0), abs=1e-6)
    assert noisy[:, 6] == pytest.approx(np.maximum(context[:, beat] - NOISE_FLOOR * 0.02, 0.0), abs=1e-6)
    assert np.array_equal(noisy[:, 7], context[:, amplitude]) and (noisy[:, 5:7] == 0).any()
    assert np.array_equal(encoder_inputs(windows, context, floored=False)[1], quiet)


def test_encoders_built_before_an_input_changed_keep_their_inputs(beat_set):
    """A model named as before the pause-resistant rhythm embeds with the plain running means it was
    trained on, one named as before the noise floor with the differences it was trained on too, one
    named as before the P-wave gate with the ungated irregularity as well."""
    from simsearch.model.encoder import import_keras

    keras = import_keras()
    newest = Encoder(build_encoder(seed=3))
    floored, gated, older = (Encoder(keras.Model(newest.model.inputs, newest.model.outputs, name=name))
                             for name in (FLOORED_MODEL_NAME, GATED_MODEL_NAME, "beat_encoder"))
    encoders = (newest, floored, gated, older)
    assert [(e.pause_resistant, e.floored, e.gated) for e in encoders] == [
        (True, True, True), (False, True, True), (False, False, True), (False, False, False)]
    assert len({e.fingerprint for e in encoders}) == 1
    windows, context = beat_set.windows[:64], beat_set.context[:64]
    embedded = []
    for encoder in encoders:
        beat, context_in = encoder_inputs(windows, context, gated=encoder.gated, floored=encoder.floored,
                                          pause_resistant=encoder.pause_resistant)
        expected = np.asarray(encoder.model([beat, context_in], training=False))
        embedded.append(encoder.embed(windows, context))
        assert np.allclose(embedded[-1], expected, atol=1e-5)
    for newer, older_one in zip(embedded, embedded[1:]):
        assert not np.allclose(newer, older_one, atol=1e-5)


def test_sinus_pauses_barely_move_the_pause_resistant_rhythm(data_dir):
    """A few sinus pauses lengthen the plain running means around them, not the ones without rare pauses
    that pause-resistant encoders compare each interval with."""
    from simsearch.signal.beats import beats_from_record, reference_beats
    from simsearch.signal.pauses import pause_spots, with_pauses
    from simsearch.signal.records import load_record

    record_208 = load_record("208", data_dir)
    paused = with_pauses(record_208, *pause_spots(*reference_beats(record_208), record_208.fs, 0.03, seed=1))
    clean, with_them = (beats_from_record(r) for r in (record_208, paused))
    for plain, resistant in (("rr_local", "rr_local_without_pauses"),
                             ("rr_long_term_mean", "rr_long_term_mean_without_pauses")):
        columns = [CONTEXT_COLUMNS.index(c) for c in (plain, resistant)]
        moved = np.mean(np.abs(np.log(with_them.context[:, columns] / clean.context[:, columns])), axis=0)
        assert moved[1] < 0.3 * moved[0], (plain, moved)
    resistant, plain = ([encoder_inputs(b.windows, b.context, pause_resistant=flag)[1][:, 0]
                         for b in (clean, with_them)]
                        for flag in (True, False))  # the premature beat's input: previous RR over the local mean
    assert np.abs(resistant[1] - resistant[0]).mean() < 0.5 * np.abs(plain[1] - plain[0]).mean()
