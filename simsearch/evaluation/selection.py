"""Model selection: validation scores while training, and cross-validation inside the training records.

Every setting of simsearch is chosen here, on patients held out of the training
records (DS1); DS2 is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..aami import AAMI_CLASSES
from ..errors import ParameterError, SimsearchError
from ..label.vote import PRIOR_ALPHA, VOTE_K
from ..model.datasets import BeatSet, load_beats, noisy_beats, patient_folds, split_validation
from ..model.encoder import (
    FIBRILLATION_GATE,
    NOISE_FLOOR,
    PAUSE_RESISTANT_MODEL_NAME,
    Encoder,
    import_keras,
    weights_fingerprint,
)
from ..model.leads import DEFAULT_LEADS, SECOND_LEAD_WEIGHT, choose_leads, side_by_side
from ..model.rhythms import RHYTHMS, SEPARATOR, is_simulated, simulate_rhythm, simulate_rhythms, source_record
from ..model.training import TrainingConfig, save_encoder, train_encoder
from ..progress import progress_bar
from ..signal.beats import (
    CONTEXT_COLUMNS,
    PAUSE_FACTOR,
    PAUSE_RARITY,
    Beats,
    beats_from_record,
    beats_in_lead,
)
from ..signal.noise import nstdb_dir
from ..signal.pauses import paused_like
from ..signal.records import Record, load_record, other_lead, resampled
from ..store.index import BeatIndex
from .classification import knn_predict, knn_search, nsv_score, record_codes, vote_predict
from .metrics import class_metrics, confusion_matrix, precision_at_k
from .noise import noise_leads, noisy_lead


def validation_score(encoder_model, train: BeatSet, val: BeatSet, k: int = VOTE_K, alpha: float = PRIOR_ALPHA) -> dict:
    """kNN vote of validation beats against an index of training beats, as `evaluate` does."""
    encoder = Encoder(encoder_model)
    pred, neighbor_classes = knn_predict(encoder.embed(train.windows, train.context), train.labels, train.groups,
                                         encoder.embed(val.windows, val.context), k, alpha)
    metrics = class_metrics(confusion_matrix(val.labels, pred))
    return {"score": nsv_score(metrics), "p_at_k": precision_at_k(val.labels, neighbor_classes, k)["macro_NSV"],
            **{f"{c}_{key}": metrics["classes"][c][key] for c in ("N", "S", "V") for key in ("se", "ppv")}}


def training_config(settings: Sequence[str] = (), **fixed) -> TrainingConfig:
    """The packaged training settings with ``fixed`` ones and the scripts' ``--set FIELD=VALUE`` overrides
    (``settings``; JSON values: ``steps=600``, ``noise_records=["ma"]``), the latter last.

    Raises
    ------
    SimsearchError
        For an item without ``=``, a field :class:`TrainingConfig` lacks, or a value that is not JSON.
    """
    overrides = dict(fixed)
    fields = TrainingConfig.__dataclass_fields__
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SimsearchError(f"{item!r}: expected FIELD=VALUE with a TrainingConfig field "
                                 f"({', '.join(fields)})")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise SimsearchError(f"{item!r}: the value is not JSON (a list is written [\"ma\"])") from None
    return replace(TrainingConfig(), **overrides)


def add_fold_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the scripts that work on the folds of :func:`fold_indexes` (their encoders and indexes kept
    in ``--work-dir``): ``--data-dir``, ``--work-dir``, ``--folds``, ``--seed``, ``--set`` and ``--noise-dir``."""
    parser.add_argument("--data-dir", default=os.environ.get("SIMSEARCH_DATA", "../shared/data/mitdb"))
    parser.add_argument("--work-dir", required=True, help="where the folds' encoders and indexes are kept")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="training seed of the folds' encoders")
    parser.add_argument("--set", action="append", default=[], type=training_setting, metavar="FIELD=VALUE",
                        help="override another TrainingConfig field of the folds' encoders (JSON value)")
    parser.add_argument("--noise-dir", default=None, help="nstdb directory of the training noise (and of any noise "
                                                          "added; default: nstdb beside --data-dir)")


def training_setting(item: str) -> str:
    """The scripts' ``type`` of ``--set``: an item :func:`training_config` refuses is a usage error, one
    line and exit code 2 before anything is trained, as argparse reports any other bad argument.

    Raises
    ------
    argparse.ArgumentTypeError
        With :func:`training_config`'s reason.
    """
    try:
        training_config([item])
    except SimsearchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return item


def with_noise(config: TrainingConfig, noise_dir) -> TrainingConfig:
    """``config`` as training without an nstdb directory (``noise_dir`` None) follows it: no noisy copies."""
    return config if noise_dir is not None else replace(config, noise_snrs_db=())


def train_and_save(out_path, records: Sequence[str], data_dir, *, val_records: Sequence[str] | None = None,
                   config: TrainingConfig = TrainingConfig(), noise_dir=None, progress: bool = False) -> dict:
    """Train on ``records`` (validation: ``val_records``, or a patient-disjoint split when None), and on
    noisy copies of the training records (``config.noise_snrs_db``) with the noise records of the nstdb
    directory ``noise_dir`` (none without it: the report's configuration then names no SNR).

    Writes the encoder to ``out_path`` and a JSON report beside it (``.json``), each
    written to a temporary file first and renamed, so a failed run leaves nothing.
    """
    config = with_noise(config, noise_dir)
    if val_records is None:
        train_names, val_names = split_validation(records)
    else:
        val_names = list(val_records)
        train_names = [r for r in records if r not in set(val_names)]
    if not train_names:
        raise SimsearchError("no training records left after the validation split")
    start = time.perf_counter()
    copies = len(train_names) if config.noise_snrs_db else 0
    with progress_bar("reading", len(train_names) + len(val_names) + copies, enabled=progress) as advance:
        train_beats = load_beats(train_names, data_dir, advance)
        noisy = noisy_beats(train_names, data_dir, noise_dir, config.noise_snrs_db, advance,
                            config.noise_records) if copies else []
        train = BeatSet.stack(train_beats + noisy + (simulate_rhythms(train_beats, seed=config.seed)
                                                     if config.simulated_rhythms else []))
        val = BeatSet.stack(load_beats(val_names, data_dir, advance)) if val_names else None
    with progress_bar("training", config.steps, enabled=progress) as advance:
        def on_step(i: int, report: dict | None) -> None:
            advance(f"val score {report['score']:.1f}" if report else "")

        checkpoint = (lambda model: validation_score(model, train, val)) if val is not None else None
        result = train_encoder(train, config, on_step, checkpoint)
    report = {
        "fingerprint": weights_fingerprint(result.model), "train_records": train_names, "val_records": val_names,
        "train_beats": len(train), "noisy_beats": sum(len(b) for b in noisy), "val_beats": len(val) if val else 0,
        "best_step": result.best_step, "best_score": result.best_score if val else None,
        "train_seconds": round(time.perf_counter() - start, 1),
        "config": config.__dict__, "history": result.history,
    }
    save_encoder(result.model, out_path, report)
    return report


def cross_validate(beats: BeatSet, config: TrainingConfig = TrainingConfig(), n_folds: int = 4, k_max: int = 100,
                   progress: bool = False, simulated: BeatSet | None = None, index_simulated: bool = False,
                   fixed_weights: Mapping[str, np.ndarray] | None = None, setups: Mapping[str, BeatSet] | None = None,
                   noisy: BeatSet | None = None) -> dict:
    """Patient-disjoint cross-validation inside the training records.

    Each fold's records are held out in turn; at every checkpoint the held-out beats'
    ``k_max`` nearest training beats are kept, so any vote setting (k <= k_max,
    prior strength) can be scored afterwards on all records pooled, by
    :func:`cv_scores`, without training again.

    ``simulated`` holds synthetic rhythms (:mod:`simsearch.model.rhythms`) built from the
    same patients' beats: each fold scores those of its held-out patients beside their
    real records, and, with ``config.simulated_rhythms``, trains on those of the others.
    No synthetic record ever crosses from a held-out patient into training.

    The kNN index holds the training fold's real beats, as a deployed index does; with
    ``index_simulated`` it also holds the training fold's synthetic records (as an index
    built with simulated rhythms does), and the vote's class counts are those of all
    indexed beats. Not adopted for the product (measured with the earlier irregularity input,
    the median of successive differences): with it (4 folds, 300 steps, vote k=100,
    alpha 0.25, boost SV) the mean score rose to 82.2 against 75.2, but only through the
    synthetic records (88.1 against 68.5; SVEB Se 89 / +P 91; frequent premature atrial
    beats 87 %, atrial bigeminy 89 %, the record-232 pattern 92 %), which the index now
    holds rhythms made by the very generator that made them, so that figure is an upper
    bound; the real records fell to 76.2 against 81.9 (SVEB Se 73 / +P 29 against 66 / 68,
    VEB Se 83 / +P 79 against 90 / 72, N Se 95.3 against 96.6): the synthetic premature
    beats draw the real records' irregular normal beats to SVEB.

    ``fixed_weights``: the same checkpoints are also scored with the fixed context part of the embedding
    scaled per input by each of these (:func:`fixed_weight_lists`, recombined by :func:`fixed_weighted`),
    in ``"variants"`` by name.

    ``noisy``: noisy copies of the same patients' records (:func:`~simsearch.model.datasets.noisy_beats`),
    trained on beside the training fold's real beats, as the packaged encoder trains on its records'.

    ``setups``: the same patients' beats recorded otherwise (another lead, another
    sampling rate: :func:`recorded_otherwise`), by name; each fold's held-out patients
    in each setup are voted on by the same index of the training fold, as a deployed
    index meets recordings unlike its own, in ``"setups"`` by name.
    """
    folds = patient_folds(beats, n_folds)
    checkpoints: dict[int, dict[str, list]] = {}
    fixed_weights = dict(fixed_weights or {})
    variants: dict[str, dict[int, dict[str, list]]] = {name: {} for name in fixed_weights}
    setups = dict(setups or {})
    setup_checkpoints: dict[str, dict[int, dict[str, list]]] = {name: {} for name in setups}
    sources = np.array([source_record(g) for g in simulated.groups]) if simulated is not None else None
    with progress_bar("cross-validation", n_folds * config.steps, enabled=progress) as advance:
        for fold in folds:
            held_out = np.isin(beats.groups, fold)
            train, val = beats.subset(~held_out), beats.subset(held_out)
            indexed = train
            if noisy is not None:
                train = concatenate(train, noisy.subset(~np.isin(noisy.groups, fold)))
            if simulated is not None:
                sim_held_out = np.isin(sources, fold)
                val = concatenate(val, simulated.subset(sim_held_out))
                if config.simulated_rhythms:
                    train = concatenate(train, simulated.subset(~sim_held_out))
                if index_simulated:
                    indexed = concatenate(indexed, simulated.subset(~sim_held_out))
            counts = np.bincount(indexed.labels, minlength=len(AAMI_CLASSES))
            patients = record_codes([source_record(g) for g in indexed.groups])  # a synthetic record is its patient's

            held_out_setups = {name: other.subset(np.isin([source_record(g) for g in other.groups], fold))
                               for name, other in setups.items()}

            def keep_neighbors(model, indexed=indexed, val=val, counts=counts, held_out_setups=held_out_setups,
                               patients=patients) -> dict:
                encoder = Encoder(model)
                index = encoder.embed(indexed.windows, indexed.context)
                distances, nn = knn_search(index, encoder.embed(val.windows, val.context), k_max)
                out = {"score": 0.0, "neighbors": (val.labels, indexed.labels[nn], distances, counts, val.groups,
                                                   patients[nn])}
                for name, other in held_out_setups.items():
                    distances, nn = knn_search(index, encoder.embed(other.windows, other.context), k_max)
                    out[("setup", name)] = (other.labels, indexed.labels[nn], distances, counts, other.groups,
                                            patients[nn])
                if fixed_weights:
                    base, queries = (shape_and_inputs(encoder, b.windows, b.context) for b in (indexed, val))
                for name, scale in fixed_weights.items():
                    distances, nn = knn_search(fixed_weighted(*base, scale), fixed_weighted(*queries, scale), k_max)
                    out[("variant", name)] = (val.labels, indexed.labels[nn], distances, counts, val.groups,
                                              patients[nn])
                return out

            run = train_encoder(train, replace(config, patience=config.steps), lambda i, r: advance(),
                                checkpoint=keep_neighbors)
            for report in run.history:
                slot = checkpoints.setdefault(report["step"], {key: [] for key in CV_KEYS})
                for key, value in zip(CV_KEYS, report["neighbors"]):
                    slot[key].append(value)
                for store, tag in [(variants[name], ("variant", name)) for name in fixed_weights] + \
                                  [(setup_checkpoints[name], ("setup", name)) for name in setups]:
                    slot = store.setdefault(report["step"], {key: [] for key in CV_KEYS})
                    for key, value in zip(CV_KEYS, report[tag]):
                        slot[key].append(value)
    return {"folds": folds, "checkpoints": checkpoints, "variants": variants, "setups": setup_checkpoints}


def fold_indexes(records: Sequence[str], data_dir, work_dir, config: TrainingConfig = TrainingConfig(),
                 n_folds: int = 4, progress: bool = False, leads: str = DEFAULT_LEADS,
                 noise_dir=None) -> list[tuple[list[str], BeatIndex]]:
    """Per patient-disjoint fold of ``records`` (:func:`patient_folds`): its records, and an
    index of the other folds' records (of ``leads``, see :class:`BeatIndex`) embedded by an
    encoder trained on those only.

    What the protocols that need a whole index (the simulated expert of
    :mod:`simsearch.evaluation.adaptive`) are cross-validated with inside DS1. Encoders
    and indexes are kept in ``work_dir`` (``fold<i>.keras``, ``fold<i>/``, ``fold<i>-both/``) and reused
    while the training settings, records and the encoder's inputs (context columns, model name, P-wave
    gate) are the same (``folds.json`` records them): encoders trained before an input changed are trained again.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = with_noise(config, noise_dir)
    leads = choose_leads(leads, records, data_dir)
    folds = patient_folds(BeatSet.stack(load_beats(records, data_dir)), n_folds)
    inputs = [list(CONTEXT_COLUMNS), PAUSE_RESISTANT_MODEL_NAME, list(FIBRILLATION_GATE), NOISE_FLOOR,
              PAUSE_FACTOR, PAUSE_RARITY]  # beats -> inputs
    wanted = {"config": config.__dict__, "folds": folds, "inputs": inputs}
    stamp = work_dir / "folds.json"
    fresh = not stamp.exists() or json.loads(stamp.read_text()) != json.loads(json.dumps(wanted))
    out = []
    with progress_bar("fold indexes", n_folds, enabled=progress) as advance:
        for number, fold in enumerate(folds):
            model = work_dir / f"fold{number}.keras"
            index_dir = work_dir / (f"fold{number}" if leads == "one" else f"fold{number}-{leads}")
            training = [r for r in records if r not in fold]
            retrain = fresh or not model.exists()
            if retrain:
                train_and_save(model, training, data_dir, val_records=[], config=config, noise_dir=noise_dir)
            if retrain or not index_dir.exists():
                BeatIndex.build(index_dir, training, data_dir, encoder=model, leads=leads)
            out.append((list(fold), BeatIndex.open(index_dir)))
            advance(f"fold {number}")
    stamp.write_text(json.dumps(wanted))
    return out


def recorded_otherwise(records: Sequence[str], data_dir, setup: str, *, second_lead: bool = False,
                       noise_dir=None) -> BeatSet:
    """Reference-labeled beats of ``records`` as another recording set-up would give them:
    ``"other-lead"`` (each record's first lead that is not its default one: V1 in most
    MIT-BIH records; with ``second_lead`` that lead again, so a vote of both leads sees it in both views),
    ``"swapped-leads"`` (the other lead, and with ``second_lead`` the default one: both views, swapped, as a
    database whose first lead is not MLII gives them),
    ``"<rate>Hz"`` (resampled to that rate, e.g. ``"128Hz"``, a Holter's),
    ``"marks<+|-><ms>ms"`` (the annotations moved, e.g. ``"marks+40ms"``: a database that marks
    another point of the QRS), ``"<noise><snr>dB"`` (an nstdb noise record, ``em``, ``ma`` or ``bw``, added
    at that SNR to each lead as ``nst`` adds it, e.g. ``"em12dB"``: the noise test's recordings, from
    ``noise_dir``, nstdb beside ``data_dir`` by default) or ``"pauses<percent>%"`` (sinus pauses in that
    share of the sinus intervals, :mod:`~simsearch.signal.pauses`, e.g. ``"pauses2%"``); with
    ``second_lead``, the other lead of each beat of the last four (:func:`~simsearch.signal.beats.beats_in_lead`).
    What a deployed index meets in other databases.

    A synthetic rhythm of :data:`~simsearch.model.rhythms.RHYTHMS` after the set-up, ``"<setup>~<rhythm>"``
    (e.g. ``"em12dB~brady_apc"``), or alone (``"brady_apc"``: as recorded), re-sequences each record's beats so
    (:func:`~simsearch.model.rhythms.simulate_rhythm`, seed 0; both leads alike, named ``"<record>~<rhythm>"``):
    the rhythms DS1 lacks, recorded otherwise, such as record 232's pattern in noise."""
    setup, _, rhythm = setup.partition(SEPARATOR)
    if not rhythm and setup in RHYTHMS:
        setup, rhythm = "", setup
    if rhythm and rhythm not in RHYTHMS:
        raise SimsearchError(f"unknown rhythm {rhythm!r} in a recording set-up (one of {', '.join(RHYTHMS)})")
    if setup in ("other-lead", "swapped-leads"):
        if rhythm:
            raise SimsearchError(f"the {setup} set-up takes no rhythm (second_lead gives each rhythm's other lead)")
        default_lead = setup == "swapped-leads" and second_lead
        return BeatSet.stack(load_beats(records, data_dir, second_lead=not default_lead))
    noisy = re.fullmatch(r"(em|ma|bw)(-?[0-9]+)dB", setup)
    paused = re.fullmatch(r"pauses([0-9]+(?:\.[0-9]+)?)%", setup)
    if not setup and rhythm:
        def recorded(record: Record, nth: int, reference: Record) -> Record:
            return record
    elif re.fullmatch(r"[0-9]+(\.[0-9]+)?Hz", setup):
        rate = float(setup[:-2])

        def recorded(record: Record, nth: int, reference: Record) -> Record:
            return resampled(record, rate)
    elif re.fullmatch(r"marks[+-][0-9]+ms", setup):
        seconds = float(setup[5:-2]) / 1000.0

        def recorded(record: Record, nth: int, reference: Record) -> Record:
            if not record.has_annotations:  # the other lead: its beats are the first lead's
                return record
            moved = np.clip(record.ann_samples + round(seconds * record.fs), 0, record.n_samples - 1)
            return replace(record, ann_samples=moved)
    elif paused:
        share = float(paused[1]) / 100.0

        def recorded(record: Record, nth: int, reference: Record) -> Record:
            return paused_like(record, reference, share)
    elif noisy:
        noise = noise_leads(noisy[1], nstdb_dir(noise_dir, data_dir))
        snr_db = float(noisy[2])

        def recorded(record: Record, nth: int, reference: Record) -> Record:
            return noisy_lead(record, nth, noise, snr_db, reference, zlib.crc32(reference.name.encode()))
    else:
        raise SimsearchError(f"unknown recording set-up {setup!r} (other-lead, swapped-leads, <rate>Hz such as 128Hz, "
                             "marks<+|-><ms>ms such as marks+40ms, <em|ma|bw><snr>dB such as em12dB, or "
                             "pauses<percent>% such as pauses2%; each may end in ~<rhythm>, such as em12dB~brady_apc)")

    def beats(name: str) -> Beats:
        reference = load_record(name, data_dir)
        first = beats_from_record(recorded(reference, 0, reference))
        if not second_lead:
            return first
        other = load_record(name, data_dir, lead=other_lead(name, data_dir), annotations=None)
        return beats_in_lead(recorded(other, 1, reference), first)

    recorded_beats = [beats(name) for name in records]
    if rhythm:
        recorded_beats = [b for b in (simulate_rhythm(b, rhythm) for b in recorded_beats) if b is not None]
    return BeatSet.stack(recorded_beats)


def shape_and_inputs(encoder: Encoder, windows: np.ndarray, context: np.ndarray, batch_size: int = 2048
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The learned shape part of the embedding (before the fixed context part is appended) and the context inputs."""
    keras = import_keras()
    shape_model = keras.Model(encoder.model.inputs, encoder.model.get_layer("shape").output)
    beat, context_in = encoder.inputs(windows, context)
    shape = np.concatenate([np.asarray(shape_model([beat[i:i + batch_size], context_in[i:i + batch_size]],
                                                   training=False)) for i in range(0, len(beat), batch_size)])
    return shape, context_in


def fixed_scale(config: TrainingConfig, input_weights: Sequence[float] | None = None) -> np.ndarray:
    """The fixed context part's scale per input of an encoder trained with ``config``: its context weight times
    ``input_weights`` (default its own, ``config.fixed_input_weights``), as
    :func:`~simsearch.model.encoder.build_encoder` scales it."""
    weights = config.fixed_input_weights if input_weights is None else input_weights
    return float(config.context_weight) * np.asarray(weights, dtype=float)[:config.context_inputs]


def fixed_weight_lists(text: str, config: TrainingConfig) -> dict[str, np.ndarray]:
    """The scripts' ``--fixed-weights``: slash-separated lists of one weight per context input (as
    :data:`~simsearch.model.encoder.FIXED_INPUT_WEIGHTS` gives them), each as the fixed part's scale of an
    encoder trained with ``config`` (:func:`fixed_scale`), by its text.

    Raises
    ------
    ParameterError
        A list that is not ``config.context_inputs`` numbers of 0 or more.
    """
    out = {}
    for item in (part for part in text.split("/") if part):
        try:
            weights = np.array([float(w) for w in item.split(",")])
        except ValueError:
            raise ParameterError(f"--fixed-weights: not a list of numbers: {item!r}") from None
        if weights.size != config.context_inputs or not np.isfinite(weights).all() or (weights < 0).any():
            raise ParameterError(f"--fixed-weights: give {config.context_inputs} weights of 0 or more, not {item!r}")
        out[item] = fixed_scale(config, weights)
    return out


def fixed_weighted(shape: np.ndarray, context_in: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Embeddings with the fixed context part weighed per input by ``weights`` (the learned
    shape part, which also reads the context, unchanged): what an encoder whose fixed
    part had those weights would give."""
    out = np.concatenate([shape, context_in * np.asarray(weights, dtype=np.float32)[None, :]], axis=1)
    return np.ascontiguousarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def refixed(vectors: np.ndarray, dim: int, scale: np.ndarray, new_scale: np.ndarray,
            second_lead_weight: float = SECOND_LEAD_WEIGHT) -> np.ndarray:
    """Stored unit vectors with their fixed context part weighed by ``new_scale`` instead of ``scale``.

    What :func:`fixed_weighted` gives from the shape part and the inputs, recovered from the vectors
    themselves (an index keeps no more): each lead's unit vector is the shape part and the scaled inputs
    over one norm, so the inputs' columns are rescaled and the vector normalised again.

    Parameters
    ----------
    vectors : ndarray, shape (n, dim) or (n, 2 * dim)
        One lead's unit vectors, or both leads side by side (:func:`~simsearch.model.leads.side_by_side`,
        the second lead weighed ``second_lead_weight``).
    dim : int
        One lead's embedding size (:attr:`Encoder.dim`).
    scale, new_scale : ndarray, shape (n_inputs,)
        The fixed part's scale per input the vectors were embedded with (:attr:`Encoder.fixed_scale`, no zero)
        and the one wanted (:func:`fixed_scale`).
    """
    scale, new_scale = (np.asarray(s, dtype=np.float64).ravel() for s in (scale, new_scale))
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if scale.shape != new_scale.shape or not (scale > 0).all() or vectors.shape[1] not in (dim, 2 * dim):
        raise ValueError(f"refixed: scales {scale.shape} and {new_scale.shape} (none zero) for vectors "
                         f"{vectors.shape} of {dim} dimensions a lead")
    ratio = (new_scale / scale).astype(np.float32)
    leads = []
    for lead in np.split(vectors, vectors.shape[1] // dim, axis=1):
        lead = lead / np.maximum(np.linalg.norm(lead, axis=1, keepdims=True), 1e-12)
        lead[:, dim - ratio.size:] *= ratio
        leads.append(lead / np.maximum(np.linalg.norm(lead, axis=1, keepdims=True), 1e-12))
    return np.ascontiguousarray(leads[0]) if len(leads) == 1 else side_by_side(*leads, second_lead_weight)


CV_KEYS = ("truth", "classes", "distances", "counts", "groups", "neighbor_records")


def concatenate(a: BeatSet, b: BeatSet) -> BeatSet:
    samples = None if a.samples is None or b.samples is None else np.concatenate([a.samples, b.samples])
    return BeatSet(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("windows", "context", "labels",
                                                                             "groups")), samples)


def cv_scores(cv: dict, k: int, alpha: float, boosted: tuple[str, ...], subset: str = "real",
              records: Sequence[str] | None = None) -> dict[int, dict]:
    """EC57 figures pooled over held-out records, per checkpoint step, for one vote setting.

    ``subset``: "real" records, "simulated" ones, or "all"; ``records`` narrows to those
    record names (real or synthetic).
    """
    out = {}
    for step, slot in sorted(cv["checkpoints"].items()):
        matrix = np.zeros((len(AAMI_CLASSES), len(AAMI_CLASSES)), dtype=np.int64)
        for truth, classes, distances, counts, groups, neighbor_records in zip(*(slot[key] for key in CV_KEYS)):
            simulated = np.array([is_simulated(g) for g in groups], dtype=bool)
            keep = {"real": ~simulated, "simulated": simulated, "all": np.ones_like(simulated)}[subset]
            if records is not None:
                keep &= np.isin(groups, list(records))
            if keep.any():
                matrix += confusion_matrix(truth[keep], vote_predict(classes[keep], distances[keep], counts, k,
                                                                     alpha, boosted,
                                                                     neighbor_records=neighbor_records[keep],
                                                                     query_records=groups[keep]))
        metrics = class_metrics(matrix)
        out[step] = {"score": nsv_score(metrics), **metrics}
    return out
