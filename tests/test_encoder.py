"""The Keras encoder: unit embeddings, fingerprints, and a real (short) training run."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.model.encoder import Encoder, build_encoder
from simsearch.errors import EncoderMismatchError, RecordNotFoundError
from simsearch.evaluation.selection import train_and_save
from simsearch.model.datasets import BeatSet, load_beats
from simsearch.model.training import TrainingConfig, semihard_triplet_loss


@pytest.fixture(scope="module")
def beat_set(data_dir):
    return BeatSet.stack(load_beats(["119", "209"], data_dir))


def test_default_encoder_gives_deterministic_unit_vectors(beat_set):
    encoder = Encoder.load()
    vectors = encoder.embed(beat_set.windows[:300], beat_set.context[:300])
    assert vectors.shape == (300, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, encoder.embed(beat_set.windows[:300], beat_set.context[:300]))


def test_default_encoder_separates_classes_better_than_chance(beat_set):
    """Leave-one-out 1-NN within two records: the packaged model must beat the majority rate."""
    vectors = Encoder.load().embed(beat_set.windows, beat_set.context)
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    nearest = beat_set.labels[np.argmax(sim, axis=1)]
    per_class = [np.mean(nearest[beat_set.labels == c] == c) for c in np.unique(beat_set.labels)
                 if (beat_set.labels == c).sum() >= 50]
    chance = np.bincount(beat_set.labels).max() / len(beat_set)
    assert len(per_class) >= 3  # N, S (209) and V (119)
    assert min(per_class) > 0.6 and np.mean(nearest == beat_set.labels) > chance


def test_fingerprint_survives_save_and_load_and_tracks_weights(tmp_path):
    encoder = Encoder(build_encoder(seed=1))
    encoder.save(tmp_path / "a.keras")
    assert Encoder.load(tmp_path / "a.keras").fingerprint == encoder.fingerprint
    assert Encoder(build_encoder(seed=2)).fingerprint != encoder.fingerprint


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


def test_training_writes_a_model_and_report_and_is_seeded(data_dir, tmp_path):
    config = TrainingConfig(steps=30, eval_every=15, beats_per_class=16, seed=3)
    first = train_and_save(tmp_path / "a.keras", ["119", "209", "118"], data_dir, val_records=["118"], config=config)
    second = train_and_save(tmp_path / "b.keras", ["119", "209", "118"], data_dir, val_records=["118"],
                            config=config)
    assert (tmp_path / "a.keras").is_file() and (tmp_path / "a.json").is_file()
    assert first["fingerprint"] == second["fingerprint"]  # fixed seeds: the same weights
    assert first["val_records"] == ["118"] and "118" not in first["train_records"]
    assert len(first["history"]) == 2 and first["history"][0]["loss"] > 0
    assert Encoder.load(tmp_path / "a.keras").fingerprint == first["fingerprint"]
    # trained with the context at its loss weight, shipped with it at its index weight
    assert config.loss_context_weight != config.context_weight
    scales = [layer.scale for layer in Encoder.load(tmp_path / "a.keras").model.layers if hasattr(layer, "scale")]
    assert scales == [pytest.approx(config.context_weight)]


def test_patient_folds_are_disjoint_stratified_and_deterministic(data_dir):
    from simsearch.model.datasets import patient_folds

    beats = BeatSet.stack(load_beats(["119", "209", "118", "100", "208", "101"], data_dir))
    folds = patient_folds(beats, 3)
    assert folds == patient_folds(beats, 3)
    names = [r for fold in folds for r in fold]
    assert sorted(names) == sorted(set(beats.groups)) and len(names) == len(set(names))
    # the three records richest in rare beats (208, 209, 119) open three different folds
    assert {fold[0] for fold in folds} == {"208", "209", "119"}
