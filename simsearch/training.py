"""Training the Siamese encoder: class-balanced batches, augmentation, semi-hard triplets.

Every choice tuned here (steps, margin, vote) is judged on validation records held
out of the training records by patient; DS2 is never read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .aami import AAMI_CLASSES, class_index
from .beats import MODEL_FS, WINDOW_BEFORE, Beats, beats_from_record
from .errors import AnnotationError, SimsearchError
from .records import load_record
from .encoder import CONTEXT_INPUTS, CONTEXT_WEIGHT
from .vote import PRIOR_ALPHA, VOTE_K

TRAIN_CLASSES = ("N", "S", "V", "F")
"""Q is too rare in MIT-BIH (a few dozen unpaced beats) to learn from."""
DS1_VALIDATION = ("106", "112", "209", "220")
"""DS1 records held out for early stopping: they hold half of DS1's SVEB and a
quarter of its VEB, from patients the training batches never see."""


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings; the defaults are those chosen by cross-validation inside DS1
    (scripts/cross_validate.py).

    Held-out scores rise for a few hundred steps and then fall as the encoder learns
    the training patients' own beat shapes, hence the short run (300 steps of a
    500-step cosine schedule) with a low learning rate and dropout.
    """

    steps: int = 300
    decay_steps: int | None = 500
    """Length of the cosine learning-rate schedule (default: ``steps``); a run may stop
    before its schedule ends, as the cross-validated number of steps does."""
    beats_per_class: int = 48
    margin: float = 0.4
    learning_rate: float = 3e-4
    eval_every: int = 50
    patience: int = 20
    k: int = VOTE_K
    prior_alpha: float = PRIOR_ALPHA
    sveb_as_normal: bool = True
    """Count SVEB as normal in the loss: the learned shape then only tells supraventricular
    from ventricular and fusion beats, and timing (the fixed context part of the
    embedding) alone separates premature supraventricular beats from normal ones: a
    supraventricular premature beat mostly looks like its patient's normal beats, and
    learning the few training patients' SVEB shapes does not carry over to new patients.
    Cross-validation inside DS1 (300 steps, context weighed 4x): 81.8 against 79.8 with
    SVEB a class of its own. It replaced giving SVEB examples a normal beat's shape, which
    no longer changed the score (80.6 without, 80.5 with)."""
    lstm_units: int = 48
    dropout: float = 0.3
    context_weight: float = CONTEXT_WEIGHT
    """Weight of the fixed context part of the embedding the trained encoder ships with."""
    loss_context_weight: float = 1.0
    """Its weight while training: lower, so the triplet loss still asks the learned shape
    part to separate classes that timing alone would already pull apart."""
    context_inputs: int = CONTEXT_INPUTS
    seed: int = 0


@dataclass
class BeatSet:
    """Beats of many records stacked: windows, context, class positions, record names."""

    windows: np.ndarray
    context: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    @classmethod
    def stack(cls, beats: Sequence[Beats]) -> "BeatSet":
        labeled = [b.take(np.flatnonzero(b.aami != "")) for b in beats]
        if not sum(len(b) for b in labeled):
            raise AnnotationError("no labeled beats to learn from: the records need reference annotations")
        return cls(
            np.concatenate([b.windows for b in labeled]),
            np.concatenate([b.context for b in labeled]),
            np.concatenate([class_index(b.aami) for b in labeled]),
            np.concatenate([np.full(len(b), b.record) for b in labeled]),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: np.ndarray) -> "BeatSet":
        return BeatSet(self.windows[rows], self.context[rows], self.labels[rows], self.groups[rows])


@dataclass
class TrainingResult:
    model: object
    best_step: int
    best_score: float
    history: list[dict] = field(default_factory=list)


def load_beats(records: Sequence[str], data_dir, progress: Callable[[str], None] | None = None) -> list[Beats]:
    """Reference-annotated beats of each record, at the model's rate."""
    out = []
    for name in records:
        out.append(beats_from_record(load_record(name, data_dir, fs=MODEL_FS)))
        if progress:
            progress(name)
    return out


def split_validation(records: Sequence[str]) -> tuple[list[str], list[str]]:
    """Patient-disjoint train/validation split of the training records.

    DS1 uses :data:`DS1_VALIDATION`; other lists hold out every fifth record (none
    when fewer than five records are given).
    """
    records = list(records)
    if set(DS1_VALIDATION) <= set(records):
        val = [r for r in records if r in DS1_VALIDATION]
    else:
        val = records[4::5] if len(records) >= 5 else []
    return [r for r in records if r not in val], val


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


def balanced_batch(labels: np.ndarray, per_class: int, rng: np.random.Generator,
                   classes: Sequence[int]) -> np.ndarray:
    """Row indices: ``per_class`` beats of each class (with replacement when it is rare)."""
    rows = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        if pool.size:
            rows.append(rng.choice(pool, size=per_class, replace=pool.size < per_class))
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


def validation_score(encoder_model, train: BeatSet, val: BeatSet, k: int, alpha: float) -> dict:
    """kNN vote of validation beats against an index of training beats, as `evaluate` does."""
    from .encoder import Encoder
    from .evaluation import knn_predict, nsv_score
    from .metrics import class_metrics, confusion_matrix, precision_at_k

    encoder = Encoder(encoder_model)
    pred, neighbor_classes = knn_predict(encoder.embed(train.windows, train.context), train.labels,
                                         encoder.embed(val.windows, val.context), k, alpha)
    metrics = class_metrics(confusion_matrix(val.labels, pred))
    return {"score": nsv_score(metrics), "p_at_k": precision_at_k(val.labels, neighbor_classes, k)["macro_NSV"],
            **{f"{c}_{key}": metrics["classes"][c][key] for c in ("N", "S", "V") for key in ("se", "ppv")}}


def train_encoder(train: BeatSet, val: BeatSet | None, config: TrainingConfig = TrainingConfig(),
                  on_step: Callable[[int, dict | None], None] | None = None,
                  checkpoint: Callable[[object], dict] | None = None) -> TrainingResult:
    """Train a fresh encoder; keep the weights with the best validation score.

    Every ``config.eval_every`` steps ``checkpoint(model)`` scores the model (a dict
    with a "score"); by default that is :func:`validation_score` on ``val``. Without
    either it trains ``config.steps`` steps and keeps the last weights.
    """
    if checkpoint is None and val is not None and len(val):
        def checkpoint(model):
            return validation_score(model, train, val, config.k, config.prior_alpha)

    from .encoder import build_encoder, encoder_inputs, import_keras

    keras = import_keras()
    import tensorflow as tf

    rng = np.random.default_rng(config.seed)
    def encoder_with(context_weight: float):
        return build_encoder(lstm_units=config.lstm_units, dropout=config.dropout, context_weight=context_weight,
                             context_inputs=config.context_inputs, seed=config.seed)

    model = encoder_with(config.loss_context_weight)

    def shipped(trained):
        """The trained weights in the encoder as it is shipped (its own context weight)."""
        if config.context_weight == config.loss_context_weight:
            return trained
        encoder = encoder_with(config.context_weight)
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
    best = TrainingResult(model, config.steps, float("-inf"))
    best_weights = None
    stale = 0
    losses = []
    for i in range(1, config.steps + 1):
        rows = balanced_batch(train.labels, config.beats_per_class, rng, classes)
        windows, context = augment(train.windows[rows], train.context[rows], rng)
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


def train_and_save(out_path, records: Sequence[str], data_dir, *, val_records: Sequence[str] | None = None,
                   config: TrainingConfig = TrainingConfig(), progress: bool = False) -> dict:
    """Train on ``records`` (validation: ``val_records``, or a patient-disjoint split when None).

    Writes the encoder to ``out_path`` and a JSON report beside it (``.json``), each
    written to a temporary file first and renamed, so a failed run leaves nothing.
    """
    import json
    import os
    import time
    from pathlib import Path

    from .encoder import Encoder
    from .progress import progress_bar

    if val_records is None:
        train_names, val_names = split_validation(records)
    else:
        val_names = list(val_records)
        train_names = [r for r in records if r not in set(val_names)]
    if not train_names:
        raise SimsearchError("no training records left after the validation split")
    start = time.perf_counter()
    with progress_bar("reading", len(train_names) + len(val_names), enabled=progress) as advance:
        train = BeatSet.stack(load_beats(train_names, data_dir, advance))
        val = BeatSet.stack(load_beats(val_names, data_dir, advance)) if val_names else None
    with progress_bar("training", config.steps, enabled=progress) as advance:
        def on_step(i: int, report: dict | None) -> None:
            advance(f"val score {report['score']:.1f}" if report else "")

        result = train_encoder(train, val, config, on_step)
    encoder = Encoder(result.model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "fingerprint": encoder.fingerprint, "train_records": train_names, "val_records": val_names,
        "train_beats": len(train), "val_beats": len(val) if val else 0,
        "best_step": result.best_step, "best_score": result.best_score if val else None,
        "train_seconds": round(time.perf_counter() - start, 1),
        "config": config.__dict__, "history": result.history,
    }
    tmp_model = out_path.with_name(f".{out_path.name}.tmp.keras")
    try:
        encoder.save(tmp_model)
        os.replace(tmp_model, out_path)
    finally:
        tmp_model.unlink(missing_ok=True)
    report_path = out_path.with_suffix(".json")
    tmp_report = report_path.with_name(f".{report_path.name}.tmp")
    tmp_report.write_text(json.dumps(report, indent=2))
    os.replace(tmp_report, report_path)
    return report


def patient_folds(beats: BeatSet, n_folds: int) -> list[list[str]]:
    """Deal records into ``n_folds`` folds, stratified by their share of the rare classes.

    Records are ranked by their summed share of all S, V and F beats and dealt in a
    snake order (0, 1, ..., n-1, n-1, ..., 0, ...), so every fold gets some of the
    records rich in rare beats and as many records as the others. Deterministic.
    """
    records = list(dict.fromkeys(str(g) for g in beats.groups))
    rare = [AAMI_CLASSES.index(c) for c in ("S", "V", "F")]
    counts = np.array([[np.sum((beats.groups == r) & (beats.labels == c)) for c in rare] for r in records], float)
    richness = (counts / np.maximum(counts.sum(axis=0), 1.0)).sum(axis=1)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for rank, row in enumerate(np.argsort(-richness, kind="stable")):
        turn, position = divmod(rank, n_folds)
        folds[position if turn % 2 == 0 else n_folds - 1 - position].append(records[row])
    return folds


def cross_validate(beats: BeatSet, config: TrainingConfig = TrainingConfig(), n_folds: int = 4, k_max: int = 100,
                   progress: bool = False) -> dict:
    """Patient-disjoint cross-validation inside the training records.

    Each fold's records are held out in turn; at every checkpoint the held-out beats'
    ``k_max`` nearest training beats are kept, so any vote setting (k <= k_max,
    prior strength) can be scored afterwards on all records pooled, by
    :func:`cv_scores`, without training again.
    """
    from .encoder import Encoder
    from .evaluation import knn_search
    from .progress import progress_bar

    folds = patient_folds(beats, n_folds)
    checkpoints: dict[int, dict[str, list]] = {}
    with progress_bar("cross-validation", n_folds * config.steps, enabled=progress) as advance:
        for fold in folds:
            held_out = np.isin(beats.groups, fold)
            train, val = beats.subset(~held_out), beats.subset(held_out)

            def keep_neighbors(model, train=train, val=val) -> dict:
                encoder = Encoder(model)
                distances, nn = knn_search(encoder.embed(train.windows, train.context),
                                           encoder.embed(val.windows, val.context),
                                           k_max)
                return {"score": 0.0, "neighbors": (val.labels, train.labels[nn], distances,
                                                    np.bincount(train.labels, minlength=len(AAMI_CLASSES)))}

            run = train_encoder(train, None, replace(config, patience=config.steps), lambda i, r: advance(),
                                checkpoint=keep_neighbors)
            for report in run.history:
                slot = checkpoints.setdefault(report["step"], {"truth": [], "classes": [], "distances": [],
                                                               "counts": []})
                for key, value in zip(("truth", "classes", "distances", "counts"), report["neighbors"]):
                    slot[key].append(value)
    return {"folds": folds, "checkpoints": checkpoints}


def cv_scores(cv: dict, k: int, alpha: float, boosted: tuple[str, ...]) -> dict[int, dict]:
    """EC57 figures pooled over all held-out records, per checkpoint step, for one vote setting."""
    from .evaluation import nsv_score, vote_predict
    from .metrics import class_metrics, confusion_matrix

    out = {}
    for step, slot in sorted(cv["checkpoints"].items()):
        matrix = sum(confusion_matrix(truth, vote_predict(classes, distances, counts, k, alpha, boosted))
                     for truth, classes, distances, counts in zip(slot["truth"], slot["classes"], slot["distances"],
                                                                  slot["counts"]))
        metrics = class_metrics(matrix)
        out[step] = {"score": nsv_score(metrics), **metrics}
    return out
