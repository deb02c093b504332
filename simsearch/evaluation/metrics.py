"""Scores as AAMI EC57 reports them, plus retrieval precision@k."""

from __future__ import annotations

import numpy as np

from ..aami import AAMI_CLASSES


def confusion_matrix(true_idx: np.ndarray, pred_idx: np.ndarray) -> np.ndarray:
    """(5, 5) counts: rows are reference classes, columns predictions, AAMI order."""
    n = len(AAMI_CLASSES)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_idx), np.asarray(pred_idx)), 1)
    return matrix


def class_metrics(matrix: np.ndarray) -> dict:
    """Se, +P and FPR (percent) per scored class, overall accuracy, and Q apart.

    As PhysioNet's ``bxb`` (EC57's reference implementation) counts them: beats whose
    reference is Q are left out of every figure, but a beat of another class called Q is
    a miss of its class (``bxb``'s ``Sq``, ``Vq``: before 2026-11-23 those beats were left out
    too, which only an index holding Q beats, paced records, could tell); a fusion (F) beat
    called V is not a VEB false positive (F is a V/N mixture). ``called_q`` counts the scored
    beats called Q.
    """
    q = AAMI_CLASSES.index("Q")
    scored = np.delete(np.asarray(matrix), q, axis=0)  # reference Q out; the column of beats called Q stays
    classes = [c for c in AAMI_CLASSES if c != "Q"]
    total = scored.sum()
    result: dict = {"classes": {}}
    for i, name in enumerate(classes):
        column = AAMI_CLASSES.index(name)
        tp = scored[i, column]
        fn = scored[i].sum() - tp
        fp = scored[:, column].sum() - tp
        if name == "V":
            fp -= scored[classes.index("F"), column]
        tn = total - tp - fn - fp
        result["classes"][name] = {
            "n": int(scored[i].sum()),
            "tp": int(tp), "fn": int(fn), "fp": int(fp),
            "se": percent(tp, tp + fn),
            "ppv": percent(tp, tp + fp),
            "fpr": percent(fp, fp + tn),
        }
    result["accuracy"] = percent(sum(scored[i, AAMI_CLASSES.index(c)] for i, c in enumerate(classes)), total)
    q_row = np.asarray(matrix)[q]
    result["q_beats"] = {"n": int(q_row.sum()), "predicted": {c: int(v) for c, v in zip(AAMI_CLASSES, q_row)}}
    result["called_q"] = int(scored[:, q].sum())
    return result


def precision_at_k(query_idx: np.ndarray, neighbor_idx: np.ndarray, k: int) -> dict[str, float | None]:
    """Per class: mean share of a query's first ``k`` neighbors that have its class."""
    hits = (np.asarray(neighbor_idx)[:, :k] == np.asarray(query_idx)[:, None]).mean(axis=1)
    out: dict[str, float | None] = {}
    for i, name in enumerate(AAMI_CLASSES):
        rows = query_idx == i
        out[name] = float(hits[rows].mean()) if rows.any() else None
    macro = [out[c] for c in ("N", "S", "V") if out[c] is not None]
    out["macro_NSV"] = float(np.mean(macro)) if macro else None
    return out


def percent(num, den) -> float | None:
    """``100 * num / den`` rounded to 2 decimals; None where ``den`` is 0."""
    return round(100.0 * float(num) / float(den), 2) if den else None


def se_ppv_text(figures: dict, sep: str = " / ") -> str:
    """A class's Se and +P (a :func:`class_metrics` class entry) as text, "-" for either where it is undefined (no
    such beat, or none called it), as the scripts print them."""
    return sep.join("-" if figures[key] is None else str(figures[key]) for key in ("se", "ppv"))
