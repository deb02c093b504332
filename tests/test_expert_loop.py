"""The command-line expert loop keeps every earlier answer.

``simsearch annotate ... --labels FILE --suggest N`` round after round: the answers of
each round are merged into ``OUT/<record>.labels.csv`` (never lost when the next
suggestion sheet replaces the filled-in one), the annotation uses all of them, and the
new sheet lists only beats not labeled yet. In-process: TensorFlow is already loaded.
"""

from __future__ import annotations

import csv
import json

import pytest
import wfdb

from simsearch.cli import main
from simsearch.signal.records import load_record

RECORD = "x233"
"""The first two minutes of MIT-BIH 233 (many VEBs; not in the small index), without annotations."""


@pytest.fixture
def excerpt(data_dir, tmp_path):
    rec = load_record("233", data_dir)
    end = int(120 * rec.fs)
    wfdb.wrsamp(RECORD, fs=rec.fs, units=["mV"], sig_name=[rec.lead], p_signal=rec.signal[:end, None], fmt=["16"],
                write_dir=str(tmp_path))
    return tmp_path / RECORD


def annotate(capsys, index, record, out, *more):
    main(["annotate", index, record, "--out", out, "--json", *more])
    return json.loads(capsys.readouterr().out)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fill(sheet, label_of):
    """The expert answers every row of a suggestion sheet (as a person would, in place)."""
    lines = rows(sheet)
    for line in lines:
        line["label"] = label_of(int(line["sample"]))
    with open(sheet, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    return {int(line["sample"]): line["label"] for line in lines}


def test_answers_of_every_round_are_kept(small_index, excerpt, tmp_path, capsys):
    out = tmp_path / "out"
    sheet = out / f"{RECORD}.suggest.csv"
    first = annotate(capsys, small_index.path, excerpt, out, "--suggest", "4")
    asked = [s["sample"] for s in first["suggestions"]]
    assert len(asked) == 4 and not (out / f"{RECORD}.labels.csv").exists()

    answers = fill(sheet, lambda s: "V" if s % 2 else "N")
    second = annotate(capsys, small_index.path, excerpt, out, "--labels", sheet, "--suggest", "4")
    assert second["by_label_source"]["expert"] == 4
    assert second["files"]["labels"] == str(out / f"{RECORD}.labels.csv")
    kept = {int(r["sample"]): r["label"] for r in rows(out / f"{RECORD}.labels.csv")}
    assert kept == answers
    new = [s["sample"] for s in second["suggestions"]]
    assert len(new) == 4 and not set(new) & set(answers)
    assert [int(r["sample"]) for r in rows(sheet)] == new  # the sheet now lists only unlabeled beats

    more = fill(sheet, lambda s: "S")
    answers[asked[0]] = "F"  # the expert changes one earlier answer: the newer label wins
    with open(tmp_path / "fix.csv", "w") as f:
        f.write(f"sample,label\n{asked[0]},F\n" + "".join(f"{s},S\n" for s in more))
    third = annotate(capsys, small_index.path, excerpt, out, "--labels", tmp_path / "fix.csv", "--suggest", "4")
    assert third["by_label_source"]["expert"] == 8
    kept = {int(r["sample"]): r["label"] for r in rows(out / f"{RECORD}.labels.csv")}
    assert kept == {**answers, **more}
    assert not {s["sample"] for s in third["suggestions"]} & set(kept)
    beats = {b["sample"]: b for b in json.loads((out / f"{RECORD}.pred.json").read_text())["beats"]}
    assert all(beats[s]["label_source"] == "expert" and beats[s]["label"] == label for s, label in kept.items())


def test_a_bad_earlier_labels_file_is_refused_before_anything_runs(small_index, excerpt, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{RECORD}.labels.csv").write_text("sample,label\n100,Z\n")
    (tmp_path / "new.csv").write_text("sample,label\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", small_index.path, excerpt, "--out", out, "--labels", tmp_path / "new.csv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown label 'Z'" in err and len(err.strip().splitlines()) == 1


def test_spreading_by_conjugate_gradients_matches_the_direct_solve(monkeypatch):
    """Past DIRECT_SOLVE_MAX unlabeled beats (a 24-hour Holter) the system is solved iteratively: same answer."""
    import numpy as np

    from simsearch.label import spreading

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 32))
    x = (centres[rng.integers(0, 6, 1200)] + 0.3 * rng.normal(size=(1200, 32))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = spreading.knn_graph(x)
    prior = rng.random((1200, 5))
    prior /= prior.sum(axis=1, keepdims=True)
    clamped = np.array([4, 90, 700])
    prior[clamped] = 0.0
    prior[clamped, [1, 2, 3]] = spreading.EXPERT_WEIGHT
    direct = spreading.spread(graph, prior, clamped)
    monkeypatch.setattr(spreading, "DIRECT_SOLVE_MAX", 100)
    iterative = spreading.spread(graph, prior, clamped)
    assert np.allclose(iterative, direct, rtol=0, atol=1e-8 * np.abs(direct).max())
    assert (iterative.argmax(axis=1) == direct.argmax(axis=1)).all()
