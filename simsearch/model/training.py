"""Training the Siamese encoder: class-balanced batches, augmentation, semi-hard triplets.

The loop only trains; what a checkpoint is worth is asked of a ``checkpoint``
callable, which model selection (:mod:`simsearch.evaluation.selection`) supplies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..aami import AAMI_CLASSES
from ..signal.beats import MODEL_FS, WINDOW_BEFORE
from .datasets import TRAINING_NOISES, BeatSet
from .encoder import (
    CONTEXT_INPUTS,
    CONTEXT_WEIGHT,
    FIXED_INPUT_WEIGHTS,
    Encoder,
    build_encoder,
    encoder_inputs,
    import_keras,
)
from .rhythms import source_record

TRAIN_CLASSES = ("N", "S", "V", "F")
"""Q is too rare in MIT-BIH (a few dozen unpaced beats) to learn from."""


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings; the defaults are those chosen by cross-validation inside DS1
    (scripts/cross_validate.py).

    The run is short (600 steps of a 1000-step cosine schedule) with a low learning rate
    and dropout: held-out scores stop rising after a few hundred steps, as the encoder
    starts to learn the training patients' own beat shapes. Chosen first (300 of 500)
    with a much older pipeline; checked again (2026-11-23) with the packaged one, both
    leads, the noisy copies and each record's class mix
    (``scripts/cross_validate_second_lead.py --weights 1.5 --seed N --set steps=S --set
    decay_steps=D``), training seeds 0 / 1 / 2 / 3:

    ============================  =================================  ==============================
    steps of schedule             mean score                         shortfall from the targets
    ============================  =================================  ==============================
    300 of 500                    88.64 / 89.54 / 89.53 / 86.97      4.88 / 3.54 / 3.24 / 7.67
    **600 of 1000**               **89.31 / 89.89 / 89.30 / 87.50**  **3.45 / 2.19 / 2.70 / 8.73**
    900 of 1500                   89.29 / 89.36                      3.58 / 3.17
    ============================  =================================  ==============================

    600 of 1000: mean score +0.33 over the four seeds, shortfall lower on three; VEB +P
    88.6 / 89.8 / 89.3 / 87.1 (seeds 0, 2, 3 against 87.1, 88.8, 86.6). Longer gains nothing.
    The simulated expert on fold encoders trained either way (``scripts/cross_validate_adaptive.py
    --suggest-seeds 1234,1,2 --seed N [--set steps=300 --set decay_steps=500]``), shortfall from
    its targets, seeds 0 / 1 / 2 / 3, 600 of 1000 against 300 of 500: with 5 labels per record 7.49 /
    6.46 / 9.87 / 7.91 against 9.94 / 6.83 / 9.26 / 9.21, with 10 6.01 / 3.86 / 4.58 / 7.47 against
    7.82 / 5.25 / 5.68 / 5.94, with 20 4.74 / 4.93 / 4.08 / 4.37 against 4.14 / 2.78 / 4.07 / 4.60 (mean
    4.53 against 3.90: the one figure that prefers the short run, by less than a seed's spread).
    With ``em`` added at 12 dB to the held-out patients (``--setups em12dB``, measured after DS2's noise
    figures were in, a check: see docs/measurements.md, "Noise"), seeds 0 / 1: 83.85 / 83.13 against 80.81 /
    81.65, VEB +P 74.8 / 75.6 against 68.0 / 71.9.
    Measured beside it and not adopted, all within a seed's spread (seeds 0 / 1, score and
    shortfall): 64 LSTM units 88.86 / 89.03 (3.68 / 2.93), 96 beats per class 88.86 / 89.54
    (4.30 / 2.65); with 600 of 1000 steps, margin 0.3 89.40 / 89.78 (3.39 / 2.20), margin 0.5
    89.26 / 89.71 (3.64 / 2.42), learning rate 5e-4 89.50 / 89.89 (3.75 / 2.96), dropout 0.2
    89.43 / 89.78 (3.12 / 2.25), dropout 0.4 89.26 / 89.95 (4.13 / 2.42).
    Training takes twice as long (about a minute on 2 cores).
    """

    steps: int = 600
    decay_steps: int | None = 1000
    """Length of the cosine learning-rate schedule (default: ``steps``); a run may stop
    before its schedule ends, as the cross-validated number of steps does."""
    beats_per_class: int = 48
    margin: float = 0.4
    learning_rate: float = 3e-4
    eval_every: int = 50
    patience: int = 20
    sveb_as_normal: bool = True
    """Count SVEB as normal in the loss: the learned shape then only tells supraventricular
    from ventricular and fusion beats, and timing (the fixed context part of the
    embedding) alone separates premature supraventricular beats from normal ones: a
    supraventricular premature beat mostly looks like its patient's normal beats, and
    learning the few training patients' SVEB shapes does not carry over to new patients.
    Cross-validation inside DS1 (300 steps, context weighed 4x): 81.8 against 79.8 with
    SVEB a class of its own. It replaced giving SVEB examples a normal beat's shape, which
    no longer changed the score (80.6 without, 80.5 with). Checked again with the
    two-cluster irregularity (:func:`simsearch.signal.beats.two_cluster_spread`) and
    synthetic rhythms: mean of real and synthetic scores 79.7 against 75.4 with SVEB a
    class of its own (real SVEB Se 61 against 38)."""
    lstm_units: int = 48
    dropout: float = 0.3
    context_weight: float = CONTEXT_WEIGHT
    """Weight of the fixed context part of the embedding the trained encoder ships with."""
    fixed_input_weights: tuple[float, ...] = FIXED_INPUT_WEIGHTS
    """Each context input's own weight in that fixed part (times ``context_weight``), see
    :data:`simsearch.model.encoder.FIXED_INPUT_WEIGHTS`."""
    loss_context_weight: float = 1.0
    """Its weight while training: lower, so the triplet loss still asks the learned shape
    part to separate classes that timing alone would already pull apart."""
    context_inputs: int = CONTEXT_INPUTS
    band_limit: float = 0.0
    """Share of training windows low-passed as if recorded at 128 or 250 Hz and resampled
    to 360 Hz (:func:`band_limited`), so shapes learned at MIT-BIH's rate carry over to
    recordings at other rates. Off: not needed. Cross-validation inside DS1 with the
    held-out patients resampled (``scripts/cross_validate.py --setups 128Hz,250Hz``)
    scores them 81.0 at 128 Hz and 81.2 at 250 Hz against 81.4 as recorded, without it:
    beats are cut from a signal band-limited to 40 Hz, which a Holter's rate keeps."""
    simulated_rhythms: bool = False
    """Train also on synthetic rhythms re-sequenced from the training patients' beats
    (:mod:`simsearch.model.rhythms`); the callers that load the records add them.
    Off: cross-validation inside DS1 with synthetic rhythms scored 75.2 (real 82.1) with
    them and the tenth (sinus) input, against 75.2 (real 81.9) for the packaged settings;
    with SVEB a class of its own as well, 74.8 (real 81.7). Checked again (2026-11-23) with both
    leads (``scripts/cross_validate_second_lead.py --weights 1.5 --set simulated_rhythms=true``, which
    until then trained on them always, unlike the packaged encoder), seeds 0 / 1 / 2 / 3: mean score
    87.75 / 88.05 / 87.57 / 87.01 against 87.49 / 88.10 / 86.98 / 85.28 without, shortfall 10.82 / 7.95 /
    9.44 / 10.29 against 9.03 / 5.66 / 9.44 / 11.46; beside the noisy copies
    (:attr:`noise_snrs_db`) 88.69 / 87.90 / 88.35 / 88.61 against 88.50 / 88.74 / 88.52 / 86.99, shortfall
    5.70 / 7.50 / 5.01 / 5.18 against 5.10 / 4.03 / 3.31 / 5.51. Within a seed's spread either way: kept off."""
    noise_records: tuple[str, ...] = TRAINING_NOISES
    """The nstdb noise records the noisy copies (:attr:`noise_snrs_db`) take their noise from, one per
    record in turn (:func:`simsearch.model.datasets.noisy_beats`); why these:
    :data:`~simsearch.model.datasets.TRAINING_NOISES`."""
    noise_snrs_db: tuple[float, ...] = (12.0,)
    """Train also on a noisy copy of each training record per SNR here (dB): a stretch of nstdb's
    electrode-motion or muscle noise added (:func:`simsearch.model.datasets.noisy_beats`). The callers
    that load the records add them, from an nstdb directory (none without one).

    Cross-validation inside DS1 (``scripts/cross_validate_second_lead.py --weights 1.5 --setups 257Hz
    [--seed N]``, both leads, α 0.4, the training as packaged otherwise), training seeds 0 / 1 / 2 / 3:

    ===================  =================================  =================================
    training             mean score                         shortfall from the targets
    ===================  =================================  =================================
    no noisy copy        87.49 / 88.10 / 86.98 / 85.28      9.03 / 5.66 / 9.44 / 11.46
    **one at 12 dB**     **88.50 / 88.74 / 88.52 / 86.99**  **5.10 / 4.03 / 3.31 / 5.51**
    two, 18 and 6 dB     88.27 / 88.58                      5.88 / 3.51
    white noise, 12 dB   87.19 / 86.64                      10.66 / 12.85
    ===================  =================================  =================================

    At 12 dB, against none: VEB +P 86.9 / 88.0 / 88.7 / 87.3 against 83.0 / 86.3 / 85.0 / 82.8, SVEB Se
    81.9 / 81.9 / 81.7 / 80.3 against 81.7 / 82.6 / 77.5 / 79.8, N Se +0.2 to +0.6; the held-out patients
    resampled to 257 Hz alike (88.48 / 88.70 / 88.52 / 87.04 against 87.50 / 88.06 / 86.96 / 85.29). Most of
    the VEB +P comes from record 230, whose pre-excited normal beats were called V 187-295 times at seeds 0-3
    and are 63-87 times; the noisy records (203, 108) move by under 20 beats either way. The white-noise row
    (Gaussian noise in place of nstdb's, same SNR; the encoders of that row also trained on synthetic
    rhythms, whose own figures are 87.75 / 88.05) says it is the recorded noise, not any noise, that helps.
    Two copies take twice the reading for no gain; one at 12 dB."""
    patient_balance: float = 1.0
    """A patient's share of its class's training draws: its beats of that class to this power
    (:func:`balanced_batch`; 1: every beat alike). Kept at 1: drawing by patient (0.5) did not
    carry the vote's record balance (:data:`~simsearch.label.vote.RECORD_BALANCE`) over to
    training (``scripts/cross_validate_second_lead.py --set patient_balance=0.5``, seed 0, both
    leads, α 0.4, vote balanced: score 86.29 against 87.21, shortfall 16.59 against 11.39; VEB +P
    78.3 against 80.7, SVEB Se 77.1 against 79.9)."""
    seed: int = 0


@dataclass
class TrainingResult:
    model: object
    best_step: int
    best_score: float
    history: list[dict] = field(default_factory=list)


def augment(windows: np.ndarray, context: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random amplitude scaling, baseline wander, noise and small time warps; RR jitter.

    The warp stretches time around the R-peak so the fiducial point stays put.
    """
    n, length = windows.shape
    scale = np.std(windows, axis=1, keepdims=True) + 1e-6
    t = np.arange(length, dtype=np.float32)
    warp = rng.uniform(0.9, 1.1, size=(n, 1)).astype(np.float32)
    src = np.clip(WINDOW_BEFORE + (t[None, :] - WINDOW_BEFORE) * warp, 0, length - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, length - 1)
    frac = src - lo
    rows = np.arange(n)[:, None]
    out = windows[rows, lo] * (1 - frac) + windows[rows, hi] * frac
    freq = rng.uniform(0.1, 0.6, size=(n, 1)) / MODEL_FS
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    wander = rng.uniform(0, 0.3, size=(n, 1)) * np.sin(2 * np.pi * freq * t[None, :] + phase)
    noise = rng.normal(0, 1, size=out.shape) * rng.uniform(0, 0.05, size=(n, 1))
    out = out * rng.uniform(0.7, 1.3, size=(n, 1)) + scale * (wander + noise)
    context = context.copy()
    context[:, :2] *= np.exp(rng.normal(0, 0.03, size=(n, 2)))
    return out.astype(np.float32), context.astype(np.float32)


LOWER_RATES = (128.0, 250.0)
"""Sampling rates whose band limit :func:`band_limited` imitates (AHA/ESC at 250 Hz, many Holters at 128 Hz)."""


def band_limited(windows: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``share`` of ``windows`` with everything above the Nyquist frequency of a
    lower rate removed (FFT truncation at 0.45 of that rate, as a resampler's anti-alias filter)."""
    pick = rng.random(len(windows)) < share
    if not pick.any():
        return windows
    rates = rng.choice(LOWER_RATES, size=int(pick.sum()))
    spectrum = np.fft.rfft(windows[pick], axis=1)
    freqs = np.fft.rfftfreq(windows.shape[1], d=1.0 / MODEL_FS)
    spectrum[freqs[None, :] > 0.45 * rates[:, None]] = 0
    out = windows.copy()
    out[pick] = np.fft.irfft(spectrum, n=windows.shape[1], axis=1)
    return out.astype(np.float32)


def balanced_batch(labels: np.ndarray, per_class: int, rng: np.random.Generator,
                   classes: Sequence[int], patients: np.ndarray | None = None,
                   patient_balance: float = 1.0) -> np.ndarray:
    """Row indices: ``per_class`` beats of each class (with replacement when it is rare).

    With ``patients`` (a patient per row), a patient's share of a class's draws is its
    beats of that class to the power ``patient_balance`` (1: every beat alike; 0: every
    patient alike)."""
    rows = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        if not pool.size:
            continue
        p = None
        if patients is not None and patient_balance != 1.0:
            _, who, sizes = np.unique(patients[pool], return_inverse=True, return_counts=True)
            p = np.power(sizes[who].astype(float), patient_balance - 1.0)
            p /= p.sum()
        rows.append(rng.choice(pool, size=per_class, replace=pool.size < per_class, p=p))
    return np.concatenate(rows)


def semihard_triplet_loss(labels, embeddings, margin: float):
    """FaceNet's online semi-hard triplet loss over every anchor-positive pair in the batch.

    For each pair the negative is the closest one still farther than the positive
    (semi-hard); where none exists, the farthest closer one. Embeddings are unit
    vectors, so squared distance is 2 - 2 cos.
    """
    import tensorflow as tf

    sim = tf.matmul(embeddings, embeddings, transpose_b=True)
    dist = tf.maximum(2.0 - 2.0 * sim, 0.0)
    same = tf.equal(labels[:, None], labels[None, :])
    eye = tf.eye(tf.shape(labels)[0], dtype=tf.bool)
    positive = tf.logical_and(same, tf.logical_not(eye))
    negative = tf.logical_not(same)
    d_ap = dist[:, :, None]                      # (anchor, positive, 1)
    d_an = dist[:, None, :]                      # (anchor, 1, negative)
    neg = negative[:, None, :]
    big = tf.constant(1e9)
    farther = tf.logical_and(neg, d_an > d_ap)
    semihard = tf.reduce_min(tf.where(farther, d_an, big), axis=2)
    closer = tf.reduce_max(tf.where(tf.logical_and(neg, tf.logical_not(farther)), d_an, -big), axis=2)
    chosen = tf.where(semihard < big, semihard, closer)
    loss = tf.maximum(dist - chosen + margin, 0.0)
    mask = tf.cast(positive, tf.float32)
    return tf.reduce_sum(loss * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def train_encoder(train: BeatSet, config: TrainingConfig = TrainingConfig(),
                  on_step: Callable[[int, dict | None], None] | None = None,
                  checkpoint: Callable[[object], dict] | None = None) -> TrainingResult:
    """Train a fresh encoder on ``train``.

    Every ``config.eval_every`` steps ``checkpoint(model)`` scores the model (a dict
    with a "score") and the best-scoring weights are kept, stopping after
    ``config.patience`` checkpoints without improvement. Without ``checkpoint`` it
    trains ``config.steps`` steps and keeps the last weights.
    """
    keras = import_keras()
    import tensorflow as tf

    rng = np.random.default_rng(config.seed)
    def encoder_with(context_weight: float, input_weights):
        return build_encoder(lstm_units=config.lstm_units, dropout=config.dropout, context_weight=context_weight,
                             context_inputs=config.context_inputs, seed=config.seed, input_weights=input_weights)

    model = encoder_with(config.loss_context_weight, None)

    def shipped(trained):
        """The trained weights in the encoder as it is shipped (its own context weights)."""
        weights = np.asarray(config.fixed_input_weights, dtype=float)[:config.context_inputs]
        if config.context_weight == config.loss_context_weight and np.all(weights == 1.0):
            return trained
        encoder = encoder_with(config.context_weight, config.fixed_input_weights)
        encoder.set_weights(trained.get_weights())
        return encoder

    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        config.learning_rate, config.decay_steps or config.steps, alpha=0.05))
    classes = [AAMI_CLASSES.index(c) for c in TRAIN_CLASSES if (train.labels == AAMI_CLASSES.index(c)).any()]

    @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow to convert
    def step(beat, context, labels):
        with tf.GradientTape() as tape:
            emb = model({"beat": beat, "context": context}, training=True)
            loss = semihard_triplet_loss(labels, emb, config.margin)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    loss_labels = train.labels
    if config.sveb_as_normal:
        loss_labels = np.where(train.labels == AAMI_CLASSES.index("S"), AAMI_CLASSES.index("N"), train.labels)
    patients = np.array([source_record(g) for g in train.groups]) if config.patient_balance != 1.0 else None
    best = TrainingResult(model, config.steps, float("-inf"))
    best_weights = None
    stale = 0
    losses = []
    for i in range(1, config.steps + 1):
        rows = balanced_batch(train.labels, config.beats_per_class, rng, classes, patients, config.patient_balance)
        windows, context = augment(train.windows[rows], train.context[rows], rng)
        if config.band_limit:
            windows = band_limited(windows, config.band_limit, rng)
        beat, context_in = encoder_inputs(windows, context, config.context_inputs)
        losses.append(float(step(beat, context_in, tf.constant(loss_labels[rows]))))
        report = None
        if checkpoint is not None and (i % config.eval_every == 0 or i == config.steps):
            loss = round(float(np.mean(losses[-config.eval_every:])), 4)
            report = {"step": i, "loss": loss, **checkpoint(shipped(model))}
            best.history.append(report)
            if report["score"] > best.best_score:
                best.best_score, best.best_step, stale = report["score"], i, 0
                best_weights = model.get_weights()
            else:
                stale += 1
        if on_step:
            on_step(i, report)
        if stale >= config.patience:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    best.model = shipped(model)
    return best


def save_encoder(model, out_path: str | os.PathLike, report: dict) -> Path:
    """Write a trained encoder to ``out_path`` and ``report`` beside it (``.json``).

    Each is written to a temporary file and renamed, so a failed run leaves nothing half written.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_model = out_path.with_name(f".{out_path.name}.tmp.keras")
    try:
        Encoder(model).save(tmp_model)
        os.replace(tmp_model, out_path)
    finally:
        tmp_model.unlink(missing_ok=True)
    report_path = out_path.with_suffix(".json")
    tmp_report = report_path.with_name(f".{report_path.name}.tmp")
    tmp_report.write_text(json.dumps(report, indent=2))
    os.replace(tmp_report, report_path)
    return out_path
